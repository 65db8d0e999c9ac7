"""Ingest: the batch zip's members catalogued, quarantined or handed to the pixel export."""

# The ingest step's worker pool, as `shared.parallel.prestart` names it: `casbusi run-batch`
# starts it before Dagster is imported (cli.py), the step takes it over (ingest/assets.py).
POOL_PURPOSE = "ingest"

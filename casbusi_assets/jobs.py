"""Jobs: `batch_job` materialises every batch-partitioned asset for one batch."""

import dagster as dg

# Every materialisable asset is batch-partitioned; the external `inbox_zip` is reported, not run.
batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("inbox_zip"),
    description="Ingest one batch zip through the whole asset graph.",
)

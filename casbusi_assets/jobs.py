"""Jobs: `batch_job` materialises every batch-partitioned asset for one batch; `export_job`
writes a training export of all batches."""

import dagster as dg

# Every batch-partitioned asset; the external `inbox_zip` is reported, not run, the export
# (over all batches, not partitioned) runs on its own so a backfill does not export per batch,
# and `labels_archive` (partitioned by labels retrieval) runs in labels_import_job.
batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets("inbox_zip", "export_splits", "labels_archive"),
    description="Ingest one batch zip through the whole asset graph.",
)

export_job = dg.define_asset_job(
    "export_job",
    selection=dg.AssetSelection.assets("export_splits"),
    description="Write a new training export of every batch under <home>/exports/.",
)

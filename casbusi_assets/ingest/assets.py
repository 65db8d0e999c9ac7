"""Stage 1: the batch zip, its catalog of members and, in the same pass, its stills and clips.

One step (named `dicom_catalog`, function `ingest_batch`) has three outputs (`dicom_catalog`,
`image_table`, `video_table`): each zip member is read, inflated, hashed and parsed once, and an
ok still or clip is decoded from that parse (pixels/single_pass.py). The three stay separate
assets with their own tables, groups and checks; selecting only some of them runs only that
work (`--select dicom_catalog` catalogues without decoding a pixel).
"""

from collections.abc import Iterator
from contextlib import ExitStack

import dagster as dg
import pandas as pd

from casbusi_assets.ingest import POOL_PURPOSE
from casbusi_assets.ingest.resources import CaseCsvSource, IngestSettings
from casbusi_assets.ingest.sources import BatchSourceError, find_zip
from casbusi_assets.ingest.zip_members import BatchArchiveError
from casbusi_assets.pixels.assets import (
    IMAGE_TABLE_DOC,
    VIDEO_TABLE_DOC,
    failed_rows,
    image_metadata,
    video_metadata,
)
from casbusi_assets.pixels.resources import VideoFramePolicy
from casbusi_assets.pixels.single_pass import ingest_zip
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.shared.parallel import WorkerPool
from casbusi_assets.shared.partitions import batch_partitions
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.resources import CasbusiHome

inbox_zip = dg.AssetSpec(
    "inbox_zip",
    partitions_def=batch_partitions,
    group_name="ingest",
    description="A batch zip as delivered (reported by the inbox sensor or `casbusi run-batch`).",
    kinds={"zip"},
)

CATALOG_DOC = """One row per member of the batch zip, read straight from the archive: identifiers,
typed hot tags, the whole header as DICOM-JSON, file and pixel hashes, `kind` (image / video /
no_pixels, from NumberOfFrames and pixel presence; case_csv for the batch's case table) and a
`status`. Members that cannot be used (not DICOM, truncated, undecodable, unsafe path, too
large, no SOPInstanceUID) are kept as `quarantined` rows with an `error_code` and a readable
`error`. A readable file with an empty PatientID or AccessionNumber is `ok`, with
`missing_links` naming the empty link."""


def _table_out(group_name: str, kinds: set[str], description: str) -> dg.AssetOut:
    # The same settings every batch-partitioned warehouse table has (shared/partitions.py).
    return dg.AssetOut(
        group_name=group_name,
        kinds=kinds,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": "batch_id"},
        description=description,
        is_required=False,  # each output can be materialised on its own (can_subset)
    )


@dg.multi_asset(
    # The step keeps the catalog's name: logs, failure messages ("dicom_catalog failed: ...")
    # and per-step executor settings stay as they were when the catalog was a step of its own.
    name="dicom_catalog",
    outs={
        "dicom_catalog": _table_out("ingest", {"dicom", "parquet"}, CATALOG_DOC),
        "image_table": _table_out("images", {"png", "parquet"}, IMAGE_TABLE_DOC),
        "video_table": _table_out("videos", {"png", "parquet"}, VIDEO_TABLE_DOC),
    },
    partitions_def=batch_partitions,
    deps=[inbox_zip],
    # The tables are made from the catalog's reading of each member: keep that lineage edge.
    internal_asset_deps={
        "dicom_catalog": {inbox_zip.key},
        "image_table": {inbox_zip.key, dg.AssetKey("dicom_catalog")},
        "video_table": {inbox_zip.key, dg.AssetKey("dicom_catalog")},
    },
    can_subset=True,
    pool="ingest",
    description="Reads each member of the batch zip once: its catalog row and, for stills and "
    "clips, its PNG files.",
)
def ingest_batch(
    context: dg.AssetExecutionContext,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
    case_csv_source: CaseCsvSource,
    video_frame_policy: VideoFramePolicy,
) -> Iterator[dg.Output]:
    home = casbusi_home.layout()
    batch_id = context.partition_key
    # Output names are the asset names; with can_subset only the selected ones are made.
    selected = {key.path[-1] for key in context.selected_asset_keys}
    policy, every_n = video_frame_policy.policy, video_frame_policy.every_n
    catalog: warehouse.BatchWriter | None = None
    try:
        zip_path = find_zip(home, batch_id)
        context.log.info(f"ingesting {zip_path} ({', '.join(sorted(selected))})")
        with ExitStack() as stack:
            images = videos = None
            if "dicom_catalog" in selected:
                # Rows go to the batch file as they come (the IO manager puts it in place when
                # the output is stored), so the step never holds every member's header.
                catalog = warehouse.BatchWriter(home.warehouse, "dicom_catalog", batch_id)
            if "image_table" in selected:
                images = stack.enter_context(staged_batch_dir(home.files, "image_table", batch_id))
            if "video_table" in selected:
                videos = stack.enter_context(staged_batch_dir(home.files, "video_table", batch_id))
            # One pool for the whole step. Entered last, so it is shut down first (also on
            # failure): no worker is still writing when the staging folders are committed.
            # `casbusi run-batch` starts these workers before it imports Dagster (cli.py).
            pool = stack.enter_context(WorkerPool.take(POOL_PURPOSE, ingest_settings.workers))
            result = ingest_zip(
                zip_path,
                batch_id,
                ingest_settings.limits(),
                images=images,
                videos=videos,
                policy=policy,
                every_n=every_n,
                pool=pool,
                report=context.log.info,
                case_csv_name=case_csv_source.member_name,
                catalog_writer=catalog,
            )
    except (BatchSourceError, BatchArchiveError) as exc:
        # Nothing has been written: the run fails with the reason, no partial outputs.
        if catalog is not None:
            catalog.abort()
        raise dg.Failure(description=f"batch '{batch_id}': {exc}") from exc
    except BaseException:
        if catalog is not None:
            catalog.abort()  # the batch's file stays as it was; no temp file is left
        raise
    if catalog is not None:
        yield dg.Output(
            catalog,  # the written batch file; result.catalog is its rows without the headers
            output_name="dicom_catalog",
            metadata=_catalog_metadata(context, batch_id, zip_path, result.catalog),
        )
    for name, df, staged in (
        ("image_table", result.images, images),
        ("video_table", result.videos, videos),
    ):
        if df is None or staged is None:
            continue
        for row in failed_rows(df).itertuples():
            context.log.warning(f"could not export {row.member_path}: {row.error}")
        metadata = (
            image_metadata(df, staged)
            if name == "image_table"
            else video_metadata(df, staged, policy, every_n)
        )
        yield dg.Output(df, output_name=name, metadata=metadata)


def _catalog_metadata(
    context: dg.AssetExecutionContext, batch_id: str, zip_path: object, df: pd.DataFrame
) -> dict[str, object]:
    quarantined = df[df["status"] == "quarantined"]
    n_dicom = int(((df["status"] == "ok") & df["kind"].isin(["image", "video", "no_pixels"])).sum())
    if n_dicom == 0:
        context.log.warning(
            f"batch '{batch_id}': the zip holds no usable DICOM file ({len(df)} member(s), "
            f"{len(quarantined)} quarantined); every downstream table of this batch will be empty"
        )
    if len(quarantined):
        context.log.warning(
            f"{len(quarantined)} member(s) quarantined: {counts(quarantined['error_code'])}"
        )
    return {
        "zip": dg.MetadataValue.path(str(zip_path)),
        "members": len(df),
        "dicom_members": n_dicom,
        "by_kind": counts(df.loc[df["status"] == "ok", "kind"]),
        "quarantined": len(quarantined),
        "quarantine_reasons": counts(quarantined["error_code"]),
        "quarantine_list": markdown_table(quarantined, ["member_path", "error_code", "error"]),
        "missing_links": counts(df.loc[df["status"] == "ok", "missing_links"].dropna()),
        "patients": int(df.loc[df["status"] == "ok", "patient_id"].nunique()),
    }

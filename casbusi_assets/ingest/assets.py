"""Stage 1: the batch zip and its catalog of members."""

import dagster as dg
import pandas as pd

from casbusi_assets.ingest.catalog import catalog_zip
from casbusi_assets.ingest.resources import CaseCsvSource, IngestSettings
from casbusi_assets.ingest.sources import BatchSourceError, find_zip
from casbusi_assets.ingest.zip_members import BatchArchiveError
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.shared.parallel import Progress
from casbusi_assets.shared.partitions import batch_partitions, batch_table
from casbusi_assets.storage.resources import CasbusiHome

inbox_zip = dg.AssetSpec(
    "inbox_zip",
    partitions_def=batch_partitions,
    group_name="ingest",
    description="A batch zip as delivered (reported by the inbox sensor or `casbusi run-batch`).",
    kinds={"zip"},
)


@dg.asset(**batch_table("ingest", {"dicom", "parquet"}, deps=[inbox_zip], pool="ingest"))
def dicom_catalog(
    context: dg.AssetExecutionContext,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
    case_csv_source: CaseCsvSource,
) -> pd.DataFrame:
    """One row per member of the batch zip, read straight from the archive: identifiers, typed
    hot tags, the whole header as DICOM-JSON, file and pixel hashes, `kind` (image / video /
    no_pixels, from NumberOfFrames and pixel presence; case_csv for the batch's case table) and a
    `status`. Members that cannot be used
    (not DICOM, truncated, undecodable, unsafe path, too large, no SOPInstanceUID) are kept as
    `quarantined` rows with an `error_code` and a readable `error`. A readable file with an empty
    PatientID or AccessionNumber is `ok`, with `missing_links` naming the empty link."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    try:
        zip_path = find_zip(home, batch_id)
        context.log.info(f"cataloguing {zip_path}")
        df = catalog_zip(
            zip_path,
            batch_id,
            ingest_settings.limits(),
            workers=ingest_settings.workers,
            progress=Progress(context.log.info, "dicom_catalog").update,
            case_csv_name=case_csv_source.member_name,
        )
    except (BatchSourceError, BatchArchiveError) as exc:
        # Nothing has been written: the run fails with the reason, no partial outputs.
        raise dg.Failure(description=f"batch '{batch_id}': {exc}") from exc
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
    context.add_output_metadata(
        {
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
    )
    return df

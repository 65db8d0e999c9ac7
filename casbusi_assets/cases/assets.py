"""Stage 2c: the case table (total_cases_anon.csv) and its per-study and per-breast rollups."""

from pathlib import Path

import dagster as dg
import pandas as pd

from casbusi_assets.cases.tables import (
    CaseCsvError,
    build_breast_table,
    build_case_study_table,
    read_case_csv,
    uncased_accessions,
)
from casbusi_assets.ingest.resources import CaseCsvSource, IngestSettings
from casbusi_assets.ingest.sources import find_zip
from casbusi_assets.ingest.zip_members import BatchArchiveError, open_batch_zip, read_root_file
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.shared.partitions import batch_table
from casbusi_assets.storage.resources import CasbusiHome

_TABLE = batch_table("cases", {"parquet"})


# After dicom_catalog: it validates the archive once and fails the run with the reason if it is
# unreadable, so nothing else re-reports the same broken zip.
@dg.asset(deps=["inbox_zip", "dicom_catalog"], **_TABLE)
def case_table(
    context: dg.AssetExecutionContext,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
    case_csv_source: CaseCsvSource,
) -> pd.DataFrame:
    """The case CSV of the batch as delivered, one row per biopsy, validated and typed: from the
    configured override path if set, else `total_cases_anon.csv` at the zip root. Missing or
    malformed columns fail the step with a message naming the column."""
    batch_id = context.partition_key
    if case_csv_source.override_path:
        path = Path(case_csv_source.override_path).expanduser()
        if not path.is_file():
            raise dg.Failure(description=f"configured case CSV {path} does not exist")
        data, source = path.read_bytes(), str(path)
    else:
        zip_path = find_zip(casbusi_home.layout(), batch_id)
        try:
            with open_batch_zip(zip_path, ingest_settings.limits()) as zf:
                data = read_root_file(zf, case_csv_source.member_name)
        except BatchArchiveError as exc:
            raise dg.Failure(description=f"batch '{batch_id}': {exc}") from exc
        source = f"zip:{case_csv_source.member_name}"
        if data is None:
            context.log.warning(
                f"{zip_path.name} holds no {case_csv_source.member_name}; "
                "the case tables of this batch are empty"
            )
            context.add_output_metadata({"source": "none", "biopsy_rows": 0})
            return pd.DataFrame()  # the IO manager writes it as a typed, empty table
    try:
        df = read_case_csv(data, source, batch_id)
    except CaseCsvError as exc:
        raise dg.Failure(description=f"batch '{batch_id}': {exc}") from exc
    context.add_output_metadata(
        {
            "source": source,
            "biopsy_rows": len(df),
            "accessions": int(df[["patient_id", "accession_number"]].drop_duplicates().shape[0]),
            "study_laterality": counts(df["study_laterality"]),
        }
    )
    return df


@dg.asset(**_TABLE)
def case_study_table(
    context: dg.AssetExecutionContext, case_table: pd.DataFrame, dicom_catalog: pd.DataFrame
) -> pd.DataFrame:
    """One row per (patient, accession): the case CSV's biopsies as lists, BI-RADS, laterality,
    demographics, the DICOM study fields of that accession, image and cine counts, and the
    trustworthiness score (1 best .. 3 worst) with its reason."""
    batch_id = context.partition_key
    df = build_case_study_table(case_table, dicom_catalog, batch_id)
    orphans = uncased_accessions(case_table, dicom_catalog)
    if len(orphans):
        context.log.warning(f"{len(orphans)} accession(s) have DICOMs but no case CSV row")
    context.add_output_metadata(
        {
            "studies": len(df),
            "trustworthiness": counts(df["trustworthiness"]),
            "studies_without_images": int((df["image_count"] == 0).sum()) if len(df) else 0,
            "accessions_without_case_row": len(orphans),
            "preview": markdown_table(
                df,
                [
                    "patient_id",
                    "accession_number",
                    "birads",
                    "study_laterality",
                    "image_count",
                    "trustworthiness",
                    "trust_reason",
                ],
            ),
        }
    )
    return df


@dg.asset(**_TABLE)
def breast_table(context: dg.AssetExecutionContext, case_table: pd.DataFrame) -> pd.DataFrame:
    """Two rows (LEFT, RIGHT) per (patient, accession): malignant / benign / unknown flags from the
    biopsy results of that breast, its pathology and density descriptions, and lesion count."""
    df = build_breast_table(case_table, context.partition_key)
    context.add_output_metadata(
        {
            "breasts": len(df),
            "malignant": int(df["has_malignant"].sum()) if len(df) else 0,
            "benign": int(df["has_benign"].sum()) if len(df) else 0,
        }
    )
    return df

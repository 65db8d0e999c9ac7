"""Cleaning stage: per-image and per-clip decisions (include, or the reason codes why not)."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from casbusi_assets.cleaning.batch import (
    StepTimer,
    clean_images,
    clean_videos,
    default_calipers,
    orientation_in_workers,
)
from casbusi_assets.cleaning.resources import CleaningSettings
from casbusi_assets.cleaning.rules import REASON_CODES
from casbusi_assets.cleaning.sheets import sheets_by_reason
from casbusi_assets.ingest.sources import find_zip
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.shared.parallel import resolve_workers
from casbusi_assets.shared.partitions import batch_partitions, batch_table
from casbusi_assets.shared.resources import DeviceResource
from casbusi_assets.storage.resources import CasbusiHome


def _reason_counts(df: pd.DataFrame) -> dict[str, int]:
    """Rows per reason code, every code listed (0 included) so batches compare at a glance."""
    flat = df["exclusion_reasons"].explode().dropna() if len(df) else pd.Series(dtype=object)
    seen = flat.value_counts().to_dict()
    return {code: int(seen.get(code, 0)) for code in REASON_CODES}


def _decision_metadata(df: pd.DataFrame, settings: CleaningSettings) -> dict[str, object]:
    meta: dict[str, object] = {
        "rows": len(df),
        "included": int(df["include"].sum()) if len(df) else 0,
        "excluded": int((~df["include"].astype(bool)).sum()) if len(df) else 0,
        "excluded_by_reason": _reason_counts(df),
        "label_cat": counts(df["label_cat"]) if len(df) else {},
    }
    for reason, md in sheets_by_reason(df, settings.sheet_images_per_reason).items():
        meta[f"sheet_{reason}"] = dg.MetadataValue.md(md)
    return meta


def _orientation_model(
    context: dg.AssetExecutionContext, settings: CleaningSettings, device: DeviceResource
) -> tuple[Callable | None, str, bool]:
    """The orientation step (weights loaded once per process), a line for the metadata, and
    whether it runs in the pool workers (on the CPU; on a GPU in the step process). A
    configured confidence threshold replaces the model's own."""
    if not settings.use_orientation_model:
        return None, "off (use_orientation_model=false)", False
    from casbusi_assets.cleaning import orientation

    step = orientation.OrientationStep(
        settings.orientation_model_path or None,
        device=device.resolve("torch"),
        min_confidence=settings.thresholds().orientation_min_confidence,
        batch_size=device.batch_size,
    )
    try:
        model = step.load()  # here too: missing or bad weights are a warning, not a failed step
    except orientation.OrientationModelError as exc:
        context.log.warning(f"orientation model unavailable, orientation stays OCR-only: {exc}")
        return None, f"unavailable: {exc}", False
    in_workers = orientation_in_workers(model.device) and resolve_workers(settings.workers) > 1
    where = "in the pool workers" if in_workers else "in the step process"
    context.log.info(f"orientation model {model.path.name} on {model.device}, {where}")
    note = f"{model.path.name} on {model.device}, min confidence {step.threshold}, {where}"
    return step, note, in_workers


def _caliper_step(
    context: dg.AssetExecutionContext, settings: CleaningSettings, device: DeviceResource
) -> tuple[Callable, str]:
    """The caliper detector for the step: the learned verifier on the resource's device, or
    the classical matcher when it is switched off or its weights are missing."""
    if not settings.use_caliper_model:
        return default_calipers, "classical (use_caliper_model=false)"
    from casbusi_assets.cleaning.caliper_model import CaliperModelError, LearnedCalipers

    step = LearnedCalipers(settings.caliper_model_path or None, device=device.device)
    try:
        model = step.load()
    except CaliperModelError as exc:
        context.log.warning(f"caliper model unavailable, using the classical detector: {exc}")
        return default_calipers, f"classical (model unavailable: {exc})"
    return step, f"{Path(step.path).name} on {model.device}, threshold {model.threshold}"


def _zip_or_none(context: dg.AssetExecutionContext, home, batch_id: str):
    """The batch's zip, for re-decoding colour originals; without it the green test runs on the
    stored PNG (a warning says so) rather than failing the whole batch."""
    try:
        return find_zip(home, batch_id)
    except Exception as exc:  # noqa: BLE001 - any lookup failure means "not available"
        context.log.warning(f"batch zip not found ({exc}); corrupt test uses the stored PNGs")
        return None


@dg.asset(**batch_table("cleaning", {"pytorch", "parquet"}, pool="inference"))
def cleaned_images(
    context: dg.AssetExecutionContext,
    image_table: pd.DataFrame,
    ocr_table: pd.DataFrame,
    dicom_catalog: pd.DataFrame,
    case_study_table: pd.DataFrame,
    casbusi_home: CasbusiHome,
    cleaning_settings: CleaningSettings,
    device: DeviceResource,
) -> pd.DataFrame:
    """One row per still image with the decision about it: `include`, or the reason codes in
    `exclusion_reasons` (README: Cleaning). Measures: corrupt, duplicate_of (across every batch
    ingested before this one), twin_of / twin_distance, darkness, the ultrasound-field crop,
    caliper boxes, orientation (OCR, else the orientation model), label_cat. Nothing is deleted."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    predict, model_note, model_in_workers = _orientation_model(context, cleaning_settings, device)
    caliper_fn, caliper_note = _caliper_step(context, cleaning_settings, device)
    timer = StepTimer()
    df = clean_images(
        batch_id,
        image_table,
        ocr_table,
        dicom_catalog,
        case_study_table,
        cleaning_settings.thresholds(),
        warehouse=home.warehouse,
        batch_order=context.instance.get_dynamic_partitions(batch_partitions.name),
        zip_path=_zip_or_none(context, home, batch_id),
        caliper_fn=caliper_fn,
        orientation_fn=predict,
        timer=timer,
        report=context.log.info,
        workers=cleaning_settings.workers,
        orientation_in_workers=model_in_workers,
    )
    meta = _decision_metadata(df, cleaning_settings)
    meta.update(
        orientation_source=counts(df["orientation_source"]) if len(df) else {},
        orientation_model=model_note,
        caliper_detector=caliper_note,
        ms_per_image_by_step=timer.ms_per_item(),
        sample=markdown_table(
            df[~df["include"].astype(bool)] if len(df) else df,
            ["sop_instance_uid", "exclusion_reasons", "darkness", "twin_distance"],
        ),
    )
    context.add_output_metadata(meta)
    return df


@dg.asset(**batch_table("cleaning", {"parquet"}))
def cleaned_videos(
    context: dg.AssetExecutionContext,
    video_table: pd.DataFrame,
    ocr_table: pd.DataFrame,
    dicom_catalog: pd.DataFrame,
    case_study_table: pd.DataFrame,
    cleaning_settings: CleaningSettings,
) -> pd.DataFrame:
    """One row per cine clip with the decision about it; the first saved frame stands for the
    clip (as in the original): crop, darkness, content, link and case rules of a still."""
    df = clean_videos(
        context.partition_key,
        video_table,
        ocr_table,
        dicom_catalog,
        case_study_table,
        cleaning_settings.thresholds(),
    )
    context.add_output_metadata(_decision_metadata(df, cleaning_settings))
    return df

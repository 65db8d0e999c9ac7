"""The code location: every asset, the job, the inbox sensor and the resources, in one Definitions.

Settings come from CASBUSI_* environment variables (see the README's configuration table), so
nothing is configured by editing code; the UI's launchpad can override any resource per run.
"""

from __future__ import annotations

import os

import dagster as dg

from casbusi_assets.cases import assets as cases
from casbusi_assets.cleaning import assets as cleaning
from casbusi_assets.cleaning import checks as cleaning_checks
from casbusi_assets.cleaning.resources import CleaningSettings
from casbusi_assets.deployment import executor_from_env
from casbusi_assets.export import assets as export
from casbusi_assets.export.resources import ExportSettings
from casbusi_assets.export.sensors import export_after_batches_sensor
from casbusi_assets.ingest import assets as ingest
from casbusi_assets.ingest import checks as ingest_checks
from casbusi_assets.ingest.resources import CaseCsvSource, InboxSettings, IngestSettings
from casbusi_assets.ingest.sensors import inbox_sensor
from casbusi_assets.inpainting import assets as inpainting
from casbusi_assets.inpainting import checks as inpainting_checks
from casbusi_assets.inpainting.resources import DEFAULT_MODEL_PATH, InpaintSettings
from casbusi_assets.jobs import batch_job, export_job
from casbusi_assets.labelling import assets as labelling
from casbusi_assets.labelling.io_manager import LabelsArchiveIOManager
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets.labelling.sensors import labels_inbox_sensor, labels_sync_schedule
from casbusi_assets.loggers import compact_console_logger
from casbusi_assets.ocr import assets as ocr
from casbusi_assets.ocr import checks as ocr_checks
from casbusi_assets.ocr.resources import OcrEngineResource
from casbusi_assets.pixels import assets as pixels
from casbusi_assets.pixels import checks as pixels_checks
from casbusi_assets.pixels.resources import VideoFramePolicy
from casbusi_assets.shared.resources import DeviceResource
from casbusi_assets.storage.io_manager import WarehouseIOManager
from casbusi_assets.storage.resources import CasbusiHome


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _caliper_detector() -> str:
    value = _env("CASBUSI_CALIPER_DETECTOR", "learned").strip().lower()
    if value not in ("learned", "classical"):
        raise ValueError(
            f"CASBUSI_CALIPER_DETECTOR must be 'learned' or 'classical', not {value!r}"
        )
    return value


def _env_var(name: str) -> str | dg.EnvVar:
    """A secret or id as an EnvVar (resolved at run time, shown by name in the UI) when it is
    set, else empty: an EnvVar of an unset variable fails every run, and unset means offline."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def build_resources(home: str | None = None) -> dict[str, object]:
    """The resources of a deployment, from the environment; `home` overrides $CASBUSI_HOME."""
    home = home if home is not None else _env("CASBUSI_HOME", "")
    return {
        "casbusi_home": CasbusiHome(home=home),
        "warehouse_io_manager": WarehouseIOManager(home=home),
        "labels_archive_io_manager": LabelsArchiveIOManager(home=home),
        "labelbox": LabelboxResource(
            api_key=_env_var("LABELBOX_API_KEY"),
            project_id=_env_var("LABELBOX_PROJECT_ID"),
            dataset_id=_env_var("LABELBOX_DATASET_ID"),
            mode=_env("CASBUSI_LABELBOX_MODE", "auto"),
            task_timeout_seconds=float(_env("CASBUSI_LABELBOX_TIMEOUT", "600")),
        ),
        "ingest_settings": IngestSettings(
            workers=int(_env("CASBUSI_WORKERS", "0")),  # 0 = one per available core
            max_member_mb=float(_env("CASBUSI_MAX_MEMBER_MB", "4096")),
            max_total_gb=float(_env("CASBUSI_MAX_TOTAL_GB", "256")),
            max_ratio=float(_env("CASBUSI_MAX_RATIO", "1000")),
            max_quarantine_share=float(_env("CASBUSI_MAX_QUARANTINE_SHARE", "0.2")),
        ),
        "video_frame_policy": VideoFramePolicy(
            policy=_env("CASBUSI_FRAME_POLICY", "every_nth"),
            every_n=int(_env("CASBUSI_FRAME_EVERY_N", "4")),
        ),
        "case_csv_source": CaseCsvSource(override_path=_env("CASBUSI_CASE_CSV", "")),
        "device": DeviceResource(
            device=_env("CASBUSI_DEVICE", "auto"),
            batch_size=int(_env("CASBUSI_BATCH_SIZE", "8")),
        ),
        "ocr_engine": OcrEngineResource(
            engine=_env("CASBUSI_OCR_ENGINE", "rapidocr"),
            model_dir=_env("CASBUSI_EASYOCR_MODEL_DIR", ""),
            min_score=float(_env("CASBUSI_OCR_MIN_SCORE", "0.5")),
            workers=int(_env("CASBUSI_WORKERS", "0")),  # 0 = one per available core
        ),
        "cleaning_settings": CleaningSettings(
            green_margin=float(_env("CASBUSI_GREEN_MARGIN", "10")),
            dark_percent=float(_env("CASBUSI_DARK_PERCENT", "65")),
            dark_pixel_level=int(_env("CASBUSI_DARK_PIXEL_LEVEL", "20")),
            twin_max_distance=float(_env("CASBUSI_TWIN_MAX_DISTANCE", "10")),
            twin_max_relative_distance=float(_env("CASBUSI_TWIN_MAX_RELATIVE_DISTANCE", "0.3")),
            areas_kept=_env("CASBUSI_AREAS_KEPT", "breast,unknown"),
            valid_birads=_env("CASBUSI_VALID_BIRADS", "0,1,2,3,4,4A,4B,4C,5,6"),
            study_exclusion_words=_env("CASBUSI_STUDY_EXCLUSION_WORDS", "chest,mastectomy"),
            max_biopsy_days=float(_env("CASBUSI_MAX_BIOPSY_DAYS", "30")),
            max_regions=int(_env("CASBUSI_MAX_REGIONS", "1")),
            orientation_min_confidence=float(_env("CASBUSI_ORIENTATION_MIN_CONFIDENCE", "-1")),
            orientation_model_path=_env("CASBUSI_ORIENTATION_MODEL", ""),
            use_caliper_model=_caliper_detector() == "learned",
            caliper_model_path=_env("CASBUSI_CALIPER_MODEL", ""),
            workers=int(_env("CASBUSI_WORKERS", "0")),
        ),
        "inpaint_settings": InpaintSettings(
            method=_env("CASBUSI_INPAINT_METHOD", "learned"),
            radius=float(_env("CASBUSI_INPAINT_RADIUS", "3")),
            model_path=_env("CASBUSI_INPAINT_MODEL", DEFAULT_MODEL_PATH),
            workers=int(_env("CASBUSI_WORKERS", "0")),
        ),
        "inbox_settings": InboxSettings(
            settle_seconds=float(_env("CASBUSI_INBOX_SETTLE_SECONDS", "10"))
        ),
        "export_settings": ExportSettings(
            val_fraction=float(_env("CASBUSI_EXPORT_VAL_FRACTION", "0.15")),
            test_fraction=float(_env("CASBUSI_EXPORT_TEST_FRACTION", "0.15")),
            salt=_env("CASBUSI_EXPORT_SALT", "casbusi-split-v1"),
            split_mode=_env("CASBUSI_EXPORT_SPLIT_MODE", "hash"),
            max_trust=int(_env("CASBUSI_EXPORT_MAX_TRUST", "2")),
            min_aspect=float(_env("CASBUSI_EXPORT_MIN_ASPECT", "0.5")),
            max_aspect=float(_env("CASBUSI_EXPORT_MAX_ASPECT", "4.0")),
            min_crop_side=int(_env("CASBUSI_EXPORT_MIN_CROP_SIDE", "200")),
            use_reject_system=_env("CASBUSI_EXPORT_REJECT_SYSTEM", "1") == "1",
            only_one_lesion=_env("CASBUSI_EXPORT_ONLY_ONE_LESION", "0") == "1",
            drop_unknown_pathology=_env("CASBUSI_EXPORT_DROP_UNKNOWN", "1") == "1",
            use_inpainted=_env("CASBUSI_EXPORT_USE_INPAINTED", "1") == "1",
            include_videos=_env("CASBUSI_EXPORT_VIDEOS", "1") == "1",
            workers=int(_env("CASBUSI_WORKERS", "0")),
        ),
    }


ASSET_MODULES = [ingest, pixels, cases, ocr, cleaning, inpainting, labelling, export]
# Per-batch asset checks, one module per stage beside its assets.py.
CHECK_MODULES = [ingest_checks, pixels_checks, ocr_checks, cleaning_checks, inpainting_checks]


def build_definitions(home: str | None = None) -> dg.Definitions:
    """The code location's Definitions; the CLI builds one per home it runs against."""
    return dg.Definitions(
        assets=[*dg.load_assets_from_modules(ASSET_MODULES), ingest.inbox_zip],
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=[batch_job, export_job, labelling.labels_import_job, labelling.labels_sync_job],
        sensors=[inbox_sensor, export_after_batches_sensor, labels_inbox_sensor],
        schedules=[labels_sync_schedule],
        resources=build_resources(home),
        loggers={"console": compact_console_logger},
        executor=executor_from_env(),
    )


defs = build_definitions()

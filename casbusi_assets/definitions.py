"""The code location: every asset, the job, the inbox sensor and the resources, in one Definitions.

Settings come from CASBUSI_* environment variables (see the README's configuration table), so
nothing is configured by editing code; the UI's launchpad can override any resource per run.
"""

from __future__ import annotations

import os

import dagster as dg

from casbusi_assets.cases import assets as cases
from casbusi_assets.ingest import assets as ingest
from casbusi_assets.ingest.resources import CaseCsvSource, InboxSettings, IngestSettings
from casbusi_assets.ingest.sensors import inbox_sensor
from casbusi_assets.jobs import batch_job
from casbusi_assets.loggers import compact_console_logger
from casbusi_assets.ocr import assets as ocr
from casbusi_assets.ocr.resources import OcrEngineResource
from casbusi_assets.pixels import assets as pixels
from casbusi_assets.pixels.resources import VideoFramePolicy
from casbusi_assets.shared.resources import DeviceResource
from casbusi_assets.storage.io_manager import WarehouseIOManager
from casbusi_assets.storage.resources import CasbusiHome


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def build_resources(home: str | None = None) -> dict[str, object]:
    """The resources of a deployment, from the environment; `home` overrides $CASBUSI_HOME."""
    home = home if home is not None else _env("CASBUSI_HOME", "")
    return {
        "casbusi_home": CasbusiHome(home=home),
        "warehouse_io_manager": WarehouseIOManager(home=home),
        "ingest_settings": IngestSettings(
            workers=int(_env("CASBUSI_WORKERS", "2")),
            max_member_mb=float(_env("CASBUSI_MAX_MEMBER_MB", "4096")),
            max_total_gb=float(_env("CASBUSI_MAX_TOTAL_GB", "256")),
            max_ratio=float(_env("CASBUSI_MAX_RATIO", "1000")),
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
        ),
        "inbox_settings": InboxSettings(
            settle_seconds=float(_env("CASBUSI_INBOX_SETTLE_SECONDS", "10"))
        ),
    }


ASSET_MODULES = [ingest, pixels, cases, ocr]


def build_definitions(home: str | None = None) -> dg.Definitions:
    """The code location's Definitions; the CLI builds one per home it runs against."""
    return dg.Definitions(
        assets=[*dg.load_assets_from_modules(ASSET_MODULES), ingest.inbox_zip],
        jobs=[batch_job],
        sensors=[inbox_sensor],
        resources=build_resources(home),
        loggers={"console": compact_console_logger},
    )


defs = build_definitions()

"""Dagster resources. Every setting has a default and can be changed without editing code:
definitions.py reads the CASBUSI_* environment variables listed in the README, and the UI's
launchpad can override any field per run.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.home import HomeLayout, layout
from casbusi_assets.zip_members import ZipLimits


class CasbusiHome(dg.ConfigurableResource):
    """The home folder (warehouse, files, inbox, DAGSTER_HOME). Empty means $CASBUSI_HOME or the
    default `casbusi_home/` in the checkout."""

    home: str = Field(default="", description="Home folder; empty = $CASBUSI_HOME or default")

    def layout(self) -> HomeLayout:
        return layout(self.home or None).create()


class IngestSettings(dg.ConfigurableResource):
    """Safety limits and parallelism for reading batch zips."""

    max_member_mb: float = Field(default=4096, description="Largest single zip member, in MB")
    max_total_gb: float = Field(default=256, description="Largest total uncompressed batch, GB")
    max_ratio: float = Field(default=1000, description="Largest uncompressed/compressed ratio")
    workers: int = Field(default=2, description="Parallel workers for reading and decoding")

    def limits(self) -> ZipLimits:
        return ZipLimits(
            max_member_bytes=int(self.max_member_mb * 1024**2),
            max_total_bytes=int(self.max_total_gb * 1024**3),
            max_ratio=self.max_ratio,
        )


class VideoFramePolicy(dg.ConfigurableResource):
    """Which cine frames are written as PNG: every Nth, the first and middle, or all."""

    policy: str = Field(default="every_nth", description="every_nth | first_middle | all")
    every_n: int = Field(default=4, description="Step for every_nth")


class CaseCsvSource(dg.ConfigurableResource):
    """Where the case table comes from: `total_cases_anon.csv` at the zip root, unless a path is
    configured (it then overrides the zip's copy for every batch)."""

    override_path: str = Field(default="", description="Path of a case CSV overriding the zip's")
    member_name: str = Field(default="total_cases_anon.csv", description="CSV name in the zip")


class InboxSettings(dg.ConfigurableResource):
    """How the inbox sensor decides a dropped zip is complete."""

    settle_seconds: float = Field(
        default=10.0, description="A zip unmodified this long is complete even on first sight"
    )


class DeviceResource(dg.ConfigurableResource):
    """Where inference runs: `cpu`, `cuda`, or `auto` (CUDA when the runtime has it, else CPU).

    Injected into every inference asset (OCR now; orientation, caliper and inpainting models
    later), so the same code runs on a laptop and on a GPU node. The resolved device is logged and
    recorded in each asset's metadata.
    """

    device: str = Field(default="auto", description="cpu | cuda | auto")
    batch_size: int = Field(default=8, description="Images per inference batch where batched")

    def resolve(self, runtime: str = "rapidocr") -> str:
        from casbusi_assets.ocr_engines import resolve_device

        return resolve_device(self.device, engine=runtime)


class OcrEngineResource(dg.ConfigurableResource):
    """The OCR engine: `rapidocr` (default; ONNX models inside the wheel) or `easyocr` (optional
    extra; weights from `model_dir`, never downloaded)."""

    engine: str = Field(default="rapidocr", description="rapidocr | easyocr")
    model_dir: str = Field(default="", description="EasyOCR weights folder (craft + english_g2)")
    min_score: float = Field(default=0.5, description="Drop text boxes scored below this")

    def create(self, device: str):
        from casbusi_assets.ocr_engines import make_engine

        return make_engine(self.engine, device=device, model_dir=self.model_dir or None)

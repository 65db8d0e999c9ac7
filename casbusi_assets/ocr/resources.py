"""The OCR engine resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class OcrEngineResource(dg.ConfigurableResource):
    """The OCR engine: `rapidocr` (default; ONNX models inside the wheel) or `easyocr` (optional
    extra; weights from `model_dir`, never downloaded)."""

    engine: str = Field(default="rapidocr", description="rapidocr | easyocr")
    model_dir: str = Field(default="", description="EasyOCR weights folder (craft + english_g2)")
    min_score: float = Field(default=0.5, description="Drop text boxes scored below this")
    workers: int = Field(
        default=0,
        description="Processes reading screens on CPU (0 = one per core, 1 = the step's process)",
    )

    def spec(self, device: str):
        """A picklable recipe for the engine, which each worker process builds for itself."""
        from casbusi_assets.ocr.batch import EngineSpec

        return EngineSpec(self.engine, device, self.model_dir or None)

"""The inpainting settings resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from casbusi_assets.inpainting.methods import DEFAULT_METHOD, Inpainter, make_inpainter

# The shipped weights (models/ at the repository root, beside the package).
DEFAULT_MODEL_PATH = str(
    Path(__file__).resolve().parents[2] / "models" / "inpainting" / "inpainter.pt"
)


class InpaintSettings(dg.ConfigurableResource):
    """How calipers are painted out: `ns` (OpenCV Navier-Stokes, the default: it measured
    best), `telea` (OpenCV fast marching), or `learned` (the small torch network in
    models/inpainting/, run on the device resource)."""

    method: str = Field(default=DEFAULT_METHOD, description="ns | telea | learned")
    radius: float = Field(default=3.0, description="OpenCV inpainting radius in pixels")
    model_path: str = Field(
        default=DEFAULT_MODEL_PATH, description="weights of the learned inpainter (.pt)"
    )

    @property
    def uses_model(self) -> bool:
        return self.method.strip().lower() == "learned"

    def create(self, device: str = "cpu") -> Inpainter:
        """Built once per run; the learned method loads its weights here, not per image."""
        return make_inpainter(self.method, self.radius, self.model_path or None, device)

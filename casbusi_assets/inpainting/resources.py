"""The inpainting settings resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.inpainting.methods import (
    DEFAULT_METHOD,
    DEFAULT_MODEL_PATH,
    Inpainter,
    make_inpainter,
)

__all__ = ["DEFAULT_MODEL_PATH", "InpaintSettings"]


class InpaintSettings(dg.ConfigurableResource):
    """How calipers are painted out: `learned` (the default: the small torch network in
    models/inpainting/, run on the device resource; it measured best), `ns` (OpenCV
    Navier-Stokes) or `telea` (OpenCV fast marching)."""

    method: str = Field(default=DEFAULT_METHOD, description="learned | ns | telea")
    radius: float = Field(default=3.0, description="OpenCV inpainting radius in pixels")
    model_path: str = Field(
        default=DEFAULT_MODEL_PATH, description="weights of the learned inpainter (.pt)"
    )
    workers: int = Field(
        default=0,
        description="threads inpainting images with the one loaded inpainter; "
        "0 = one per available core",
    )

    @property
    def uses_model(self) -> bool:
        return self.method.strip().lower() == "learned"

    def create(self, device: str = "cpu") -> Inpainter:
        """Built once per run; the learned method loads its weights here, not per image."""
        return make_inpainter(self.method, self.radius, self.model_path or None, device)

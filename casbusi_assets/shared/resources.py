"""The device resource, shared by every inference stage (OCR, orientation and caliper models,
inpainting). Every setting can be changed by a CASBUSI_* environment variable (definitions.py) or
per run in the launchpad.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class DeviceResource(dg.ConfigurableResource):
    """Where inference runs: `cpu`, `cuda`, or `auto` (CUDA when the runtime has it, else CPU).

    Injected into every inference asset (OCR now; orientation, caliper and inpainting models
    later), so the same code runs on a laptop and on a GPU node. The resolved device is logged and
    recorded in each asset's metadata.
    """

    device: str = Field(default="auto", description="cpu | cuda | auto")
    batch_size: int = Field(default=8, description="Images per inference batch where batched")

    def resolve(self, runtime: str = "rapidocr") -> str:
        from casbusi_assets.shared.device import resolve_device

        return resolve_device(self.device, engine=runtime)

"""Pixel export settings."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class VideoFramePolicy(dg.ConfigurableResource):
    """Which cine frames are written as PNG: every Nth, the first and middle, or all."""

    policy: str = Field(default="every_nth", description="every_nth | first_middle | all")
    every_n: int = Field(default=4, description="Step for every_nth")

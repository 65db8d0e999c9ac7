"""Cleaning settings: every threshold of the selection rules (cleaning/rules.py), one resource.

Defaults come from CASBUSI_* environment variables (definitions.py build_resources); the
launchpad can override any of them per run. Lists are comma-separated strings so they stay
plain in env vars and in the launchpad.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.cleaning.rules import Thresholds

_D = Thresholds()


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


class CleaningSettings(dg.ConfigurableResource):
    """Thresholds of the reason codes of cleaned_images / cleaned_videos (README: Cleaning)."""

    green_margin: float = Field(
        default=_D.green_margin, description="corrupt: mean G above mean R and B by this much"
    )
    dark_percent: float = Field(
        default=_D.dark_percent, description="dark: percent of field pixels at or below the level"
    )
    dark_pixel_level: int = Field(
        default=_D.dark_pixel_level, description="dark: grey level counted as black"
    )
    twin_max_distance: float = Field(
        default=_D.twin_max_distance,
        description="caliper_twin: mean absolute grey difference on the field of a twin pair",
    )
    twin_max_relative_distance: float = Field(
        default=_D.twin_max_relative_distance,
        description="caliper_twin: that difference over the pair's spread (mean abs deviation)",
    )
    areas_kept: str = Field(
        default=",".join(_D.areas_kept), description="non_breast_area: areas that stay in"
    )
    valid_birads: str = Field(
        default=",".join(_D.valid_birads), description="invalid_birads: accepted BI-RADS values"
    )
    study_exclusion_words: str = Field(
        default=",".join(_D.study_exclusion_words),
        description="chest_or_mastectomy_study: words in StudyDescription",
    )
    max_biopsy_days: float = Field(
        default=_D.max_biopsy_days, description="biopsy_after_30_days: largest Time_Biop kept"
    )
    max_regions: int = Field(default=_D.max_regions, description="multi_region: most regions")
    orientation_min_confidence: float = Field(
        default=-1.0,
        description="orientation model: least confidence to fill in; < 0 = the model's default",
    )
    orientation_model_path: str = Field(
        default="", description="orientation model weights; empty = the shipped model"
    )
    use_orientation_model: bool = Field(
        default=True, description="fill orientation from the model where the text gives none"
    )
    use_caliper_model: bool = Field(
        default=True,
        description="calipers: the learned verifier (models/calipers); false = classical matcher",
    )
    caliper_model_path: str = Field(
        default="", description="caliper verifier weights; empty = the shipped model"
    )
    sheet_images_per_reason: int = Field(
        default=4, description="excluded images per reason on the metadata contact sheet"
    )
    workers: int = Field(
        default=0,
        description="worker processes measuring images (crop, calipers, twins, and the "
        "orientation model on the CPU); 0 = one per available core, 1 = in the step process",
    )

    def thresholds(self) -> Thresholds:
        return Thresholds(
            green_margin=self.green_margin,
            dark_percent=self.dark_percent,
            dark_pixel_level=self.dark_pixel_level,
            twin_max_distance=self.twin_max_distance,
            twin_max_relative_distance=self.twin_max_relative_distance,
            areas_kept=_words(self.areas_kept),
            valid_birads=_words(self.valid_birads),
            study_exclusion_words=_words(self.study_exclusion_words),
            max_biopsy_days=self.max_biopsy_days,
            max_regions=self.max_regions,
            orientation_min_confidence=(
                None if self.orientation_min_confidence < 0 else self.orientation_min_confidence
            ),
        )

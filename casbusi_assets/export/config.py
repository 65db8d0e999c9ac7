"""Every setting of an export, as one plain, frozen record (written whole to export_config.json).

Nothing secret belongs here: the export reads no credentials, so its configuration can be
published with the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

SPLIT_MODES = ("hash", "stratified")


class ExportConfigError(ValueError):
    """A setting is out of range; the message names it."""


@dataclass(frozen=True)
class ExportConfig:
    # Splits (see splits.py). The salt is part of the configuration: a new salt is a new split.
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    salt: str = "casbusi-split-v1"
    split_mode: str = "hash"  # hash | stratified
    # The original's export filters (casbusi-spec.md §9, version C defaults); None turns one off.
    max_trust: int | None = 2  # keep studies with trustworthiness <= this (1 best .. 3 worst)
    min_aspect: float | None = 0.5  # crop_w / crop_h range
    max_aspect: float | None = 4.0
    min_crop_side: int | None = 200  # both crop sides at least this many pixels
    use_reject_system: bool = True  # drop images an instance label marks "Reject Image"
    only_one_lesion: bool = False  # keep only breasts with exactly one biopsied lesion
    drop_unknown_pathology: bool = True  # drop breasts with a biopsy of unknown result
    # What is written.
    use_inpainted: bool = True  # the caliper-free copy where inpainting made one
    include_videos: bool = True
    workers: int = 2

    def validate(self) -> ExportConfig:
        if self.split_mode not in SPLIT_MODES:
            raise ExportConfigError(
                f"split_mode must be one of {', '.join(SPLIT_MODES)}, not {self.split_mode!r}"
            )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ExportConfigError(f"{name} must be in [0, 1), not {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ExportConfigError(
                "val_fraction + test_fraction must leave something to train on (< 1)"
            )
        if not self.salt:
            raise ExportConfigError("salt must not be empty")
        if (
            self.min_aspect is not None
            and self.max_aspect is not None
            and self.min_aspect > self.max_aspect
        ):
            raise ExportConfigError("min_aspect is larger than max_aspect")
        if self.workers < 1:
            raise ExportConfigError("workers must be at least 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def split_settings(self) -> dict[str, Any]:
        """The settings that decide a patient's split (and name its stratified ledger)."""
        return {
            "split_mode": self.split_mode,
            "salt": self.salt,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

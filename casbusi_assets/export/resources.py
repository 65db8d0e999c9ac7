"""Export settings: splits, the original's export filters, what is written."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.export.config import ExportConfig
from casbusi_assets.shared.parallel import resolve_workers


class ExportSettings(dg.ConfigurableResource):
    """How `export_splits` splits and filters. A negative number turns a numeric filter off.

    Every field is written to the export's `export_config.json`; none is a secret."""

    val_fraction: float = Field(default=0.15, description="Share of patients in val")
    test_fraction: float = Field(default=0.15, description="Share of patients in test")
    salt: str = Field(
        default="casbusi-split-v1",
        description="Salt of the patient hash; a new salt is a new split (recorded)",
    )
    split_mode: str = Field(
        default="hash",
        description="'hash' (stateless) or 'stratified' (malignant/benign balance, via a ledger)",
    )
    max_trust: int = Field(
        default=2, description="Keep studies with trustworthiness <= this (1..3); <0: off"
    )
    min_aspect: float = Field(default=0.5, description="Smallest crop w/h; <0: off")
    max_aspect: float = Field(default=4.0, description="Largest crop w/h; <0: off")
    min_crop_side: int = Field(default=200, description="Smallest crop side in pixels; <0: off")
    use_reject_system: bool = Field(
        default=True, description="Drop images an instance label rejects"
    )
    only_one_lesion: bool = Field(
        default=False, description="Keep only breasts with exactly one biopsied lesion"
    )
    drop_unknown_pathology: bool = Field(
        default=True, description="Drop breasts with a biopsy of unknown result"
    )
    use_inpainted: bool = Field(default=True, description="Export caliper-free copies")
    include_videos: bool = Field(default=True, description="Export cine clips")
    workers: int = Field(
        default=0, description="Threads cropping and writing files; 0 = one per available core"
    )

    def to_config(self) -> ExportConfig:
        def off(value):
            return None if value is not None and value < 0 else value

        return ExportConfig(
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            salt=self.salt,
            split_mode=self.split_mode,
            max_trust=off(self.max_trust),
            min_aspect=off(self.min_aspect),
            max_aspect=off(self.max_aspect),
            min_crop_side=off(self.min_crop_side),
            use_reject_system=self.use_reject_system,
            only_one_lesion=self.only_one_lesion,
            drop_unknown_pathology=self.drop_unknown_pathology,
            use_inpainted=self.use_inpainted,
            include_videos=self.include_videos,
            workers=resolve_workers(self.workers),
        ).validate()

"""Ingest settings: zip safety limits and parallelism, the case CSV source, the inbox."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.ingest.zip_members import ZipLimits


class IngestSettings(dg.ConfigurableResource):
    """Safety limits and parallelism for reading batch zips."""

    max_member_mb: float = Field(default=4096, description="Largest single zip member, in MB")
    max_total_gb: float = Field(default=256, description="Largest total uncompressed batch, GB")
    max_ratio: float = Field(default=1000, description="Largest uncompressed/compressed ratio")
    workers: int = Field(
        default=0,
        description="Worker processes reading and decoding members; 0 = one per available core",
    )
    max_quarantine_share: float = Field(
        default=0.2, description="quarantine_share check warns above this share of a batch"
    )

    def limits(self) -> ZipLimits:
        return ZipLimits(
            max_member_bytes=int(self.max_member_mb * 1024**2),
            max_total_bytes=int(self.max_total_gb * 1024**3),
            max_ratio=self.max_ratio,
        )


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

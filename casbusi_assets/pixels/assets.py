"""Pixels stage: the UI metadata of `image_table` and `video_table`.

The two tables are outputs of the one-pass ingest step (`ingest/assets.py:ingest_batch`), which
decodes each still and clip from the same read of its zip member as its catalog row; this module
says what their materialisations show.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from casbusi_assets.shared.metadata import contact_sheet, counts, markdown_table
from casbusi_assets.storage.file_staging import StagedBatchDir

IMAGE_TABLE_DOC = """One row per still image (SOP instance) with its PNG under
`files/image_table/<batch>/<sop>.png`.
Doppler captures (filled colour flow in one or both hues, or power Doppler, inside the
ultrasound field: `doppler_kind` color | power) keep their colour; other colour captures
have yellow overlay pixels whitened and are stored as grayscale, with the original photometric
interpretation recorded. Geometry includes the first ultrasound region box. Files without a
PatientID or AccessionNumber are exported too, with `missing_links` naming the gap. Written by
the ingest step from the same read of each zip member as its `dicom_catalog` row."""

VIDEO_TABLE_DOC = """One row per cine clip (multi-frame instance) with the folder of its saved
frames under `files/video_table/<batch>/<sop>/`. Frames kept per the frame policy (every Nth by
default, or first + middle, or all), grayscale unless the clip is Doppler. A batch without clips
yields an empty, typed table. Written by the ingest step from the same read of each zip member
as its `dicom_catalog` row."""


def failed_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "failed"] if len(df) else df


def image_metadata(df: pd.DataFrame, staged: StagedBatchDir) -> dict[str, Any]:
    ok_paths = df.loc[df["status"] == "ok", "image_path"].tolist() if len(df) else []
    return {
        "images": len(df),
        "doppler": int(df["is_doppler"].fillna(False).sum()) if len(df) else 0,
        "doppler_kinds": counts(df["doppler_kind"].dropna()) if len(df) else {},
        "unlinked": int(df["missing_links"].notna().sum()) if len(df) else 0,
        "stored_as": counts(df["stored_as"]) if len(df) else {},
        "failed": len(failed_rows(df)),
        "files": dg.MetadataValue.path(str(staged.final)),
        "png_megabytes": round(float(df["png_bytes"].fillna(0).sum()) / 1e6, 2) if len(df) else 0.0,
        "preview": markdown_table(
            df, ["sop_instance_uid", "doppler_kind", "rows", "columns", "region_count", "status"]
        ),
        "contact_sheet": contact_sheet(ok_paths),
    }


def video_metadata(
    df: pd.DataFrame, staged: StagedBatchDir, policy: str, every_n: int
) -> dict[str, Any]:
    return {
        "videos": len(df),
        "frames_saved": int(df["saved_frames"].fillna(0).sum()) if len(df) else 0,
        "frame_policy": f"{policy} (every_n={every_n})",
        "failed": len(failed_rows(df)),
        "files": dg.MetadataValue.path(str(staged.final)),
        "preview": markdown_table(
            df, ["sop_instance_uid", "n_frames", "saved_frames", "doppler_kind", "status"]
        ),
    }

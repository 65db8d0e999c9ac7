"""OCR over a batch: every exported still and the first saved frame of every cine clip.

Plain Python: the ocr_table asset hands in the image and video tables and an engine; rows come
back in the OCR_TABLE layout. An unreadable file gives a row with status 'failed' and the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.ocr.engines import OcrEngine
from casbusi_assets.ocr.reading import read_annotation
from casbusi_assets.shared.parallel import Progress
from casbusi_assets.storage.files import list_files, read_image

FIELDS = ("area", "laterality", "orientation", "clock_pos", "nipple_dist_cm")


_REGION_TAGS = (
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
)


def region_union(us_regions_json: str | None) -> tuple[int, int, int, int] | None:
    """The box around every SequenceOfUltrasoundRegions item, or None when there is none.

    Dual-view captures carry one region per view and sonographers write their label across
    both, so the reader gets the union, not the first view.
    """
    try:
        regions = json.loads(us_regions_json) if us_regions_json else []
    except (TypeError, ValueError):
        return None
    boxes = []
    for region in regions:
        values = [region.get(tag) for tag in _REGION_TAGS]
        if all(isinstance(v, int | float) and not math.isnan(v) for v in values):
            boxes.append([int(v) for v in values])
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def load_png(path: str | Path) -> np.ndarray:
    image = read_image(path, cv2.IMREAD_UNCHANGED)  # a local path or an s3:// URL
    if image is None:
        raise FileNotFoundError(f"cannot read image file {path}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _sources(
    images: pd.DataFrame, videos: pd.DataFrame
) -> Iterator[tuple[str, pd.Series, str | None]]:
    for _, row in images.iterrows():
        yield "image", row, row.get("image_path") if row.get("status") == "ok" else None
    for _, row in videos.iterrows():
        first = None
        if row.get("status") == "ok" and row.get("frames_dir"):
            frames = list_files(row["frames_dir"], "frame_*.png")  # local folder or s3:// URL
            first = frames[0] if frames else None
        yield "video", row, first


def read_batch_annotations(
    images: pd.DataFrame,
    videos: pd.DataFrame,
    engine: OcrEngine,
    regions: dict[str, str | None] | None = None,
    min_score: float = 0.5,
    report: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One OCR_TABLE row per image and per clip (its first saved frame).

    `regions` maps SOP instance UID to the catalog's `us_regions` JSON; without an entry the
    reader estimates the ultrasound field from the pixels.
    """
    regions = regions or {}
    total = len(images) + len(videos)
    progress = Progress(report, "ocr_table", total) if report else None
    rows = []
    for source, row, path in _sources(images, videos):
        out = {
            "sop_instance_uid": row["sop_instance_uid"],
            "source": source,
            "ocr_engine": engine.name,
            "ocr_device": engine.device,
        }
        if path is None:
            out.update(
                status="failed", error=f"no exported pixels ({row.get('error') or 'missing'})"
            )
        else:
            try:
                region = region_union(regions.get(row["sop_instance_uid"]))
                reading = read_annotation(load_png(path), engine, region, min_score=min_score)
                parsed = reading.parsed
                out.update(
                    description=reading.description,
                    text_boxes=reading.text_boxes_json(),
                    ocr_ms=round(reading.ocr_ms, 1),
                    status="ok",
                    error=None,
                    **{f: getattr(parsed, f) for f in FIELDS},
                )
            except Exception as exc:  # one unreadable image must not fail the batch
                out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        rows.append(out)
        if progress:
            progress.advance()
    return pd.DataFrame(rows)


def field_recovery(df: pd.DataFrame) -> dict[str, float]:
    """Share of OCR'd rows where each field was read (not unknown / null)."""
    ok = df[df["status"] == "ok"] if len(df) else df
    if ok.empty:
        return {f: 0.0 for f in FIELDS}
    shares = {}
    for f in FIELDS:
        present = ok[f].notna() & (ok[f].astype(str) != "unknown")
        shares[f] = round(float(present.mean()), 3)
    return shares

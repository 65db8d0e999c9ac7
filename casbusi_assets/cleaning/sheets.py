"""Contact sheets of excluded images, one per reason code, with the crop and caliper boxes drawn.

They answer "what was removed and why" at a glance in the Dagster UI. All sheets of one
materialisation share a byte budget (they are stored in the event log): tiles shrink until the
whole set fits.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.storage.files import read_image

CROP_COLOUR = (0, 200, 0)  # BGR green: the ultrasound field
CALIPER_COLOUR = (0, 0, 255)  # BGR red: one box per caliper mark


@dataclass(frozen=True)
class SheetItem:
    path: str
    crop: tuple[int, int, int, int] | None
    calipers: tuple[tuple[int, int, int, int], ...]


def items_for(rows: pd.DataFrame) -> list[SheetItem]:
    out = []
    for r in rows.to_dict("records"):
        path = r.get("image_path") or r.get("first_frame_path")
        if not isinstance(path, str):
            continue
        crop = None
        if pd.notna(r.get("crop_w")) and pd.notna(r.get("crop_x")):
            crop = (int(r["crop_x"]), int(r["crop_y"]), int(r["crop_w"]), int(r["crop_h"]))
        boxes = json.loads(r["caliper_boxes"]) if isinstance(r.get("caliper_boxes"), str) else []
        out.append(SheetItem(path, crop, tuple(tuple(int(v) for v in b) for b in boxes)))
    return out


def _tile(item: SheetItem, size: int) -> np.ndarray | None:
    img = read_image(item.path, cv2.IMREAD_COLOR)
    if img is None:
        return None
    # Boxes are drawn at full size, with a line width that survives the downscale.
    width = max(2, round(max(img.shape[:2]) / size))
    if item.crop is not None:
        x, y, w, h = item.crop
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), CROP_COLOUR, width)
    for x, y, w, h in item.calipers:
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), CALIPER_COLOUR, width)
    scale = size / max(img.shape[:2])
    small = cv2.resize(
        img, (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )  # fmt: skip
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas


def render_sheet(items: list[SheetItem], tile: int = 160, quality: int = 70) -> bytes | None:
    """One row of tiles as JPEG bytes (None when no image could be read)."""
    tiles = [t for t in (_tile(i, tile) for i in items) if t is not None]
    if not tiles:
        return None
    ok, buf = cv2.imencode(".jpg", np.hstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else None


def sheets_by_reason(
    cleaned: pd.DataFrame, per_reason: int = 4, budget_bytes: int = 90_000
) -> dict[str, str]:
    """reason code -> markdown with an inline JPEG of up to `per_reason` excluded images.

    Images are the first by SOPInstanceUID (deterministic); the whole set is kept under
    `budget_bytes` of markdown by shrinking the tiles.
    """
    if cleaned.empty or per_reason <= 0:
        return {}
    picks: dict[str, list[SheetItem]] = {}
    exploded = cleaned[["sop_instance_uid", "exclusion_reasons"]].explode("exclusion_reasons")
    exploded = exploded.dropna(subset=["exclusion_reasons"])
    for reason, group in exploded.groupby("exclusion_reasons", sort=True):
        sops = sorted(group["sop_instance_uid"])[:per_reason]
        rows = cleaned[cleaned["sop_instance_uid"].isin(sops)].sort_values("sop_instance_uid")
        picks[str(reason)] = items_for(rows)
    tile, quality = 160, 70
    while True:
        out = {}
        for reason, items in picks.items():
            data = render_sheet(items, tile, quality)
            if data is not None:
                b64 = base64.b64encode(data).decode()
                out[reason] = f"![{reason}](data:image/jpeg;base64,{b64})"
        if sum(len(v) for v in out.values()) <= budget_bytes or tile <= 48:
            return out
        tile, quality = int(tile * 0.8), max(40, quality - 5)

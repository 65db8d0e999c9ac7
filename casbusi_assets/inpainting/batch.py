"""One batch's caliper masks and caliper-free copies.

For every included image with calipers (`cleaned_images.include & has_calipers`): read its PNG,
refine the caliper boxes to a stroke mask (`masks.py`), inpaint (`methods.py`), and write the
mask and the copy as new files into the batch's staging folder. The originals are only read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.inpainting.masks import MaskError, build_caliper_mask, parse_boxes
from casbusi_assets.inpainting.methods import Inpainter
from casbusi_assets.pixels.decode import safe_file_stem, write_png
from casbusi_assets.storage.file_staging import StagedBatchDir
from casbusi_assets.storage.files import read_image

COLUMNS = [
    "batch_id",
    "sop_instance_uid",
    "image_path",
    "mask_path",
    "inpainted_path",
    "n_calipers",
    "n_lines",
    "n_box_fallback",
    "mask_pixels",
    "method",
    "inpaint_ms",
    "status",
    "error",
]
PREVIEW_IMAGES = 3


def read_rgb(path: str | Path) -> np.ndarray:
    """A PNG as stored by image_table: H x W grey, or H x W x 3 in RGB order."""
    img = read_image(path, cv2.IMREAD_UNCHANGED)  # a local path or an s3:// URL
    if img is None:
        raise OSError(f"cannot read image {path}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype != np.uint8:  # 16-bit PNGs are not what image_table writes; keep the top byte
        img = (img >> 8).astype(np.uint8)
    return img


@dataclass
class InpaintedBatch:
    table: pd.DataFrame
    # (before, mask, after) of the first few images, for the preview strip
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def selected_rows(cleaned: pd.DataFrame) -> pd.DataFrame:
    """The images to inpaint: included, with calipers."""
    if cleaned.empty:
        return cleaned
    inc = cleaned["include"].fillna(False).astype(bool)
    cal = cleaned["has_calipers"].fillna(False).astype(bool)
    return cleaned[inc & cal]


def _inpaint_one(
    batch_id: str, row, staged: StagedBatchDir, inpainter: Inpainter, keep: bool
) -> tuple[dict[str, object], tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """One image's row, and its (before, mask, after) when `keep` (for the preview)."""
    rec: dict[str, object] = {
        "batch_id": batch_id,
        "sop_instance_uid": row.sop_instance_uid,
        "image_path": row.image_path,
        "method": inpainter.name,
        "status": "ok",
    }
    try:
        boxes = parse_boxes(row.caliper_boxes)
        rec["n_calipers"] = len(boxes)
        if not boxes:
            rec.update(status="no_boxes", error="has_calipers is set but there are no boxes")
            return rec, None
        image = read_rgb(row.image_path)
        t0 = time.perf_counter()
        cm = build_caliper_mask(image, boxes)
        result = inpainter.inpaint(image, cm.mask)
        rec["inpaint_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        stem = safe_file_stem(str(row.sop_instance_uid))
        mask_file = staged.staging / "masks" / f"{stem}.png"
        copy_file = staged.staging / "images" / f"{stem}.png"
        write_png(mask_file, cm.mask)
        write_png(copy_file, result)
        rec.update(
            mask_path=str(staged.final_path(mask_file)),
            inpainted_path=str(staged.final_path(copy_file)),
            n_lines=cm.n_lines,
            n_box_fallback=cm.n_fallback,
            mask_pixels=cm.pixels,
        )
        return rec, ((image, cm.mask, result) if keep else None)
    except (MaskError, OSError, ValueError) as exc:
        rec.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return rec, None


def _read_back(
    rec: dict[str, object], staged: StagedBatchDir
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(before, mask, after) of a written row from its files (PNG is lossless)."""
    stem = safe_file_stem(str(rec["sop_instance_uid"]))
    mask = cv2.imread(str(staged.staging / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    return (
        read_rgb(str(rec["image_path"])),
        mask,
        read_rgb(staged.staging / "images" / f"{stem}.png"),
    )


def inpaint_batch(
    batch_id: str,
    cleaned: pd.DataFrame,
    staged: StagedBatchDir,
    inpainter: Inpainter,
    report: Callable[[str], None] | None = None,
    workers: int = 1,
) -> InpaintedBatch:
    """Masks under `<staging>/masks/`, copies under `<staging>/images/`, one row per image.

    A row whose image cannot be read or whose boxes are malformed gets status 'failed' with the
    reason; an image flagged with calipers but without a single box gets 'no_boxes' (nothing
    to mask). Neither stops the batch. `workers` threads share the one inpainter: torch and
    OpenCV release the GIL while they compute, so threads use every core without loading the
    model again per process, and only the images being inpainted are in memory.
    """
    rows = selected_rows(cleaned).sort_values("sop_instance_uid", kind="stable")
    out: list[dict[str, object]] = []
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    (staged.staging / "masks").mkdir(parents=True, exist_ok=True)
    (staged.staging / "images").mkdir(parents=True, exist_ok=True)
    items = list(rows.itertuples(index=False))
    window = max(1, workers) * 2

    def one(i: int):
        return _inpaint_one(batch_id, items[i], staged, inpainter, keep=i < PREVIEW_IMAGES)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()
        i = 0
        while i < len(items) or pending:
            while i < len(items) and len(pending) < window:  # a bounded window in flight
                pending.append(pool.submit(one, i))
                i += 1
            rec, sample = pending.popleft().result()
            if rec["status"] == "ok" and len(samples) < PREVIEW_IMAGES:
                samples.append(sample if sample is not None else _read_back(rec, staged))
            out.append(rec)
            if report and len(out) % 25 == 0:
                report(f"inpainted {len(out)}/{len(rows)} images")
    table = pd.DataFrame(out, columns=COLUMNS)
    return InpaintedBatch(table=table, samples=samples)


def changed_outside_mask(original: np.ndarray, copy: np.ndarray, mask: np.ndarray) -> int:
    """How many pixels differ between original and copy outside the mask (0 when correct)."""
    if original.shape != copy.shape or mask.shape != original.shape[:2]:
        return int(mask.size)
    diff = original != copy
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    return int((diff & (mask == 0)).sum())


def check_copies(table: pd.DataFrame) -> pd.DataFrame:
    """Per written copy: pixels changed outside the mask, read back from the final files."""
    res = []
    ok = table[table["status"] == "ok"] if len(table) else table
    for row in ok.itertuples(index=False):
        try:
            n = changed_outside_mask(
                read_rgb(row.image_path),
                read_rgb(row.inpainted_path),
                read_image(row.mask_path, cv2.IMREAD_GRAYSCALE),
            )
        except OSError as exc:
            res.append({"sop_instance_uid": row.sop_instance_uid, "outside": -1, "error": str(exc)})
            continue
        res.append({"sop_instance_uid": row.sop_instance_uid, "outside": n, "error": None})
    return pd.DataFrame(res, columns=["sop_instance_uid", "outside", "error"])


def preview_strip(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], tile: int = 128
) -> np.ndarray | None:
    """before | mask | after tiles, one row per sample, zoomed on the masked area (uint8 RGB)."""
    if not samples:
        return None
    rows = []
    for before, mask, after in samples:
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        if len(xs):
            cx, cy = (int(xs.min()) + int(xs.max())) // 2, (int(ys.min()) + int(ys.max())) // 2
            # Every mark in view, but zoomed enough that 1-px strokes still show.
            span = min(256, max(96, int(np.ptp(xs)) + 24, int(np.ptp(ys)) + 24))
        else:
            cx, cy, span = w // 2, h // 2, 96
        span = min(span, h, w)
        x0 = int(np.clip(cx - span // 2, 0, w - span))
        y0 = int(np.clip(cy - span // 2, 0, h - span))
        tiles = []
        for img in (before, mask, after):
            crop = img[y0 : y0 + span, x0 : x0 + span]
            if crop.ndim == 2:
                crop = np.repeat(crop[..., None], 3, axis=2)
            tiles.append(cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)

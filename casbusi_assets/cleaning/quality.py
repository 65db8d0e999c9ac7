"""Per-image pixel measures: the decoded-pixel hash, darkness, and whether a capture is corrupt."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


def pixel_hash(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels (shape, dtype and values).

    Unlike the catalog's `pixel_sha256` (of the encoded PixelData bytes) it matches the same
    picture re-sent under another transfer syntax or with other header tags.
    """
    h = hashlib.sha256()
    h.update(f"{image.shape}|{image.dtype.str}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _field_gray(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The grey pixels of the field `box` (x, y, w, h), or of the whole image without a box."""
    gray = to_gray(image)
    if box is None:
        return gray
    x, y, w, h = box
    return gray[max(0, y) : y + h, max(0, x) : x + w]


def darkness(image: np.ndarray, box: tuple[int, int, int, int] | None, level: int = 20) -> float:
    """Percent of the box's pixels at or below `level` (the original's threshold 20), 0-100.

    Measured on the ultrasound field (`box` = x, y, w, h); the original measured a box given in
    original coordinates on a resized image (spec §4.4), so its numbers were off for any image
    not 800x600.
    """
    gray = _field_gray(image, box)
    if gray.size == 0:
        return 100.0
    return round(100.0 * float(np.count_nonzero(gray <= level)) / gray.size, 3)


def field_darkness(
    image: np.ndarray, box: tuple[int, int, int, int] | None, level: int = 20
) -> float:
    """Percent of the echo-bearing part of the field at or below `level`, 0-100.

    The original counted every pixel of the declared region, so a sector or curvilinear fan's
    black corners (outside the fan, never scanned) made a normal fan look dark: a full sector
    measured 70 % and was excluded. Here the part is the convex hull of the field's lit pixels
    (above its own black level + 3, specks removed). A capture with the gain turned down keeps
    dim speckle all over its field, so its hull is the field and it measures as before; when
    almost nothing is lit the whole box is measured.
    """
    gray = _field_gray(image, box)
    if gray.size == 0:
        return 100.0
    # The hull is found on every 4th pixel (a fan's outline does not need more), then filled at
    # full resolution, where the dark pixels are counted.
    step = 4 if min(gray.shape) >= 64 else 1
    small = gray[::step, ::step]
    black = int(np.percentile(small, 1))
    lit = np.where(small > black + 3, 255, 0).astype(np.uint8)
    lit = cv2.morphologyEx(lit, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    points = cv2.findNonZero(lit)
    if points is None or len(points) < 0.01 * small.size:
        return darkness(gray, None, level)
    hull = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points) * step + step // 2, 1)
    inside = gray[hull > 0]
    return round(100.0 * float(np.count_nonzero(inside <= level)) / inside.size, 3)


@dataclass(frozen=True)
class CorruptVerdict:
    is_corrupt: bool
    reason: str | None  # decode_failed | unreadable_png | blank | green_cast


def green_cast(rgb: np.ndarray, margin: float = 10.0) -> bool:
    """The original's test (spec §5.1): mean G above mean R + margin and mean B + margin."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return False
    means = rgb.reshape(-1, rgb.shape[2])[:, :3].astype(np.float64).mean(axis=0)
    r, g, b = means
    return bool(g > r + margin and g > b + margin)


def judge_corrupt(
    image: np.ndarray | None,
    *,
    original_colour: np.ndarray | None = None,
    decode_error: str | None = None,
    green_margin: float = 10.0,
) -> CorruptVerdict:
    """Is this capture unusable? `original_colour` is the colour frame as decoded from the DICOM
    when the stored PNG was turned grey (the green cast disappears in grey)."""
    if decode_error is not None:
        return CorruptVerdict(True, "decode_failed")
    if image is None:
        return CorruptVerdict(True, "unreadable_png")
    colour = original_colour if original_colour is not None else image
    if green_cast(colour, green_margin):
        return CorruptVerdict(True, "green_cast")
    # A frame of one value carries no picture (a blank capture card or a zero-filled frame).
    if int(image.max()) == int(image.min()):
        return CorruptVerdict(True, "blank")
    return CorruptVerdict(False, None)


def decode_original_colour(zip_path: Path, member_path: str) -> np.ndarray | None:
    """The first frame of a member as RGB, straight from the zip (None if it is not colour).

    Only called for colour originals stored grey (a handful per batch), so re-reading is cheap.
    """
    import pydicom

    from casbusi_assets.pixels.decode import decode_frame

    with zipfile.ZipFile(zip_path) as zf:
        data = zf.read(member_path)
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    frame = decode_frame(ds, 0)
    return frame if frame.ndim == 3 else None

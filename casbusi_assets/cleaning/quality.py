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


def darkness(image: np.ndarray, box: tuple[int, int, int, int] | None, level: int = 20) -> float:
    """Percent of the box's pixels at or below `level` (the original's threshold 20), 0-100.

    Measured on the ultrasound field (`box` = x, y, w, h); the original measured a box given in
    original coordinates on a resized image (spec §4.4), so its numbers were off for any image
    not 800x600.
    """
    gray = to_gray(image)
    if box is not None:
        x, y, w, h = box
        gray = gray[max(0, y) : y + h, max(0, x) : x + w]
    if gray.size == 0:
        return 100.0
    return round(100.0 * float(np.count_nonzero(gray <= level)) / gray.size, 3)


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

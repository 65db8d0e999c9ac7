"""The ultrasound field of a capture: the crop box of `cleaned_images` / `cleaned_videos`.

Two sources, in this order:

1. ``SequenceOfUltrasoundRegions`` (the catalog's ``us_regions`` JSON), when it is present and
   sane. Only image regions count (RegionDataType 1 tissue, 2 colour flow, or none given);
   spectral traces, ECG traces and grey / colour bars are not the field. Every image region
   must lie inside the image (an overshoot of up to ``OVERSHOOT_PX`` pixels, which real scanners
   write, e.g. MaxX1 = Columns on the Philips OBXXXX1A, is clipped), be at least ``MIN_SIDE_PX``
   on each side and cover ``MIN_AREA_SHARE`` of the frame. One insane image region makes the whole
   sequence untrusted (copied headers of a resized frame, as in pydicom's examples_palette).
   Several regions (dual view) give their union: the crop keeps both views, and `region_count`
   tells a dual view apart.
2. Otherwise an image heuristic (:func:`find_ultrasound_field`) that assumes nothing about where
   the field sits or what surrounds it. The field is the one large area densely filled with
   echo; chrome (header and parameter text, depth rulers, grey and colour bars, tool bars, icons)
   is thin strokes or small blocks on the black screen, on any side. Steps:

   - a pixel is *lit* when it is above the screen's black level (the most common dark value)
     by ``LIT_MARGIN``; on RGB the brightest channel counts, so colour flow is lit;
   - the share of lit pixels in a k x k window (k = 2.5 % of the shorter side) is the density;
     the field is where the density exceeds one half: thin strokes never reach it, and a
     straight field edge stays in place (a window centred on it is half inside);
   - an opening with the same k x k square removes bars and text blocks narrower than k;
   - the largest connected area is the field; areas at least a quarter as big that sit beside
     it at the same height are the other view of a dual view and join the union;
   - the density window bridges a gap of a few pixels, so a bar or a label close to the field
     can join it: each edge is cut at the innermost nearly dark line (lit over less than
     ``GAP_LIT_SHARE`` of the box) within ``MAX_TRIM_SHARE`` of it. A sloping field edge
     (trapezoid, fan) has no such gap and loses a few lines at most.

   Holes (a cyst, a rib shadow) are inside the box anyway. A screen with nothing found returns
   the whole frame, so the crop never drops pixels it cannot explain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# RegionDataType values that are the image itself (DICOM PS3.3 C.8.5.5.1.2): tissue, colour
# flow. Others (spectral Doppler, M-mode traces, ECG, grey bar 0x0D, colour bar 0x0E) are not.
IMAGE_REGION_TYPES = frozenset({1, 2})
OVERSHOOT_PX = 2
MIN_SIDE_PX = 32
MIN_AREA_SHARE = 0.02
LIT_MARGIN = 2
MAX_TRIM_SHARE = 0.08
GAP_LIT_SHARE = 0.03
FLAT_VAR = 2.0  # grey levels squared, 5 x 5 window
FLAT_MIN_LEVEL = 12

_LOCATION = (
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
)


@dataclass(frozen=True)
class CropBox:
    """The ultrasound field in original image pixels: top-left (x, y), width, height."""

    x: int
    y: int
    w: int
    h: int
    source: str  # "regions" | "heuristic"

    @property
    def x1(self) -> int:
        """Exclusive right edge."""
        return self.x + self.w

    @property
    def y1(self) -> int:
        """Exclusive bottom edge."""
        return self.y + self.h

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


# --------------------------------------------------------------------------------------------
# from the region sequence


def _region_list(regions: list[dict] | str | None) -> list[Mapping[str, Any]]:
    if regions is None:
        return []
    if isinstance(regions, str):
        if not regions.strip():
            return []
        try:
            regions = json.loads(regions)
        except ValueError:
            return []
    if not isinstance(regions, list):
        return []
    return [r for r in regions if isinstance(r, Mapping)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return None if np.isnan(v) else v


def _image_regions(items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for r in items:
        kind = r.get("RegionDataType")
        if kind is None or (_number(kind) is not None and int(kind) in IMAGE_REGION_TYPES):
            out.append(r)
    return out


def crop_from_regions(regions: list[dict] | str | None, width: int, height: int) -> CropBox | None:
    """The crop box from the catalog's ``us_regions`` (JSON text or parsed list), or None when
    there is no image region or one of them is not sane (module docstring)."""
    items = _image_regions(_region_list(regions))
    if not items or width <= 0 or height <= 0:
        return None
    boxes = []
    for r in items:
        vals = [_number(r.get(k)) for k in _LOCATION]
        if any(v is None for v in vals):
            return None
        x0, y0, x1, y1 = (int(round(v)) for v in vals)  # type: ignore[arg-type]
        # Bounds are inclusive. Out of the image by more than the tolerance: not this image's.
        if x0 < -OVERSHOOT_PX or y0 < -OVERSHOOT_PX:
            return None
        if x1 > width - 1 + OVERSHOOT_PX or y1 > height - 1 + OVERSHOOT_PX:
            return None
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(width - 1, x1), min(height - 1, y1)
        w, h = x1 - x0 + 1, y1 - y0 + 1
        if w < MIN_SIDE_PX or h < MIN_SIDE_PX or w * h < MIN_AREA_SHARE * width * height:
            return None
        boxes.append((x0, y0, x1 + 1, y1 + 1))
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    return CropBox(x0, y0, x1 - x0, y1 - y0, "regions")


# --------------------------------------------------------------------------------------------
# from the pixels


def _brightness(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = img[:, :, :3].max(axis=2)
    if img.ndim != 2:
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {np.shape(image)}")
    if img.dtype != np.uint8:
        hi = float(img.max()) if img.size else 0.0
        img = (img.astype(np.float32) * (255.0 / hi if hi > 0 else 1.0)).astype(np.uint8)
    return np.ascontiguousarray(img)


def _black_level(grey: np.ndarray) -> int:
    """The screen's black: the most common value among the dark pixels (0 on most scanners,
    a few grey levels on analogue-captured or JPEG screens)."""
    hist = np.bincount(grey[::2, ::2].ravel(), minlength=256)[:48]
    return int(np.argmax(hist))


def _odd(n: float) -> int:
    k = int(round(n))
    return k + 1 if k % 2 == 0 else k


def _cut_at_gap(fractions: np.ndarray) -> int:
    """How many outer lines to drop: up to the innermost nearly dark line within the outer
    band (the gap between the field and a bar or label that the density window bridged). A
    sloping field edge (trapezoid, fan) has no such gap, only its first few lines."""
    band = int(MAX_TRIM_SHARE * len(fractions))
    dark = np.flatnonzero(fractions[:band] < GAP_LIT_SHARE)
    return int(dark[-1]) + 1 if dark.size else 0


def _trim(lit: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Cut each edge at a dark gap near it (see _cut_at_gap)."""
    x0, y0, x1, y1 = box
    sub = lit[y0:y1, x0:x1]
    if sub.size == 0:
        return box
    rows = sub.mean(axis=1)
    cols = sub.mean(axis=0)
    top = _cut_at_gap(rows)
    bottom = _cut_at_gap(rows[::-1])
    left = _cut_at_gap(cols)
    right = _cut_at_gap(cols[::-1])
    return (x0 + left, y0 + top, x1 - right, y1 - bottom)


def find_ultrasound_field(image: np.ndarray) -> CropBox:
    """The ultrasound field found from the pixels alone (grey H x W or RGB H x W x 3)."""
    grey = _brightness(image)
    h, w = grey.shape
    if h < 8 or w < 8:
        return CropBox(0, 0, w, h, "heuristic")
    black = _black_level(grey)
    lit = grey > black + LIT_MARGIN
    # Flat grey (header bands, filled buttons) is chrome, not echo: bright speckle always
    # varies. (Dim speckle of a dark capture may be nearly flat, so only grey above the black.)
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (5, 5))
    var = cv2.blur(g * g, (5, 5)) - mean * mean
    lit &= ~((var <= FLAT_VAR) & (grey > black + FLAT_MIN_LEVEL))
    k = _odd(max(9.0, 0.025 * min(h, w)))
    dens = cv2.boxFilter(lit.astype(np.float32), -1, (k, k), borderType=cv2.BORDER_CONSTANT)
    core = (dens > 0.5).astype(np.uint8)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return CropBox(0, 0, w, h, "heuristic")
    comps = stats[1:]
    big = int(np.argmax(comps[:, cv2.CC_STAT_AREA]))
    bx, by, bw, bh, barea = (int(v) for v in comps[big])
    x0, y0, x1, y1 = bx, by, bx + bw, by + bh
    # The other view of a dual view: a big area beside the largest one, at the same height.
    for i, (cx, cy, cw, ch, area) in enumerate(comps):
        if i == big or area < 0.25 * barea:
            continue
        overlap = min(by + bh, cy + ch) - max(by, cy)
        gap = max(cx - (bx + bw), bx - (cx + cw))
        if overlap >= 0.6 * min(bh, ch) and gap <= 0.1 * w:
            x0, y0 = min(x0, int(cx)), min(y0, int(cy))
            x1, y1 = max(x1, int(cx + cw)), max(y1, int(cy + ch))
    x0, y0, x1, y1 = _trim(lit, (x0, y0, x1, y1))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return CropBox(0, 0, w, h, "heuristic")
    return CropBox(x0, y0, x1 - x0, y1 - y0, "heuristic")


def ultrasound_field(image: np.ndarray, regions: list[dict] | str | None) -> CropBox:
    """The crop box: the region sequence when present and sane, else the pixel heuristic."""
    img = np.asarray(image)
    box = crop_from_regions(regions, img.shape[1], img.shape[0]) if img.ndim >= 2 else None
    return box if box is not None else find_ultrasound_field(img)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0

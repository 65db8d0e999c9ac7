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

   The scanner's declared field can be larger than its echo: a sector or curvilinear fan
   inside its rectangle, and a deep setting over shallow tissue leaves the fan black below the
   echo (the Philips OBXXXX1A: 2 cm of echo in an 11 cm field). Two cues real screens carry,
   neither tied to a position, then grow the box:

   - *the field's own background* (`_field_plateau`): many scanners draw the field's empty part
     a grey level or two apart from the chrome's black (the Philips fan at 1 on a 0 screen; the
     color3d field at 0 on a 1 screen, the chrome's black read off the frame border). Dense
     lit-or-dim areas under the echo are the field (used when they grow its box by a sixth);
   - *the depth scale* (`_depth_rulers`, `_extend_to_ruler`): a column of equally spaced short
     marks of like size (ticks or dots) runs the field's full depth along one side, starting at
     the transducer face. A scale that starts at the echo's top takes the field down to its
     last mark; when the echo stops well above it (or a fan stops short of it sideways), the
     sides are the scale's column and its mirror image about the echo's centre line (a fan is
     centred in its field). A rectangle's scale sits a few pixels off its edge: sides alone.

   What no pixel tells is not guessed: a declared region that is simply the whole display
   (the Philips EPIQ capture declares the screen minus a margin, text and ECG included, around
   a fan drawn on the same black) is not recoverable; the box stays on the fan.
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
# The field's own background (see _field_plateau): density of lit-or-dim pixels, and how much
# bigger than the echo's box its box must be to be used.
PLATEAU_DENSITY = 0.9
PLATEAU_MIN_GAIN = 1.15
# Depth scales (see _depth_rulers / _extend_to_ruler): marks at most MAX_TICK_PX tall, at
# least MIN_TICKS of them spaced at least MIN_TICK_STEP apart, over RULER_MIN_SPAN of the
# height; the scale starts within RULER_TOP_SHARE of its span of the echo's top, ends at least
# RULER_DEEPER_SHARE of its span below the echo, and lies within RULER_MAX_REACH of the width.
MAX_TICK_PX = 5
MIN_TICKS = 5
MIN_TICK_STEP = 6.0
TICK_TOL_SHARE = 0.03  # marks are drawn at rounded positions: a pixel or two off
MARK_SIZE_SLACK = 2  # px: a scale's marks differ in height by at most this (major / minor)
RULER_MIN_SPAN = 0.3
RULER_TOP_SHARE = 0.1
RULER_DEEPER_SHARE = 0.15
RULER_JITTER_PX = 3
RULER_JITTER_SHARE = 0.02
RULER_MAX_REACH = 0.5
RULER_NEAR_PX = 16
RULER_NEAR_SHARE = 0.03
FAN_WIDTH_RATIO = 0.85

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


def _field_plateau(
    grey: np.ndarray, black: int, lit: np.ndarray, core: np.ndarray, k: int
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """The box of the field's own background when it differs from the screen's black.

    Many scanners draw the field's empty part (the fan below the echo, the corners of the
    declared rectangle) a grey level or two apart from the chrome's black: the Philips fan at
    1 on a 0 screen, the color3d rectangle at 0 on a 1 screen. Pixels that are lit, or dim but
    not the screen's black, and densely so (a stricter density than the core's, so a gap of
    two pixels to a bar or label stays open), form areas; those under the echo core are the
    field. Found at half resolution (a background is large): (box, the lit-or-dim mask, the
    dense area at full resolution)."""
    # The chrome surrounds the field, so the frame's border tells its black (the most common
    # level may be the field's own when the field is most of the screen).
    # Only a level or two from the screen's black counts (a grey frame line is not a black).
    border = np.concatenate((grey[0], grey[-1], grey[:, 0], grey[:, -1]))
    lo = max(0, black - LIT_MARGIN - 1)
    counts = np.bincount(border, minlength=256)[lo : black + LIT_MARGIN + 2]
    chrome = lo + int(np.argmax(counts)) if counts.max() > 0 else black
    near = lit | ((grey != chrome) & (grey <= max(black, chrome) + LIT_MARGIN))
    small = near[::2, ::2].astype(np.float32)
    ks = max(5, k // 2 | 1)
    dens = cv2.boxFilter(small, -1, (ks, ks), borderType=cv2.BORDER_REPLICATE)
    plate = (dens > PLATEAU_DENSITY).astype(np.uint8)
    plate = cv2.morphologyEx(plate, cv2.MORPH_OPEN, np.ones((ks, ks), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(plate, connectivity=4)
    if n <= 1:
        return None
    hit = np.unique(labels[(core[::2, ::2] > 0) & (labels > 0)])
    if hit.size == 0:
        return None
    h, w = grey.shape
    left, top = stats[hit, cv2.CC_STAT_LEFT], stats[hit, cv2.CC_STAT_TOP]
    right = left + stats[hit, cv2.CC_STAT_WIDTH]
    bottom = top + stats[hit, cv2.CC_STAT_HEIGHT]
    box = (
        2 * int(left.min()),
        2 * int(top.min()),
        min(w, 2 * int(right.max())),
        min(h, 2 * int(bottom.max())),
    )
    area = np.isin(labels, hit).astype(np.uint8)
    full = cv2.resize(area, (w, h), interpolation=cv2.INTER_NEAREST)
    return box, near, full


def _refine_plateau(
    box: tuple[int, int, int, int], near: np.ndarray, area: np.ndarray, reach: int
) -> tuple[int, int, int, int]:
    """Corners and pointed ends of a fan fall below the density: the box of the pixels
    connected to the dense area, reaching at most `reach` beyond it (a label joined by a
    stray pixel cannot pull the box far)."""
    h, w = near.shape
    x0, y0 = max(0, box[0] - reach), max(0, box[1] - reach)
    x1, y1 = min(w, box[2] + reach), min(h, box[3] + reach)
    sub = near[y0:y1, x0:x1].astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
    hit = np.unique(labels[(area[y0:y1, x0:x1] > 0) & (labels > 0)])
    if hit.size == 0:
        return box
    left = stats[hit, cv2.CC_STAT_LEFT]
    top = stats[hit, cv2.CC_STAT_TOP]
    return (
        x0 + int(left.min()),
        y0 + int(top.min()),
        x0 + int((left + stats[hit, cv2.CC_STAT_WIDTH]).max()),
        y0 + int((top + stats[hit, cv2.CC_STAT_HEIGHT]).max()),
    )


def _walk(
    c: np.ndarray, size: np.ndarray, i: int, step: float, tol: float, seen: set[int]
) -> tuple[int, float]:
    """Marks found stepping from mark `i` by `step` (or twice it, over one hidden mark), each
    about as tall as the one before (ticks of a scale are alike; a letter is not):
    (how many steps, the last mark reached; the marks passed go into `seen`). A run never
    ends on a skipped step: a stray mark two steps beyond the last tick is not a tick."""
    count, prev, ref = 0, float(c[i]), int(size[i])
    last_single = (0, prev)
    while True:
        ok = np.abs(size - ref) <= MARK_SIZE_SLACK
        d1 = np.where(ok, np.abs(c - (prev + step)), np.inf)
        j = int(np.argmin(d1))
        if d1[j] <= tol:
            count, prev, ref = count + 1, float(c[j]), int(size[j])
            last_single = (count, prev)
            seen.add(j)
            continue
        d2 = np.where(ok, np.abs(c - (prev + 2 * step)), np.inf)
        j = int(np.argmin(d2))
        if d2[j] <= tol:
            count, prev, ref = count + 2, float(c[j]), int(size[j])
            seen.add(j)
            continue
        return last_single


def _tick_chain(
    centres: np.ndarray, sizes: np.ndarray, min_ticks: int
) -> tuple[float, float, float] | None:
    """The longest run of equally spaced marks of like size: (first, last, spacing). A mark
    may be hidden (under a focus marker or a label: the next one two steps on continues the
    run), and a stray mark between two ticks (a letter crossing the column) is stepped over."""
    c = np.asarray(centres, dtype=np.float64)
    size = np.asarray(sizes, dtype=np.int64)
    if c.size < min_ticks:
        return None
    d = np.round(np.diff(c))
    vals = np.unique(d[d >= MIN_TICK_STEP])
    if vals.size == 0:
        return None
    tols = np.maximum(1.6, TICK_TOL_SHARE * vals)
    counts = (np.abs(d[None, :] - vals[:, None]) <= tols[:, None]).sum(axis=1)
    best: tuple[int, float, float, float] | None = None
    # A scale repeats its step: only steps seen a few times are candidates.
    for s, tol in zip(vals[counts >= 3], tols[counts >= 3], strict=True):
        seen: set[int] = set()
        for i0 in np.flatnonzero(np.abs(d - s) <= tol):
            if int(i0) in seen:
                continue  # already part of a run found from an earlier mark
            ahead, last = _walk(c, size, int(i0), s, tol, seen)
            behind, first = _walk(c, size, int(i0), -s, tol, seen)
            count = ahead + behind + 1
            if best is None or count > best[0]:
                best = (count, first, last, float(s))
    if best is None or best[0] < min_ticks:
        return None
    return (best[1], best[2], best[3])


def _depth_rulers(lit: np.ndarray, skip: np.ndarray) -> list[tuple[int, int, int]]:
    """Vertical depth scales: columns crossed by short marks (ticks, dots) at equal spacing
    over a long run, with no long strokes among them (a text column has letter stems).
    Returns (x, first mark row, last mark row) per ruler, its column nearest the screen
    centre. Pixels under `skip` (the echo) are ignored: no scale is read inside speckle."""
    h, w = lit.shape
    m = lit & ~skip
    # Every vertical run of every column at once (columns as rows of the transposed mask).
    padded = np.zeros((w, h + 2), dtype=np.int8)
    padded[:, 1:-1] = m.T
    edges = np.flatnonzero(np.diff(padded.ravel()))
    starts, ends = edges[::2], edges[1::2]
    col = starts // (h + 2)
    y0 = starts % (h + 2)
    length = ends - starts
    short = length <= MAX_TICK_PX
    n_short = np.bincount(col[short], minlength=w)
    lo = np.full(w, h, dtype=np.int64)
    hi = np.zeros(w, dtype=np.int64)
    np.minimum.at(lo, col[short], y0[short])
    np.maximum.at(hi, col[short], y0[short])
    min_span = RULER_MIN_SPAN * h
    # Every other column: a tick or dot is at least 3 px wide, so a scale is never missed.
    cand = np.flatnonzero((n_short >= MIN_TICKS) & (hi - lo >= min_span))
    cand = cand[cand % 2 == 0]
    found: list[tuple[int, int, int, int]] = []
    order = np.argsort(col, kind="stable")
    bounds = np.searchsorted(col[order], np.arange(w + 1))
    for x in cand:
        idx = order[bounds[x] : bounds[x + 1]]
        st, ln, sh = y0[idx], length[idx], short[idx]
        chain = _tick_chain(st[sh] + (ln[sh] - 1) / 2.0, ln[sh], MIN_TICKS)
        if chain is None or chain[1] - chain[0] < min_span:
            continue
        first, last, _ = chain
        inside = (st >= first - 1) & (st + ln <= last + 2) & ~sh
        if inside.sum() > 2:
            continue
        found.append((int(x), int(round(first)), int(round(last)), int(round(last - first))))
    # Neighbouring columns belong to one scale: keep the longest, at its inner column.
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(found):
        j = i
        while j + 1 < len(found) and found[j + 1][0] - found[j][0] <= 3:
            j += 1
        group = found[i : j + 1]
        span = max(g[3] for g in group)
        longest = [g for g in group if g[3] >= span - 2]
        inner = min(longest, key=lambda g: abs(g[0] - w / 2))
        out.append((inner[0], min(g[1] for g in longest), max(g[2] for g in longest)))
        i = j + 1
    return out


def _fan_axis(echo: np.ndarray) -> float | None:
    """The echo's centre line, taken at its top rows (a fan's apex or the middle of its
    transducer face): labels or markers that join the echo lower down do not move it."""
    rows = np.flatnonzero(echo.any(axis=1))
    if rows.size == 0:
        return None
    top = rows[: max(3, int(0.05 * rows.size))]
    mids = []
    for y in top:
        xs = np.flatnonzero(echo[y])
        mids.append((xs[0] + xs[-1] + 1) / 2.0)
    return float(np.median(mids))


def _is_fan(echo: np.ndarray) -> bool:
    """Whether the echo widens with depth (sector, curvilinear): its rows near the top are
    clearly narrower than those near the bottom. A rectangle's rows are all alike."""
    rows = np.flatnonzero(echo.any(axis=1))
    if rows.size < 8:
        return False

    def width(y: int) -> int:
        xs = np.flatnonzero(echo[y])
        return int(xs[-1] - xs[0] + 1) if xs.size else 0

    top = width(int(rows[int(0.1 * (rows.size - 1))]))
    bottom = width(int(rows[int(0.9 * (rows.size - 1))]))
    return bottom > 0 and top < FAN_WIDTH_RATIO * bottom


def _extend_to_ruler(
    box: tuple[int, int, int, int],
    rulers: list[tuple[int, int, int]],
    w: int,
    h: int,
    fan: bool = False,
    axis: float | None = None,
) -> tuple[int, int, int, int]:
    """A depth scale runs the full depth of the declared field along one of its sides, from
    the transducer face (the echo's top) down. So the field reaches down to the scale's last
    mark, even when the echo stops above it (a deep setting over shallow tissue: the rest of
    the fan is black). When it stops well above it, or a fan reaches the scale's depth but
    not its side (a fan narrower than its field), the sides are unknown from the echo: a fan
    is centred in its field, so they are the scale's column and its mirror image about the
    fan's axis (`axis`: through its apex; else the box's centre line). A scale that does not start at the echo's top is not this field's;
    a rectangle's scale sits a few pixels off its edge and leaves the sides alone."""
    x0, y0, x1, y1 = box
    best = None
    for rx, top, bottom in rulers:
        span = bottom - top
        gap = max(x0 - rx, rx - x1, 0)
        if abs(top - y0) > RULER_TOP_SHARE * span or gap > RULER_MAX_REACH * w:
            continue
        if bottom - y1 < -RULER_DEEPER_SHARE * span:
            continue  # a scale ending well above the echo's bottom: not this field's
        if best is None or gap < best[0]:
            best = (gap, rx, span, bottom)
    if best is None or y1 <= y0:
        return box
    gap, rx, span, bottom = best
    deeper = bottom - y1
    ny1 = min(h, bottom) if deeper > max(RULER_JITTER_PX, RULER_JITTER_SHARE * span) else y1
    sideways = deeper >= RULER_DEEPER_SHARE * span or (
        fan and gap >= max(RULER_NEAR_PX, RULER_NEAR_SHARE * w)
    )
    nx0, nx1 = x0, x1
    if sideways:
        if axis is None:
            axis = (x0 + x1) / 2.0
        if rx >= x1:
            nx0, nx1 = int(round(2 * axis - rx)), rx
        elif rx < x0:
            nx0, nx1 = rx + 1, int(round(2 * axis - rx)) + 1
        # (a scale drawn inside the field: the box's own sides stand)
    return (max(0, min(x0, nx0)), y0, min(w, max(x1, nx1)), max(y1, ny1))


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
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return CropBox(0, 0, w, h, "heuristic")
    comps = stats[1:]
    big = int(np.argmax(comps[:, cv2.CC_STAT_AREA]))
    bx, by, bw, bh, barea = (int(v) for v in comps[big])
    x0, y0, x1, y1 = bx, by, bx + bw, by + bh
    keep = [big + 1]
    # The other view of a dual view: a big area beside the largest one, at the same height.
    for i, (cx, cy, cw, ch, area) in enumerate(comps):
        if i == big or area < 0.25 * barea:
            continue
        overlap = min(by + bh, cy + ch) - max(by, cy)
        gap = max(cx - (bx + bw), bx - (cx + cw))
        if overlap >= 0.6 * min(bh, ch) and gap <= 0.1 * w:
            x0, y0 = min(x0, int(cx)), min(y0, int(cy))
            x1, y1 = max(x1, int(cx + cw)), max(y1, int(cy + ch))
            keep.append(i + 1)
    x0, y0, x1, y1 = _trim(lit, (x0, y0, x1, y1))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return CropBox(0, 0, w, h, "heuristic")
    # The echo may fill only part of the declared field (a fan in its rectangle, black below
    # the echo): the field's own background, then the depth scale, tell the rest.
    echo = (labels == keep[0]).astype(np.uint8)
    for lab in keep[1:]:
        echo |= (labels == lab).astype(np.uint8)
    box = (x0, y0, x1, y1)
    plateau = _field_plateau(grey, black, lit, echo, k)
    if plateau is not None:
        pbox, near, dense = plateau
        px0, py0, px1, py1 = pbox
        grown = (min(x0, px0), min(y0, py0), max(x1, px1), max(y1, py1))
        area = (x1 - x0) * (y1 - y0)
        if (grown[2] - grown[0]) * (grown[3] - grown[1]) >= PLATEAU_MIN_GAIN * area:
            px0, py0, px1, py1 = _refine_plateau(pbox, near, dense, k)
            box = (min(x0, px0), min(y0, py0), max(x1, px1), max(y1, py1))
    skip = cv2.dilate(echo, np.ones((5, 5), np.uint8)) > 0
    fan = _is_fan(echo)
    axis = _fan_axis(echo) if fan else None
    box = _extend_to_ruler(box, _depth_rulers(lit, skip), w, h, fan=fan, axis=axis)
    x0, y0, x1, y1 = box
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

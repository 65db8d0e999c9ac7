"""Is a screen capture Doppler, and which kind: colour flow (one or both hues) or power Doppler.

The decision comes from *filled, saturated blobs inside the ultrasound field*:

1. Flow-coloured pixels: saturated (max - min channel >= FLOW_MIN_CHROMA) with a warm hue
   (red, orange, yellow: every colour-flow "towards" map and every power map) or a cool hue
   (blue, cyan: the "away" half of colour flow). Green and magenta are chrome colours here
   (ALOKA's green markers, Philips' blue-grey header has too little chroma to count at all).
2. Thin strokes are removed by a morphological opening: annotation text, calipers, ruler ticks,
   dotted lines and coloured header text are 1-4 px strokes; flow is filled area.
3. Each remaining blob is sorted:
   - a *colour-scale bar*: a filled, elongated rectangle whose colour ramps along its long axis;
     it is chrome, never flow, but it is supporting evidence (it lowers the flow area needed and
     tells colour flow, which has a two-sided red/blue scale, from power, a one-sided warm one);
   - a *flat glyph*: one uniform colour over a small area (the filled nipple dot of a yellow body
     marker, a logo disc) is annotation, not flow; flow maps shade with velocity or power;
   - otherwise flow, if its centre lies inside the ultrasound field.
4. The field is the SequenceOfUltrasoundRegions box when the header has sane 2D regions, else an
   estimate from the pixels: the largest grey, textured area once thin chrome is opened away.
   No fixed screen band is assumed anywhere.

Plain numpy / OpenCV; the pixel export (decode.py) calls `detect_doppler` for each still and for
the first frame of each clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 with x1 / y1 exclusive

# A flow pixel is saturated: real flow maps (and the generator's) start around chroma 110 at
# their darkest shown level; the Philips header band (37, 62, 94) has chroma 57, JPEG-smeared
# grey text stays below 40.
FLOW_MIN_CHROMA = 80
FLOW_MIN_VALUE = 100
# OpenCV hue (0..180, i.e. degrees / 2): warm = red..yellow, cool = cyan..blue.
_WARM = ((0, 34), (170, 181))
_COOL = ((85, 131),)
# Within warm: orange to yellow, the body of a power map (pure colour-flow red sits below 11).
_ORANGE_YELLOW = (11, 34)
# A blob whose pixels sit this close (max channel difference) to its median colour is flat.
FLAT_TOLERANCE = 30
FLAT_SHARE = 0.8
# Hues annotation is drawn in (OpenCV units): orange to yellow, and cyan. A small blob of one of
# these hues (within GLYPH_HUE_TOLERANCE) is a stroke fragment, whatever its blending.
_ANNOTATION_HUES = ((11, 34), (85, 100))
GLYPH_HUE_TOLERANCE = 3
# A flat blob larger than this share of the field is flow all the same (a saturated power map
# fills whole vessels with its top-of-scale yellow, e.g. pydicom's ExplVR_BigEnd crop).
FLAT_GLYPH_MAX_FIELD_SHARE = 0.03
# Flow area needed, as a share of the field and in pixels; a colour bar beside the field lowers
# it by BAR_EVIDENCE_FACTOR (a scanner only shows the scale while a Doppler mode is on).
MIN_FLOW_FIELD_SHARE = 0.0015
MIN_FLOW_PIXELS = 60
BAR_EVIDENCE_FACTOR = 3.0
# Colour-flow vs power: share of flow pixels with a cool hue, and of orange / yellow ones.
COLOR_MIN_COOL_SHARE = 0.05
POWER_MIN_ORANGE_SHARE = 0.3
# RegionSpatialFormat 1 = 2D; RegionDataType 1 tissue, 2 colour flow, 3 PW / 4 CW spectral
# Doppler... (DICOM C.8.5.5.1.1/2). Only 2D tissue / flow regions are fields.
_FIELD_DATA_TYPES = {1, 2}
# A region box smaller than this share of the image is not a field (a thumbnail, a bar).
MIN_REGION_IMAGE_SHARE = 0.04


@dataclass(frozen=True)
class DopplerFinding:
    """The decision and what it rests on (kept small so it can go into logs and tests)."""

    is_doppler: bool
    kind: str | None  # 'color' | 'power' | None
    flow_pixels: int
    field: Box
    # 'regions' | 'estimate' | 'image' (no field found: the whole frame) | 'skipped' (no filled
    # colour at all, so no field was needed)
    field_source: str
    colour_bar: str | None  # kind the scale bar shows ('color' | 'power'), None without a bar


# --------------------------------------------------------------------------- the field


def regions_from_dataset(ds: Any) -> list[dict[str, Any]]:
    """SequenceOfUltrasoundRegions of a pydicom Dataset as dicts (as the catalog stores them)."""
    keys = (
        "RegionSpatialFormat",
        "RegionDataType",
        "RegionLocationMinX0",
        "RegionLocationMinY0",
        "RegionLocationMaxX1",
        "RegionLocationMaxY1",
    )
    try:
        seq = ds.get("SequenceOfUltrasoundRegions") or []
        out = []
        for item in seq:
            out.append({k: int(item.get(k)) for k in keys if item.get(k) is not None})
        return out
    except Exception:  # noqa: BLE001 - a malformed sequence means "no usable regions"
        return []


def region_fields(
    regions: Iterable[Mapping[str, Any]] | None, shape: tuple[int, ...]
) -> Box | None:
    """The bounding box of the sane 2D tissue / flow regions, or None when there is none.

    `regions` are SequenceOfUltrasoundRegions items as dicts of DICOM keywords (the catalog's
    `us_regions` JSON). A region is sane when it lies inside the image and covers at least
    MIN_REGION_IMAGE_SHARE of it: a box that reaches outside the pixels (pydicom's
    examples_ybr_color keeps the header of a larger original) says nothing about where the
    field is in this image, so the pixels decide instead.
    """
    h, w = shape[:2]
    boxes = []
    for reg in regions or ():
        try:
            x0, y0 = int(reg["RegionLocationMinX0"]), int(reg["RegionLocationMinY0"])
            x1, y1 = int(reg["RegionLocationMaxX1"]), int(reg["RegionLocationMaxY1"])
        except (KeyError, TypeError, ValueError):
            continue
        fmt, dtype = reg.get("RegionSpatialFormat"), reg.get("RegionDataType")
        if fmt not in (None, 1) or (dtype is not None and dtype not in _FIELD_DATA_TYPES):
            continue
        # Writers often put the exclusive bound in MaxX1 / MaxY1 (OBXXXX1A: 800 on 800 columns):
        # allow that one pixel, nothing more.
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            continue
        x1, y1 = min(x1, w - 1), min(y1, h - 1)
        if (x1 - x0 + 1) * (y1 - y0 + 1) < MIN_REGION_IMAGE_SHARE * h * w:
            continue
        boxes.append((x0, y0, x1 + 1, y1 + 1))
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _odd(n: float) -> int:
    k = max(3, int(round(n)))
    return k if k % 2 else k + 1


def estimate_field(rgb: np.ndarray, flow: np.ndarray | None = None) -> Box | None:
    """The ultrasound field estimated from the pixels: the largest grey, textured area.

    Grey-scale echo pixels (low chroma, not black) are closed into areas, thin chrome (text,
    rulers, ticks, dotted lines) is opened away with a kernel of ~3% of the short side, and the
    largest component, with any other at least a third as large (the second half of a dual
    view), gives the box. `flow` (filled colour blobs, thin strokes already removed) counts as
    field content too: flow is drawn over the tissue, and a saturated power map can cover most
    of a small crop. None when nothing field-like is found.
    """
    return _estimate_field(_colour_planes(rgb), flow)


def _estimate_field(planes: _Planes, flow: np.ndarray | None) -> Box | None:
    h, w = planes.val.shape[:2]
    # Echo pixels are grey: value >= 16, chroma under 30 (the Philips blue-grey header band has
    # 57); chroma < 30 <=> (sat * val + 127) // 255 < 30 <=> sat * val < 30 * 255 - 127.
    grey = cv2.bitwise_and(
        cv2.compare(planes.val, 16, cv2.CMP_GE),
        cv2.compare(planes.sat_val, 30 * 255 - 127, cv2.CMP_LT),
    )
    if flow is not None:
        grey[flow] = 255
    side = min(h, w)
    close_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(side * 0.015),) * 2)
    open_k = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd(side * 0.03),) * 2)
    area = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, close_k)
    area = cv2.morphologyEx(area, cv2.MORPH_OPEN, open_k)
    n, _, stats, _ = _components(area)
    if n <= 1:
        return None
    sizes = stats[1:, cv2.CC_STAT_AREA]
    biggest = int(sizes.max())
    if biggest < 0.03 * h * w:
        return None
    keep = [i + 1 for i, s in enumerate(sizes) if s >= biggest / 3]
    x0 = min(int(stats[i, cv2.CC_STAT_LEFT]) for i in keep)
    y0 = min(int(stats[i, cv2.CC_STAT_TOP]) for i in keep)
    x1 = max(int(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH]) for i in keep)
    y1 = max(int(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]) for i in keep)
    return (x0, y0, x1, y1)


# --------------------------------------------------------------------------- colour masks


def _hue_classes() -> np.ndarray:
    # OpenCV hue -> bit flags (1 warm, 2 cool, 4 orange / yellow), applied as a lookup table.
    lut = np.zeros(256, dtype=np.uint8)
    for lo, hi in _WARM:
        lut[lo:hi] |= 1
    for lo, hi in _COOL:
        lut[lo:hi] |= 2
    lut[_ORANGE_YELLOW[0] : _ORANGE_YELLOW[1]] |= 4
    return lut


_HUE_LUT = _hue_classes()


@dataclass(frozen=True)
class _Planes:
    """What the colour tests need of a frame, computed once: OpenCV hue, value, sat * value."""

    hue: np.ndarray  # uint8, OpenCV hue 0..179
    val: np.ndarray  # uint8, max channel
    sat_val: np.ndarray  # uint16, S * V (exact: at most 255 * 255)


def _colour_planes(rgb: np.ndarray) -> _Planes:
    # One OpenCV HSV pass gives all of it (numpy's max/min over the channel axis cost 4x more):
    # V = max channel, S = 255 * (max - min) / max, so chroma = (S * V + 127) // 255. The
    # thresholds below compare S * V directly, which is exact and avoids a per-pixel division.
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hue, sat, val = cv2.split(hsv)
    return _Planes(hue, val, cv2.multiply(sat, val, dtype=cv2.CV_16U))


def _flow_classes(planes: _Planes) -> np.ndarray:
    """Per pixel: the hue flags of _HUE_LUT (1 warm, 2 cool, 4 orange / yellow) where the pixel
    is saturated enough to be flow (chroma >= FLOW_MIN_CHROMA, value >= FLOW_MIN_VALUE), else 0.

    OpenCV's compare / LUT / bitwise ops instead of numpy boolean algebra: ~10x faster on a
    1280x960 frame, and every RGB still goes through here. Same result bit for bit:
    chroma >= c <=> (S * V + 127) // 255 >= c <=> S * V >= c * 255 - 127.
    """
    saturated = cv2.bitwise_and(
        cv2.compare(planes.sat_val, FLOW_MIN_CHROMA * 255 - 127, cv2.CMP_GE),
        cv2.compare(planes.val, FLOW_MIN_VALUE, cv2.CMP_GE),
    )
    return cv2.bitwise_and(cv2.LUT(planes.hue, _HUE_LUT), saturated)


def flow_colour_masks(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(warm, cool, orange_yellow) boolean masks of saturated flow-coloured pixels."""
    cls = _flow_classes(_colour_planes(rgb))
    return (cls & 1).astype(bool), (cls & 2).astype(bool), (cls & 4).astype(bool)


def _components(
    mask: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    # BBDT gives the same labels, stats and centroids as OpenCV's default (checked bit for bit on
    # 1,000+ masks) and, single-threaded as in the ingest workers, ran 2-3 ms instead of 10-15
    # ms on an 800x600 flow mask (opencv-python-headless 5.0).
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)


def _without(
    base: np.ndarray, labels: np.ndarray, stats: np.ndarray, drop: list[int]
) -> np.ndarray:
    """A copy of the boolean mask `base` with the pixels of components `drop` cleared.

    Each component is cleared inside its own bounding box, so the cost follows the few blobs
    dropped, not the image size (a label lookup over the whole image cost ~5 ms a frame).
    """
    out = base.copy()
    for i in drop:
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        win = out[y : y + bh, x : x + bw]
        win[labels[y : y + bh, x : x + bw] == i] = False
    return out


def _opening_kernel(shape: tuple[int, ...]) -> np.ndarray:
    # On the usual 400-1000-line screens 7 px removes every stroke up to 6 px: anti-aliased text
    # at thickness 2-3 is 4-6 px wide in the saturation mask (its fringe blends with the
    # speckle), calipers, ticks and dotted lines are 1-2 px. Vessels and power blobs are wider.
    # Smaller images get smaller kernels so their (smaller) flow is not erased.
    side = min(shape[:2])
    k = 3 if side < 200 else 5 if side < 400 else 7
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


# --------------------------------------------------------------------------- blobs


def _is_scale_bar(sub: np.ndarray, sel: np.ndarray) -> bool:
    """A filled rectangle whose colour ramps along one axis and is constant across the other.

    That is how every scanner draws its velocity / power scale (often split in two by its dark
    middle, so the halves need not be elongated: US1's are 24 x 30 px). Flow blobs are ragged
    (they do not fill their bounding box) and shade in every direction.
    """
    h, w = sel.shape
    if sel.mean() < 0.9 or min(h, w) < 4 or h * w < 40:
        return False
    img = np.where(sel[..., None], sub, 0).astype(np.float32)
    count = sel.sum(axis=1, keepdims=False).astype(np.float32)
    rows = img.sum(axis=1) / np.maximum(count, 1)[:, None]  # mean colour of each row
    count = sel.sum(axis=0).astype(np.float32)
    cols = img.sum(axis=0) / np.maximum(count, 1)[:, None]

    def spread(means: np.ndarray) -> float:
        return float((means.max(axis=0) - means.min(axis=0)).max())

    # Ignore the anti-aliased border lines of each axis when measuring "constant across".
    inner_rows = rows[1:-1] if h > 4 else rows
    inner_cols = cols[1:-1] if w > 4 else cols
    vertical = spread(inner_rows) >= 40 and spread(inner_cols) <= 25
    horizontal = spread(inner_cols) >= 40 and spread(inner_rows) <= 25
    return vertical or horizontal


def _blob_is_glyph_like(pixels: np.ndarray, hues: np.ndarray) -> bool:
    """One uniform colour, or one annotation hue (yellow, orange, cyan) blended with grey.

    Anti-aliased annotation strokes drawn over speckle mix one colour with the grey beneath:
    the RGB values spread but the hue stays put. Flow maps shade through hues (power: red to
    yellow) or are pure red / blue velocity colours, which are never annotation colours here.
    """
    med = np.median(pixels, axis=0)
    close = np.abs(pixels.astype(np.int16) - med).max(axis=1) <= FLAT_TOLERANCE
    if float(close.mean()) >= FLAT_SHARE:
        return True
    hue = int(np.median(hues))
    one_hue = float((np.abs(hues.astype(np.int16) - hue) <= GLYPH_HUE_TOLERANCE).mean())
    return one_hue >= FLAT_SHARE and any(lo <= hue < hi for lo, hi in _ANNOTATION_HUES)


def detect_doppler(
    rgb: np.ndarray, regions: Iterable[Mapping[str, Any]] | None = None
) -> DopplerFinding:
    """Decide Doppler / not Doppler and the kind for one RGB frame (see the module docstring).

    `regions` are the file's SequenceOfUltrasoundRegions items (dicts of DICOM keywords), or None.
    Grey frames (HxW) are never Doppler.
    """
    h, w = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        return DopplerFinding(False, None, 0, (0, 0, w, h), "image", None)

    planes = _colour_planes(rgb)
    cls = _flow_classes(planes)
    mask = cv2.compare(cv2.bitwise_and(cls, 3), 0, cv2.CMP_GT)  # warm or cool: 255, else 0
    least = MIN_FLOW_PIXELS / BAR_EVIDENCE_FACTOR
    # An opening only removes pixels: a frame with too few flow-coloured pixels before it (grey
    # captures stored as RGB) has too few after, so skip the morphology for those.
    if cv2.countNonZero(mask) >= least:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _opening_kernel(rgb.shape))
    if cv2.countNonZero(mask) < least:
        # No filled colour at all (grey captures stored as RGB, text-only overlays): done,
        # without estimating a field nobody needs.
        return DopplerFinding(False, None, 0, (0, 0, w, h), "skipped", None)
    n, labels, stats, centroids = _components(mask)
    hue = planes.hue

    # Sort the blobs: scale bars (evidence), flat glyphs (annotation), flow candidates.
    candidates: list[int] = []
    bars: list[int] = []
    bar_cool = bar_warm = bar_orange = False
    flats: list[tuple[int, int]] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        sel = labels[y : y + bh, x : x + bw] == i
        sub = rgb[y : y + bh, x : x + bw]
        if _is_scale_bar(sub, sel):
            flags = cls[y : y + bh, x : x + bw][sel]
            bar_cool |= bool(((flags & 2) != 0).mean() > 0.2)
            bar_warm |= bool(((flags & 1) != 0).mean() > 0.2)
            bar_orange |= bool(((flags & 4) != 0).mean() > 0.2)
            bars.append(i)
            continue
        if _blob_is_glyph_like(sub[sel], hue[y : y + bh, x : x + bw][sel]):
            flats.append((i, area))
        candidates.append(i)
    # Every component is a bar or a candidate: the candidates are the opened mask minus the bars.
    candidate_mask = _without(mask > 0, labels, stats, bars)

    field, source = region_fields(regions, rgb.shape), "regions"
    if field is None:
        field, source = _estimate_field(planes, candidate_mask), "estimate"
    if field is None:
        field, source = (0, 0, w, h), "image"
    fx0, fy0, fx1, fy1 = field
    field_area = max(1, (fx1 - fx0) * (fy1 - fy0))

    # A small uniform blob is a glyph (marker dot, logo); a large one is saturated flow.
    flat_max = FLAT_GLYPH_MAX_FIELD_SHARE * field_area
    glyphs = {i for i, area in flats if area < flat_max}
    dropped = [
        i
        for i in candidates
        if i in glyphs or not (fx0 <= centroids[i][0] < fx1 and fy0 <= centroids[i][1] < fy1)
    ]
    flow = _without(candidate_mask, labels, stats, dropped)  # the candidates kept as flow

    bar: str | None = None
    if bar_cool or bar_warm:
        bar = "color" if bar_cool or not bar_orange else "power"
    flow_pixels = int(flow.sum())
    need = max(MIN_FLOW_PIXELS, MIN_FLOW_FIELD_SHARE * field_area)
    if bar is not None:
        need /= BAR_EVIDENCE_FACTOR
    if flow_pixels < need:
        return DopplerFinding(False, None, flow_pixels, field, source, bar)
    if bar is not None:
        kind = bar
    else:
        flags = cls[flow]
        cool_share = float(((flags & 2) != 0).mean())
        orange_share = float(((flags & 4) != 0).mean())
        if cool_share >= COLOR_MIN_COOL_SHARE:
            kind = "color"
        else:
            kind = "power" if orange_share >= POWER_MIN_ORANGE_SHARE else "color"
    return DopplerFinding(True, kind, flow_pixels, field, source, bar)

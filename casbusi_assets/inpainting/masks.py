"""Caliper masks: the detector's boxes refined to the strokes of each mark, plus the dotted
measurement line between paired marks.

A thin mask inpaints far better than the box it came from: the inpainter only has to guess the
pixels under the strokes, and every other pixel of the box keeps its true speckle
(`offline-stack.md` §6: 17.3 -> 3.5 mean absolute error with a stroke mask, 8.9 with boxes).

Marks are found as *bright thin structure*: a white top-hat per channel, the maximum over the
channels, so a white, yellow, green or cyan mark on grey or colour pixels gives the same stroke
map. Nothing here assumes a shape, a size or a position: a box's strokes are whatever bright
thin structure stands out inside it, and a measurement line is searched for between every two
marks rather than assumed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Structures thinner than this (caliper arms, dots, text strokes) survive the top-hat; speckle
# blobs and tissue wider than it do not.
TOPHAT_SIZE = 9
# A stroke is a pixel at least this far above its local background (grey levels)...
MIN_STROKE_CONTRAST = 24.0
# ... and at least this share of the mark's own contrast (the mean of its brightest pixels).
STROKE_SHARE = 0.45
# Pieces of a box other than the central one are kept when their peak is this share of the mark.
PIECE_PEAK_SHARE = 0.7
# Measurement lines: a line is accepted when this share of its 6-px steps holds a stroke pixel,
# and that share beats the same count on parallel lines 5 px to either side by LINE_MARGIN.
LINE_STEP = 6
LINE_MIN_HITS = 0.6
LINE_MARGIN = 0.3
LINE_CONTROL_OFFSET = 5
# Around a mark's strokes: fainter bright pixels (anti-aliasing) and dark pixels (an outline).
HALO_SHARE = 0.3
RIM_LEVEL = 0.35  # a rim pixel is at most this share of the background level
RING_MIN_SHARE = 0.5
RING_MARGIN = 0.25
SHADOW_FLATNESS = 3.0  # grey levels: a drop shadow is drawn in one colour
# A mark's colour is that of its TOP_PIXELS most salient pixels; ink may differ from it by
# COLOUR_TOL grey levels per channel (more where those pixels themselves vary: JPEG, blur).
TOP_PIXELS = 12
COLOUR_TOL = 16.0


class MaskError(ValueError):
    """The caliper boxes are not a list of [x, y, w, h]."""


@dataclass(frozen=True)
class CaliperMask:
    """A binary mask (uint8, 255 = inpaint) and what went into it."""

    mask: np.ndarray
    n_marks: int  # boxes turned into stroke masks
    n_lines: int  # measurement lines found between two marks
    n_fallback: int  # boxes with no visible stroke, masked whole (so nothing is left behind)

    @property
    def pixels(self) -> int:
        return int(np.count_nonzero(self.mask))


def parse_boxes(value: object) -> list[tuple[int, int, int, int]]:
    """Boxes from a `caliper_boxes` cell: a JSON string or a list of [x, y, w, h]."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    raw = json.loads(value) if isinstance(value, str | bytes) else value
    try:
        boxes = [tuple(int(round(float(v))) for v in box) for box in raw]
    except (TypeError, ValueError) as exc:
        raise MaskError(f"caliper boxes must be a list of [x, y, w, h]; got {value!r}") from exc
    if any(len(b) != 4 for b in boxes):
        raise MaskError(f"caliper boxes must be a list of [x, y, w, h]; got {value!r}")
    return [b for b in boxes if b[2] > 0 and b[3] > 0]  # type: ignore[misc]


def stroke_map(image: np.ndarray) -> np.ndarray:
    """How far each pixel stands above its local background as thin bright structure (float32).

    The maximum of a per-channel white top-hat, so the colour of a mark does not matter.
    """
    op = cv2.MORPH_TOPHAT
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOPHAT_SIZE, TOPHAT_SIZE))
    if image.ndim == 2:
        return cv2.morphologyEx(image, op, kernel).astype(np.float32)
    hats = [
        cv2.morphologyEx(np.ascontiguousarray(image[..., c]), op, kernel)
        for c in range(image.shape[2])
    ]
    return np.max(np.stack(hats), axis=0).astype(np.float32)


def _level(image: np.ndarray) -> np.ndarray:
    """The brightest channel of each pixel (the image itself when grey)."""
    return image.max(axis=2) if image.ndim == 3 else image


def _ring_share(ring: np.ndarray, values: np.ndarray, thr: float) -> float:
    n = int(ring.sum())
    return float((values[ring] >= thr).sum()) / n if n else 0.0


def _grow(
    piece: np.ndarray, bright: np.ndarray, level: np.ndarray, contrast: float, background: float
) -> np.ndarray:
    """Add the 1-px ring around `piece` when the mark has one: an anti-aliased edge (a fainter
    bright ring) or a dark outline drawn round a light mark (some vendors draw marks so).

    The ring goes in whole or not at all: it counts as an edge or an outline only when most of
    it is, clearly more than of the ring just outside it, so speckle around a plain 1-px mark
    stays out of the mask (each masked speckle pixel is one the inpainter has to guess).
    A dark rim is pixels far darker than the background it is drawn on (`level` is the
    brightest channel, `background` its median round the mark); a bright edge is judged against
    the mark's own contrast.
    """
    k = np.ones((3, 3), np.uint8)
    grown = cv2.dilate(piece.astype(np.uint8), k).astype(bool)
    ring = grown & ~piece
    outer = cv2.dilate(cv2.dilate(grown.astype(np.uint8), k), k).astype(bool) & ~grown
    out = piece.copy()
    tests = [(bright, max(MIN_STROKE_CONTRAST / 2, HALO_SHARE * contrast))]
    if background >= 2 * MIN_STROKE_CONTRAST:  # on a dark background a dark rim is invisible
        tests.append((background - level.astype(np.float32), (1 - RIM_LEVEL) * background))
    for values, thr in tests:
        inner = _ring_share(ring, values, thr)
        if inner >= RING_MIN_SHARE and inner >= _ring_share(outer, values, thr) + RING_MARGIN:
            out |= ring
    return out | _shadow(piece, level, background)


# Offsets at which a scanner may draw a mark's drop shadow (down-right, as on the real
# OBXXXX1A captures: the same glyph at grey 20 two pixels below and right of the white one).
SHADOW_OFFSETS = ((1, 1), (2, 2), (1, 2), (2, 1), (3, 3))


def _shadow(piece: np.ndarray, level: np.ndarray, background: float) -> np.ndarray:
    """The mark's drop shadow, when it has one: the mark's shape shifted by a few pixels, flat in
    level (one colour, unlike speckle) and off the background. Empty when there is none."""
    h, w = piece.shape
    ys, xs = np.nonzero(piece)
    found = np.zeros_like(piece)
    for dx, dy in SHADOW_OFFSETS:
        sy, sx = ys + dy, xs + dx
        keep = (sy < h) & (sx < w)
        shifted = np.zeros_like(piece)
        shifted[sy[keep], sx[keep]] = True
        shifted &= ~piece
        if shifted.sum() < max(4, 0.3 * len(ys)):
            continue
        values = level[shifted].astype(np.float32)
        centre = float(np.median(values))
        flat = float(np.percentile(np.abs(values - centre), 75)) <= SHADOW_FLATNESS
        if flat and abs(centre - background) >= MIN_STROKE_CONTRAST / 2:
            found |= shifted  # a 2-px shadow of 2-px strokes matches at several offsets
    return found


def box_mask(shape: Sequence[int], boxes: Iterable[Sequence[int]]) -> np.ndarray:
    """The crude baseline: every box filled (what a detector's boxes give without refinement)."""
    mask = np.zeros(tuple(shape[:2]), np.uint8)
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        mask[y0 : max(y0, int(y + h)), x0 : max(x0, int(x + w))] = 255
    return mask


@dataclass(frozen=True)
class _Mark:
    cx: float
    cy: float
    radius: float  # half the box diagonal: where a line leaving the mark starts
    contrast: float  # the mark's own stroke level
    colour: np.ndarray  # its ink colour (one value per channel)
    background: float  # the median level round it
    tol: float  # how far an ink pixel may stray from that colour


def _ink(
    roi_img: np.ndarray, roi_strokes: np.ndarray, mark_colour: np.ndarray, tol: float, thr: float
) -> np.ndarray:
    """Pixels of the mark's ink: standing out as thin bright structure *and* of its colour.

    The colour test is what keeps bright speckle next to a mark out of the mask: a mark is drawn
    in one colour, speckle grains of similar brightness vary from pixel to pixel.
    """
    if roi_img.ndim == 3:
        dist = np.abs(roi_img.astype(np.float32) - mark_colour[None, None, :]).max(axis=2)
    else:
        dist = np.abs(roi_img.astype(np.float32) - float(mark_colour[0]))
    return (roi_strokes >= thr) & (dist <= tol)


def _refine_box(
    image: np.ndarray,
    strokes: np.ndarray,
    box: tuple[int, int, int, int],
    pad: int,
) -> tuple[np.ndarray | None, tuple[int, int], _Mark | None]:
    """The ink pixels of one box (a boolean ROI and its origin), or None when none show."""
    h, w = strokes.shape
    x, y, bw, bh = box
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
    if x1 <= x0 or y1 <= y0:
        return None, (x0, y0), None
    roi = strokes[y0:y1, x0:x1]
    roi_img = image[y0:y1, x0:x1]
    # The mark's contrast and colour: those of the box's most salient pixels (a mark with
    # 2-px arms has about 12 of them); their spread sets the colour tolerance (noise, JPEG).
    order = np.argsort(roi, axis=None)[-min(roi.size, TOP_PIXELS) :]
    contrast = float(roi.ravel()[order].mean())
    if contrast < MIN_STROKE_CONTRAST:
        return None, (x0, y0), None
    top_px = roi_img.reshape(roi.size, -1)[order].astype(np.float32)
    colour = np.median(top_px, axis=0)
    spread = float(np.percentile(np.abs(top_px - colour).max(axis=1), 75))
    tol = max(COLOUR_TOL, 2.0 * spread)
    thr = max(MIN_STROKE_CONTRAST, STROKE_SHARE * contrast)
    binary = _ink(roi_img, roi, colour, tol, thr).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    # The piece nearest the box centre is the mark; others stay when they are as bright as a
    # mark's stroke (a second arm, a gap in a dashed cross, a dot of the line inside the box).
    cy, cx = (y + bh / 2 - y0), (x + bw / 2 - x0)
    yy, xx = np.nonzero(binary)
    keep = np.zeros(n, bool)
    if len(yy):
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        keep[labels[yy[int(np.argmin(d))], xx[int(np.argmin(d))]]] = True
    peaks = np.zeros(n, np.float32)
    np.maximum.at(peaks, labels.ravel(), roi.ravel())
    keep |= (peaks >= PIECE_PEAK_SHARE * contrast) & (stats[:, cv2.CC_STAT_AREA] >= 2)
    keep[0] = False
    piece = keep[labels]
    if not piece.any():
        return None, (x0, y0), None
    level = _level(roi_img)
    background = float(np.median(level[~piece]))
    # The mark's centre from its ink alone (a shadow or rim added next would pull it aside and
    # the line search would then run beside the dots).
    py, px = np.nonzero(piece)
    piece = _grow(piece, roi, level, contrast, background)
    mark = _Mark(
        cx=float(px.mean() + x0),
        cy=float(py.mean() + y0),
        radius=float(np.hypot(bw, bh) / 2),
        contrast=contrast,
        colour=colour,
        background=background,
        tol=tol,
    )
    return piece, (x0, y0), mark


def _line_hits(
    ink: np.ndarray, p: np.ndarray, q: np.ndarray, offset: float
) -> tuple[float, list[tuple[int, int]]]:
    """Share of LINE_STEP-long steps along p->q (shifted sideways by `offset`) that hold an
    ink pixel within 1 px of the line, and where those pixels are."""
    h, w = ink.shape
    d = q - p
    length = float(np.hypot(*d))
    if length < 2 * LINE_STEP:
        return 0.0, []
    u = d / length
    nrm = np.array([-u[1], u[0]])
    steps = int(length // LINE_STEP)
    t = np.arange(steps * LINE_STEP, dtype=np.float32)
    hit = np.zeros(steps, bool)
    pixels: list[tuple[int, int]] = []
    for side in (-1, 0, 1):
        c = p[None, :] + u[None, :] * t[:, None] + nrm[None, :] * (offset + side)
        xi, yi = np.rint(c[:, 0]).astype(int), np.rint(c[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        on = np.zeros(len(t), bool)
        on[inside] = ink[yi[inside], xi[inside]]
        hit |= on.reshape(steps, LINE_STEP).any(axis=1)
        pixels += list(zip(xi[on].tolist(), yi[on].tolist(), strict=True))
    return float(hit.mean()), pixels


def _find_line(
    image: np.ndarray, strokes: np.ndarray, a: _Mark, b: _Mark
) -> tuple[float, list[tuple[int, int]]] | None:
    """The dotted (or solid) line between two marks: (score, its ink pixels) or None."""
    pa, pb = np.array([a.cx, a.cy]), np.array([b.cx, b.cy])
    d = pb - pa
    length = float(np.hypot(*d))
    if length <= a.radius + b.radius + 2 * LINE_STEP:
        return None
    # Both marks of a measurement are drawn in one colour; a line in another colour is not theirs.
    if float(np.abs(a.colour - b.colour).max()) > max(a.tol, b.tol):
        return None
    u = d / length
    # From just outside each mark's own strokes: dots start a few pixels from a mark.
    p, q = pa + u * (0.5 * a.radius + 1), pb - u * (0.5 * b.radius + 1)
    thr = max(MIN_STROKE_CONTRAST, STROKE_SHARE * min(a.contrast, b.contrast))
    # The ink map of the band the line (and its two control lines) can touch.
    h, w = strokes.shape
    reach = LINE_CONTROL_OFFSET + 2
    bx0 = int(max(0, min(p[0], q[0]) - reach))
    by0 = int(max(0, min(p[1], q[1]) - reach))
    bx1 = int(min(w, max(p[0], q[0]) + reach + 1))
    by1 = int(min(h, max(p[1], q[1]) + reach + 1))
    ink = _ink(
        image[by0:by1, bx0:bx1],
        strokes[by0:by1, bx0:bx1],
        (a.colour + b.colour) / 2,
        max(a.tol, b.tol),
        thr,
    )
    origin = np.array([bx0, by0], np.float64)
    p, q = p - origin, q - origin
    on, pixels = _line_hits(ink, p, q, 0.0)
    control = max(
        _line_hits(ink, p, q, off)[0] for off in (-LINE_CONTROL_OFFSET, LINE_CONTROL_OFFSET)
    )
    if on < LINE_MIN_HITS or on - control < LINE_MARGIN:
        return None
    return on - control, [(x + bx0, y + by0) for x, y in pixels]


def build_caliper_mask(
    image: np.ndarray,
    boxes: Iterable[Sequence[int]],
    *,
    pad: int = 2,
    dilate: int = 0,
    lines: bool = True,
) -> CaliperMask:
    """The inpainting mask of an image (H x W grey or H x W x C colour) from its caliper boxes.

    Each box is refined to the stroke pixels of its mark; a box where no stroke stands out is
    masked whole. Between every two refined marks a measurement line is searched for; each
    mark joins at most one line (the best-scoring pairs first). Each stroke keeps its 1-px ring
    where that ring is a fainter edge or a dark outline; `dilate` widens the whole mask further
    (thin masks measure better: every extra pixel is speckle the inpainter has to guess).
    """
    if image.ndim not in (2, 3):
        raise MaskError(f"expected a grey or colour image, got shape {image.shape}")
    boxes = [tuple(int(v) for v in b) for b in boxes]
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    if not boxes:
        return CaliperMask(mask, 0, 0, 0)
    strokes = stroke_map(image)
    marks: list[_Mark] = []
    fallback = 0
    for box in boxes:
        piece, (x0, y0), mark = _refine_box(image, strokes, box, pad)  # type: ignore[arg-type]
        if piece is None or mark is None:
            mask |= box_mask((h, w), [box])
            fallback += 1
            continue
        ph, pw = piece.shape
        mask[y0 : y0 + ph, x0 : x0 + pw][piece] = 255
        marks.append(mark)
    n_lines = 0
    if lines and len(marks) >= 2:
        found = []
        for i in range(len(marks)):
            for j in range(i + 1, len(marks)):
                line = _find_line(image, strokes, marks[i], marks[j])
                if line is not None:
                    found.append((line[0], i, j, line[1]))
        used: set[int] = set()
        for _, i, j, pixels in sorted(found, key=lambda f: -f[0]):
            if i in used or j in used:
                continue
            used |= {i, j}
            n_lines += 1
            # Grow the dots inside their own bounding window (plus the ring's reach).
            xs = np.array([px for px, _ in pixels])
            ys = np.array([py for _, py in pixels])
            wx0, wy0 = max(0, int(xs.min()) - 4), max(0, int(ys.min()) - 4)
            wx1, wy1 = min(w, int(xs.max()) + 5), min(h, int(ys.max()) + 5)
            dots = np.zeros((wy1 - wy0, wx1 - wx0), bool)
            dots[ys - wy0, xs - wx0] = True
            win = (slice(wy0, wy1), slice(wx0, wx1))
            grown = _grow(
                dots,
                strokes[win],
                _level(image[win]),
                min(marks[i].contrast, marks[j].contrast),
                min(marks[i].background, marks[j].background),
            )
            mask[win][grown] = 255
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask, kernel)
    return CaliperMask(mask, len(marks), n_lines, fallback)

"""Caliper marks on a capture, found on the CPU: one box per mark.

Two detectors share this entry point (`detect_calipers`): the classical template matcher
described below (no model; it knows ``+``, ``x``, open ``+`` and dots only), and, given a
loaded `caliper_model.CaliperModel`, shape-agnostic proposals with a small learned verifier
that covers every mark family of the widened generator (tilted crosses, stars, diamonds,
circles, points, brackets, arrowheads). benchmarks/README.md compares the two.

Sonographers measure a lesion by placing pairs of marks (``+``, ``x``, small crosses, dots, a
light cross with a dark rim) joined by a dotted line; the scanner burns them into the pixels.
They must be found so that `cleaned_images` can flag the image and `inpainted_images` can paint
them out. The detector (classical, measured in benchmarks/bench_cleaning_crop_calipers.py):

1. **Mark channel.** Grey as is; for RGB the green channel, in which white, yellow and green
   marks are all bright while red and blue colour flow is not.
2. **White top-hat** (``TOPHAT_PX`` square): what is brighter than its surroundings and thinner
   than the kernel (strokes, dots) stays; tissue brightness, bars and bands go.
3. **Candidates**: connected pieces of the top-hat above ``TOPHAT_MIN`` that are at least
   ``MIN_LEVEL`` bright, cut down to the piece's own plateau (marks are drawn in one flat
   colour, speckle attached to them is not), between ``MIN_SIZE_PX`` and ``MAX_SIZE_PX``.
   Pieces of one colour a few pixels apart are grouped (the four arms of an open-centre cross).
4. **Shape score**: the best overlap (IoU) of the candidate with drawn templates of its own size
   (``+`` / ``x`` / open ``+`` of stroke 1-3 px, a disk). A cross needs ``CROSS_MIN_SCORE``; a
   dot, or a cross between ``WEAK_MIN_SCORE`` and ``CROSS_MIN_SCORE``, is kept only when it has a
   partner: another candidate joined to it by a dotted line (``LINE_MIN_COVER`` of the segment
   between them lit in the mark's colour). Speckle grains are blobs that fail both tests.
5. **Suppression**: a candidate whose centre is outside the field (``field``, the crop box) is
   chrome; inside an OCR text box (padded by ``TEXT_PAD_PX``) it is a glyph; one with letters of
   its height right beside it on its line is a legend glyph (``+ Cist Mag 1.06 cm``) even when
   the OCR missed the line. Two hits closer than their size are one mark (the better one wins).

Boxes are (x, y, w, h) in the original image's pixels; ``caliper_boxes_json`` writes the
``cleaned_images.caliper_boxes`` column.

Known limits (benchmarks/README.md has the figures): the flat-colour test assumes lossless
pixels (every generated syntax, and the real Philips captures); a lossy JPEG capture smears the
marks' colour and loses them. A mark drawn at the very level of saturated tissue grains it
touches merges with them and can be missed. Marks larger than ``MAX_SIZE_PX`` are not looked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from casbusi_assets.cleaning.caliper_model import CaliperModel

TOPHAT_PX = 11
TOPHAT_MIN = 45
MIN_LEVEL = 120
PLATEAU_TOL = 3
MIN_SIZE_PX = 5
MAX_SIZE_PX = 27
GROUP_GAP_PX = 6
CROSS_MIN_SCORE = 0.67
SMALL_PX = 7
WEAK_MIN_SCORE = 0.6
DOT_MIN_SCORE = 0.6
LINE_MIN_COVER = 0.4
TEXT_PAD_PX = 2
EDGE_DROP = 40
WEAK_EDGE_SHARE = 0.5
SATURATED = 254
SATURATED_SHARE = 0.02
SURE_SCORE = 0.85
DARK_FLOOR = 16
FLAT_TOL = 1


@dataclass(frozen=True)
class CaliperMark:
    """One caliper mark: its box in original image pixels, the template shape, the score."""

    x: int
    y: int
    w: int
    h: int
    shape: str  # "+" | "x" | "open_plus" | "dot"
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + (self.w - 1) / 2, self.y + (self.h - 1) / 2)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


class BoxGeometry:
    """Centre and size of a candidate box with x0, y0 inclusive and x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1 - 1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1 - 1) / 2

    @property
    def size(self) -> int:
        return max(self.x1 - self.x0, self.y1 - self.y0)


@dataclass
class _Candidate(BoxGeometry):
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int
    mask: np.ndarray  # bool, (y1 - y0, x1 - x0)
    level: float
    shape: str = ""
    score: float = 0.0
    grouped: bool = False


# --------------------------------------------------------------------------------------------
# templates


@lru_cache(maxsize=512)
def _template(shape: str, w: int, h: int, stroke: int, gap: int = 0) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if shape in ("+", "open_plus"):
        t0 = stroke // 2
        ys = slice(int(round(cy)) - t0, int(round(cy)) - t0 + stroke)
        xs = slice(int(round(cx)) - t0, int(round(cx)) - t0 + stroke)
        m[ys, :] = 1
        m[:, xs] = 1
        if shape == "open_plus" and gap > 0:
            m[
                max(0, int(round(cy)) - gap) : int(round(cy)) + gap + 1,
                max(0, int(round(cx)) - gap) : int(round(cx)) + gap + 1,
            ] = 0
    elif shape == "x":
        cv2.line(m, (0, 0), (w - 1, h - 1), 1, stroke)
        cv2.line(m, (0, h - 1), (w - 1, 0), 1, stroke)
    elif shape == "dot":
        cv2.ellipse(m, (int(round(cx)), int(round(cy))), (w // 2, h // 2), 0, 0, 360, 1, -1)
    return m.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return inter / union if union else 0.0


def _score_shape(mask: np.ndarray) -> tuple[str, float]:
    h, w = mask.shape
    best = ("", 0.0)
    if min(h, w) < 3:
        return best
    # Crosses are square; allow one pixel of difference (odd/even arms, clipped strokes).
    if abs(h - w) <= 1 and min(h, w) >= MIN_SIZE_PX:
        for stroke in (1, 2, 3):
            if stroke * 3 > min(h, w):
                break
            for shape in ("+", "x"):
                s = _iou(mask, _template(shape, w, h, stroke))
                if s > best[1]:
                    best = (shape, s)
            for gap in (1, 2, 3):
                if 2 * gap + 3 > min(h, w):
                    break
                s = _iou(mask, _template("open_plus", w, h, stroke, gap))
                if s > best[1]:
                    best = ("open_plus", s)
    if max(h, w) <= 9 and abs(h - w) <= 1:
        s = _iou(mask, _template("dot", w, h, 1))
        # A dot is only a dot if nothing else fits better.
        if s > best[1] and s >= DOT_MIN_SCORE:
            best = ("dot", s)
    return best


# --------------------------------------------------------------------------------------------
# detection


def _mark_channel(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = img[:, :, 1]  # green: white, yellow and green marks are bright, flow is not
    if img.ndim != 2:
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {np.shape(image)}")
    if img.dtype != np.uint8:
        hi = float(img.max()) if img.size else 0.0
        img = (img.astype(np.float32) * (255.0 / hi if hi > 0 else 1.0)).astype(np.uint8)
    return np.ascontiguousarray(img)


def _flat(img: np.ndarray) -> np.ndarray:
    """Pixels with at least two 8-neighbours of (almost) the same value (every channel of an
    RGB image): drawn strokes and dots are one flat colour, while speckle changes by several
    levels from pixel to pixel, and grey tissue never has a mark's hue."""
    a = img.astype(np.int16)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w = a.shape[:2]
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = p[1 : h + 1, 1 : w + 1]
    same = np.zeros((h, w), dtype=np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            diff = np.abs(p[dy : dy + h, dx : dx + w] - centre).max(axis=2)
            same += diff <= FLAT_TOL
    return same >= 2


def _candidates(m: np.ndarray, ox: int, oy: int, rgb: np.ndarray | None = None) -> list[_Candidate]:
    kernel = np.ones((TOPHAT_PX, TOPHAT_PX), np.uint8)
    top = cv2.morphologyEx(m, cv2.MORPH_TOPHAT, kernel)
    bright = (top >= TOPHAT_MIN) & (m >= MIN_LEVEL)
    colour = m if rgb is None else rgb
    # Only flat pixels: a mark touching bright speckle stays a piece of its own.
    binary = (bright & _flat(colour)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    pieces: list[_Candidate] = []
    h_img, w_img = m.shape
    c3 = colour.astype(np.int16)
    if c3.ndim == 2:
        c3 = c3[:, :, None]
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if max(w, h) > 3 * MAX_SIZE_PX or area < 3:
            continue
        comp = labels[y : y + h, x : x + w] == i
        level = float(np.median(m[y : y + h, x : x + w][comp]))
        hue = np.median(c3[y : y + h, x : x + w][comp], axis=0)
        # Grow back the stroke ends (one step, same colour only): an end pixel has one
        # same-coloured neighbour, so the flat test drops it.
        x0, y0 = max(0, x - 1), max(0, y - 1)
        x1, y1 = min(w_img, x + w + 1), min(h_img, y + h + 1)
        grown = cv2.dilate(
            np.pad(comp, ((y - y0, y1 - y - h), (x - x0, x1 - x - w))).astype(np.uint8),
            np.ones((3, 3), np.uint8),
        ).astype(bool)
        grown &= np.abs(c3[y0:y1, x0:x1] - hue).max(axis=2) <= PLATEAU_TOL
        grown[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= comp
        ys, xs = np.nonzero(grown)
        gx0, gy0 = x0 + int(xs.min()), y0 + int(ys.min())
        gx1, gy1 = x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1
        mask = grown[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        pieces.append(_Candidate(ox + gx0, oy + gy0, ox + gx1, oy + gy1, mask, level))
    return pieces


def _group(pieces: list[_Candidate]) -> list[_Candidate]:
    """Join pieces of one colour a few pixels apart (the arms of an open-centre cross)."""
    small = [p for p in pieces if p.size <= MAX_SIZE_PX]
    out = list(small)
    for i, a in enumerate(small):
        members = [a]
        for b in small[i + 1 :]:
            gap = max(b.x0 - a.x1, a.x0 - b.x1, b.y0 - a.y1, a.y0 - b.y1)
            if gap <= GROUP_GAP_PX and abs(a.level - b.level) <= PLATEAU_TOL:
                members.append(b)
        if len(members) < 3:
            continue
        x0 = min(p.x0 for p in members)
        y0 = min(p.y0 for p in members)
        x1 = max(p.x1 for p in members)
        y1 = max(p.y1 for p in members)
        if max(x1 - x0, y1 - y0) > MAX_SIZE_PX:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for p in members:
            mask[p.y0 - y0 : p.y1 - y0, p.x0 - x0 : p.x1 - x0] |= p.mask
        level = float(np.mean([p.level for p in members]))
        out.append(_Candidate(x0, y0, x1, y1, mask, level, grouped=True))
    return out


def _inside(x: float, y: float, box: tuple[int, int, int, int], pad: int = 0) -> bool:
    x0, y0, x1, y1 = box
    return x0 - pad <= x <= x1 + pad and y0 - pad <= y <= y1 + pad


def _line_cover(m: np.ndarray, a: _Candidate, b: _Candidate) -> float:
    """Share of the segment between two marks (their own extent excluded) that holds, within
    one pixel, a pixel of the marks' colour, or on a black background any visible dot (some
    scanners draw the line much dimmer than the marks: OBXXXX1A, 20 against 254)."""
    length = float(np.hypot(b.cx - a.cx, b.cy - a.cy))
    start = a.size / 2 + 2
    stop = length - b.size / 2 - 2
    if stop - start < 6:
        return 0.0
    level = (a.level + b.level) / 2
    h, w = m.shape
    hits = 0
    ts = np.arange(start, stop, 1.0)
    for t in ts:
        x = int(round(a.cx + (b.cx - a.cx) * t / length))
        y = int(round(a.cy + (b.cy - a.cy) * t / length))
        win = m[max(0, y - 1) : min(h, y + 2), max(0, x - 1) : min(w, x + 2)].astype(np.int16)
        if not win.size:
            continue
        floor = _local_floor(m, x, y)
        # A dot of the line's colour standing out from its surroundings (on saturated tissue
        # every pixel has the colour: that is no line).
        if np.any(np.abs(win - level) <= PLATEAU_TOL) and floor <= level - EDGE_DROP:
            hits += 1
            continue
        if floor <= DARK_FLOOR and float(win.max()) >= floor + 8:
            hits += 1
    return hits / len(ts)


def _local_floor(m: np.ndarray, x: int, y: int) -> float:
    win = m[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5]
    return float(np.median(win)) if win.size else 0.0


def _square_up(c: _Candidate) -> None:
    """Retry the shape on the square around the crossing point (the fullest row and column),
    which drops a stray pixel of the mark's colour that made the box uneven."""
    h, w = c.mask.shape
    side = min(h, w)
    if h == w or side < MIN_SIZE_PX:
        return
    cy = int(np.argmax(c.mask.sum(axis=1)))
    cx = int(np.argmax(c.mask.sum(axis=0)))
    y0 = int(np.clip(cy - side // 2, 0, h - side))
    x0 = int(np.clip(cx - side // 2, 0, w - side))
    sub = c.mask[y0 : y0 + side, x0 : x0 + side]
    shape, score = _score_shape(sub)
    if score > c.score:
        c.x0, c.y0 = c.x0 + x0, c.y0 + y0
        c.x1, c.y1 = c.x0 + side, c.y0 + side
        c.mask, c.shape, c.score = sub, shape, score


def _open_small(c: _Candidate) -> None:
    """Retry the shape of a small candidate after an opening (3 x 3 cross), which removes a
    dot of the dotted line touching it; keeps the better result."""
    opened = cv2.morphologyEx(
        c.mask.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    ).astype(bool)
    ys, xs = np.nonzero(opened)
    if len(xs) == 0:
        return
    sub = opened[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    shape, score = _score_shape(sub)
    if score > c.score:
        c.x0, c.x1 = c.x0 + int(xs.min()), c.x0 + int(xs.max()) + 1
        c.y0, c.y1 = c.y0 + int(ys.min()), c.y0 + int(ys.max()) + 1
        c.mask, c.shape, c.score = sub, shape, score


def _on_line(m: np.ndarray, c: _Candidate) -> bool:
    """True when pixels of the candidate's colour surround it in opposite directions: it is a
    crossing of two dotted lines (or a bead on one), not the end of a measurement."""
    h, w = m.shape
    # A frame 2..6 px outside the candidate's box (its own arms are inside the box).
    x0, x1 = max(0, c.x0 - 6), min(w, c.x1 + 6)
    y0, y1 = max(0, c.y0 - 6), min(h, c.y1 + 6)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    outside = (xs < c.x0 - 2) | (xs >= c.x1 + 2) | (ys < c.y0 - 2) | (ys >= c.y1 + 2)
    win = m[y0:y1, x0:x1]
    # Drawn dots stand out from their own 3 x 3 neighbourhood; tissue of the same grey does not.
    sharp = win.astype(np.int16) - cv2.medianBlur(win, 3).astype(np.int16) >= EDGE_DROP
    same = (np.abs(win.astype(np.int16) - c.level) <= PLATEAU_TOL) & outside & sharp
    if not same.any():
        return False
    angles = np.degrees(np.arctan2(ys[same] - c.cy, xs[same] - c.cx))
    sectors = np.unique((angles + 360 + 22.5) % 360 // 45).astype(int)
    for a in sectors:
        for b in sectors:
            if (b - a) % 8 in (3, 4, 5):
                return True
    return False


def _sharp_edge(m: np.ndarray, c: _Candidate, share: float = 0.8) -> bool:
    """A drawn mark ends abruptly: the ring of pixels around it is well below its level.
    A flat blob of colour flow or a saturated speckle grain fades out instead."""
    h, w = m.shape
    x0, y0 = max(0, c.x0 - 1), max(0, c.y0 - 1)
    x1, y1 = min(w, c.x1 + 1), min(h, c.y1 + 1)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    mask[c.y0 - y0 : c.y1 - y0, c.x0 - x0 : c.x1 - x0] = c.mask
    ring = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool) & ~mask.astype(bool)
    vals = m[y0:y1, x0:x1][ring].astype(np.float32)
    return bool(vals.size) and float(np.mean(vals <= c.level - EDGE_DROP)) >= share


def _text_like(m: np.ndarray, c: _Candidate) -> bool:
    """Glyph of a text line (a legend such as ``+ Cist Mag 1.06 cm``): a stroke of the
    candidate's colour and about its height right beside it, on the same line. The dots of a
    measurement line are too small to count."""
    h_img, w_img = m.shape
    h = c.y1 - c.y0
    reach = int(max(4, 1.3 * h))
    for x0, x1 in ((c.x1 + 1, c.x1 + 1 + reach), (c.x0 - 1 - reach, c.x0 - 1)):
        x0, x1 = max(0, x0), min(w_img, x1)
        y0, y1 = max(0, c.y0 - h // 3), min(h_img, c.y1 + h // 3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        strip = m[y0:y1, x0:x1]
        if float(np.median(strip)) > DARK_FLOOR:
            continue  # tissue beside the mark: legends are printed on black
        # Letters are anti-aliased on many screens: bright, not one exact colour. 4-connected,
        # so the touching 2 x 2 dots of a diagonal dotted line stay apart.
        ink = (strip.astype(np.float32) >= 0.6 * c.level).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=4)
        for i in range(1, n):
            ph = int(stats[i, cv2.CC_STAT_HEIGHT])
            if 0.5 * h <= ph <= 1.8 * h and stats[i, cv2.CC_STAT_AREA] >= ph:
                return True
    return False


def detect_calipers(
    image: np.ndarray,
    *,
    field: tuple[int, int, int, int] | None = None,
    text_boxes: Sequence[tuple[int, int, int, int]] = (),
    model: CaliperModel | None = None,
) -> list[CaliperMark]:
    """Caliper marks of one capture (grey H x W or RGB H x W x 3), one per mark.

    ``field`` is the ultrasound field as (x, y, w, h) (a `CropBox.as_tuple()`); hits outside it
    are chrome. ``text_boxes`` are OCR text boxes as (x0, y0, x1, y1), the ``box`` of each
    ``ocr_table.text_boxes`` item (see :func:`text_boxes_from_json`); hits inside are glyphs.
    ``model`` (a loaded `caliper_model.CaliperModel`) switches from the template matcher below
    to the shape-agnostic proposals and learned verifier of `caliper_model.py`.
    """
    if model is not None:
        from casbusi_assets.cleaning.caliper_model import detect_calipers_learned

        return detect_calipers_learned(image, model, field=field, text_boxes=text_boxes)
    m = _mark_channel(image)
    h, w = m.shape
    if field is not None:
        fx, fy, fw, fh = (int(v) for v in field)
        fx0, fy0 = max(0, fx), max(0, fy)
        fx1, fy1 = min(w, fx + fw), min(h, fy + fh)
    else:
        fx0, fy0, fx1, fy1 = 0, 0, w, h
    if fx1 - fx0 < MIN_SIZE_PX or fy1 - fy0 < MIN_SIZE_PX:
        return []
    # Work on the field plus a margin (marks on its edge keep their context).
    pad = TOPHAT_PX
    wx0, wy0 = max(0, fx0 - pad), max(0, fy0 - pad)
    wx1, wy1 = min(w, fx1 + pad), min(h, fy1 + pad)
    img = np.asarray(image)
    rgb = img[wy0:wy1, wx0:wx1, :3] if img.ndim == 3 and img.shape[2] >= 3 else None
    pieces = _candidates(m[wy0:wy1, wx0:wx1], wx0, wy0, rgb)
    cands = _group(pieces)
    boxes = [tuple(int(v) for v in b) for b in text_boxes]
    strong: list[_Candidate] = []
    weak: list[_Candidate] = []
    for c in cands:
        if c.size < MIN_SIZE_PX or c.size > MAX_SIZE_PX:
            continue
        if not _inside(c.cx, c.cy, (fx0, fy0, fx1 - 1, fy1 - 1)):
            continue
        if any(_inside(c.cx, c.cy, b, TEXT_PAD_PX) for b in boxes):
            continue
        c.shape, c.score = _score_shape(c.mask)
        if c.score < CROSS_MIN_SCORE and not c.grouped:
            _square_up(c)  # a tissue pixel of the mark's colour stuck to one arm
        if c.score < CROSS_MIN_SCORE and c.size <= 9 and not c.grouped:
            _open_small(c)  # a dot with a dot of its line stuck to it
            if c.size < MIN_SIZE_PX:
                continue
        if c.score < WEAK_MIN_SCORE or not c.shape:
            continue
        if c.shape == "dot" and _on_line(m, c):
            continue
        if c.grouped and (c.shape != "open_plus" or c.score < CROSS_MIN_SCORE):
            continue  # only an open-centre cross is made of several pieces
        if _text_like(m, c):
            continue
        if c.shape == "dot" and not _sharp_edge(m, c):
            continue  # a saturated speckle grain or a flow blob fades out at its edge
        # A small cross (a few pixels) is too easily a grain: it needs a partner too.
        if c.shape != "dot" and c.score >= CROSS_MIN_SCORE and c.size > SMALL_PX:
            strong.append(c)
        elif _sharp_edge(m, c, WEAK_EDGE_SHARE):
            weak.append(c)  # a saturated grain on bright tissue fades out: not even weak
    # On an over-gained screen saturated grains are everywhere: a doubtful candidate at the
    # saturation level is not evidence of anything.
    field_px = m[fy0:fy1, fx0:fx1]
    if float(np.mean(field_px >= SATURATED)) > SATURATED_SHARE:
        weak = [c for c in weak if c.level < SATURATED - 1]
        strong = [c for c in strong if c.level < SATURATED - 1 or c.score >= SURE_SCORE]
    # A dot or a doubtful cross needs a partner joined to it by a dotted line.
    pool = strong + weak
    confirmed = list(strong)
    for c in weak:
        for o in pool:
            if o is c:
                continue
            d = float(np.hypot(o.cx - c.cx, o.cy - c.cy))
            if d < 3 * max(c.size, o.size) or d > 0.9 * max(w, h):
                continue
            if abs(o.level - c.level) > 2 * PLATEAU_TOL:
                continue  # the two ends of a measurement are drawn in one colour
            if _line_cover(m, c, o) >= LINE_MIN_COVER:
                confirmed.append(c)
                break
    # One mark per place: the best-scoring hit wins.
    confirmed.sort(key=lambda c: -c.score)
    out: list[_Candidate] = []
    for c in confirmed:
        if all(np.hypot(c.cx - o.cx, c.cy - o.cy) > max(c.size, o.size) for o in out):
            out.append(c)
    out.sort(key=lambda c: (c.y0, c.x0))
    return [
        CaliperMark(c.x0, c.y0, c.x1 - c.x0, c.y1 - c.y0, c.shape, round(float(c.score), 3))
        for c in out
    ]


def caliper_boxes_json(marks: Sequence[CaliperMark]) -> str:
    """The ``caliper_boxes`` column: a JSON list of [x, y, w, h], one per mark."""
    return json.dumps([[int(m.x), int(m.y), int(m.w), int(m.h)] for m in marks])


def text_boxes_from_json(text_boxes: str | None) -> list[tuple[int, int, int, int]]:
    """The (x0, y0, x1, y1) boxes of an ``ocr_table.text_boxes`` JSON value (empty if none)."""
    if not text_boxes:
        return []
    try:
        items = json.loads(text_boxes)
    except ValueError:
        return []
    out = []
    for it in items if isinstance(items, list) else []:
        box = it.get("box") if isinstance(it, dict) else it
        if isinstance(box, list | tuple) and len(box) == 4:
            try:
                out.append(tuple(int(v) for v in box))
            except (TypeError, ValueError):
                continue
    return out  # type: ignore[return-value]

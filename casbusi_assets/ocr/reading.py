"""From a scanner screen capture to the annotation description and its parsed fields.

The engine reads text boxes; this module decides which of them are the sonographer's annotation
and which are scanner chrome, orders what is kept into lines, and parses the result.

Where to read (measured, see benchmarks/bench_ocr.py): the detector's cost grows with the pixel
area it looks at (about 0.7 s of CPU for a whole 800x600 screen on this 2-core machine), so the
whole screen is never read. Scanners burn the annotation into the ultrasound field or write it
under it, while the header (institution, date, probe, preset names such as "BREAST" or
"MCR RAD") sits above the field and would otherwise leak words into the description. So the
area read is the field box (``SequenceOfUltrasoundRegions``; estimated from the pixels when
absent) plus the band below it down to the bottom of the screen when that band holds any bright
pixel. The header band is never read.

Two measured tweaks: the crop is gamma-corrected (2.0) before reading, which separates white
text from bright speckle; and when the first pass finds no laterality, the top strip of the field
is read again in short overlapping tiles, because the detector misses thin text lying on the
bright near-field band yet finds it in a short strip (the boxes it replaces are kept in
``all_boxes`` with the reason ``replaced_by_top_strip``). If the strip still gives no
laterality, it is read once more after a white top-hat (local background removed), which keeps
1-px strokes and darkens the bright band under them.

What is dropped, box by box (the reason goes into ``all_boxes``):

- ``non_ascii``: nothing ASCII left (CJK glyphs read on colour bars). Mixed boxes keep their ASCII.
- ``low_score``: recogniser confidence below ``min_score`` (default 0.5).
- ``caliper_mark``: a box that is only ``+`` / ``x`` / ``X`` (caliper end points read as text).
- ``single_glyph``: one character alone, e.g. a ruler digit or an "R"/"P" marker; kept when it
  sits on a line right next to kept text (the detector sometimes splits "L BREAST").
- ``chrome``: the whole box is scanner chrome by pattern (``D1 1.23 cm`` measurement legends,
  MI/TIS, frame rate, dates, probe names; see ``ocr_parsing.is_chrome``).

Kept boxes are grouped into lines by vertical overlap, lines ordered top to bottom and words left
to right; the description is the lines joined by spaces, and is what gets parsed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from casbusi_assets.ocr.engines import OcrEngine, TextBox
from casbusi_assets.ocr.parsing import ParsedAnnotation, is_chrome, normalize_text, parse_annotation

DEFAULT_MIN_SCORE = 0.5
DEFAULT_WORK_HEIGHT: int | None = None
DEFAULT_GAMMA = 2.0
# height of the tiles of the second pass over the top of the field, for a 600-line screen
TOP_TILE_HEIGHT = 96
# White top-hat of the last-resort top strip pass: kernel (px on a 600-line screen) and the
# gain stretching what is left (measured on the 1-px labels the first passes missed, seed 2026)
TOP_HAT_KERNEL = 7
TOP_HAT_GAIN = 1.5
# Pixels added around the field box: text drawn flush with the field edge must not be cut.
REGION_PAD = 6

_CALIPER_ONLY = re.compile(r"^[+xX\u00d7\u2715\u2716\u2573\u5341*\s]+$")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ReadBox:
    """A box the engine read, with why it was dropped (``None``: kept in the description)."""

    text: str
    score: float
    box: Box
    drop_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "text": self.text,
            "score": round(self.score, 4),
            "box": list(self.box),
        }
        if self.drop_reason is not None:
            d["dropped"] = self.drop_reason
        return d


@dataclass
class OcrReading:
    """Result of :func:`read_annotation` for one image."""

    description: str
    text_boxes: list[TextBox]
    all_boxes: list[ReadBox]
    parsed: ParsedAnnotation
    ocr_ms: float
    read_box: Box | None = None  # the part of the image given to the engine
    lines: list[str] = field(default_factory=list)

    def text_boxes_json(self, include_dropped: bool = False) -> str:
        """JSON for the ``ocr_table.text_boxes`` column: kept boxes, or every box with reasons."""
        if include_dropped:
            return json.dumps([b.as_dict() for b in self.all_boxes])
        return json.dumps([b.as_dict() for b in self.text_boxes])


# --------------------------------------------------------------------------------------------
# geometry


def _clip_box(box: Box, width: int, height: int, pad: int = 0) -> Box | None:
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 < x0:
        x0, x1 = x1, x0
    if y1 < y0:
        y0, y1 = y1, y0
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    # SequenceOfUltrasoundRegions bounds are inclusive, hence the +1
    x1, y1 = min(width, x1 + 1 + pad), min(height, y1 + 1 + pad)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return (x0, y0, x1, y1)


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def estimate_field(image: np.ndarray) -> Box | None:
    """The ultrasound field of a screen capture without region metadata, or None.

    Speckle fills most of every row of the field, while chrome rows are thin text on black
    (well under a third of the row lit). The field is the longest run of rows that are more
    than a third non-dark, and, within those rows, the columns that are. Needs 15 % of the frame.
    """
    grey = _grey(image)
    h, w = grey.shape
    lit = grey > 20
    rows = np.flatnonzero(lit.mean(axis=1) > 0.33)
    if rows.size == 0:
        return None
    # longest run of lit rows, bridging gaps of a few rows (a dark line across the field)
    breaks = np.flatnonzero(np.diff(rows) > 4)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [rows.size - 1]])
    k = int(np.argmax(rows[ends] - rows[starts]))
    y0, y1 = int(rows[starts[k]]), int(rows[ends[k]])
    cols = np.flatnonzero(lit[y0 : y1 + 1].mean(axis=0) > 0.33)
    if cols.size == 0:
        return None
    x0, x1 = int(cols[0]), int(cols[-1])
    if (x1 - x0 + 1) * (y1 - y0 + 1) < 0.15 * w * h:
        return None
    return (x0, y0, x1, y1)


def _has_ink(grey: np.ndarray) -> bool:
    """Whether a band holds anything bright enough to be text (not just a black margin)."""
    return grey.size > 0 and int(np.count_nonzero(grey > 90)) >= 12


def _centre_inside(box: Box, outer: Box) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _beside(box: Box, others: list[ReadBox]) -> bool:
    """True when ``box`` shares a line with one of ``others`` and is within two glyphs of it."""
    h = max(1, box[3] - box[1])
    for o in others:
        overlap = min(box[3], o.box[3]) - max(box[1], o.box[1])
        gap = max(o.box[0] - box[2], box[0] - o.box[2])
        if overlap >= 0.5 * min(h, o.box[3] - o.box[1]) and gap <= 2 * h:
            return True
    return False


@lru_cache(maxsize=8)
def _gamma_lut(gamma: float) -> np.ndarray:
    return (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------
# filtering and line building


def _ascii_text(text: str) -> str:
    # upper-case ASCII: a CJK glyph read on a colour bar disappears, "lt breast" matches LT
    return normalize_text(text)


def _drop_reason(text: str, score: float, min_score: float) -> str | None:
    if not text:
        return "non_ascii"
    if score < min_score:
        return "low_score"
    if _CALIPER_ONLY.match(text):
        return "caliper_mark"
    if len(text.replace(" ", "")) == 1:
        return "single_glyph"
    if is_chrome(text):
        return "chrome"
    return None


def _group_lines(boxes: list[TextBox]) -> list[list[TextBox]]:
    """Boxes into lines: same line when they overlap vertically by half the smaller height."""
    lines: list[list[TextBox]] = []
    spans: list[tuple[float, float]] = []
    for b in sorted(boxes, key=lambda b: ((b.box[1] + b.box[3]) / 2, b.box[0])):
        y0, y1 = b.box[1], b.box[3]
        h = max(1, y1 - y0)
        for i, (ly0, ly1) in enumerate(spans):
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap >= 0.5 * min(h, ly1 - ly0):
                lines[i].append(b)
                spans[i] = (min(ly0, y0), max(ly1, y1))
                break
        else:
            lines.append([b])
            spans.append((y0, y1))
    order = sorted(range(len(lines)), key=lambda i: (spans[i][0] + spans[i][1]) / 2)
    return [sorted(lines[i], key=lambda b: b.box[0]) for i in order]


# --------------------------------------------------------------------------------------------
# the reader


def read_annotation(
    image: np.ndarray,
    engine: OcrEngine,
    region: Box | None = None,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    estimate_region: bool = True,
    work_height: int | None = DEFAULT_WORK_HEIGHT,
    gamma: float = DEFAULT_GAMMA,
    top_pass: bool = True,
) -> OcrReading:
    """Read the burned-in annotation of one capture (grey H x W or RGB H x W x 3).

    ``region`` is the ultrasound field (x0, y0, x1, y1, inclusive, as in
    SequenceOfUltrasoundRegions); for a dual view pass the union of both fields. That box is
    read, plus the band below it when the band holds bright pixels; never the header above.
    Without it the field is estimated (``estimate_region``), else the whole frame is read.
    ``min_score`` drops unsure boxes, ``gamma`` is applied to the pixels before reading,
    ``top_pass`` enables the second pass over the top of the field (module docstring).
    ``ocr_ms`` times the engine calls only.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {img.shape}")
    h, w = img.shape[:2]

    # The area read: the field, plus the band below it down to the bottom of the screen when
    # that band holds anything bright (some scanners, e.g. GE LOGIQ 700, write the annotation
    # under the image). The header band above the field is never read: it is all chrome.
    grey = _grey(img)
    field_box: Box | None = None
    if region is not None:
        field_box = _clip_box(region, w, h, REGION_PAD)
    elif estimate_region:
        guess = estimate_field(img)
        if guess is not None:
            field_box = _clip_box(guess, w, h, REGION_PAD)
    if field_box is None:
        read_box: Box = (0, 0, w, h)
    else:
        fx0, fy0, fx1, fy1 = field_box
        if region is None:
            fx0, fx1 = 0, w  # estimated: side panels may hold text, chrome patterns drop them
        below = grey[fy1:h, fx0:fx1]
        read_box = (fx0, fy0, fx1, h if _has_ink(below) else fy1)
    x0, y0, x1, y1 = read_box
    crop = np.ascontiguousarray(img[y0:y1, x0:x1])
    # Optional shrink of the whole crop (detection and recognition). Off by default: measured,
    # it lost large TrueType labels, while the engine's detector-only cap gives the speed.
    scale = 1.0
    if work_height and h > work_height:
        import cv2

        scale = work_height / h
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)

    if gamma != 1.0:
        crop = _gamma_lut(gamma)[crop]

    t0 = time.perf_counter()
    raw = _shift(engine.read(crop), x0, y0, scale)
    ocr_ms = (time.perf_counter() - t0) * 1000.0
    result = _assemble(raw, min_score)

    if top_pass and result.parsed.laterality == "unknown" and field_box is not None:
        # The detector can miss thin bright text lying on the bright near-field band at the top
        # of the field, yet find it when shown only a short strip around it. Only images whose
        # first pass found no side pay for this (the side is in nearly every annotation).
        strip = (x0, y0, x1, min(y1, y0 + max(48, int(0.22 * (y1 - y0)))))
        # First the strip as the first pass saw it (gamma), then, if the side is still
        # missing, with its slowly varying background removed (white top-hat): thin 1-px
        # strokes on the bright near-field band keep their contrast while the band goes dark.
        for enhance in ("gamma", "tophat"):
            t1 = time.perf_counter()
            extra = _read_strip(img, engine, strip, gamma, scale, h, enhance)
            ocr_ms += (time.perf_counter() - t1) * 1000.0
            if not extra:
                continue
            outside = [b for b in raw if not _centre_inside(b.box, strip)]
            alt = _assemble(outside + extra, min_score)
            if alt.parsed.laterality != "unknown":
                replaced = [
                    ReadBox(b.text, b.score, b.box, "replaced_by_top_strip")
                    for b in raw
                    if _centre_inside(b.box, strip)
                ]
                alt.all_boxes.extend(replaced)
                result = alt
                break

    return OcrReading(
        description=result.description,
        text_boxes=result.text_boxes,
        all_boxes=result.all_boxes,
        parsed=result.parsed,
        ocr_ms=round(ocr_ms, 2),
        read_box=read_box,
        lines=result.lines,
    )


@dataclass
class _Assembled:
    description: str
    text_boxes: list[TextBox]
    all_boxes: list[ReadBox]
    parsed: ParsedAnnotation
    lines: list[str]


def _shift(raw: list[TextBox], dx: int, dy: int, scale: float) -> list[TextBox]:
    """Engine boxes (in the possibly scaled crop) to image coordinates."""
    out = []
    for tb in raw:
        bx = tuple(int(round(v / scale)) for v in tb.box)
        out.append(TextBox(tb.text, tb.score, (bx[0] + dx, bx[1] + dy, bx[2] + dx, bx[3] + dy)))
    return out


def _assemble(raw: list[TextBox], min_score: float) -> _Assembled:
    all_boxes: list[ReadBox] = []
    texts: list[str] = []
    for tb in raw:
        text = _ascii_text(tb.text)
        reason = _drop_reason(text, tb.score, min_score)
        all_boxes.append(ReadBox(tb.text, float(tb.score), tb.box, reason))
        texts.append(text)
    # A lone glyph is kept when it sits on a line next to kept text: the detector sometimes
    # splits "L BREAST" into "L" + "BREAST"; a caliper or a ruler digit stands alone.
    kept_boxes = [b for b in all_boxes if b.drop_reason is None]
    for i, b in enumerate(all_boxes):
        if b.drop_reason == "single_glyph" and texts[i].isalnum() and _beside(b.box, kept_boxes):
            all_boxes[i] = ReadBox(b.text, b.score, b.box, None)
    kept = [
        TextBox(texts[i], b.score, b.box) for i, b in enumerate(all_boxes) if b.drop_reason is None
    ]
    line_groups = _group_lines(kept)
    lines = [" ".join(b.text for b in line) for line in line_groups]
    return _Assembled(
        description=normalize_text(" ".join(lines)),
        text_boxes=[b for line in line_groups for b in line],
        all_boxes=all_boxes,
        parsed=parse_annotation("\n".join(lines)),
        lines=lines,
    )


def _top_hat(part: np.ndarray, screen_h: int) -> np.ndarray:
    """Grey white top-hat of a tile, stretched: bright strokes thinner than the kernel stay,
    the smooth bright band under them (and anything wider than a glyph stroke) goes dark."""
    import cv2

    # ~7 px on a 600-line screen: wider than a 1-2 px stroke, narrower than a glyph's
    # counters are tall, so letters survive whole; scaled with the screen like the text is
    k = max(5, int(round(TOP_HAT_KERNEL * screen_h / 600)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    hat = cv2.morphologyEx(_grey(part), cv2.MORPH_TOPHAT, kernel)
    return cv2.convertScaleAbs(hat, alpha=TOP_HAT_GAIN)


def _read_strip(
    img: np.ndarray,
    engine: OcrEngine,
    strip: Box,
    gamma: float,
    scale: float,
    screen_h: int,
    enhance: str = "gamma",
) -> list[TextBox]:
    """Read a horizontal strip in short overlapping tiles; boxes in image coordinates.

    ``enhance``: "gamma" applies ``gamma`` as the first pass does; "tophat" removes the local
    background instead (:func:`_top_hat`).
    """
    import cv2

    x0, y0, x1, y1 = strip
    # tiles of ~4 text lines, overlapping by more than one line so every line is whole once
    tile = max(64, round(TOP_TILE_HEIGHT * screen_h / 600))
    overlap = tile // 2
    boxes: list[TextBox] = []
    top = y0
    while True:
        bottom = min(y1, top + tile)
        part = np.ascontiguousarray(img[top:bottom, x0:x1])
        if scale != 1.0:
            size = (max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale)))
            part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
        if enhance == "tophat":
            part = _top_hat(part, screen_h)
        elif gamma != 1.0:
            part = _gamma_lut(gamma)[part]
        boxes += _shift(engine.read(part), x0, top, scale)
        if bottom >= y1:
            break
        top = bottom - overlap
    return _dedupe(boxes)


def _dedupe(boxes: list[TextBox]) -> list[TextBox]:
    """Drop a box lying mostly inside a larger one (the same line seen by two tiles)."""

    def area(b: Box) -> int:
        return max(0, b[2] - b[0]) * max(0, b[3] - b[1])

    kept: list[TextBox] = []
    for b in sorted(boxes, key=lambda b: -area(b.box)):
        a = b.box
        inside = False
        for k in kept:
            iw = min(a[2], k.box[2]) - max(a[0], k.box[0])
            ih = min(a[3], k.box[3]) - max(a[1], k.box[1])
            if iw > 0 and ih > 0 and iw * ih > 0.6 * max(1, area(a)):
                inside = True
                break
        if not inside:
            kept.append(b)
    return kept

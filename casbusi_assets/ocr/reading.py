"""From a scanner screen capture to the annotation description and its parsed fields.

The reader assumes no screen layout: the text detector looks at the whole screen, and what it
finds is sorted into scanner chrome and the sonographer's annotation by content and by where it
sits relative to the ultrasound field. Nothing is excluded for its position alone.

1. **Detect** text lines over the whole screen (gamma 2.0 first: it separates white text from
   bright speckle). The detector first sees the screen shrunk to ``det_first_side`` (640 px on
   the longest side, and at most ``det_first_scale`` = 0.8 of it); only when that pass finds no
   side is it run again at ``det_side`` (800 px), and the lines both passes found are not
   recognised twice (measured, see benchmarks/README.md "OCR anywhere on the screen").
2. **Group** the line boxes into blocks: boxes on one row within 1.5 line heights of each other,
   and rows stacked at most 0.8 line heights apart that overlap horizontally (a label split
   over two or three lines, beside the body marker, in a corner, inside the field).
3. **Recognise block by block, most likely first**, and stop as soon as the annotation names
   the side (recognition costs per line, and a screen carries 10-20 lines of chrome). Order:
   blocks on the ultrasound field; blocks beside or below it; blocks above the field's top
   edge (the header band); within each, the block with the tallest lines first (labels are
   written larger than chrome); blocks of five or more rows outside the field (parameter
   panels, 8-14 lines each) come last, since a label drawn right against a panel joins its
   block. A lone glyph (a box no wider than 1.3 line heights with nothing on its row within
   two line heights and nothing stacked on it: ruler digits, R/L/P markers, caliper crosses)
   is never recognised, nor is a box over three times the screen's median box height
   (speckle taken for text; it would link the field's blocks with the header and panels).
   Once a block on or beside the field names a field other than the area ("RADIAL",
   "4:30 LONG") but no side, the header band and the panels are not read at all: they are
   chrome. A parameter panel is read first at its two first and two last rows, at boxes a
   quarter taller or wider than its median and at rows holding two boxes; its uniform middle
   only when those hold an annotation word (a label drawn against a panel joins it at an
   end or beside a row).
   Engines without a separate detector (EasyOCR, test fakes) read everything at once and the
   same sorting applies.
4. **Sort** what was read. Box by box (the reason goes into ``all_boxes``): ``non_ascii``,
   ``low_score`` (below ``min_score``), ``caliper_mark`` (``+``/``x`` only), ``single_glyph``
   (kept when it sits on a row right next to kept text: "L" + "BREAST"), ``chrome`` (the whole
   box is chrome by pattern: ``D1 1.23 cm`` legends, MI/TIS, frame rates, dates, probe names,
   see ``parsing.is_chrome``), ``not_read`` (left unrecognised once the side was found, a
   header or panel skipped, or a lone glyph), ``not_text`` (too tall for a line). Then block
   by block:

   - ``no_annotation_words``: nothing in the block sets a field (institution names, "2D THI").
   - ``header``: the block lies above the field's top edge and does not name the side. The
     header band carries institution names ("MCR RAD"), presets ("BREAST"), probe and
     application names; an annotation written up there still names the side.
   - ``panel``: a block of five or more rows outside the field that does not name the side.
   - ``unknown_words``: the block does not name the side and holds a word that is no
     annotation vocabulary ("MCR RAD", "MAYO BREAST CLINIC": ``parsing.unknown_words``).
   - ``preset``: the block's only keyword is an area word ("BREAST", "Br Gen") and it carries
     chrome on the same block (``L12-5/BREAST``, ``3:BREAST R15 HR 94%``), or another block
     already holds an annotation with more than an area.

Kept blocks are ordered top to bottom, their lines top to bottom and words left to right; the
description is those lines joined by spaces, and is what gets parsed.

A last measured tweak is kept from the first reader: when no side was found and a field is
known, the top strip of the field is read again in short overlapping tiles (the detector misses
thin text lying on the bright near-field band yet finds it in a short strip; the boxes it
replaces stay in ``all_boxes`` as ``replaced_by_top_strip``), and once more after a white
top-hat (local background removed).
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
from casbusi_assets.ocr.parsing import (
    ParsedAnnotation,
    annotation_fields,
    is_chrome,
    normalize_text,
    parse_annotation,
    strip_chrome,
    unknown_words,
)

DEFAULT_MIN_SCORE = 0.5
DEFAULT_WORK_HEIGHT: int | None = None
DEFAULT_GAMMA = 2.0
# Longest side of the detector's input for the whole screen (benchmarks/README.md, "OCR
# anywhere on the screen": 640 lost labels on 1024- and 1280-wide screens, 960 cost a third
# more detector time than 800 for the same labels on the development seeds).
DEFAULT_DET_SIDE = 800
# ... but the detector runs at this size first, and at DEFAULT_DET_SIDE only on screens where
# that found no side (benchmarks/README.md: the same sides found, a third less detector time).
DEFAULT_DET_FIRST_SIDE = 640
# ... and at most this share of the screen's longest side (a 640x480 screen is first read at
# 512 px); never below MIN_DET_SIDE.
DEFAULT_DET_FIRST_SCALE = 0.8
MIN_DET_SIDE = 320
# A line box of the second detection pass overlapping one of the first this much (IoU) is the
# same line: its text is taken from the first pass instead of being recognised again.
CACHE_IOU = 0.7
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
    read_box: Box | None = None  # the part of the image given to the engine (all of it)
    lines: list[str] = field(default_factory=list)
    field_box: Box | None = None  # the ultrasound field used to order and sort blocks (padded)

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
# blocks: geometry only, before anything is recognised

# A row-mate this many line heights away still belongs to the same phrase.
ROW_GAP_LINES = 1.5
# Rows stacked this many line heights apart (gap between boxes) belong to one block.
STACK_GAP_LINES = 0.8
# A block of this many rows outside the field is a parameter panel (annotations have 1-3).
PANEL_ROWS = 5
# A detected box this many times the median box height, or this share of the screen's
# height, is speckle, not a line of text (labels are at most about twice the chrome's size).
TALL_LINES = 3.0
TALL_SCREEN = 0.15
# A panel's rows read first: this many at each end, and rows this much taller or wider.
PANEL_END_ROWS = 2
PANEL_ODD = 1.25
# A box no wider than this many line heights is one glyph.
GLYPH_ASPECT = 1.3


def _height(b: Box) -> int:
    return max(1, b[3] - b[1])


def _same_row(a: Box, b: Box) -> bool:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap >= 0.5 * min(_height(a), _height(b))


def _row_gap(a: Box, b: Box) -> int:
    return max(b[0] - a[2], a[0] - b[2], 0)


def _linked(a: Box, b: Box) -> bool:
    """Whether two line boxes belong to one block (same phrase, or stacked lines of a label)."""
    h = max(_height(a), _height(b))
    if _same_row(a, b):
        return _row_gap(a, b) <= ROW_GAP_LINES * h
    vgap = max(b[1] - a[3], a[1] - b[3])
    hover = min(a[2], b[2]) - max(a[0], b[0])
    return vgap <= STACK_GAP_LINES * h and hover > -0.5 * h


def _blocks(boxes: list[Box]) -> list[list[int]]:
    """Indices of ``boxes`` grouped into blocks (union-find over :func:`_linked` pairs)."""
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if _linked(boxes[i], boxes[j]):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: min(boxes[i][1] for i in g))


def _rows(boxes: list[Box]) -> int:
    """Number of text rows in a block."""
    rows: list[Box] = []
    for b in sorted(boxes, key=lambda b: b[1]):
        if not any(_same_row(b, r) for r in rows):
            rows.append(b)
    return len(rows)


def _lone_glyph(i: int, boxes: list[Box]) -> bool:
    b = boxes[i]
    h = _height(b)
    if b[2] - b[0] > GLYPH_ASPECT * h:
        return False
    # alone on its row and stacked with nothing: a two-letter line ("RT" above "LIQ 1-2CM")
    # is as narrow as a digit but belongs to a block
    return not any(
        j != i and ((_same_row(b, o) and _row_gap(b, o) <= 2 * h) or _linked(b, o))
        for j, o in enumerate(boxes)
    )


def _where(block: list[Box], field_box: Box | None) -> str:
    """``field`` | ``beside`` | ``header`` | ``panel`` | ``screen`` (no field known)."""
    if field_box is None:
        return "panel" if _rows(block) >= PANEL_ROWS else "screen"
    if any(_centre_inside(b, field_box) for b in block):
        return "field"
    if _rows(block) >= PANEL_ROWS:
        return "panel"
    if max((b[1] + b[3]) / 2 for b in block) < field_box[1]:
        return "header"
    return "beside"


_TIER = {"field": 0, "screen": 0, "beside": 1, "header": 2, "panel": 3}


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
    det_side: int | None = DEFAULT_DET_SIDE,
    det_first_side: int | None = DEFAULT_DET_FIRST_SIDE,
    det_first_scale: float = DEFAULT_DET_FIRST_SCALE,
) -> OcrReading:
    """Read the burned-in annotation of one capture (grey H x W or RGB H x W x 3).

    ``region`` is the ultrasound field (x0, y0, x1, y1, inclusive, as in
    SequenceOfUltrasoundRegions); for a dual view pass the union of both fields. The whole
    screen is read either way; the field only decides the order in which blocks are recognised
    and which rules apply to them (module docstring). Without it the field is estimated
    (``estimate_region``). ``min_score`` drops unsure boxes, ``gamma`` is applied to the pixels
    before reading, ``work_height`` optionally shrinks the screen first, ``top_pass`` enables
    the second pass over the top of the field, ``det_side`` caps the longest side of the
    detector's input (engines with a separate detector). ``ocr_ms`` times the engine calls only.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {img.shape}")
    h, w = img.shape[:2]

    field_box: Box | None = None
    if region is not None:
        field_box = _clip_box(region, w, h, REGION_PAD)
    elif estimate_region:
        guess = estimate_field(img)
        if guess is not None:
            field_box = _clip_box(guess, w, h, REGION_PAD)

    screen = np.ascontiguousarray(img)
    scale = 1.0
    if work_height and h > work_height:
        import cv2

        scale = work_height / h
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        screen = cv2.resize(screen, size, interpolation=cv2.INTER_AREA)
    if gamma != 1.0:
        screen = _gamma_lut(gamma)[screen]

    ocr_ms = 0.0
    detect = getattr(engine, "detect", None)
    recognize = getattr(engine, "recognize", None)
    if callable(detect) and callable(recognize):
        # the detector at the small size first, at the full size only when that found no side
        sides: list[int | None] = [det_side]
        longest = max(screen.shape[:2])
        first = min(det_first_side or 0, det_side or 0, round(det_first_scale * longest))
        if first >= MIN_DET_SIDE and first < min(det_side or 0, longest):
            sides = [first, det_side]
        cache: dict[Box, TextBox | None] = {}
        result: _Assembled | None = None
        raw: list[TextBox] = []
        unread: list[ReadBox] = []
        for side in sides:
            if result is not None and result.parsed.laterality != "unknown":
                break
            t0 = time.perf_counter()
            found = detect(screen, limit_side_len=side) if side else detect(screen)
            quads = np.asarray(found, dtype=np.float32).reshape(-1, 4, 2)
            ocr_ms += (time.perf_counter() - t0) * 1000.0
            read = _read_blocks(screen, quads, recognize, cache, scale, min_score, field_box)
            ocr_ms += read.ms
            if result is None or _better(read.result, result):
                result, raw, unread = read.result, read.raw, read.unread
        assert result is not None
    else:
        t0 = time.perf_counter()
        raw = _shift(engine.read(screen), 0, 0, scale)
        ocr_ms += (time.perf_counter() - t0) * 1000.0
        result = _assemble(raw, min_score, field_box)
        unread = []

    if top_pass and result.parsed.laterality == "unknown" and field_box is not None:
        # The detector can miss thin bright text lying on the bright near-field band at the top
        # of the field, yet find it when shown only a short strip around it. Only images whose
        # first pass found no side pay for this (the side is in nearly every annotation).
        x0, y0, x1, y1 = field_box
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
            alt = _assemble(outside + extra, min_score, field_box)
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
        all_boxes=result.all_boxes + unread,
        parsed=result.parsed,
        ocr_ms=round(ocr_ms, 2),
        read_box=(0, 0, w, h),
        lines=result.lines,
        field_box=field_box,
    )


@dataclass
class _BlockRead:
    result: _Assembled
    raw: list[TextBox]
    unread: list[ReadBox]
    ms: float


def _iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(1, union)


def _cached(box: Box, cache: dict[Box, TextBox | None]) -> tuple[bool, TextBox | None]:
    """What an earlier detection pass already read for (nearly) this line box."""
    if box in cache:
        return True, cache[box]
    for k, tb in cache.items():
        if _iou(box, k) >= CACHE_IOU:
            return True, tb
    return False, None


def _read_blocks(
    screen: np.ndarray,
    quads: np.ndarray,
    recognize: Any,
    cache: dict[Box, TextBox | None],
    scale: float,
    min_score: float,
    field_box: Box | None,
) -> _BlockRead:
    """Recognise the detected lines block by block, most likely first (module docstring, 3).

    ``cache`` maps line boxes (screen coordinates) to what was read there by an earlier pass
    over the same screen (None: nothing kept); lines found again are not recognised twice.
    """
    # screen coordinates (what the engine returns) and image coordinates (geometry, output)
    sboxes = [_quad_box(q, screen.shape) for q in quads]
    boxes = [_shift_box(b, scale) for b in sboxes]
    # not a text line: speckle the detector took for text, many lines tall (it would link the
    # field's blocks with the header and panels, and costs a recognition for nothing)
    tall = _too_tall(boxes, screen.shape[0] / scale)
    lone = {i for i in range(len(boxes)) if i not in tall and _lone_glyph(i, boxes)}
    members = [i for i in range(len(boxes)) if i not in lone and i not in tall]
    order: list[tuple[int, float, list[int]]] = []
    for group in _blocks([boxes[i] for i in members]):
        idx = [members[k] for k in group]
        tier = _TIER[_where([boxes[i] for i in idx], field_box)]
        # within a tier, the block with the tallest lines first: labels are written larger
        # than chrome, so the label is usually the first block read
        height = float(np.median([_height(boxes[i]) for i in idx]))
        order.append((tier, -height, idx))
    order.sort(key=lambda t: (t[0], t[1]))
    raw: list[TextBox] = []
    done: set[int] = lone | tall
    ms = 0.0
    result = _assemble(raw, min_score, field_box)

    def read(idx: list[int]) -> list[TextBox]:
        nonlocal ms
        out: list[TextBox] = []
        todo = []
        for i in idx:
            hit, tb = _cached(sboxes[i], cache)
            if not hit:
                todo.append(i)
            elif tb is not None:
                out.append(tb)
        if todo:
            t0 = time.perf_counter()
            got = recognize(screen, quads[todo])
            ms += (time.perf_counter() - t0) * 1000.0
            by_box = {tb.box: tb for tb in got}
            for i in todo:
                cache[sboxes[i]] = by_box.get(sboxes[i])
            out += got
        done.update(idx)
        return _shift(out, 0, 0, scale)

    for tier, _, block in order:
        if tier >= _TIER["header"] and annotation_fields(result.parsed) - {"area"}:
            # the field and its surroundings hold a label (it names more than an area) but
            # not the side: the header band and the parameter panels are chrome, not read
            break
        if tier == _TIER["panel"]:
            # A parameter panel is read where a label drawn against it would join it (its
            # first and last rows, rows taller or wider than the panel's own, rows holding
            # two boxes); its uniform middle rows only when those hold an annotation word.
            probe = _panel_probe([boxes[i] for i in block])
            got = read([block[k] for k in probe])
            raw += got
            if any(annotation_fields(parse_annotation(_ascii_text(tb.text))) for tb in got):
                raw += read([i for k, i in enumerate(block) if k not in probe])
        else:
            raw += read(block)
        result = _assemble(raw, min_score, field_box)
        if result.parsed.laterality != "unknown":
            break
    unread = [
        ReadBox("", 0.0, boxes[i], "not_text" if i in tall else "not_read")
        for i in range(len(boxes))
        if i not in done or i in lone or i in tall
    ]
    return _BlockRead(result, raw, unread, ms)


def _too_tall(boxes: list[Box], screen_h: float) -> set[int]:
    """Boxes too tall to be a line of text: over ``TALL_LINES`` times the screen's median box
    height (with three boxes or more to take a median of), or over ``TALL_SCREEN`` of the
    screen's height."""
    if not boxes:
        return set()
    median = float(np.median([_height(b) for b in boxes])) if len(boxes) >= 3 else np.inf
    return {
        i
        for i, b in enumerate(boxes)
        if _height(b) > TALL_LINES * median or _height(b) > TALL_SCREEN * screen_h
    }


def _panel_probe(block: list[Box]) -> set[int]:
    """Indices of the rows of a parameter panel worth reading first (see :func:`_read_blocks`).

    The first and last ``PANEL_END_ROWS`` rows (a label stacked on the panel joins it there),
    rows holding more than one box (a label on a row of the panel, beside it), and boxes
    taller or wider than the panel's own rows by ``PANEL_ODD`` (labels are written larger and
    longer than ``Gn 53``).
    """
    rows = _line_order(block)
    heights = np.median([_height(b) for b in block])
    widths = np.median([b[2] - b[0] for b in block])
    probe: set[int] = set()
    for r, row in enumerate(rows):
        if r < PANEL_END_ROWS or r >= len(rows) - PANEL_END_ROWS or len(row) > 1:
            probe.update(row)
    for k, b in enumerate(block):
        if _height(b) > PANEL_ODD * heights or b[2] - b[0] > PANEL_ODD * widths:
            probe.add(k)
    return probe


def _better(new: _Assembled, old: _Assembled) -> bool:
    """Whether a second detection pass read more of the annotation than the first."""
    if (new.parsed.laterality != "unknown") != (old.parsed.laterality != "unknown"):
        return new.parsed.laterality != "unknown"
    return len(annotation_fields(new.parsed)) > len(annotation_fields(old.parsed))


@dataclass
class _Assembled:
    description: str
    text_boxes: list[TextBox]
    all_boxes: list[ReadBox]
    parsed: ParsedAnnotation
    lines: list[str]


def _quad_box(quad: np.ndarray, shape: tuple[int, ...]) -> Box:
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    return (
        int(np.clip(x0, 0, shape[1])),
        int(np.clip(y0, 0, shape[0])),
        int(np.clip(x1, 0, shape[1])),
        int(np.clip(y1, 0, shape[0])),
    )


def _shift_box(b: Box, scale: float) -> Box:
    return (
        int(round(b[0] / scale)),
        int(round(b[1] / scale)),
        int(round(b[2] / scale)),
        int(round(b[3] / scale)),
    )


def _shift(raw: list[TextBox], dx: int, dy: int, scale: float) -> list[TextBox]:
    """Engine boxes (in the possibly scaled crop) to image coordinates."""
    out = []
    for tb in raw:
        bx = tuple(int(round(v / scale)) for v in tb.box)
        out.append(TextBox(tb.text, tb.score, (bx[0] + dx, bx[1] + dy, bx[2] + dx, bx[3] + dy)))
    return out


def _block_reason(
    texts: list[str], boxes: list[Box], chrome: bool, field_box: Box | None
) -> tuple[str | None, ParsedAnnotation]:
    """Why a block of kept boxes is not annotation (None: it is), and what it says."""
    lines = [" ".join(texts[i] for i in line) for line in _line_order(boxes)]
    parsed = parse_annotation("\n".join(lines))
    named = annotation_fields(parsed)
    if not named:
        return "no_annotation_words", parsed
    if parsed.laterality == "unknown":
        where = _where(boxes, field_box)
        if where in ("header", "panel"):
            return where, parsed
        if named == {"area"} and chrome:
            return "preset", parsed
        if unknown_words(" ".join(lines)):
            return "unknown_words", parsed
    return None, parsed


_HAS_DIGIT = re.compile(r"\d")


def _rows_kept(idx: list[int], all_boxes: list[ReadBox], texts: list[str]) -> list[int]:
    """The kept boxes of one block (``idx``: kept + chrome boxes) less its chrome rows.

    A block can hold a header line or a status line next to the label (a label written just
    under the header, a status bar beside it). A row is dropped (``chrome_row``) when it names
    nothing and holds no digit (an institution name), when it names only an area and either
    carries chrome (``ML6-15-D / BR GEN``, ``3:BREAST R15 HR``) or another row already names
    an area, or when it does not name the side and holds a word that is no annotation
    vocabulary (``MCR RAD MAYO BREAST CLINIC``). Rows that name nothing but hold digits stay ("3-4CM" reads as a distance only next
    to the rest of the label).
    """
    if len({_line_key(all_boxes[i].box, [all_boxes[j].box for j in idx]) for i in idx}) < 2:
        return [i for i in idx if all_boxes[i].drop_reason is None]
    rows = [[idx[k] for k in row] for row in _line_order([all_boxes[i].box for i in idx])]
    info = []
    for row in rows:
        keep = [i for i in row if all_boxes[i].drop_reason is None]
        text = " ".join(texts[i] for i in keep)
        chrome = len(keep) < len(row) or strip_chrome(text) != text
        info.append((keep, text, chrome, annotation_fields(parse_annotation(text))))
    areas = sum(1 for _, _, _, named in info if "area" in named)
    out: list[int] = []
    for keep, text, chrome, named in info:
        drop = (
            (not named and not _HAS_DIGIT.search(text))
            or (named == {"area"} and (chrome or areas > 1))
            or ("laterality" not in named and bool(unknown_words(text)))
        )
        if drop:
            for i in keep:
                b = all_boxes[i]
                all_boxes[i] = ReadBox(b.text, b.score, b.box, "chrome_row")
            if named == {"area"}:
                areas -= 1
        else:
            out += keep
    return out


def _line_key(b: Box, boxes: list[Box]) -> int:
    """Index of the first box of ``boxes`` on the same row as ``b`` (a row identity)."""
    return next(k for k, o in enumerate(boxes) if _same_row(b, o))


def _line_order(boxes: list[Box]) -> list[list[int]]:
    """Indices of ``boxes`` grouped into rows, rows top to bottom, boxes left to right."""
    tbs = [TextBox(str(i), 1.0, b) for i, b in enumerate(boxes)]
    return [[int(t.text) for t in line] for line in _group_lines(tbs)]


def _assemble(raw: list[TextBox], min_score: float, field_box: Box | None = None) -> _Assembled:
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

    # Blocks over the kept and the chrome boxes (chrome next to a word marks it as chrome too).
    members = [i for i, b in enumerate(all_boxes) if b.drop_reason in (None, "chrome")]
    blocks = _blocks([all_boxes[i].box for i in members])
    kept_blocks: list[tuple[list[int], ParsedAnnotation]] = []
    for group in blocks:
        idx = [members[k] for k in group]
        keep = _rows_kept(idx, all_boxes, texts)
        if not keep:
            continue
        chrome = len(keep) < len(idx) or any(strip_chrome(texts[i]) != texts[i] for i in keep)
        reason, parsed = _block_reason(
            [texts[i] for i in keep], [all_boxes[i].box for i in keep], chrome, field_box
        )
        if reason is not None:
            for i in keep:
                b = all_boxes[i]
                all_boxes[i] = ReadBox(b.text, b.score, b.box, reason)
            continue
        kept_blocks.append((keep, parsed))
    # An area word alone (a preset name) gives way to a block that says more.
    if any(annotation_fields(p) - {"area"} for _, p in kept_blocks):
        for keep, p in list(kept_blocks):
            if annotation_fields(p) == {"area"} and p.laterality == "unknown":
                kept_blocks.remove((keep, p))
                for i in keep:
                    b = all_boxes[i]
                    all_boxes[i] = ReadBox(b.text, b.score, b.box, "preset")

    kept_blocks.sort(key=lambda kp: (min(all_boxes[i].box[1] for i in kp[0]), kp[0]))
    text_boxes: list[TextBox] = []
    lines: list[str] = []
    for keep, _ in kept_blocks:
        for row in _line_order([all_boxes[i].box for i in keep]):
            line = [keep[k] for k in row]
            text_boxes += [TextBox(texts[i], all_boxes[i].score, all_boxes[i].box) for i in line]
            lines.append(" ".join(texts[i] for i in line))
    return _Assembled(
        description=normalize_text(" ".join(lines)),
        text_boxes=text_boxes,
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

"""From a scanner screen capture to the annotation description and its parsed fields.

The engine reads text boxes; this module decides which of them are the sonographer's annotation
and which are scanner chrome, orders what is kept into lines, and parses the result.

Where to read (measured, see benchmarks/bench_ocr.py): the detector's cost grows with the pixel
area it looks at, and on a 2-core CPU the whole 800x600 screen costs ~0.4 s for detection alone.
Scanners burn the annotation into the ultrasound field, while the header (institution, date,
probe, preset names such as "BREAST" or "MCR RAD"), the parameter panel and the depth ruler sit
outside it. So when the field box (``SequenceOfUltrasoundRegions``) is known, only that box is
read: cheaper, and the header can never leak into the description. Without a region the field
is estimated from the pixels (the largest bright connected area), and text outside it is dropped
with the reason ``outside_field``; if no field can be found the whole frame is read and kept.

What is dropped, box by box (the reason goes into ``all_boxes``):

- ``non_ascii``: nothing ASCII left (CJK glyphs read on colour bars). Mixed boxes keep their ASCII.
- ``low_score``: recogniser confidence below ``min_score``.
- ``caliper_mark``: a box that is only ``+`` / ``x`` / ``X`` (caliper end points read as text).
- ``single_glyph``: one character alone: a stray ruler digit, an orientation "R"/"P" marker.
- ``chrome``: the whole box is scanner chrome by pattern (``D1 1.23 cm`` measurement legends,
  MI/TIS, frame rate, dates, probe names; see ``ocr_parsing.is_chrome``).
- ``outside_field``: the box centre is outside the ultrasound field.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from casbusi_assets.ocr_engines import OcrEngine, TextBox
from casbusi_assets.ocr_parsing import ParsedAnnotation, is_chrome, normalize_text, parse_annotation

DEFAULT_MIN_SCORE = 0.5
DEFAULT_WORK_HEIGHT = 640
DEFAULT_GAMMA = 1.0
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


def estimate_field(image: np.ndarray) -> Box | None:
    """The ultrasound field of a screen capture without region metadata, or None.

    Speckle fills the field with mid-grey texture, while chrome is thin text on black: after a
    wide blur the field is the one large bright blob. Needs at least 15 % of the frame.
    """
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    small_scale = 4
    small = cv2.resize(grey, (max(1, w // small_scale), max(1, h // small_scale)), cv2.INTER_AREA)
    blurred = cv2.blur(small, (7, 7))
    mask = (blurred > 18).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[best])
    if bw * bh * small_scale**2 < 0.15 * w * h:
        return None
    return (
        x * small_scale,
        y * small_scale,
        (x + bw) * small_scale - 1,
        (y + bh) * small_scale - 1,
    )


def _centre_inside(box: Box, outer: Box) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


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
) -> OcrReading:
    """Read the burned-in annotation of one capture (grey H x W or RGB H x W x 3).

    ``region`` is the ultrasound field (x0, y0, x1, y1, inclusive, as in
    SequenceOfUltrasoundRegions); for a dual view pass the union of both fields. Only that box
    is read. Without it the field is estimated (``estimate_region``) or the whole frame is read.
    ``ocr_ms`` times the engine call only.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {img.shape}")
    h, w = img.shape[:2]

    read_box: Box | None = None
    keep_box: Box | None = None  # text whose centre lies outside is dropped as outside_field
    if region is not None:
        read_box = _clip_box(region, w, h, REGION_PAD)
    elif estimate_region:
        guess = estimate_field(img)
        if guess is not None:
            keep_box = _clip_box(guess, w, h, REGION_PAD)
    if read_box is None:
        read_box = (0, 0, w, h)
    x0, y0, x1, y1 = read_box
    crop = np.ascontiguousarray(img[y0:y1, x0:x1])
    # Scanners scale their fonts with the screen: reading a 960-line screen at 640 lines keeps
    # the text ~10 px high (plenty for the recogniser) and more than halves detection time.
    scale = 1.0
    if work_height and h > work_height:
        import cv2

        scale = work_height / h
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)

    if gamma != 1.0:
        crop = _gamma_lut(gamma)[crop]

    t0 = time.perf_counter()
    raw = engine.read(crop)
    ocr_ms = (time.perf_counter() - t0) * 1000.0
    if scale != 1.0:
        raw = [
            TextBox(tb.text, tb.score, tuple(int(round(v / scale)) for v in tb.box))  # type: ignore[arg-type]
            for tb in raw
        ]

    all_boxes: list[ReadBox] = []
    kept: list[TextBox] = []
    for tb in raw:
        bx = (tb.box[0] + x0, tb.box[1] + y0, tb.box[2] + x0, tb.box[3] + y0)
        text = _ascii_text(tb.text)
        reason = _drop_reason(text, tb.score, min_score)
        if reason is None and keep_box is not None and not _centre_inside(bx, keep_box):
            reason = "outside_field"
        all_boxes.append(ReadBox(tb.text, float(tb.score), bx, reason))
        if reason is None:
            kept.append(TextBox(text, float(tb.score), bx))

    line_groups = _group_lines(kept)
    lines = [" ".join(b.text for b in line) for line in line_groups]
    text_boxes = [b for line in line_groups for b in line]
    description = normalize_text(" ".join(lines))
    return OcrReading(
        description=description,
        text_boxes=text_boxes,
        all_boxes=all_boxes,
        parsed=parse_annotation("\n".join(lines)),
        ocr_ms=round(ocr_ms, 2),
        read_box=read_box,
        lines=lines,
    )

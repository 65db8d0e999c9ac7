"""Caliper boxes refined to strokes: every shape, colour and image kind, lines between pairs."""

from __future__ import annotations

import json
import zlib

import cv2
import numpy as np
import pytest

from casbusi_assets.inpainting.masks import MaskError, box_mask, build_caliper_mask, parse_boxes
from casbusi_assets.inpainting.pairs import truth_boxes
from casbusi_assets_tests.inpainting.conftest import speckle


def _draw(img: np.ndarray, x: int, y: int, shape: str, s: int, colour, thick: int = 1) -> None:
    """Marks drawn here, independently of the generator's own drawing code."""
    c = colour if img.ndim == 3 else colour[0]
    if shape == "outlined_plus":  # a light cross with a dark rim
        rim = np.zeros(img.shape[:2], np.uint8)
        cv2.line(rim, (x - s, y), (x + s, y), 1, thick)
        cv2.line(rim, (x, y - s), (x, y + s), 1, thick)
        img[cv2.dilate(rim, np.ones((3, 3), np.uint8)) > 0] = 0
        shape = "+"
    if shape == "+":
        cv2.line(img, (x - s, y), (x + s, y), c, thick)
        cv2.line(img, (x, y - s), (x, y + s), c, thick)
    elif shape == "x":
        cv2.line(img, (x - s, y - s), (x + s, y + s), c, thick)
        cv2.line(img, (x - s, y + s), (x + s, y - s), c, thick)
    elif shape == "dot":
        cv2.circle(img, (x, y), s, c, -1)
    elif shape == "ring":  # a shape the refinement was never told about
        cv2.circle(img, (x, y), s, c, 1)


def _case(shape: str, colour: tuple[int, int, int], rgb: bool, s: int = 6, thick: int = 1):
    clean = speckle(seed=zlib.crc32(repr((shape, colour, rgb, s)).encode()) % 1000)
    if rgb:
        clean = np.repeat(clean[..., None], 3, axis=2)
    img = clean.copy()
    _draw(img, 100, 80, shape, s, colour, thick)
    ink = (img != clean).any(axis=2) if rgb else img != clean
    ys, xs = np.nonzero(ink)
    box = [int(xs.min()) - 2, int(ys.min()) - 2, int(np.ptp(xs)) + 5, int(np.ptp(ys)) + 5]
    return img, ink, box


SHAPES = [
    ("+", 6, 1),
    ("x", 7, 1),
    ("+", 3, 1),
    ("dot", 3, 1),
    ("outlined_plus", 6, 1),
    ("+", 8, 2),
    ("ring", 5, 1),
]
COLOURS = {"white": (245, 245, 245), "yellow": (255, 255, 0), "green": (40, 230, 60)}


@pytest.mark.parametrize("shape,size,thick", SHAPES)
@pytest.mark.parametrize("colour", list(COLOURS))
@pytest.mark.parametrize("rgb", [False, True])
def test_refined_mask_covers_the_strokes_of_each_shape_and_little_else(
    shape, size, thick, colour, rgb
):
    if colour != "white" and not rgb:
        colour_value = (
            int(cv2.cvtColor(np.uint8([[COLOURS[colour]]]), cv2.COLOR_RGB2GRAY)[0, 0]),
        ) * 3
    else:
        colour_value = COLOURS[colour]
    img, ink, box = _case(shape, colour_value, rgb, size, thick)
    cm = build_caliper_mask(img, [box])
    m = cm.mask > 0
    assert cm.n_marks == 1 and cm.n_fallback == 0
    recall = (m & ink).sum() / ink.sum()
    assert recall >= 0.97, f"{shape} {colour} rgb={rgb}: only {recall:.0%} of the strokes masked"
    # Thin: far fewer pixels than the box it came from, not much more than the ink.
    assert m.sum() <= 1.6 * ink.sum() + 6, (m.sum(), ink.sum())
    assert m.sum() < 0.6 * box[2] * box[3]


def test_dotted_line_between_paired_marks_is_masked_and_unpaired_marks_get_none():
    img = speckle(200, 320, seed=3)
    clean = img.copy()
    for x, y in ((60, 60), (260, 140)):
        _draw(img, x, y, "+", 6, (250, 250, 250))
    for t in np.arange(11, np.hypot(200, 80) - 10, 5.0):  # dots every 5 px, as scanners draw
        u = t / np.hypot(200, 80)
        img[int(round(60 + 80 * u)), int(round(60 + 200 * u))] = 250
    _draw(img, 60, 160, "x", 6, (250, 250, 250))  # a third mark, on no line
    ink = img != clean
    boxes = [[52, 52, 17, 17], [252, 132, 17, 17], [52, 152, 17, 17]]
    cm = build_caliper_mask(img, boxes)
    assert cm.n_marks == 3 and cm.n_lines == 1
    inside = box_mask(img.shape, boxes) > 0
    line_ink = ink & ~inside
    m = cm.mask > 0
    assert (m & line_ink).sum() / line_ink.sum() >= 0.9
    # The line is masked dot by dot, not as a band.
    assert (m & ~inside).sum() <= 1.5 * line_ink.sum()
    without = build_caliper_mask(img, boxes, lines=False)
    assert without.n_lines == 0 and (without.mask > 0).sum() < m.sum()


def test_marks_on_a_generated_capture_and_their_lines_are_covered(fresh_pairs):
    for pair in fresh_pairs:
        truth = pair.stroke_truth()
        cm = build_caliper_mask(pair.image, truth_boxes(pair.marks))
        m = cm.mask > 0
        assert cm.n_marks == len(pair.marks)
        assert (m & truth).sum() / truth.sum() >= 0.85, pair.colour
        assert m.sum() <= 2.0 * truth.sum()


def test_box_without_a_visible_stroke_is_masked_whole():
    flat = np.full((60, 60), 90, np.uint8)
    cm = build_caliper_mask(flat, [[20, 20, 10, 12]])
    assert cm.n_fallback == 1 and cm.pixels == 120


def test_no_boxes_gives_an_empty_mask():
    cm = build_caliper_mask(speckle(), [])
    assert cm.pixels == 0 and cm.n_marks == 0


@pytest.mark.parametrize(
    "value,expected",
    [
        ("[[1, 2, 3, 4]]", [(1, 2, 3, 4)]),
        ([[1.4, 2.6, 3, 4], [5, 5, 0, 3]], [(1, 3, 3, 4)]),  # a zero-width box is dropped
        (None, []),
        ("[]", []),
    ],
)
def test_parse_boxes(value, expected):
    assert parse_boxes(value) == expected


@pytest.mark.parametrize("value", ["[[1, 2, 3]]", json.dumps([["a", 1, 2, 3]]), "[5]"])
def test_malformed_boxes_are_a_clear_error(value):
    with pytest.raises(MaskError, match=r"\[x, y, w, h\]"):
        parse_boxes(value)


def test_drop_shadow_of_a_mark_is_masked_too():
    """Some scanners draw a mark's shadow 2 px down-right (the real OBXXXX1A captures do)."""
    img = np.full((80, 80), 2, np.uint8)  # the black screen beside the field
    clean = img.copy()
    shadow = np.zeros_like(img)
    _draw(shadow, 42, 42, "+", 6, (20, 20, 20), 2)
    img[shadow > 0] = 20
    _draw(img, 40, 40, "+", 6, (254, 254, 254), 2)
    ink = img != clean
    cm = build_caliper_mask(img, [[32, 32, 17, 17]])
    m = cm.mask > 0
    assert (m & ink).sum() / ink.sum() >= 0.95
    assert m.sum() <= 1.3 * ink.sum()

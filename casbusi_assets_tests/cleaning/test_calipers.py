"""Caliper marks: one box per mark, none on text, chrome, tissue or colour flow."""

from __future__ import annotations

import functools
import io
import json
import zipfile

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.cleaning.caliper_model import CaliperModel, CaliperModelError
from casbusi_assets.cleaning.calipers import (
    CaliperMark,
    caliper_boxes_json,
    detect_calipers,
    text_boxes_from_json,
)
from casbusi_assets.pixels.decode import decode_frame, prepare_still
from casbusi_assets.synthetic import GeneratorConfig, generate_batch
from casbusi_assets.synthetic.annotations import sample_annotation
from casbusi_assets.synthetic.scanner_screen import (
    CALIPER_COLOURS,
    CALIPER_SHAPES,
    _draw_body_marker,
    _draw_mark,
    draw_text,
    render_capture,
)
from casbusi_assets_tests.conftest import philips_capture_spec

FIELD = (40, 30, 720, 540)  # x, y, w, h


def _tissue(seed=0, level=110.0, size=(600, 800)):
    rng = np.random.default_rng(seed)
    h, w = size
    n = rng.standard_normal((2, h, w)).astype(np.float32)
    a = cv2.GaussianBlur(n[0], (0, 0), 1.7, sigmaY=0.8)
    b = cv2.GaussianBlur(n[1], (0, 0), 1.7, sigmaY=0.8)
    ray = np.sqrt(a * a + b * b)
    ray /= ray.mean()
    img = np.zeros((h, w), np.uint8)
    x, y, fw, fh = FIELD
    img[y : y + fh, x : x + fw] = np.clip(ray[:fh, :fw] * level, 0, 255).astype(np.uint8)
    return img


def _pair(img, p, q, shape, s, colour=(250,), spacing=5):
    """Two marks joined by a dotted line, as the scanner draws a measurement."""
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    for t in np.arange(s + 4, length - s - 3, spacing):
        xx = int(round(p[0] + (q[0] - p[0]) * t / length))
        yy = int(round(p[1] + (q[1] - p[1]) * t / length))
        img[yy, xx] = colour if img.ndim == 3 else colour[0]
    return [_draw_mark(img, *p, shape, s, colour), _draw_mark(img, *q, shape, s, colour)]


def _centres(marks):
    return [m.centre for m in marks]


def _found(boxes, marks, tol=3.0):
    """Each truth box matched by exactly one detection whose centre is within tol px."""
    cs = _centres(marks)
    for x, y, w, h in boxes:
        cx, cy = x + (w - 1) / 2, y + (h - 1) / 2
        near = [c for c in cs if np.hypot(c[0] - cx, c[1] - cy) <= tol]
        if len(near) != 1:
            return False
    return len(cs) == len(boxes)


@pytest.mark.parametrize(
    ("shape", "s"),
    [("+", 6), ("x", 7), ("small_cross", 2), ("dot", 3), ("outlined_plus", 6), ("+", 9)],
)
def test_each_shape_is_found_once_per_mark(shape, s):
    img = _tissue(seed=1)
    boxes = _pair(img, (250, 220), (420, 300), shape, s)
    marks = detect_calipers(img, field=FIELD)
    assert _found(boxes, marks), (boxes, marks)
    # The reported box covers the drawn mark.
    found = sorted(k.as_tuple() for k in marks)
    for (x, y, w, _), k in zip(sorted(boxes), found, strict=True):
        assert abs(k[0] - x) <= 1 and abs(k[1] - y) <= 1 and abs(k[2] - w) <= 2


def test_marks_on_bright_tissue_are_found():
    # Bright glandular tissue: grains up to white around the marks.
    img = _tissue(seed=2, level=125.0)
    assert np.percentile(img[100:500, 100:700], 75) > 140
    assert np.percentile(img[100:500, 100:700], 99) > 240
    # Near-white marks (a mark exactly at the saturation level merges with saturated grains
    # it touches: a known limit, see the module docstring).
    boxes = _pair(img, (200, 200), (380, 330), "+", 6, colour=(240,))
    boxes += _pair(img, (500, 180), (560, 420), "x", 6, colour=(240,))
    marks = detect_calipers(img, field=FIELD)
    # No grain taken for a mark; the x at (500, 180) lies on a patch of saturated grains of
    # nearly its own level and merges with them (a known limit, listed in benchmarks/README).
    cs = _centres(marks)
    hits = [
        any(np.hypot(c[0] - x - (w - 1) / 2, c[1] - y - (h - 1) / 2) <= 3 for c in cs)
        for x, y, w, h in boxes
    ]
    assert len(marks) == sum(hits) and sum(hits) >= 3, marks


def test_no_calipers_no_hits():
    img = _tissue(seed=3)
    cv2.putText(img, "LT BREAST 2:00 3CM FN", (80, 520), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 230, 1)
    for k in range(0, 540, 40):  # a depth ruler with ticks beside the field
        cv2.line(img, (765, 30 + k), (773, 30 + k), 220, 1)
    assert detect_calipers(img, field=FIELD) == []
    assert detect_calipers(np.zeros((200, 300), np.uint8)) == []
    # Bright tissue, and an over-gained screen with a quarter of the field saturated.
    assert detect_calipers(_tissue(seed=4, level=125.0), field=FIELD) == []
    assert detect_calipers(_tissue(seed=4, level=200.0), field=FIELD) == []


def test_glyphs_inside_ocr_text_boxes_are_suppressed_but_a_mark_beside_them_is_not():
    img = _tissue(seed=5)
    # A legend line whose first glyph is the caliper shape, in a box the OCR read.
    cv2.rectangle(img, (60, 40), (260, 62), 0, -1)
    _draw_mark(img, 70, 51, "+", 5, (250,))
    cv2.putText(img, "D1 1.23 cm", (84, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 250, 1)
    # A stray glyph inside another text box (a "+" read as part of "ANT+POST").
    _draw_mark(img, 300, 460, "+", 5, (250,))
    text_boxes = [(58, 38, 262, 64), (280, 450, 380, 472)]
    # A real measurement right next to the second text box.
    boxes = _pair(img, (396, 461), (560, 380), "+", 5)
    marks = detect_calipers(img, field=FIELD, text_boxes=text_boxes)
    assert _found(boxes, marks), marks


def test_a_legend_glyph_is_suppressed_even_without_its_ocr_box():
    img = _tissue(seed=6)
    cv2.rectangle(img, (60, 40), (300, 62), 0, -1)
    _draw_mark(img, 70, 51, "+", 5, (250,))
    cv2.putText(img, "Cist Mag 1.06 cm", (84, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 250, 1)
    assert detect_calipers(img, field=FIELD) == []


def test_marks_outside_the_field_are_chrome():
    img = _tissue(seed=7)
    _draw_mark(img, 20, 300, "+", 6, (250,))  # left of the field, e.g. an icon
    boxes = _pair(img, (300, 250), (450, 260), "x", 6)
    assert _found(boxes, detect_calipers(img, field=FIELD))
    # Without the field box, the chrome cross is a hit too.
    assert len(detect_calipers(img)) == 3


def test_green_and_yellow_marks_on_rgb_doppler_but_not_colour_flow():
    img = np.repeat(_tissue(seed=8)[..., None], 3, axis=-1)
    rng = np.random.default_rng(8)
    for _ in range(25):  # colour-flow blobs: red and blue, some small
        cx, cy = int(rng.integers(100, 700)), int(rng.integers(80, 520))
        r = int(rng.integers(2, 9))
        colour = (220, 40, 0) if rng.random() < 0.5 else (0, 60, 230)
        cv2.circle(img, (cx, cy), r, colour, -1)
    boxes = _pair(img, (200, 200), (330, 260), "+", 6, colour=(40, 230, 60))
    boxes += _pair(img, (450, 300), (600, 420), "x", 6, colour=(255, 255, 0))
    assert _found(boxes, detect_calipers(img, field=FIELD))


def test_boxes_json_and_ocr_text_boxes_parsing():
    marks = [CaliperMark(10, 20, 13, 13, "+", 0.9), CaliperMark(40, 50, 7, 7, "dot", 0.7)]
    assert json.loads(caliper_boxes_json(marks)) == [[10, 20, 13, 13], [40, 50, 7, 7]]
    assert caliper_boxes_json([]) == "[]"
    ocr = json.dumps([{"text": "LT BREAST", "score": 0.9, "box": [5, 6, 70, 20]}])
    assert text_boxes_from_json(ocr) == [(5, 6, 70, 20)]
    assert text_boxes_from_json(None) == [] and text_boxes_from_json("oops") == []


def test_the_real_philips_capture_gives_its_two_calipers_and_not_the_legend_glyph():
    ds = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"))
    img = prepare_still(decode_frame(ds, 0), ds.PhotometricInterpretation).array
    marks = detect_calipers(img, field=(120, 60, 680, 459))
    # Both "+" marks of the 1.06 cm measurement; not the "+" before "Cist Mag".
    assert len(marks) == 2
    for (x, y), m in zip([(459, 291), (498, 301)], marks, strict=True):
        assert np.hypot(m.centre[0] - x, m.centre[1] - y) <= 3


@functools.lru_cache(maxsize=8)
def _screen_cached(seed: int):
    """A generated grey screen without calipers or body marker, its field and text box."""
    rng = np.random.default_rng(seed)
    spec = philips_capture_spec(annotation=sample_annotation(rng, "left", "breast"))
    r = render_capture(spec, rng)
    reg = r.regions[0]
    return r.frames[0], (reg.x0, reg.y0, reg.x1 - reg.x0 + 1, reg.y1 - reg.y0 + 1), r.text_box


def _screen(seed: int = 21):
    img, field, text_box = _screen_cached(seed)
    return img.copy(), field, [text_box] if text_box else []


def _at(field, u: float, v: float) -> tuple[int, int]:
    x, y, w, h = field
    return (int(x + u * w), int(y + v * h))


@pytest.fixture(scope="module")
def model():
    """The shipped verifier (models/calipers/calipers_v2.pt) on the CPU."""
    return CaliperModel.load(device="cpu")


def _wide_pair(img, p, q, shape, s, colour=(250,), thick=1, angle=0.0, line=True):
    """A pair of marks of any family (arrowheads point away from each other)."""
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    ink = colour if img.ndim == 3 else colour[0]
    if line:
        for t in np.arange(s + thick + 3, length - s - thick - 2, 5):
            xx = int(round(p[0] + (q[0] - p[0]) * t / length))
            yy = int(round(p[1] + (q[1] - p[1]) * t / length))
            img[yy, xx] = ink
    out = []
    for a, b in ((p, q), (q, p)):
        ang = angle
        if "arrowhead" in shape:
            ang = float(np.degrees(np.arctan2(a[1] - b[1], a[0] - b[0])))
        out.append(_draw_mark(img, *a, shape, s, colour, thick, ang))
    return out


def _found_near(boxes, marks, tol=3.0):
    cs = _centres(marks)
    return [
        sum(np.hypot(c[0] - x - (w - 1) / 2, c[1] - y - (h - 1) / 2) <= tol for c in cs)
        for x, y, w, h in boxes
    ]


# Every family the widened generator draws, small and large, upright and tilted.
FAMILIES = [
    (shape, s, thick, angle)
    for shape in CALIPER_SHAPES
    if shape != "bracket"
    for s, thick, angle in (
        ((3, 1, 0.0), (5, 1, 0.0))
        if shape in ("point", "small_cross", "dot")
        else ((4, 1, 25.0), (10, 2, 60.0))
    )
] + [
    ("bracket", 4, 1, 0.0),
    # Large brackets were proposed as two halves and missed (once a strict xfail); the halves
    # are now joined into one mark.
    ("bracket", 8, 1, 0.0),
]


@pytest.mark.parametrize(("shape", "s", "thick", "angle"), FAMILIES)
def test_learned_detector_finds_each_mark_family_once(model, shape, s, thick, angle):
    img, field, texts = _screen()
    # On the darker lower half of the field: a mark over bright glandular tissue that is not
    # 40 levels brighter than its ring is not proposed (a known limit, benchmarks/README).
    p, q = _at(field, 0.3, 0.62), _at(field, 0.62, 0.78)
    boxes = _wide_pair(img, p, q, shape, s, thick=thick, angle=angle)
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1], (boxes, [m.as_tuple() for m in marks])
    assert len(marks) == 2
    # The box is the mark's: its centre within 3 px, its size within 3 px of the ink box.
    for (_x, _y, w, h), k in zip(sorted(boxes), sorted(m.as_tuple() for m in marks), strict=True):
        assert abs(k[2] - w) <= 3 and abs(k[3] - h) <= 3


@pytest.mark.parametrize("colour", sorted(CALIPER_COLOURS))
def test_learned_detector_finds_marks_of_every_colour_on_rgb(model, colour):
    grey, field, texts = _screen()
    img = np.repeat(grey[..., None], 3, axis=-1)
    rgb = CALIPER_COLOURS[colour]
    boxes = _wide_pair(img, _at(field, 0.2, 0.6), _at(field, 0.4, 0.72), "tilted_cross", 6, rgb)
    boxes += _wide_pair(img, _at(field, 0.6, 0.62), _at(field, 0.8, 0.8), "diamond", 6, rgb)
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1, 1, 1] and len(marks) == 4, marks


def test_learned_detector_finds_pairs_without_a_line(model):
    img, field, texts = _screen()
    boxes = _wide_pair(img, _at(field, 0.2, 0.6), _at(field, 0.4, 0.72), "star", 7, line=False)
    boxes += _wide_pair(img, _at(field, 0.6, 0.62), _at(field, 0.8, 0.8), "circle", 5, line=False)
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1, 1, 1] and len(marks) == 4, marks


def test_text_ruler_and_body_marker_are_not_calipers(model):
    img, field, _ = _screen()
    x, y, w, h = field
    # Annotation text inside the field (glyphs such as "x", "+", "o" look like marks), no OCR.
    lines = ["LT BREAST 2:00 3CM FN", "x + o * 1.2 x 0.8"]
    draw_text(img, lines, x + 20, y + h - 60, "hershey_simplex", 11, (235,))
    # A depth ruler with ticks and dots down the field's right edge.
    for k in range(10, h - 10, 26):
        cv2.line(img, (x + w - 14, y + k), (x + w - 6, y + k), 230, 1)
        img[y + k + 13 : y + k + 15, x + w - 11 : x + w - 9] = 230
    # A body-marker pictogram on its dark backdrop, over the tissue.
    mx, my = x + w - 70, y + 60
    img[my - 40 : my + 40, mx - 40 : mx + 40] //= 4
    _draw_body_marker(img, np.random.default_rng(0), mx, my, 70, None, 30.0, (230,))
    assert detect_calipers(img, field=field, model=model) == []
    # The same screen with a real measurement: only its two marks.
    boxes = _wide_pair(img, _at(field, 0.3, 0.62), _at(field, 0.5, 0.75), "asterisk", 6)
    marks = detect_calipers(img, field=field, model=model)
    assert _found_near(boxes, marks) == [1, 1] and len(marks) == 2, marks


def test_learned_detector_suppresses_text_boxes_and_chrome(model):
    img, field, texts = _screen()
    x, y, w, h = field
    _draw_mark(img, x - 12, y + h // 2, "star", 6, (250,))  # outside the field: chrome
    gx, gy = _at(field, 0.7, 0.2)
    _draw_mark(img, gx, gy, "+", 5, (250,))  # a glyph inside an OCR text box
    boxes = _wide_pair(img, _at(field, 0.3, 0.65), _at(field, 0.5, 0.7), "bracket", 5)
    texts = [*texts, (gx - 20, gy - 10, gx + 80, gy + 10)]
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1] and len(marks) == 2, marks


def test_learned_detector_on_empty_and_plain_screens(model):
    assert detect_calipers(np.zeros((200, 300), np.uint8), model=model) == []
    for seed in (31, 32, 33):
        img, field, texts = _screen(seed)
        assert detect_calipers(img, field=field, text_boxes=texts, model=model) == []


def test_missing_or_foreign_weights_are_a_clear_error(tmp_path):
    with pytest.raises(CaliperModelError, match="not found"):
        CaliperModel.load(tmp_path / "none.pt")
    import torch

    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CaliperModelError, match="not a caliper checkpoint"):
        CaliperModel.load(tmp_path / "other.pt")


def test_generated_caliper_captures_every_mark_found(tmp_path, model):
    cfg = GeneratorConfig(
        stills_per_study=(3, 3),
        cine_per_study=(0, 0),
        caliper_share=1.0,
        varied_style_share=0.6,
        edge_cases=False,
        filter_cases=False,
        ensure_coverage=False,
    )
    files = generate_batch(tmp_path, 0, patients=3, seed=6262, config=cfg)
    truth = pd.read_parquet(files.truth_path)
    stills = truth[(truth["member_kind"] == "image") & (truth["expected_status"] == "ok")]
    tp = fp = fn = 0
    with zipfile.ZipFile(files.zip_path) as zf:
        for row in stills.itertuples():
            ds = pydicom.dcmread(io.BytesIO(zf.read(row.member_path)))
            img = prepare_still(decode_frame(ds, 0), ds.PhotometricInterpretation).array
            x0, y0, x1, y1 = json.loads(row.regions)[0]
            texts = [tuple(json.loads(b)) for b in (row.text_box, row.caliper_legend_box) if b]
            marks = detect_calipers(
                img, field=(x0, y0, x1 - x0 + 1, y1 - y0 + 1), text_boxes=texts, model=model
            )
            truth_marks = json.loads(row.calipers or "[]")
            # The truth gives every mark's box.
            assert all(len(t["box"]) == 4 for t in truth_marks)
            hit = [
                any(np.hypot(t["x"] - c[0], t["y"] - c[1]) <= 6 for c in _centres(marks))
                for t in truth_marks
            ]
            tp += sum(hit)
            fn += len(hit) - sum(hit)
            fp += max(0, len(marks) - sum(hit))
    assert tp >= 12
    assert tp / (tp + fn) >= 0.9 and tp / (tp + fp) >= 0.9, (tp, fp, fn)


POINT_CASES = [
    pytest.param(
        d,
        line,
        # Known limit (benchmarks/README, model card): a 2 x 2 point ending a dashed line is
        # scored too low alone, and its line's dashes are pieces of its own size.
        marks=[pytest.mark.xfail(strict=True, reason="2 px point on a dashed line")]
        if (d, line) == (2, "dashed")
        else [],
    )
    for line in ("dotted", "dashed")
    for d in (2, 3, 4, 5)
]


@pytest.mark.parametrize(("d", "line"), POINT_CASES)
def test_learned_detector_finds_points_of_a_few_pixels(model, d, line):
    # A dotted endpoint of 2-5 px looks like a speckle grain on its own; the pair joined by
    # its line is the evidence (the verifier alone was at 0/10 points on a held-out seed).
    img, field, texts = _screen()
    p, q = _at(field, 0.25, 0.62), _at(field, 0.5, 0.76)
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    dash = 1 if line == "dotted" else 3
    for t in np.arange(d + 4, length - d - 3, 5 + dash):
        for u in np.arange(t, t + dash):
            img[
                int(round(p[1] + (q[1] - p[1]) * u / length)),
                int(round(p[0] + (q[0] - p[0]) * u / length)),
            ] = 250
    boxes = [_draw_mark(img, *a, "point", d, (250,)) for a in (p, q)]
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1] and len(marks) == 2, marks


@pytest.mark.parametrize(("s", "angle"), [(6, 0.0), (10, 0.0), (12, 0.0), (6, 30.0), (9, 45.0)])
def test_learned_detector_gives_one_box_per_bracket_large_or_tilted(model, s, angle):
    # A "[ ]" is two pieces of ink: large or tilted ones were proposed as two halves and
    # reported as two marks or none.
    img, field, texts = _screen()
    boxes = _wide_pair(
        img, _at(field, 0.25, 0.6), _at(field, 0.55, 0.78), "bracket", s, angle=angle
    )
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1] and len(marks) == 2, (boxes, marks)
    for (_x, _y, w, h), k in zip(sorted(boxes), sorted(m.as_tuple() for m in marks), strict=True):
        assert abs(k[2] - w) <= 3 and abs(k[3] - h) <= 3


@pytest.mark.parametrize("shape", ["arrowhead", "open_arrowhead"])
@pytest.mark.parametrize(("s", "inward"), [(3, False), (6, True), (12, False), (9, True)])
def test_learned_detector_finds_arrowheads_pointing_out_or_in(model, shape, s, inward):
    img, field, texts = _screen()
    p, q = _at(field, 0.22, 0.62), _at(field, 0.6, 0.7)
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    for t in np.arange(s + 5, length - s - 4, 5):
        img[
            int(round(p[1] + (q[1] - p[1]) * t / length)),
            int(round(p[0] + (q[0] - p[0]) * t / length)),
        ] = 250
    boxes = []
    for a, b in ((p, q), (q, p)):
        ang = float(np.degrees(np.arctan2(a[1] - b[1], a[0] - b[0]))) + (180.0 if inward else 0.0)
        boxes.append(_draw_mark(img, *a, shape, s, (250,), 1, ang))
    marks = detect_calipers(img, field=field, text_boxes=texts, model=model)
    assert _found_near(boxes, marks) == [1, 1] and len(marks) == 2, (boxes, marks)


@pytest.mark.parametrize("font", ["hershey_simplex", "hershey_plain", "hershey_complex", "pil_ttf"])
def test_text_glyphs_inside_the_field_without_ocr_boxes_are_not_calipers(model, font):
    # Real screens print labels inside the declared region, and the OCR does not box every
    # line: glyphs such as "x", "+", "o", "*", "." must not become marks.
    img, field, _ = _screen()
    x, y, w, h = field
    lines = ["x + o * 1.2 x 0.8 cm", "LT BREAST 2:00 3CM FN", "D1 1.06 cm  D2 0.74 cm"]
    draw_text(img, lines, x + 30, y + int(0.55 * h), font, 11, (240,))
    draw_text(img, ["+ Dist 2.31 cm", "x Area 1.9"], x + int(0.55 * w), y + 20, font, 9, (250,))
    assert detect_calipers(img, field=field, model=model) == []


def test_sector_ruler_measurement_line_and_frame_triangles_are_not_calipers(model):
    # A depth scale along a sector's slanted edge, a dotted line whose end marks are elsewhere
    # (or were inpainted) and the triangles some scanners put on the region's border (the
    # JPGLossless and OBXXXX1A captures): chains and frame marks, not measurements.
    img, field, texts = _screen()
    x, y, w, h = field
    for k in range(12):  # 3 x 3 dots every 28 px down a 45-degree edge
        px, py = x + 40 + 20 * k, y + 30 + 20 * k
        img[py : py + 3, px : px + 3] = 235
    for k in range(8):  # 4 x 3 dots of a lone measurement line
        px, py = x + int(0.55 * w) + 12 * k, y + int(0.6 * h) + 12 * k
        img[py : py + 3, px : px + 4] = 250
    for tx in (x, x + w - 12):  # filled triangles touching the field's left and right edges
        pts = np.array([[tx, y + h - 100], [tx + 11, y + h - 100], [tx + 5, y + h - 106]])
        cv2.fillConvexPoly(img, pts, 235)
    assert detect_calipers(img, field=field, text_boxes=texts, model=model) == []


@pytest.mark.parametrize(
    ("name", "field", "truth"),
    [
        ("OBXXXX1A.dcm", (120, 60, 680, 459), [(459, 291), (498, 301)]),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", (14, 38, 997, 721), [(628, 319), (689, 435)]),
    ],
)
def test_learned_detector_on_the_real_captures_gives_their_marks_only(model, name, field, truth):
    # Without OCR text boxes: the real "+" marks (OBXXXX1A's, and the Philips echo screen's
    # outlined crosses), not the legend glyph, the "P" logo, the region's border triangles, the
    # sector's depth dots or the dots of the measurement line.
    ds = pydicom.dcmread(get_testdata_file(name))
    img = prepare_still(decode_frame(ds, 0), ds.PhotometricInterpretation).array
    marks = detect_calipers(img, field=field, model=model)
    assert len(marks) == len(truth), [m.as_tuple() for m in marks]
    for (tx, ty), m in zip(truth, marks, strict=True):
        assert np.hypot(m.centre[0] - tx, m.centre[1] - ty) <= 4

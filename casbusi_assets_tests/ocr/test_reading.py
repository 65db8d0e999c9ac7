"""Reading the annotation off a screen capture: region handling, chrome / caliper / glyph drops,
line ordering, and end to end with RapidOCR on rendered captures."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from casbusi_assets.ocr.engines import RapidOcrEngine, TextBox
from casbusi_assets.ocr.parsing import ParsedAnnotation
from casbusi_assets.ocr.reading import _dedupe, _top_hat, estimate_field, read_annotation
from casbusi_assets_tests.ocr.test_engines import shared_rapidocr

FIELD = (100, 70, 539, 409)  # x0, y0, x1, y1 inclusive, like SequenceOfUltrasoundRegions


class FakeEngine:
    """Returns fixed boxes (in the coordinates of the image it is given) and records calls."""

    name = "fake"
    device = "cpu"

    def __init__(self, boxes: list[TextBox]) -> None:
        self.boxes = boxes
        self.shapes: list[tuple[int, ...]] = []

    def read(self, image: np.ndarray) -> list[TextBox]:
        self.shapes.append(image.shape)
        return list(self.boxes)


def screen(
    label: list[str],
    *,
    where: str = "bottom",
    header: str = "MCR RAD  MAYO BREAST CLINIC  05/14/2023 10:15:30  MI 1.1  TIS 0.4",
    calipers: bool = False,
    legend: str | None = None,
) -> np.ndarray:
    """A 640x480 grey capture: header chrome, a speckled field (FIELD), the label in it."""
    rng = np.random.default_rng(3)
    img = np.zeros((480, 640), np.uint8)
    cv2.putText(img, header, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 210, 1, cv2.LINE_AA)
    cv2.putText(img, "L12-5 / BREAST", (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 210, 1, cv2.LINE_AA)
    x0, y0, x1, y1 = FIELD
    img[y0 : y1 + 1, x0 : x1 + 1] = rng.gamma(2.0, 22, (y1 - y0 + 1, x1 - x0 + 1)).clip(0, 255)
    for k in range(1, 4):  # depth ruler digits right of the field
        cv2.putText(img, str(k), (x1 + 12, y0 + 100 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 200, 1)
    ty = y1 - 34 * len(label) + 14 if where == "bottom" else y0 + 30
    if where == "below":
        ty = y1 + 40
    for line in label:
        cv2.putText(img, line, (x0 + 16, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 250, 2, cv2.LINE_AA)
        ty += 32
    if calipers:
        cv2.putText(img, "+", (250, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 2)
        cv2.putText(img, "x", (380, 260), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 2)
    if legend:
        cv2.putText(img, legend, (x1 - 150, y0 + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 240, 1)
    return img


# --------------------------------------------------------------------------------------------
# filtering and ordering, with a fake engine (deterministic)


def test_boxes_are_filtered_with_reasons_and_ordered_into_lines() -> None:
    boxes = [
        TextBox("RADIAL", 0.99, (20, 60, 90, 80)),
        TextBox("2:00 3CM FN", 0.97, (130, 30, 250, 52)),
        TextBox("LT BREAST", 0.98, (20, 31, 120, 51)),
        TextBox("D1 1.23 cm", 0.99, (300, 5, 380, 20)),  # measurement legend
        TextBox("+", 0.9, (200, 120, 214, 134)),  # caliper
        TextBox("X", 0.8, (240, 140, 254, 154)),  # caliper
        TextBox("\u5473", 0.7, (10, 150, 24, 164)),  # CJK glyph on a colour bar
        TextBox("TRANS", 0.3, (300, 150, 360, 170)),  # too unsure
        TextBox("3", 0.99, (420, 100, 430, 112)),  # ruler digit, alone
    ]
    engine = FakeEngine(boxes)
    img = np.zeros((300, 500), np.uint8)
    r = read_annotation(img, engine, region=None, estimate_region=False)

    assert r.description == "LT BREAST 2:00 3CM FN RADIAL"
    assert r.lines == ["LT BREAST 2:00 3CM FN", "RADIAL"]
    assert [b.text for b in r.text_boxes] == ["LT BREAST", "2:00 3CM FN", "RADIAL"]
    assert r.parsed == ParsedAnnotation("breast", "left", "radial", "2:00", 3.0)
    reasons = {b.text: b.drop_reason for b in r.all_boxes}
    assert reasons == {
        "RADIAL": None,
        "2:00 3CM FN": None,
        "LT BREAST": None,
        "D1 1.23 cm": "chrome",
        "+": "caliper_mark",
        "X": "caliper_mark",
        "\u5473": "non_ascii",
        "TRANS": "low_score",
        "3": "single_glyph",
    }
    assert r.ocr_ms >= 0
    kept = json.loads(r.text_boxes_json())
    assert [k["text"] for k in kept] == ["LT BREAST", "2:00 3CM FN", "RADIAL"]
    assert len(json.loads(r.text_boxes_json(include_dropped=True))) == len(boxes)


def test_min_score_is_configurable() -> None:
    engine = FakeEngine([TextBox("TRANS", 0.3, (300, 150, 360, 170))])
    img = np.zeros((300, 500), np.uint8)
    assert read_annotation(img, engine, estimate_region=False).parsed.orientation == "unknown"
    low = read_annotation(img, engine, estimate_region=False, min_score=0.2)
    assert low.parsed.orientation == "trans"


def test_a_lone_letter_beside_the_label_is_kept_a_stray_one_is_not() -> None:
    engine = FakeEngine(
        [
            TextBox("L", 0.95, (20, 30, 32, 50)),
            TextBox("BREAST 5:30", 0.98, (40, 30, 160, 50)),
            TextBox("R", 0.99, (400, 200, 412, 216)),  # an orientation marker far away
        ]
    )
    r = read_annotation(np.zeros((300, 500), np.uint8), engine, estimate_region=False)
    assert r.description == "L BREAST 5:30"
    assert r.parsed.laterality == "left"
    assert {b.text: b.drop_reason for b in r.all_boxes}["R"] == "single_glyph"


def test_mixed_ascii_and_cjk_keeps_the_ascii() -> None:
    engine = FakeEngine([TextBox("RT BREAST \u5473 10:00", 0.9, (20, 30, 200, 50))])
    r = read_annotation(np.zeros((300, 500), np.uint8), engine, estimate_region=False)
    assert r.description == "RT BREAST 10:00"


def test_the_whole_screen_is_given_to_the_engine_and_boxes_stay_in_image_coords() -> None:
    # No fixed reading band: the engine sees every pixel, header and margins included.
    engine = FakeEngine([TextBox("LT BREAST", 0.98, (10, 300, 110, 320))])
    img = screen([], where="bottom")
    r = read_annotation(img, engine, region=FIELD)
    assert r.read_box == (0, 0, img.shape[1], img.shape[0])
    assert engine.shapes == [img.shape]
    assert r.text_boxes[0].box == (10, 300, 110, 320)
    assert r.parsed.laterality == "left"


def test_a_label_in_a_screen_corner_away_from_the_field_is_read() -> None:
    # The held-out generator's misses: legible text in the bottom-left corner of the screen.
    engine = FakeEngine(
        [
            TextBox("MCR RAD MAYO BREAST CLINIC", 0.99, (8, 8, 300, 26)),  # header
            TextBox("L12-5 / BREAST", 0.99, (8, 32, 130, 50)),  # probe / preset
            TextBox("RT AXILLA", 0.97, (4, 430, 90, 446)),
            TextBox("TRV", 0.96, (4, 452, 40, 468)),
        ]
    )
    r = read_annotation(screen([]), engine, region=FIELD)
    assert r.description == "RT AXILLA TRV"
    assert r.parsed == ParsedAnnotation("axilla", "right", "trans", None, None)


def test_header_presets_and_names_never_set_a_field() -> None:
    # Nothing on this screen names the side: everything is read, and still no field is set by
    # "RAD" in an institution name, "BREAST" in a preset, or a depth-scale "3".
    engine = FakeEngine(
        [
            TextBox("MCR RAD", 0.99, (8, 8, 70, 26)),
            TextBox("MAYO BREAST CLINIC", 0.99, (200, 8, 360, 26)),
            TextBox("L12-5/BREAST", 0.99, (8, 32, 120, 50)),
            TextBox("Br Gen", 0.99, (560, 32, 620, 50)),
            TextBox("3", 0.99, (552, 300, 560, 312)),
            TextBox("C6 3:BREAST R15 HR 94%", 0.95, (100, 420, 300, 436)),
        ]
    )
    r = read_annotation(screen([]), engine, region=FIELD)
    assert r.parsed == ParsedAnnotation()
    reasons = {b.text: b.drop_reason for b in r.all_boxes}
    assert reasons["MCR RAD"] in ("header", "unknown_words", "chrome_row")
    assert reasons["L12-5/BREAST"] in ("header", "preset", "chrome_row")
    # the numbered preset is chrome by pattern; with or without the rest of the status bar
    assert reasons["C6 3:BREAST R15 HR 94%"] in ("preset", "no_annotation_words")
    assert r.text_boxes == []


def test_a_label_split_over_three_lines_beside_the_marker_is_one_block() -> None:
    engine = FakeEngine(
        [
            TextBox("R BRST", 0.97, (380, 330, 440, 346)),
            TextBox("2 OCLOCK", 0.96, (380, 350, 462, 366)),
            TextBox("3 CMFN SAG", 0.95, (380, 370, 480, 386)),
            TextBox("D1 1.23 cm", 0.99, (110, 80, 190, 96)),  # caliper legend
        ]
    )
    r = read_annotation(screen([]), engine, region=FIELD)
    assert r.lines == ["R BRST", "2 OCLOCK", "3 CMFN SAG"]
    assert r.parsed == ParsedAnnotation("breast", "right", "long", "2:00", 3.0)


class StagedEngine(FakeEngine):
    """Detector and recogniser apart, like RapidOcrEngine: records what it was asked to read."""

    def __init__(self, boxes: list[TextBox]) -> None:
        super().__init__(boxes)
        self.recognised: list[str] = []

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        self.shapes.append(image.shape)
        return np.array(
            [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]] for b in self._boxes()],
            np.float32,
        ).reshape(-1, 4, 2)

    def _boxes(self) -> list[tuple[int, int, int, int]]:
        return [tb.box for tb in self.boxes]

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[TextBox]:
        out = []
        for q in np.asarray(quads).reshape(-1, 4, 2):
            box = (int(q[0, 0]), int(q[0, 1]), int(q[2, 0]), int(q[2, 1]))
            tb = next(t for t in self.boxes if t.box == box)
            self.recognised.append(tb.text)
            out.append(tb)
        return out


def test_blocks_are_recognised_field_first_and_reading_stops_once_the_side_is_known() -> None:
    boxes = [
        TextBox("MAYO CLINIC 05/14/2023 10:15:30", 0.99, (8, 8, 300, 26)),  # header band
        TextBox("LT BREAST 2:00", 0.98, (120, 360, 260, 378)),  # on the field
        TextBox("4", 0.99, (552, 300, 560, 312)),  # a lone depth-scale digit
        TextBox("Frq 12.0", 0.99, (560, 80, 620, 96)),  # parameter panel, five rows
        TextBox("Gn 50", 0.99, (560, 100, 610, 116)),
        TextBox("DR 66", 0.99, (560, 120, 610, 136)),
        TextBox("FR 30", 0.99, (560, 140, 610, 156)),
        TextBox("Map B", 0.99, (560, 160, 610, 176)),
    ]
    engine = StagedEngine(boxes)
    r = read_annotation(screen([]), engine, region=FIELD)
    assert r.parsed.laterality == "left" and r.description == "LT BREAST 2:00"
    assert engine.recognised == ["LT BREAST 2:00"]  # nothing else was worth the time
    reasons = [b.drop_reason for b in r.all_boxes if b.text == ""]
    assert reasons == ["not_read"] * 7

    # a label on the field that names no side: the header band and the panel are not read
    engine = StagedEngine([*boxes[:1], TextBox("RADIAL", 0.98, (120, 360, 190, 378)), *boxes[2:]])
    r = read_annotation(screen([]), engine, region=FIELD, top_pass=False)
    assert engine.recognised == ["RADIAL"]
    assert r.parsed == ParsedAnnotation("unknown", "unknown", "radial", None, None)

    # nothing worth a field on the field: the rest of the screen is read, the header band
    # first, the parameter panel (five stacked rows outside the field) last and only at its
    # ends, a lone glyph never
    engine = StagedEngine([*boxes[:1], TextBox("Freeze", 0.98, (120, 360, 190, 378)), *boxes[2:]])
    r = read_annotation(screen([]), engine, region=FIELD, top_pass=False)
    assert engine.recognised[:2] == ["Freeze", "MAYO CLINIC 05/14/2023 10:15:30"]
    assert set(engine.recognised[2:]) == {"Frq 12.0", "Gn 50", "FR 30", "Map B"}
    assert r.parsed == ParsedAnnotation()
    assert [b.drop_reason for b in r.all_boxes if b.box == (560, 120, 610, 136)] == ["not_read"]


def test_a_label_stacked_on_a_parameter_panel_is_read_whole() -> None:
    panel = [
        TextBox(text, 0.99, (560, 80 + 20 * k, 610, 96 + 20 * k))
        for k, text in enumerate(["Frq 12.0", "Gn 50", "DR 66", "FR 30", "Map B", "E/A 1/1"])
    ]
    label = [  # drawn right under the panel: it joins the panel's block
        TextBox("RT BREAST", 0.98, (560, 200, 636, 218)),
        TextBox("10:00 2CM FN", 0.98, (560, 220, 636, 238)),
    ]
    engine = StagedEngine([*panel, *label])
    r = read_annotation(screen([]), engine, region=FIELD, top_pass=False)
    assert r.parsed == ParsedAnnotation("breast", "right", "unknown", "10:00", 2.0)
    assert r.description == "RT BREAST 10:00 2CM FN"
    # the probe (first and last rows) found annotation words, so the middle was read too
    assert set(engine.recognised) == {tb.text for tb in panel + label}


def test_speckle_taller_than_text_is_not_recognised_and_links_nothing() -> None:
    boxes = [
        TextBox("PHILIPS", 0.99, (8, 8, 70, 26)),
        TextBox("", 0.1, (100, 20, 560, 200)),  # a patch of speckle taken for text
        TextBox("Frq 12.0", 0.99, (560, 80, 620, 96)),
        TextBox("Gn 50", 0.99, (560, 100, 610, 116)),
        TextBox("DR 66", 0.99, (560, 120, 610, 116 + 20)),
        TextBox("RT AXILLA", 0.98, (120, 360, 220, 378)),
    ]
    engine = StagedEngine(boxes)
    r = read_annotation(screen([]), engine, region=FIELD)
    assert engine.recognised == ["RT AXILLA"]
    assert r.parsed == ParsedAnnotation("axilla", "right", "unknown", None, None)
    assert [b.drop_reason for b in r.all_boxes if b.box == (100, 20, 560, 200)] == ["not_text"]


class TwoSizeEngine(StagedEngine):
    """A detector that finds ``small`` at the small input size and everything at 800 px,
    like a thin label on a large screen shrunk to 640 px."""

    def __init__(self, small: list[TextBox], label: TextBox) -> None:
        super().__init__([*small, label])
        self.small = small
        self.sides: list[int | None] = []

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        self.sides.append(limit_side_len)
        return super().detect(image, limit_side_len)

    def _boxes(self) -> list[tuple[int, int, int, int]]:
        found = self.small if (self.sides[-1] or 800) < 800 else self.boxes
        return [tb.box for tb in found]


def test_the_detector_runs_small_first_and_large_only_without_a_side() -> None:
    big = np.zeros((768, 1024), np.uint8)
    chrome = [
        TextBox("Freeze", 0.98, (300, 700, 360, 716)),
        TextBox("PHILIPS", 0.99, (8, 8, 70, 26)),
    ]
    label = TextBox("LT BREAST 3:00", 0.97, (400, 600, 560, 624))
    engine = TwoSizeEngine(chrome, label)
    r = read_annotation(big, engine, region=(200, 60, 900, 680), top_pass=False)
    assert engine.sides == [640, 800]
    assert r.parsed.laterality == "left" and r.description == "LT BREAST 3:00"
    # what the first pass recognised is not recognised again
    assert sorted(engine.recognised) == ["Freeze", "LT BREAST 3:00", "PHILIPS"]

    # found at the small size: one detection only
    engine = TwoSizeEngine([*chrome, label], label)
    r = read_annotation(big, engine, region=(200, 60, 900, 680), top_pass=False)
    assert engine.sides == [640] and r.parsed.laterality == "left"
    # a screen no larger than the small size is detected once, at full size
    engine = TwoSizeEngine(chrome, label)
    small = np.zeros((480, 640), np.uint8)
    read_annotation(small, engine, estimate_region=False, top_pass=False, det_first_scale=1.0)
    assert engine.sides == [800]
    # ... unless the first pass may shrink it (det_first_scale): 0.8 x 640 = 512
    engine = TwoSizeEngine(chrome, label)
    read_annotation(small, engine, estimate_region=False, top_pass=False, det_first_scale=0.8)
    assert engine.sides == [512, 800]


def test_estimate_field_finds_the_speckle_not_the_header() -> None:
    box = estimate_field(screen(["LT BREAST"]))
    assert box is not None
    x0, y0, x1, y1 = box
    assert abs(x0 - FIELD[0]) <= 2 and abs(y0 - FIELD[1]) <= 2
    assert abs(x1 - FIELD[2]) <= 2 and abs(y1 - FIELD[3]) <= 2
    assert estimate_field(np.zeros((100, 100), np.uint8)) is None


def test_rgb_and_single_channel_inputs_are_accepted() -> None:
    engine = FakeEngine([TextBox("RT AXILLA", 0.9, (5, 5, 90, 20))])
    grey = np.zeros((100, 200), np.uint8)
    for img in (grey, grey[:, :, None], np.repeat(grey[:, :, None], 3, axis=2)):
        assert read_annotation(img, engine, estimate_region=False).parsed.area == "axilla"
    with pytest.raises(ValueError, match="expected an H x W"):
        read_annotation(np.zeros((4, 4, 4, 4), np.uint8), engine)


# --------------------------------------------------------------------------------------------
# end to end with RapidOCR


@pytest.fixture(scope="module")
def rapid() -> RapidOcrEngine:
    return shared_rapidocr()


def test_end_to_end_label_with_chrome_calipers_and_legend(rapid: RapidOcrEngine) -> None:
    img = screen(["LT BREAST 2:00 3CM FN", "RADIAL"], calipers=True, legend="D1 1.23 cm")
    r = read_annotation(img, rapid, region=FIELD)
    assert r.description == "LT BREAST 2:00 3CM FN RADIAL"
    assert r.parsed == ParsedAnnotation("breast", "left", "radial", "2:00", 3.0)
    # the legend is read only when its block comes before the label's (the side stops the
    # reading); read, it is chrome
    assert all(b.drop_reason == "chrome" for b in r.all_boxes if "1.23" in b.text)
    # whatever the engine made of the caliper glyphs, none reached the description
    assert all(b.text not in ("+", "x", "X") for b in r.text_boxes)
    # the header (MCR RAD, MAYO BREAST CLINIC, L12-5 / BREAST) did not reach the description
    assert all(b.box[1] >= FIELD[1] - 6 for b in r.text_boxes)


def test_end_to_end_without_region_skips_the_header(rapid: RapidOcrEngine) -> None:
    img = screen(["RT AXILLA", "TRANS"], where="top")
    r = read_annotation(img, rapid, region=None)
    assert r.description == "RT AXILLA TRANS"
    assert r.parsed == ParsedAnnotation("axilla", "right", "trans", None, None)


def test_end_to_end_capture_without_annotation_gives_no_fields(rapid: RapidOcrEngine) -> None:
    r = read_annotation(screen([], legend="D1 0.85 cm"), rapid, region=FIELD)
    assert r.parsed == ParsedAnnotation()
    assert r.description == ""


class StripOnlyEngine(FakeEngine):
    """Finds the label only when shown a short strip, like the detector on a bright band."""

    def read(self, image: np.ndarray) -> list[TextBox]:
        self.shapes.append(image.shape)
        if image.shape[0] > 150:
            return [TextBox("RADIAL", 0.99, (10, 250, 80, 270))] if len(self.shapes) == 1 else []
        return [TextBox("LT BREAST 2:00", 0.95, (10, 8, 160, 28))]


def test_top_strip_second_pass_only_when_the_side_is_missing() -> None:
    img = screen([])
    engine = StripOnlyEngine([])
    r = read_annotation(img, engine, region=FIELD)
    assert r.description == "LT BREAST 2:00 RADIAL"
    assert r.parsed == ParsedAnnotation("breast", "left", "radial", "2:00", None)
    assert len(engine.shapes) >= 2 and all(s[0] <= 96 for s in engine.shapes[1:])
    assert [b.text for b in r.text_boxes].count("LT BREAST 2:00") == 1

    off = StripOnlyEngine([])
    assert read_annotation(img, off, region=FIELD, top_pass=False).description == "RADIAL"
    assert len(off.shapes) == 1

    found = FakeEngine([TextBox("RT BREAST", 0.9, (10, 200, 100, 220))])
    read_annotation(img, found, region=FIELD)
    assert len(found.shapes) == 1  # the side was read: no second pass


def test_overlapping_tiles_keep_each_line_once() -> None:
    whole = TextBox("LT BREAST 2:00", 0.95, (10, 40, 160, 60))
    cut = TextBox("LT BREAST", 0.9, (10, 44, 110, 60))  # the same line, clipped by a tile edge
    other = TextBox("RADIAL", 0.99, (10, 70, 80, 90))
    assert _dedupe([cut, whole, other]) == [whole, other]


def test_top_hat_darkens_a_bright_band_and_keeps_thin_strokes() -> None:
    rng = np.random.default_rng(5)
    band = (200 + rng.normal(0, 6, (60, 300))).clip(0, 255).astype(np.uint8)
    cv2.putText(band, "LT BREAST", (10, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    ink = band == 255
    hat = _top_hat(band, 600)
    # the band goes dark while the strokes stay bright: the difference grows and the ratio of
    # stroke to background (what the detector's normalisation sees) goes from ~1.3 to > 4
    before = float(band[ink].mean() - np.median(band[~ink]))
    after = float(hat[ink].mean() - np.median(hat[~ink]))
    assert np.median(hat[~ink]) < 30
    assert after > before
    assert hat[ink].mean() > 4 * max(1.0, float(np.median(hat[~ink])))


class TopHatOnlyEngine(FakeEngine):
    """Finds the label only once the bright band under it is removed (a dark tile)."""

    def read(self, image: np.ndarray) -> list[TextBox]:
        self.shapes.append(image.shape)
        if image.shape[0] <= 150 and float(np.median(image)) < 30:
            return [TextBox("LT BREAST TRANS", 0.9, (10, 8, 160, 28))]
        return []


def test_top_hat_strip_pass_is_the_last_resort() -> None:
    img = screen([])
    x0, y0, x1, _ = FIELD
    img[y0 : y0 + 60, x0 : x1 + 1] = 200  # the bright near-field band
    engine = TopHatOnlyEngine([])
    r = read_annotation(img, engine, region=FIELD)
    assert r.parsed == ParsedAnnotation("breast", "left", "trans", None, None)
    # whole read, then gamma tiles, then top-hat tiles: every tile is a short strip
    assert len(engine.shapes) >= 3 and all(s[0] <= 96 for s in engine.shapes[1:])

    found = StripOnlyEngine([])
    read_annotation(img, found, region=FIELD)
    calls = len(found.shapes)
    assert found.shapes[-1][0] <= 96 and calls <= 1 + 2 * 3  # stopped after the gamma tiles

"""The annotation sampler: realistic variety, and truth that follows from the text."""

from __future__ import annotations

import re

import numpy as np
import pytest

from casbusi_assets.synthetic.annotations import probe_angle, quadrant_hour, sample_annotation

AREA_WORDS = {
    "axilla": ("AXILLA",),
    "supraclavicular": ("SUPRACLAV", "SUPRA CLAV"),
    "subclavicular": ("INFRACLAV", "SUBCLAV"),
}
ORIENT_WORDS = {
    "radial": {"RADIAL", "RAD"},
    "anti-radial": {"ANTI-RAD", "ANTI", "ARAD", "ANTIRADIAL", "ANTI-RADIAL"},
    "trans": {"TRANS", "TRV", "TRANSVERSE"},
    "long": {"LONG", "SAG", "LONGITUDINAL"},
    "oblique": {"OBL", "OBLIQUE"},
}


def _samples(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    areas = ["breast"] * 8 + ["axilla", "supraclavicular", "subclavicular"]
    out = []
    for _ in range(n):
        side = str(rng.choice(["left", "right"]))
        area = str(rng.choice(areas))
        out.append((side, area, sample_annotation(rng, side, area)))
    return out


def test_variety_comes_from_the_sampler():
    texts = {a.text for _, _, a in _samples(600)}
    assert len(texts) > 300
    multi = [a for _, _, a in _samples(300) if len(a.lines) > 1]
    assert 50 < len(multi) < 300


def test_truth_follows_from_the_words():
    for side, area, a in _samples(800, seed=1):
        upper = a.text.upper()
        words = set(upper.replace("\n", " ").split())
        assert a.laterality in (side, "unknown")
        if a.laterality == "unknown":
            assert not {"LT", "RT", "LEFT", "RIGHT", "L", "R"} & words
        if a.orientation == "unknown":
            assert not any(w in words for ws in ORIENT_WORDS.values() for w in ws)
        else:
            assert ORIENT_WORDS[a.orientation] & words, a.text
        if area != "breast":
            assert a.area == area and any(w in upper for w in AREA_WORDS[area])
        if a.nipple_dist_cm is not None:
            m = re.search(r"(\d+)(?:-(\d+)|\.(5))?\s*CM", upper)
            assert m, a.text
            lo = float(m.group(1))
            expected = lo + 0.5 if (m.group(2) or m.group(3)) else lo
            assert a.nipple_dist_cm == expected
        if a.clock_pos in ("uoq", "uiq", "loq", "liq"):
            assert a.clock_pos.upper() in words


def test_ranges_give_the_midpoint():
    found = [a for _, _, a in _samples(1500, seed=2) if re.search(r"\d+-\d+", a.text)]
    assert found and all(a.nipple_dist_cm % 1 == 0.5 for a in found)


@pytest.mark.parametrize(
    ("orientation", "hour", "angle"),
    [
        ("trans", None, 0.0),
        ("long", None, 90.0),
        ("radial", 3.0, 0.0),
        ("radial", 12.0, 90.0),
        ("anti-radial", 3.0, 90.0),
        ("radial", 1.5, 45.0),
        ("anti-radial", 1.5, 135.0),
    ],
)
def test_probe_angle(orientation, hour, angle):
    assert probe_angle(orientation, hour, np.random.default_rng(0)) == pytest.approx(angle)


def test_quadrant_hours_mirror_between_breasts():
    assert quadrant_hour("uoq", "left") == 1.5 and quadrant_hour("uoq", "right") == 10.5
    assert quadrant_hour("liq", "left") == 7.5 and quadrant_hour("liq", "right") == 4.5


# --------------------------------------------------------------------------------------------
# the wide vocabulary of the varied style


def _wide(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    areas = ["breast"] * 8 + ["axilla", "supraclavicular", "subclavicular"]
    out = []
    for _ in range(n):
        side = str(rng.choice(["left", "right"]))
        area = str(rng.choice(areas))
        out.append((side, area, sample_annotation(rng, side, area, wide=True)))
    return out


def test_wide_vocabulary_uses_the_forms_of_practice():
    words = " / ".join(a.text.replace("\n", " / ") for _, _, a in _wide(1500))
    for form in ("SAG", "SAGITTAL", "TRV", "TRANSVERSE", "ARAD", "ANTI-RAD", "OBL", "BRST"):
        assert re.search(rf"(?<![A-Z-]){form}(?![A-Z])", words), form
    for pattern in (
        r"\d O'CLOCK",
        r"\d OCLOCK",
        r"\dOC\b",
        r"\d 00\b",
        r"\d CMFN",
        r"FN \d",
        r"\d-\d+CM\b",
        r"\bSA\b",
        r"\bAX\b",
        r"SUPRACLAV",
        r"INFRACLAV",
        r"SUBAREOLAR",
        r"RETROAREOLAR",
        r"(?<![A-Z])L BR(?![A-Z])",
    ):
        assert re.search(pattern, words), pattern
    lines = [len(a.lines) for _, _, a in _wide(600)]
    assert {1, 2, 3} <= set(lines)


def test_wide_truth_is_what_the_parser_reads_from_the_words():
    # The truth of every wide annotation is what a perfect reader concludes from its text:
    # the OCR parser, given the exact words, must agree field by field.
    from casbusi_assets.ocr.parsing import parse_annotation

    for _, _, a in _wide(2000, seed=11):
        p = parse_annotation(a.text)
        got = (p.area, p.laterality, p.orientation, p.clock_pos, p.nipple_dist_cm)
        want = (a.area, a.laterality, a.orientation, a.clock_pos, a.nipple_dist_cm)
        assert got == want, a.text


def test_classic_draws_are_unchanged_by_the_wide_option():
    a = sample_annotation(np.random.default_rng(5), "left", "breast")
    b = sample_annotation(np.random.default_rng(5), "left", "breast", wide=False)
    assert a == b

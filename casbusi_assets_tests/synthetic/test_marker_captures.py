"""Body-marker variety (varied style) and the orientation-model captures built on it."""

from __future__ import annotations

from collections import Counter

import numpy as np

from casbusi_assets.ocr.parsing import parse_annotation
from casbusi_assets.synthetic.annotations import Annotation
from casbusi_assets.synthetic.marker_captures import (
    iter_marker_captures,
    marker_label,
    render_with_marker,
    strip_orientation,
)


def _ann(orientation: str, hour: float | None, lines: tuple[str, ...]) -> Annotation:
    return Annotation(
        lines=lines,
        area="breast",
        laterality="left",
        orientation=orientation,
        clock_pos=None if hour is None else f"{int(hour)}:00",
        nipple_dist_cm=None,
        marker_hour=hour,
    )


def test_stripping_removes_every_orientation_word_and_keeps_the_rest() -> None:
    for lines in (
        ("LT BREAST 2:00 3CM FN", "ANTI-RAD"),
        ("Lt Breast 2:00 Radial",),
        ("ANTI RADIAL LT BREAST 2:00",),
        ("LT BR 2:00 TRV MASS",),
    ):
        a = strip_orientation(_ann("radial", 2.0, lines))
        parsed = parse_annotation(a.text)
        assert parsed.orientation == "unknown", a.text
        assert parsed.laterality == "left" and parsed.clock_pos == "2:00", a.text
        assert a.orientation == "radial"  # the truth the pictogram draws is untouched


def test_a_marker_shows_no_orientation_without_one_or_without_a_clock_for_radial() -> None:
    assert marker_label(_ann("trans", None, ("X",)), True) == "trans"
    assert marker_label(_ann("radial", 2.0, ("X",)), True) == "radial"
    assert marker_label(_ann("radial", None, ("X",)), True) == "none"
    assert marker_label(_ann("unknown", 2.0, ("X",)), True) == "none"
    assert marker_label(_ann("long", 2.0, ("X",)), False) == "none"
    assert marker_label(None, True) == "none"


def _corner(mc, w: int, h: int) -> str:
    x0, y0, x1, y1 = mc.marker_box
    cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    return ("top" if cy < 0.5 else "bottom") + ("left" if cx < 0.5 else "right")


def test_varied_markers_move_around_the_screen_and_stay_on_it() -> None:
    caps = list(iter_marker_captures(31, 40, text="strip", marker_share=1.0, varied_share=1.0))
    assert len(caps) == 40
    corners = Counter()
    sizes = set()
    for mc in caps:
        h, w = mc.image.shape[:2]
        x0, y0, x1, y1 = mc.marker_box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        corners[_corner(mc, w, h)] += 1
        sizes.add(x1 - x0)
        # the pictogram is drawn where the box says: bright strokes inside it
        grey = mc.image.max(axis=-1) if mc.image.ndim == 3 else mc.image
        assert grey[y0:y1, x0:x1].max() >= 150
    assert len(corners) == 4, corners  # every quadrant of the screen gets markers
    assert len(sizes) > 10


def test_classic_marker_stays_in_the_bottom_right_corner_of_the_field() -> None:
    caps = list(iter_marker_captures(31, 12, text="keep", marker_share=1.0, varied_share=0.0))
    for mc in caps:
        h, w = mc.image.shape[:2]
        assert _corner(mc, w, h) == "bottomright"
    # and a varied rendering of the same screens puts some elsewhere
    varied = list(iter_marker_captures(31, 12, text="keep", marker_share=1.0, varied_share=1.0))
    assert any(_corner(mc, *mc.image.shape[1::-1]) != "bottomright" for mc in varied)


def test_marker_captures_are_deterministic() -> None:
    a = list(iter_marker_captures(32, 3, text="blank"))
    b = list(iter_marker_captures(32, 3, text="blank"))
    assert [x.label for x in a] == [y.label for y in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert all(parse_annotation(x.text).orientation == "unknown" for x in a)


def test_render_with_marker_draws_the_requested_orientation() -> None:
    mc = render_with_marker(_ann("long", 8.0, ("LT BREAST 8:00", "LONG")), seed=5, style="varied")
    assert mc.label == "long" and mc.probe_angle_deg == 90.0
    assert mc.text_orientation == "unknown"
    none = render_with_marker(_ann("long", 8.0, ("LT BR",)), seed=5, body_marker=False)
    assert none.label == "none" and none.marker_box is None

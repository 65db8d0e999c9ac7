"""Which orientation labels draw the same body-marker pictogram (the plane-correct measure)."""

from __future__ import annotations

import numpy as np
import pytest

from casbusi_assets.cleaning import orientation as om
from casbusi_assets.synthetic.annotations import Annotation, probe_angle
from casbusi_assets.synthetic.marker_captures import render_with_marker

# Seed 4041 is used by neither training (101-110), validation (202) nor any benchmark.
SEED = 4041


def _ann(orientation: str, hour: float | None) -> Annotation:
    clock = None if hour is None else f"{int(hour)}:{int(round(hour % 1 * 60)):02d}"
    return Annotation(
        lines=(f"LT BREAST {clock or ''}".strip(),),
        area="breast",
        laterality="left",
        orientation=orientation,
        clock_pos=clock,
        nipple_dist_cm=None,
        marker_hour=hour,
    )


@pytest.mark.parametrize(
    ("angle", "hour", "labels"),
    [
        (0.0, 3.0, {"trans", "radial"}),  # radial at 3:00 is horizontal
        (0.0, 9.0, {"trans", "radial"}),
        (90.0, 12.0, {"long", "radial"}),
        (90.0, 6.0, {"long", "radial"}),
        (0.0, 12.0, {"trans", "anti-radial"}),  # across the radius at 12:00
        (90.0, 3.0, {"long", "anti-radial"}),
        (45.0, 1.5, {"oblique", "radial"}),  # the half hours: radial is oblique
        (135.0, 1.5, {"oblique", "anti-radial"}),
        (45.0, 7.5, {"oblique", "radial"}),
        (30.0, 2.0, {"radial"}),  # 2:00: 15 degrees from oblique, a different picture
        (120.0, 2.0, {"anti-radial"}),
        (45.0, 2.0, {"oblique"}),
        (0.0, 2.0, {"trans"}),
        (0.0, None, {"trans"}),  # off the clock face (axilla): radial is not defined
        (135.0, None, {"oblique"}),
        (0.4, 3.0, {"trans", "radial"}),  # rounding of the stored angle
        (180.0, 3.0, {"trans", "radial"}),  # a bar has no direction
    ],
)
def test_same_picture_labels(angle: float, hour: float | None, labels: set[str]) -> None:
    assert om.same_picture_labels(angle, hour) == frozenset(labels)
    assert om.is_ambiguous(angle, hour) == (len(labels) > 1)


def test_plane_correct_accepts_the_other_label_of_the_same_picture_only() -> None:
    assert om.plane_correct("trans", "radial", 0.0, 3.0)
    assert om.plane_correct("radial", "trans", 0.0, 3.0)
    assert om.plane_correct("radial", "radial", 0.0, 3.0)
    assert not om.plane_correct("long", "radial", 0.0, 3.0)
    assert not om.plane_correct("anti-radial", "radial", 0.0, 3.0)
    assert not om.plane_correct(None, "radial", 0.0, 3.0)
    # at 2:00 a radial bar (30 degrees) is not an oblique one (45): strict there
    assert not om.plane_correct("oblique", "radial", 30.0, 2.0)
    assert om.plane_correct("oblique", "oblique", 45.0, None)


@pytest.mark.parametrize("label", om.ORIENTATION_CLASSES)
def test_the_angles_are_the_ones_the_generator_draws(label: str) -> None:
    # label_angles is the domain's statement of the generator's probe_angle, at every hour the
    # annotations use (whole, half and quarter hours)
    rng = np.random.default_rng(0)
    for hour in np.arange(0.25, 12.01, 0.25):
        for _ in range(4):
            drawn = probe_angle(label, float(hour), rng)
            assert any(om._axis_diff(drawn, a) < 1e-6 for a in om.label_angles(label, hour))
            assert label in om.same_picture_labels(drawn, float(hour))


@pytest.mark.parametrize(
    ("a", "b", "hour"),
    [("radial", "trans", 3.0), ("radial", "long", 12.0), ("anti-radial", "trans", 12.0)],
)
def test_labels_called_the_same_picture_render_the_same_pixels(a: str, b: str, hour: float) -> None:
    # Without text the two captures are pixel for pixel identical: no reader can tell them apart.
    ia = render_with_marker(_ann(a, hour), seed=SEED, index=1, text="blank", style="varied")
    ib = render_with_marker(_ann(b, hour), seed=SEED, index=1, text="blank", style="varied")
    assert ia.probe_hour == ib.probe_hour == hour
    assert np.array_equal(ia.image, ib.image)


def test_labels_called_different_pictures_render_different_pixels() -> None:
    ia = render_with_marker(_ann("radial", 2.0), seed=SEED, index=1, text="blank")
    ib = render_with_marker(_ann("trans", 2.0), seed=SEED, index=1, text="blank")
    assert not om.is_ambiguous(ia.probe_angle_deg, ia.probe_hour)
    assert not np.array_equal(ia.image, ib.image)


def test_a_probe_without_a_clock_position_records_where_it_was_drawn() -> None:
    # trans with no clock position: the generator puts the probe at a random hour; the capture
    # records it, so a trans bar that happens to lie along the radius is known as ambiguous.
    mc = render_with_marker(_ann("trans", None), seed=SEED, index=2, text="blank")
    assert mc.marker_hour is None
    assert mc.probe_hour is not None and 0.0 <= mc.probe_hour <= 12.0

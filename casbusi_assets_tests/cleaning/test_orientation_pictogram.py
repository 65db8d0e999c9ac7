"""What the orientation model can read: the generator's probe icon and the threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from casbusi_assets.cleaning import orientation as om
from casbusi_assets.synthetic.annotations import Annotation
from casbusi_assets.synthetic.scanner_screen import MarkerLook, _draw_body_marker


def _probe_extent(look: MarkerLook, size: int, angle: float) -> tuple[int, int]:
    """(length, width) in px of the probe drawn at `angle` (0 or 90): the ink that a probe at
    the other right angle does not share (the outline and nipple cancel out)."""
    ann = Annotation(("X",), "breast", "left", "trans", "4:00", None, 4.0)
    imgs = []
    for a in (angle, 90.0 - angle):
        img = np.zeros((200, 200), np.uint8)
        _draw_body_marker(img, np.random.default_rng(3), 100, 100, size, ann, a, (255,), look)
        imgs.append(img.astype(np.int16))
    ys, xs = np.nonzero(imgs[0] - imgs[1] > 60)
    if len(xs) == 0:
        return 0, 0  # the two probes drew the same pixels: no angle to read at all
    w, h = int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1
    return (w, h) if angle == 0.0 else (h, w)


@pytest.mark.parametrize("box", [False, True])
@pytest.mark.parametrize("size", [36, 48, 80])
def test_a_probe_icon_is_clearly_longer_than_wide_so_its_angle_can_be_read(
    box: bool, size: int
) -> None:
    # The thickest, shortest probe the varied look samples (4 px, 0.45 of the radius): before
    # the cap a 36 px marker got an 8 x 8 px "box" drawn pixel for pixel the same at 0 and 90
    # degrees (trans and long the same picture).
    look = MarkerLook(probe_px=4, probe_len=0.45, probe_box=box, nipple=False, tail=False)
    for angle in (0.0, 90.0):
        length, width = _probe_extent(look, size, angle)
        assert length >= 2.0 * width, (angle, length, width)


def test_the_classic_probe_is_drawn_as_before() -> None:
    # The cap never binds on the classic look (bar max(2, size // 18) px, 0.55 of the radius).
    for size in (44, 60, 90):
        length, width = _probe_extent(MarkerLook(nipple=False, tail=False), size, 0.0)
        assert width <= max(2, size // 18) + 2
        assert length >= int(size / 2 * 0.55) - 1


def _table_inputs(conf_right: list[float], conf_wrong: list[float], n_none: int):
    """Probabilities for images the model reads right (label trans, argmax trans), wrong (label
    long, argmax trans) and images with nothing to read (label none, low confidence)."""
    t = om.MODEL_CLASSES.index("trans")
    rows, labels = [], []
    for c, lab in [(c, "trans") for c in conf_right] + [(c, "long") for c in conf_wrong]:
        p = np.full(len(om.MODEL_CLASSES), (1 - c) / (len(om.MODEL_CLASSES) - 1))
        p[t] = c
        rows.append(p)
        labels.append(om.MODEL_CLASSES.index(lab))
    for _ in range(n_none):
        p = np.full(len(om.MODEL_CLASSES), 0.02)
        p[om.MODEL_CLASSES.index("none")] = 0.9
        rows.append(p)
        labels.append(om.MODEL_CLASSES.index("none"))
    probs = np.array(rows, np.float32)
    return probs, np.ones(len(probs), np.float32), np.array(labels)


def test_the_threshold_rule_takes_the_widest_coverage_that_is_95_percent_right() -> None:
    # 100 right answers at 0.5-0.99 confidence, 9 wrong ones (6 at 0.55, 3 at 0.62): every
    # threshold up to 0.62 labels a wrong one; above it all labelled are right.
    right = list(np.linspace(0.5, 0.99, 100))
    wrong = [0.55] * 6 + [0.62] * 3
    probs, pm, labels = _table_inputs(right, wrong, 20)
    table = om.threshold_table(probs, pm, labels, [0.5, 0.55, 0.6, 0.65, 0.7, 0.9])
    by_t = {r["threshold"]: r for r in table}
    assert by_t[0.5]["coverage"] == 1.0
    assert by_t[0.5]["covered_accuracy"] == pytest.approx(100 / 109)
    assert by_t[0.65]["covered_accuracy"] == 1.0
    assert by_t[0.5]["none_filled"] == 0.0
    chosen, reached = om.choose_min_confidence(table, 0.95, min_covered=30)
    assert reached
    # 0.6 is 96.3% right on 82 images, but its lower one-SE bound (94.2%) misses 95%.
    assert by_t[0.6]["covered_accuracy"] > 0.95 > by_t[0.6]["covered_accuracy_lower"]
    assert chosen["threshold"] == 0.65
    assert chosen["coverage"] == max(r["coverage"] for r in table if r["threshold"] >= 0.65)


def test_the_threshold_rule_says_so_when_nothing_reaches_the_target() -> None:
    probs, pm, labels = _table_inputs([0.9] * 20, [0.95] * 20, 0)
    table = om.threshold_table(probs, pm, labels, [0.5, 0.8, 0.99])
    chosen, reached = om.choose_min_confidence(table, 0.95)
    assert not reached
    assert chosen["threshold"] == 0.99  # the strictest: fill in as little as possible

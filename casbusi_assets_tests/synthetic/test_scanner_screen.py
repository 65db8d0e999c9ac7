"""Screen rendering: the varied style's sector / curvilinear fans inside the declared field."""

from __future__ import annotations

import numpy as np
import pytest

from casbusi_assets.synthetic import scanner_screen as ss
from casbusi_assets.synthetic.scanner_screen import (
    CaptureSpec,
    SectorLook,
    render_capture,
    sample_sector_look,
)
from casbusi_assets_tests.conftest import philips_capture_spec


def _spec(style: str = "varied", capture: str = "grayscale") -> CaptureSpec:
    return philips_capture_spec(capture=capture, style=style)


def _render(monkeypatch, look: SectorLook | None, seed: int = 7, style: str = "varied"):
    monkeypatch.setattr(ss, "sample_sector_look", lambda rng: look)
    return render_capture(_spec(style), np.random.default_rng(seed))


def _field(r) -> tuple[int, int, int, int]:
    g = r.regions[0]
    return g.x0, g.y0, g.x1 + 1, g.y1 + 1


def test_sector_looks_are_sampled_on_part_of_the_screens():
    rng = np.random.default_rng(0)
    looks = [sample_sector_look(rng) for _ in range(400)]
    drawn = [lk for lk in looks if lk is not None]
    assert 0.3 < len(drawn) / len(looks) < 0.5
    assert {lk.shape for lk in drawn} == {"sector", "convex"}
    deep = [lk for lk in drawn if lk.echo_share < 1.0]
    assert deep and all(0.15 <= lk.echo_share <= 0.6 for lk in deep)
    assert {lk.fan_level for lk in drawn} == {0, 1, 2, 3}
    assert any(lk.screen_level > 0 for lk in drawn)


@pytest.mark.parametrize("fan_level", [0, 2])
def test_a_deep_fan_is_black_or_dim_below_its_echo_and_the_region_stays_declared(
    monkeypatch, fan_level
):
    look = SectorLook("sector", 0.05, 1.0, echo_share=0.3, fan_level=fan_level)
    r = _render(monkeypatch, look)
    plain = _render(monkeypatch, None)
    assert r.sector == look and plain.sector is None
    # The declared region (the truth field) is the same rectangle with or without the fan.
    assert _field(r) == _field(plain)
    x0, y0, x1, y1 = _field(r)
    img = r.frames[0]
    fh, cx = y1 - y0, (x0 + x1) // 2
    # Echo near the top of the fan's centre line; below 40% of the depth only the fan's level.
    assert img[y0 + 5 : y0 + int(0.2 * fh), cx - 20 : cx + 20].mean() > 30
    deep = img[y0 + int(0.4 * fh) : y1 - 10, cx - 20 : cx + 20]
    assert set(np.unique(deep)) == {fan_level}
    # Outside the fan (a top corner of the field) the screen's black.
    assert img[y0 + 2 : y0 + 12, x0 + 2 : x0 + 12].max() == 0


def test_the_fan_leaves_everything_outside_the_field_alone(monkeypatch):
    # Its own random stream: the chrome (header, panel, ruler) is drawn exactly as before.
    look = SectorLook("convex", 0.8, 1.1, echo_share=0.5, fan_level=1)
    r = _render(monkeypatch, look, seed=11)
    plain = _render(monkeypatch, None, seed=11)
    x0, y0, x1, y1 = _field(r)
    outside = np.ones(r.frames[0].shape, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(r.frames[0][outside], plain.frames[0][outside])


def test_a_field_darker_than_its_screen(monkeypatch):
    look = SectorLook("sector", 0.05, 0.9, echo_share=1.0, fan_level=0, screen_level=2)
    r = _render(monkeypatch, look)
    x0, y0, x1, y1 = _field(r)
    img = r.frames[0]
    assert img[y0 + 2 : y0 + 12, x0 + 2 : x0 + 12].max() == 0  # field corner
    outside = np.ones(img.shape, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert img[outside].min() == 2  # everywhere around the field, chrome included


def test_classic_screens_never_get_a_fan():
    r = render_capture(_spec("classic"), np.random.default_rng(3))
    assert r.sector is None

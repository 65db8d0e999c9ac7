from __future__ import annotations

import cv2
import numpy as np

from casbusi_assets.cleaning.quality import darkness, green_cast, judge_corrupt, pixel_hash


def _rgb(r: int, g: int, b: int) -> np.ndarray:
    img = np.zeros((30, 40, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = r, g, b
    img[5:10, 5:10] = 250  # some structure, so it is not blank
    return img


def test_green_cast_is_the_originals_rule_with_its_margin():
    assert green_cast(_rgb(20, 60, 20))
    assert not green_cast(_rgb(50, 60, 50))  # exactly +10: not above the margin
    assert not green_cast(_rgb(20, 60, 55))  # green above red only
    assert not green_cast(np.zeros((4, 4), np.uint8))


def test_corrupt_verdicts():
    assert judge_corrupt(None, decode_error="boom").reason == "decode_failed"
    assert judge_corrupt(None).reason == "unreadable_png"
    assert judge_corrupt(np.full((8, 8), 7, np.uint8)).reason == "blank"
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    # the PNG was stored grey: the green cast is judged on the original colour pixels
    assert judge_corrupt(grey, original_colour=_rgb(20, 80, 20)).reason == "green_cast"
    assert not judge_corrupt(grey, original_colour=_rgb(60, 60, 60)).is_corrupt


def test_darkness_counts_the_field_only():
    img = np.full((100, 100), 200, np.uint8)
    img[:, :50] = 10  # the left half is black
    assert darkness(img, None) == 50.0
    assert darkness(img, (50, 0, 50, 100)) == 0.0
    assert darkness(img, (0, 0, 50, 100)) == 100.0
    assert darkness(img, (25, 0, 50, 100), level=9) == 0.0


def test_pixel_hash_sees_shape_and_values():
    a = np.zeros((4, 6), np.uint8)
    assert pixel_hash(a) == pixel_hash(a.copy())
    assert pixel_hash(a) != pixel_hash(a.reshape(6, 4))
    b = a.copy()
    b[0, 0] = 1
    assert pixel_hash(a) != pixel_hash(b)


def _sector(dim: int = 0, gain: int = 120) -> np.ndarray:
    """A 200x200 field holding a sector fan of speckle (apex at the top), black outside it."""
    rng = np.random.default_rng(3)
    img = np.full((200, 200), dim, np.uint8)
    fan = np.zeros((200, 200), np.uint8)
    cv2.fillConvexPoly(fan, np.array([[100, 0], [0, 199], [199, 199]], np.int32), 1)
    speckle = rng.integers(gain // 2, gain, size=img.shape).astype(np.uint8)
    img[fan > 0] = speckle[fan > 0]
    return img


def test_a_fans_black_corners_do_not_make_it_dark():
    from casbusi_assets.cleaning.quality import field_darkness

    img = _sector()
    # The original's measure counts the never-scanned corners: half the box is black.
    assert darkness(img, None) > 45
    assert field_darkness(img, None) < 5


def test_a_capture_with_the_gain_down_is_still_dark():
    from casbusi_assets.cleaning.quality import field_darkness

    rng = np.random.default_rng(4)
    dim = rng.integers(0, 24, size=(200, 200)).astype(np.uint8)  # dim speckle all over
    assert field_darkness(dim, None) > 65
    assert field_darkness(_sector(gain=24), None) > 65  # a dim fan is dark inside the fan too
    assert field_darkness(np.zeros((50, 50), np.uint8), None) == 100.0  # nothing lit at all

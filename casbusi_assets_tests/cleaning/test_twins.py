from __future__ import annotations

import numpy as np

from casbusi_assets.cleaning.quality import pixel_hash
from casbusi_assets.cleaning.twins import (
    TwinCandidate,
    field_distance,
    field_distances,
    find_twins,
)

FIELD = (40, 30, 240, 180)
REL = 0.3  # the default twin_max_relative_distance


def _speckle(seed: int, shape=(240, 320)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.rayleigh(40, size=shape).clip(0, 255).astype(np.uint8)
    img[:20] = 0  # a dark header band outside the field
    return img


def _twin_of(img: np.ndarray, seed: int = 9) -> np.ndarray:
    """The same frozen frame re-captured: ±1 grey-level noise inside the field."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.int16)
    x, y, w, h = FIELD
    out[y : y + h, x : x + w] += rng.integers(-1, 2, size=(h, w), dtype=np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def _with_calipers(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    for cx, cy in ((90, 80), (200, 150)):
        out[cy - 6 : cy + 7, cx] = 255
        out[cy, cx - 6 : cx + 7] = 255
    out[80:151:6, 90:200:6] = 255  # dotted line
    return out


def _cand(key: str, img: np.ndarray, patient: str = "P1") -> TwinCandidate:
    return TwinCandidate(key, patient, img, FIELD, False, pixel_hash(img))


def test_twin_distance_is_small_and_signed_arithmetic_avoids_the_uint8_wraparound():
    base = _speckle(1)
    marked, clean = _with_calipers(base), _twin_of(base)
    d = field_distance(marked, clean, FIELD)
    assert 0.3 < d < 2.0
    # The original's uint8 subtraction: -1 wraps to 255, so a real twin looked unrelated.
    x, y, w, h = FIELD
    wrapped = float((marked[y : y + h, x : x + w] - clean[y : y + h, x : x + w]).mean())
    assert wrapped > 50


def test_caliper_capture_and_its_clean_twin_pair_up_and_other_views_do_not():
    base = _speckle(1)
    cands = [
        _cand("cal", _with_calipers(base)),
        _cand("clean", _twin_of(base)),
        _cand("other_view", _speckle(2)),
    ]
    out = find_twins(cands, max_distance=6.0, max_relative_distance=REL)
    assert out.loc["cal", "twin_of"] == "clean"
    assert out.loc["clean", "twin_of"] == "cal"
    assert out.loc["other_view", "twin_of"] is None
    # the other view still records how far its nearest capture is (for the threshold study)
    assert out.loc["other_view", "nearest_distance"] > 20


def test_near_miss_just_above_the_threshold_is_not_a_twin():
    base = _speckle(1)
    rng = np.random.default_rng(3)
    shifted = np.clip(base.astype(np.int16) + rng.integers(-13, 14, base.shape), 0, 255)
    cands = [_cand("a", base), _cand("b", shifted.astype(np.uint8))]
    d = find_twins(cands, max_distance=100, max_relative_distance=100).loc["a", "nearest_distance"]
    assert find_twins(cands, max_distance=d, max_relative_distance=100).loc["a", "twin_of"] == "b"
    assert find_twins(cands, d - 0.01, max_relative_distance=100).loc["a", "twin_of"] is None


def test_only_the_same_patient_same_size_and_not_exact_duplicates():
    base = _speckle(1)
    other_patient = find_twins([_cand("a", base), _cand("b", _twin_of(base), "P2")], 6.0, REL)
    assert other_patient["twin_of"].isna().all()
    bigger = np.pad(_twin_of(base), ((0, 10), (0, 0)))
    assert find_twins([_cand("a", base), _cand("b", bigger)], 6.0, REL)["twin_of"].isna().all()
    exact = find_twins([_cand("a", base), _cand("b", base.copy())], 6.0, REL)
    assert exact["twin_of"].isna().all()  # an exact copy is a duplicate, not a twin
    no_patient = find_twins([_cand("a", base, ""), _cand("b", _twin_of(base), "")], 6.0, REL)
    assert no_patient["twin_of"].isna().all()


def test_three_saves_of_one_frame_each_point_at_their_nearest_copy():
    base = _speckle(1)
    a, b = _with_calipers(base), _twin_of(base, 1)
    c = _twin_of(base, 2)  # a third save: b and c are closest to each other
    out = find_twins([_cand("a", a), _cand("b", b), _cand("c", c)], 6.0, REL)
    assert out.loc["a", "twin_of"] in {"b", "c"}  # the caliper capture still has a clean twin
    assert {out.loc["b", "twin_of"], out.loc["c", "twin_of"]} == {"b", "c"}


def _dark(seed: int) -> np.ndarray:
    """A dark capture: faint speckle on black, the field mostly at or below grey 20."""
    rng = np.random.default_rng(seed)
    return rng.rayleigh(4, size=(240, 320)).clip(0, 255).astype(np.uint8)


def test_two_different_dark_captures_are_close_in_grey_levels_but_are_not_twins():
    a, b = _dark(11), _dark(12)
    d, rel = field_distances(a, b, FIELD)
    assert d < 6.0  # the absolute distance alone would pair them
    assert rel > 0.6  # but they differ by about as much as each picture varies
    out = find_twins([_cand("a", a), _cand("b", b)], max_distance=6.0, max_relative_distance=REL)
    assert out["twin_of"].isna().all()
    assert out.loc["a", "nearest_relative_distance"] > REL


def test_a_dim_capture_and_its_re_save_stay_twins():
    rng = np.random.default_rng(5)
    dim = rng.rayleigh(20, size=(240, 320)).clip(0, 255).astype(np.uint8)  # spread ~8 levels
    out = find_twins([_cand("a", dim), _cand("b", _twin_of(dim))], 6.0, REL)
    assert out.loc["a", "twin_of"] == "b"
    assert out.loc["a", "nearest_relative_distance"] < REL / 2


def test_near_miss_of_the_relative_threshold_is_not_a_twin():
    base = _speckle(1)
    cands = [_cand("a", _with_calipers(base)), _cand("b", _twin_of(base))]
    rel = find_twins(cands, 100, 100).loc["a", "nearest_relative_distance"]
    assert find_twins(cands, 100, rel).loc["a", "twin_of"] == "b"
    assert find_twins(cands, 100, rel - 0.001).loc["a", "twin_of"] is None

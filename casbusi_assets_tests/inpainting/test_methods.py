"""Inpainting methods: only masked pixels change, the learned model loads and helps."""

from __future__ import annotations

import numpy as np
import pytest

from casbusi_assets.inpainting.masks import build_caliper_mask
from casbusi_assets.inpainting.methods import (
    DEFAULT_METHOD,
    Inpainter,
    LearnedInpainter,
    OpenCVInpainter,
    make_inpainter,
)
from casbusi_assets.inpainting.pairs import truth_boxes
from casbusi_assets.inpainting.quality import window_mae
from casbusi_assets.inpainting.resources import DEFAULT_MODEL_PATH

SHIPPED = DEFAULT_MODEL_PATH


@pytest.fixture(scope="module")
def learned() -> LearnedInpainter:
    return LearnedInpainter(SHIPPED, "cpu")


def _methods(learned):
    return [OpenCVInpainter("telea"), OpenCVInpainter("ns"), learned]


def test_every_method_changes_only_masked_pixels_on_grey_and_colour(fresh_pairs, learned):
    for pair in fresh_pairs[:3]:
        mask = build_caliper_mask(pair.image, truth_boxes(pair.marks)).mask
        outside = mask == 0
        for method in _methods(learned):
            assert isinstance(method, Inpainter)
            out = method.inpaint(pair.image, mask)
            assert out.shape == pair.image.shape and out.dtype == np.uint8
            assert np.array_equal(out[outside], pair.image[outside]), (method.name, pair.colour)
            # ... and the masked pixels did change (the marks are gone, not copied through)
            assert (out[~outside] != pair.image[~outside]).mean() > 0.5, method.name


def test_marks_touching_the_image_edge_are_inpainted(fresh_pairs, learned):
    """The original tiling never reached the right and bottom edges."""
    pair = fresh_pairs[0]
    img = pair.image.copy()
    h, w = img.shape[:2]
    img[h - 2 :, w - 40 :] = 250  # a bright stroke along the bottom-right corner
    mask = np.zeros((h, w), np.uint8)
    mask[h - 2 :, w - 40 :] = 255
    for method in _methods(learned):
        out = method.inpaint(img, mask)
        assert out[h - 2 :, w - 40 :].mean() < 200, method.name


def test_learned_model_loads_shipped_weights_and_beats_the_unmasked_input(fresh_pairs, learned):
    before, after, ns = [], [], []
    for pair in fresh_pairs:
        mask = build_caliper_mask(pair.image, truth_boxes(pair.marks)).mask
        before.append(window_mae(pair.image, pair.clean, pair.marks))
        after.append(window_mae(learned.inpaint(pair.image, mask), pair.clean, pair.marks))
        ns.append(
            window_mae(OpenCVInpainter("ns").inpaint(pair.image, mask), pair.clean, pair.marks)
        )
    assert np.mean(after) < 0.5 * np.mean(before), (np.mean(before), np.mean(after))
    # The network starts from the Navier-Stokes fill; training must not have made it worse.
    assert np.mean(after) <= 1.05 * np.mean(ns), (np.mean(ns), np.mean(after))


def test_learned_boxes_round_holes_give_the_whole_image_result(fresh_pairs, learned):
    pair = fresh_pairs[1]
    mask = build_caliper_mask(pair.image, truth_boxes(pair.marks)).mask
    whole = LearnedInpainter(SHIPPED, "cpu", whole_image=True)
    a, b = learned.inpaint(pair.image, mask), whole.inpaint(pair.image, mask)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_empty_mask_returns_an_identical_copy(fresh_pairs, learned):
    img = fresh_pairs[0].image
    for method in _methods(learned):
        out = method.inpaint(img, np.zeros(img.shape[:2], np.uint8))
        assert np.array_equal(out, img) and out is not img


def test_make_inpainter_and_its_errors(tmp_path):
    assert make_inpainter("").name == DEFAULT_METHOD
    assert make_inpainter("TELEA").name == "telea"
    with pytest.raises(ValueError, match="one of ns, telea, learned|one of telea, ns, learned"):
        make_inpainter("lama")
    with pytest.raises(FileNotFoundError, match="CASBUSI_INPAINT_MODEL"):
        make_inpainter("learned", weights=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    import torch

    torch.save({"something": 1}, bad)
    with pytest.raises(ValueError, match="not an inpainting checkpoint"):
        make_inpainter("learned", weights=bad)
    with pytest.raises(ValueError, match="mask shape"):
        OpenCVInpainter("ns").inpaint(np.zeros((4, 4), np.uint8), np.zeros((3, 4), np.uint8))

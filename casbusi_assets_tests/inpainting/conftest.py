"""Shared inputs: speckle backgrounds to draw marks on, and caliper captures from the generator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from casbusi_assets.inpainting.pairs import CaliperPair, render_pairs


def speckle(h: int = 160, w: int = 200, seed: int = 0, scale: float = 45.0) -> np.ndarray:
    """Rayleigh speckle with a few-pixel grain, like the generator's and a scanner's."""
    rng = np.random.default_rng(seed)
    noise = rng.rayleigh(scale, size=(h, w)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 0.8), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def fresh_pairs() -> list[CaliperPair]:
    """Captures from a seed that neither training nor tuning used, in several mark colours."""
    return list(render_pairs(4711, 6, ("grey", "yellow", "green")))

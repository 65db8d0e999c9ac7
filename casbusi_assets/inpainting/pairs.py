"""Caliper captures with their clean pixels, rendered straight from the synthetic generator.

The training script, the tests and the benchmark all need (image with calipers, the same pixels
without them) pairs. Rendering a capture directly costs ~0.2 s, against ~1 s per still for a
whole generated batch (DICOM encoding, JPEG 2000, zip), and lets marks be recoloured: the
generator draws white marks on grey captures only, while real scanners also draw yellow, green
or cyan ones on colour captures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from casbusi_assets.synthetic.annotations import sample_annotation
from casbusi_assets.synthetic.scanner_screen import FONTS, PROFILES, CaptureSpec, render_capture

# Mark colours a pair can be recoloured to (RGB); "grey" keeps the generator's own white marks.
MARK_COLOURS: dict[str, tuple[int, int, int] | None] = {
    "grey": None,
    "white_rgb": (250, 250, 250),
    "yellow": (255, 255, 0),
    "green": (0, 255, 0),
    "cyan": (0, 230, 230),
    "dim_grey": (185, 185, 185),
}


@dataclass(frozen=True)
class CaliperPair:
    """One capture with calipers, its caliper-free pixels, and where the marks are."""

    image: np.ndarray  # H x W grey or H x W x 3 RGB, with the marks and lines
    clean: np.ndarray  # the same pixels before the calipers were drawn
    marks: list[dict[str, object]]  # {"x", "y", "shape"} per mark (the generator's truth)
    legend_box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 of the measurement legend
    colour: str

    def stroke_truth(self) -> np.ndarray:
        """Pixels the calipers changed (marks and lines), the legend box left out (bool)."""
        diff = self.image != self.clean
        if diff.ndim == 3:
            diff = diff.any(axis=2)
        if self.legend_box is not None:
            x0, y0, x1, y1 = self.legend_box
            diff[max(0, y0) : y1, max(0, x0) : x1] = False
        return diff


def _box(mark: dict[str, object], pad: int) -> list[int]:
    if "box" in mark:  # the generator's own extent of the mark's ink
        x, y, w, h = (int(v) for v in mark["box"])  # type: ignore[union-attr]
        return [x - pad, y - pad, w + 2 * pad, h + 2 * pad]
    return [int(mark["x"]) - 7 - pad, int(mark["y"]) - 7 - pad, 15 + 2 * pad, 15 + 2 * pad]


def truth_boxes(marks: Sequence[dict[str, object]], pad: int = 2) -> list[list[int]]:
    """A detector-like [x, y, w, h] box around each mark: its ink extent plus `pad` pixels."""
    return [_box(m, pad) for m in marks]


def _spec(rng: np.random.Generator, yellow: bool) -> CaptureSpec:
    profile = PROFILES[int(rng.integers(len(PROFILES)))]
    width, height = profile.sizes[int(rng.integers(len(profile.sizes)))]
    style = "varied" if rng.random() < 0.6 else "classic"
    side = "left" if rng.random() < 0.5 else "right"
    annotation = sample_annotation(rng, side, "breast", wide=style == "varied")
    return CaptureSpec(
        capture="yellow_overlay" if yellow else "grayscale",
        width=int(width),
        height=int(height),
        profile=profile,
        probe=profile.probes[int(rng.integers(len(profile.probes)))],
        study_date="20240115",
        study_time="101500",
        annotation=annotation,
        text_font=FONTS[int(rng.integers(len(FONTS)))],
        calipers=True,
        style=style,
    )


def _recolour(
    image: np.ndarray, clean: np.ndarray, colour: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grey pair -> RGB pair with the caliper pixels drawn in `colour`."""
    changed = image != clean
    rgb_clean = np.repeat(clean[..., None], 3, axis=2)
    rgb = rgb_clean.copy()
    # Keep the generator's anti-aliasing-free strokes: each changed pixel takes the colour.
    rgb[changed] = colour
    return rgb, rgb_clean


def render_pairs(seed: int, n: int, colours: Sequence[str] = ("grey",)) -> Iterator[CaliperPair]:
    """`n` caliper captures from `seed`, cycling through `colours` (keys of MARK_COLOURS)."""
    for name in colours:
        if name not in MARK_COLOURS:
            raise ValueError(f"unknown mark colour {name!r}; expected one of {list(MARK_COLOURS)}")
    rng = np.random.default_rng([seed, 1729])
    made = 0
    attempts = 0
    while made < n:
        attempts += 1
        if attempts > 4 * n + 10:
            raise RuntimeError(f"seed {seed}: too few renders with calipers")
        colour = colours[made % len(colours)]
        yellow = colour == "yellow" and rng.random() < 0.5
        spec = _spec(rng, yellow)
        r = render_capture(spec, np.random.default_rng(int(rng.integers(2**63))))
        if not r.calipers or r.clean is None:
            continue
        image, clean = r.frames[0], r.clean
        target = MARK_COLOURS[colour]
        if image.ndim == 2 and target is not None:
            image, clean = _recolour(image, clean, target)
        yield CaliperPair(
            image=np.ascontiguousarray(image),
            clean=np.ascontiguousarray(clean),
            marks=list(r.calipers),
            legend_box=r.caliper_legend_box,
            colour=colour,
        )
        made += 1

"""Captures for the body-marker orientation model: rendered straight from the generator's own
plans (no zips, no DICOM), with the orientation the pictogram shows as the label.

The model must work where the text says nothing about orientation, so the annotation text can be
kept, stripped of its orientation words (the pictogram still shows the truth), or blanked. Every
capture is a pure function of (seed, index): training, validation and benchmarks use disjoint
seeds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from casbusi_assets.synthetic import annotations as ann_mod
from casbusi_assets.synthetic.annotations import Annotation
from casbusi_assets.synthetic.batch import batch_plan, capture_spec
from casbusi_assets.synthetic.config import GeneratorConfig
from casbusi_assets.synthetic.plan import seed_int
from casbusi_assets.synthetic.scanner_screen import render_capture

# What the pictogram can show; "none" = no marker, or a marker whose bar encodes nothing.
MARKER_LABELS = ("long", "trans", "radial", "anti-radial", "oblique", "none")
TEXT_VARIANTS = ("keep", "strip", "blank")


@dataclass(frozen=True)
class MarkerCapture:
    """One rendered still (frame 0) and what its body marker shows."""

    key: str
    image: np.ndarray  # (H, W) or (H, W, 3) uint8
    label: str  # one of MARKER_LABELS
    text_orientation: str  # the orientation the annotation text states ("unknown" if none)
    style: str  # classic | varied
    capture: str
    body_marker: bool
    marker_box: tuple[int, int, int, int] | None
    probe_angle_deg: float | None
    marker_hour: float | None
    text: str
    # where the probe is drawn on the clock face (the marker hour, or the generator's random
    # place when the annotation has none; None on the axilla): with the angle, the picture
    probe_hour: float | None = None


def marker_label(ann: Annotation | None, body_marker: bool) -> str:
    """The orientation a body marker shows, or "none".

    The generator draws a random bar when the orientation is unknown, and a random bar at a random
    place for radial / anti-radial without a clock position (radial is only defined relative to
    the probe's place on the clock), so those pictograms show no orientation.
    """
    if not body_marker or ann is None or ann.orientation == "unknown":
        return "none"
    if ann.orientation in ("radial", "anti-radial") and ann.marker_hour is None:
        return "none"
    return ann.orientation


def _orientation_words() -> list[str]:
    words: set[str] = set()
    for table_name in ("_ORIENT_WORDS", "_WIDE_ORIENT"):
        for options in getattr(ann_mod, table_name, {}).values():
            words.update(w for w, _ in options)
    return sorted(words, key=len, reverse=True)


_ORIENT_RE = re.compile(
    r"(?<![A-Z0-9])(" + "|".join(re.escape(w) for w in _orientation_words()) + r")(?![A-Z0-9])",
    re.IGNORECASE,
)


def strip_orientation(ann: Annotation) -> Annotation:
    """The same annotation with every orientation word removed from its lines (the truth fields,
    which drive the pictogram, are unchanged)."""
    lines = [" ".join(_ORIENT_RE.sub(" ", line).split()) for line in ann.lines]
    lines = [line for line in lines if line]
    return dataclasses.replace(ann, lines=tuple(lines) or (" ",))


def blank_text(ann: Annotation) -> Annotation:
    """No visible annotation text at all (the renderer still needs the truth for the marker)."""
    return dataclasses.replace(ann, lines=(" ",))


def _text_states_orientation(text: str) -> str:
    from casbusi_assets.ocr.parsing import parse_annotation

    return parse_annotation(text).orientation


def iter_marker_captures(
    seed: int,
    n: int,
    *,
    text: str = "strip",
    marker_share: float = 0.85,
    varied_share: float = 0.5,
    patients_per_plan: int = 6,
    stills_only: bool = True,
) -> Iterator[MarkerCapture]:
    """`n` captures sampled from the generator's plans for `seed` (batch plans 0, 1, ...).

    text: "keep" the annotation, "strip" its orientation words, "blank" it, or "mixed" (a third
    each). With "strip" / "blank" an item whose text still parses to an orientation is skipped,
    so every capture's text says nothing about orientation. The screen style and whether a marker
    is drawn are re-drawn per item (own stream) so both styles and marker-free screens appear.
    """
    if text not in (*TEXT_VARIANTS, "mixed"):
        raise ValueError(f"text must be one of {TEXT_VARIANTS + ('mixed',)}; got {text!r}")
    cfg = GeneratorConfig(edge_cases=False, filter_cases=False)
    made = 0
    plan_index = 0
    while made < n:
        plan = batch_plan(seed, plan_index, patients_per_plan, cfg)
        plan_index += 1
        for st in plan.studies:
            for item in st.items:
                if made >= n:
                    return
                if stills_only and item.n_frames > 1:
                    continue
                if item.capture in ("green_corrupt", "dark"):
                    continue  # excluded upstream; no orientation is read from them
                pick = np.random.default_rng(seed_int("marker-capture", seed, item.key))
                style = "varied" if pick.random() < varied_share else "classic"
                body_marker = bool(pick.random() < marker_share)
                variant = text if text != "mixed" else str(pick.choice(TEXT_VARIANTS))
                ann = item.annotation
                if ann is None:
                    continue  # the marker needs a truth to draw; text-free items come via blank
                if variant == "strip":
                    ann = strip_orientation(ann)
                elif variant == "blank":
                    ann = blank_text(ann)
                if variant != "keep" and _text_states_orientation(ann.text) != "unknown":
                    continue
                spec = dataclasses.replace(
                    capture_spec(st, item),
                    annotation=ann,
                    body_marker=body_marker,
                    n_frames=1,
                    style=style,
                )
                r = render_capture(spec, np.random.default_rng(seed_int("render", seed, item.key)))
                yield MarkerCapture(
                    key=item.key,
                    image=r.frames[0],
                    label=marker_label(ann, r.body_marker),
                    text_orientation=_text_states_orientation(ann.text),
                    style=style,
                    capture=item.capture,
                    body_marker=r.body_marker,
                    marker_box=r.marker_box,
                    probe_angle_deg=r.probe_angle_deg,
                    marker_hour=ann.marker_hour,
                    text=ann.text,
                    probe_hour=r.probe_hour,
                )
                made += 1


def render_with_marker(
    ann: Annotation,
    *,
    seed: int,
    index: int = 0,
    style: str = "classic",
    body_marker: bool = True,
    text: str = "strip",
) -> MarkerCapture:
    """A capture whose pictogram shows `ann`'s orientation at its clock hour, on the screen of
    the `index`-th plain grayscale still planned for `seed` (for tests of chosen cases)."""
    cfg = GeneratorConfig(edge_cases=False, filter_cases=False)
    items = [
        (st, it)
        for st in batch_plan(seed, 0, 6, cfg).studies
        for it in st.items
        if it.n_frames == 1 and it.capture == "grayscale"
    ]
    st, item = items[index % len(items)]
    shown = {"keep": ann, "strip": strip_orientation(ann), "blank": blank_text(ann)}[text]
    spec = dataclasses.replace(
        capture_spec(st, item), annotation=shown, body_marker=body_marker, n_frames=1, style=style
    )
    r = render_capture(spec, np.random.default_rng(seed_int("render", seed, item.key, index)))
    return MarkerCapture(
        key=f"{item.key}/{index}",
        image=r.frames[0],
        label=marker_label(shown, r.body_marker),
        text_orientation=_text_states_orientation(shown.text),
        style=style,
        capture=item.capture,
        body_marker=r.body_marker,
        marker_box=r.marker_box,
        probe_angle_deg=r.probe_angle_deg,
        marker_hour=ann.marker_hour,
        text=shown.text,
        probe_hour=r.probe_hour,
    )

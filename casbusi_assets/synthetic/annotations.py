"""Sampling of the sonographer's burned-in annotation text and the truth a perfect reader derives.

Variation comes from a grammar (token spellings, order, line breaks, optional parts), not from a
fixed list of strings, so an OCR parser tuned on some seeds can be evaluated on unseen seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AREAS = ("breast", "axilla", "supraclavicular", "subclavicular")
ORIENTATIONS = ("long", "trans", "radial", "anti-radial", "oblique")
QUADRANTS = ("uoq", "uiq", "loq", "liq")

_LAT_WORDS = {
    "left": (("LT", 7.0), ("LEFT", 4.0), ("L", 1.0)),
    "right": (("RT", 7.0), ("RIGHT", 4.0), ("R", 1.0)),
}
_AREA_WORDS = {
    "breast": (("BREAST", 9.0), ("BR", 2.0), ("BRST", 0.5)),
    "axilla": (("AXILLA", 6.0), ("AXILLARY", 2.0), ("AXILLA LN", 1.0)),
    "supraclavicular": (("SUPRACLAV", 4.0), ("SUPRACLAVICULAR", 2.0), ("SUPRA CLAV", 1.0)),
    "subclavicular": (
        ("INFRACLAV", 3.0),
        ("INFRACLAVICULAR", 1.5),
        ("SUBCLAV", 2.0),
        ("SUBCLAVICULAR", 1.0),
    ),
}
_ORIENT_WORDS = {
    "radial": (("RADIAL", 6.0), ("RAD", 2.0)),
    "anti-radial": (
        ("ANTI-RAD", 4.0),
        ("ANTI RADIAL", 2.0),
        ("ARAD", 2.0),
        ("ANTIRADIAL", 1.0),
        ("ANTI-RADIAL", 1.0),
    ),
    "trans": (("TRANS", 6.0), ("TRV", 2.0), ("TRANSVERSE", 1.0)),
    "long": (("LONG", 6.0), ("SAG", 2.0), ("LONGITUDINAL", 1.0)),
    "oblique": (("OBL", 2.0), ("OBLIQUE", 2.0)),
}
# Breast orientation mix (axilla and clavicular areas are scanned trans / long mostly).
_BREAST_ORIENT = (
    ("radial", 0.26),
    ("anti-radial", 0.26),
    ("trans", 0.18),
    ("long", 0.14),
    ("oblique", 0.05),
    ("unknown", 0.11),
)
_NODAL_ORIENT = (("trans", 0.4), ("long", 0.35), ("oblique", 0.1), ("unknown", 0.15))
# Words that add realism without changing any truth field (no laterality / orientation words).
_EXTRAS = (
    "MASS",
    "CYST",
    "LESION",
    "#1",
    "#2",
    "#3",
    "PALP",
    "BX SITE",
    "2ND LOOK",
    "CLIP",
    "NODE",
)
_DIST_FORMATS = ("{d}CM FN", "{d} CM FN", "{d}CMFN", "FN {d}CM", "{d} CM FROM NIPPLE", "{d}CM FN")
_DIST_FORMAT_W = (5.0, 4.0, 1.0, 1.0, 0.6, 1.0)


@dataclass(frozen=True)
class Annotation:
    """Annotation lines as drawn, and what a perfect reader concludes from them."""

    lines: tuple[str, ...]
    area: str
    laterality: str
    orientation: str
    clock_pos: str | None  # 'H:MM' or a quadrant token
    nipple_dist_cm: float | None
    # Where the probe sits on the body-marker pictogram, in clock hours (None: not stated).
    marker_hour: float | None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _pick(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    weights = np.array([w for _, w in options], dtype=float)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def quadrant_hour(quadrant: str, laterality: str) -> float:
    """Clock hour at the centre of a quadrant; outer is towards the axilla (3:00 side for left)."""
    upper = quadrant[0] == "u"
    outer = quadrant[1] == "o"
    towards_three = outer == (laterality == "left")
    if upper:
        return 1.5 if towards_three else 10.5
    return 4.5 if towards_three else 7.5


def sample_annotation(
    rng: np.random.Generator, laterality: str, area: str = "breast", wide: bool = False
) -> Annotation:
    """Sample one annotation for an image of `laterality` ('left'/'right') and `area`.

    ``wide`` (the "varied" screen style) draws from the wider vocabulary of breast-ultrasound
    practice (see ``_WIDE_*``: SAG/TRV, L BR, RT BRST, 2 OCLOCK, 2OC, 2 00, 3 CMFN, 3-4CM, SA,
    AX ...) and splits the label over two or three lines more often. The classic draws are
    unchanged (``wide=False`` consumes the stream exactly as before).
    """
    if wide:
        return _sample_wide(rng, laterality, area)
    title_case = rng.random() < 0.05
    lat_word: str | None = _pick(rng, _LAT_WORDS[laterality])
    lat_truth = laterality
    if rng.random() < 0.03:  # sonographer forgot the side
        lat_word, lat_truth = None, "unknown"

    clock_tok: str | None = None
    clock_truth: str | None = None
    marker_hour: float | None = None
    dist_tok: str | None = None
    dist_truth: float | None = None
    extra: str | None = None

    if area == "breast":
        orient = _pick(rng, _BREAST_ORIENT)
        u = rng.random()
        if u < 0.7:
            hour = int(rng.integers(1, 13))
            minute = int(rng.choice([0, 30, 15, 45], p=[0.74, 0.22, 0.02, 0.02]))
            clock_truth = f"{hour}:{minute:02d}"
            marker_hour = hour + minute / 60
            clock_tok = f"{hour} O'CLOCK" if minute == 0 and rng.random() < 0.06 else clock_truth
        elif u < 0.8:
            quad = str(rng.choice(QUADRANTS))
            clock_tok, clock_truth = quad.upper(), quad
            marker_hour = quadrant_hour(quad, laterality)
        elif u < 0.85:
            extra = str(rng.choice(["RETROAREOLAR", "SUBAREOLAR"]))
            marker_hour = None
        if clock_tok is not None and rng.random() < 0.65:
            dist_tok, dist_truth = _sample_distance(rng)
        # A clock position implies the breast, so the area word is sometimes left out.
        area_word: str | None = _pick(rng, _AREA_WORDS["breast"])
        if clock_tok is not None and rng.random() < 0.08:
            area_word = None
    else:
        orient = _pick(rng, _NODAL_ORIENT)
        area_word = _pick(rng, _AREA_WORDS[area])
        if area == "axilla" and rng.random() < 0.15:
            dist_tok, dist_truth = _sample_distance(rng, low=2, high=10)
    orient_word = None if orient == "unknown" else _pick(rng, _ORIENT_WORDS[orient])
    if extra is None and rng.random() < 0.15:
        extra = str(rng.choice(_EXTRAS))

    lines = _layout(rng, lat_word, area_word, clock_tok, dist_tok, orient_word, extra)
    if title_case:
        lines = [_title(line) for line in lines]
    area_truth = area if (area_word is not None or clock_truth is not None) else "unknown"
    return Annotation(
        lines=tuple(lines),
        area=area_truth,
        laterality=lat_truth,
        orientation=orient,
        clock_pos=clock_truth,
        nipple_dist_cm=dist_truth,
        marker_hour=marker_hour,
    )


def _sample_distance(rng: np.random.Generator, low: int = 1, high: int = 12) -> tuple[str, float]:
    a = int(np.clip(np.round(rng.gamma(3.0, 1.4)), low, high))
    u = rng.random()
    if u < 0.15 and a < high:
        text, value = f"{a}-{a + 1}", a + 0.5
    elif u < 0.25:
        half = f"{a}.5"
        text, value = half, a + 0.5
    else:
        text, value = str(a), float(a)
    fmt = _pick(rng, list(zip(_DIST_FORMATS, _DIST_FORMAT_W, strict=True)))
    return fmt.format(d=text), value


def _layout(
    rng: np.random.Generator,
    lat: str | None,
    area: str | None,
    clock: str | None,
    dist: str | None,
    orient: str | None,
    extra: str | None,
) -> list[str]:
    site = " ".join(t for t in (lat, area) if t)
    where = " ".join(t for t in (clock, dist) if t)
    style = int(rng.choice(5, p=[0.34, 0.26, 0.12, 0.16, 0.12]))
    if style == 0:  # "LT BREAST 2:00 3CM FN" / "RADIAL"
        lines = [" ".join(t for t in (site, where) if t), orient or ""]
    elif style == 1:  # everything on one line
        lines = [" ".join(t for t in (site, where, orient) if t)]
    elif style == 2:  # orientation first
        lines = [orient or "", " ".join(t for t in (site, where) if t)]
    elif style == 3:  # "LT BREAST" / "2:00 3CM FN" / "ANTI-RAD"
        lines = [site, where, orient or ""]
    else:  # "LT BREAST 2:00" / "3CM FN TRANS"
        lines = [" ".join(t for t in (site, clock) if t), " ".join(t for t in (dist, orient) if t)]
    if extra:
        if rng.random() < 0.5:
            lines.append(extra)
        else:
            lines[0] = f"{lines[0]} {extra}".strip()
    lines = [line for line in lines if line]
    return lines or [extra or "BREAST"]


# ----------------------------------------------------------------------------------------------
# The wide vocabulary (varied style): spellings seen on real breast-ultrasound screens.

_WIDE_LAT = {
    "left": (("LT", 5.0), ("LEFT", 3.0), ("L", 2.0)),
    "right": (("RT", 5.0), ("RIGHT", 3.0), ("R", 2.0)),
}
_WIDE_AREA = {
    "breast": (("BREAST", 6.0), ("BR", 2.0), ("BRST", 2.0)),
    "axilla": (("AXILLA", 5.0), ("AX", 3.0), ("AXILLARY", 1.0)),
    "supraclavicular": (("SUPRACLAV", 4.0), ("SUPRACLAVICULAR", 1.0)),
    "subclavicular": (("INFRACLAV", 4.0), ("INFRACLAVICULAR", 1.0), ("SUBCLAV", 1.0)),
}
_WIDE_ORIENT = {
    "radial": (("RAD", 4.0), ("RADIAL", 4.0)),
    "anti-radial": (("ARAD", 3.0), ("ANTI-RAD", 3.0), ("ANTIRADIAL", 1.0), ("ANTI-RADIAL", 1.0)),
    "trans": (("TRV", 4.0), ("TRANSVERSE", 3.0), ("TRANS", 2.0)),
    "long": (("SAG", 4.0), ("SAGITTAL", 3.0), ("LONG", 2.0)),
    "oblique": (("OBL", 4.0), ("OBLIQUE", 2.0)),
}
# Whole-hour clock spellings ({h}: hour); other minutes are always written H:MM.
_WIDE_CLOCK = (
    ("{h}:00", 5.0),
    ("{h} O'CLOCK", 1.5),
    ("{h} OCLOCK", 1.5),
    ("{h}OC", 1.5),
    ("{h} 00", 1.0),
)
_WIDE_DIST = (
    ("{d}CM FN", 4.0),
    ("{d} CMFN", 2.0),
    ("FN {d}CM", 2.0),
    ("{d} CM FN", 2.0),
    ("{d}CMFN", 1.0),
)
_WIDE_SUBAREOLAR = (("SUBAREOLAR", 2.0), ("RETROAREOLAR", 2.0), ("SA", 1.5))


def _sample_wide(rng: np.random.Generator, laterality: str, area: str) -> Annotation:
    lat_word: str | None = _pick(rng, _WIDE_LAT[laterality])
    lat_truth = laterality
    if rng.random() < 0.03:
        lat_word, lat_truth = None, "unknown"
    clock_tok: str | None = None
    clock_truth: str | None = None
    marker_hour: float | None = None
    dist_tok: str | None = None
    dist_truth: float | None = None
    extra: str | None = None
    area_word: str | None
    if area == "breast":
        orient = _pick(rng, _BREAST_ORIENT)
        u = rng.random()
        if u < 0.68:
            hour = int(rng.integers(1, 13))
            minute = int(rng.choice([0, 30, 15, 45], p=[0.78, 0.18, 0.02, 0.02]))
            clock_truth = f"{hour}:{minute:02d}"
            marker_hour = hour + minute / 60
            clock_tok = _pick(rng, _WIDE_CLOCK).format(h=hour) if minute == 0 else clock_truth
        elif u < 0.78:
            quad = str(rng.choice(QUADRANTS))
            clock_tok, clock_truth = quad.upper(), quad
            marker_hour = quadrant_hour(quad, laterality)
        elif u < 0.86:
            extra = _pick(rng, _WIDE_SUBAREOLAR)
        if clock_tok is not None and rng.random() < 0.65:
            dist_tok, dist_truth = _wide_distance(rng)
        area_word = _pick(rng, _WIDE_AREA["breast"])
        if clock_tok is not None and rng.random() < 0.1:
            area_word = None
    else:
        orient = _pick(rng, _NODAL_ORIENT)
        area_word = _pick(rng, _WIDE_AREA[area])
        if area == "axilla" and rng.random() < 0.15:
            dist_tok, dist_truth = _wide_distance(rng, low=2, high=10)
    # One-letter sides are read as a side only next to a keyword (parsing.py): keep one there.
    if lat_word in ("L", "R") and area_word is None and clock_tok is None:
        area_word = _pick(rng, _WIDE_AREA[area])
    orient_word = None if orient == "unknown" else _pick(rng, _WIDE_ORIENT[orient])
    if extra is None and rng.random() < 0.12:
        extra = str(rng.choice(_EXTRAS))
    lines = _wide_layout(rng, lat_word, area_word, clock_tok, dist_tok, orient_word, extra)
    area_truth = area if (area_word is not None or clock_truth is not None) else "unknown"
    if area == "breast" and extra in ("SUBAREOLAR", "RETROAREOLAR", "SA"):
        area_truth = "breast"  # behind the nipple: the breast, with no clock position
    return Annotation(
        lines=tuple(lines),
        area=area_truth,
        laterality=lat_truth,
        orientation=orient,
        clock_pos=clock_truth,
        nipple_dist_cm=dist_truth,
        marker_hour=marker_hour,
    )


def _wide_distance(rng: np.random.Generator, low: int = 1, high: int = 12) -> tuple[str, float]:
    a = int(np.clip(np.round(rng.gamma(3.0, 1.4)), low, high))
    u = rng.random()
    if u < 0.12 and a < high:
        # a bare range "3-4CM" (no FN): read as a distance because the label has context
        return f"{a}-{a + 1}CM", a + 0.5
    if u < 0.24 and a < high:
        text, value = f"{a}-{a + 1}", a + 0.5
    elif u < 0.32:
        text, value = f"{a}.5", a + 0.5
    else:
        text, value = str(a), float(a)
    return _pick(rng, _WIDE_DIST).format(d=text), value


def _wide_layout(
    rng: np.random.Generator,
    lat: str | None,
    area: str | None,
    clock: str | None,
    dist: str | None,
    orient: str | None,
    extra: str | None,
) -> list[str]:
    """Token groups split over one to three lines; the order within a line is the reading order."""
    groups = [" ".join(t for t in (lat, area) if t), clock or "", dist or "", orient or ""]
    if lat in ("L", "R") and not area:
        groups[:2] = [f"{lat} {clock}", ""]  # a one-letter side stays next to its clock
    if extra:
        groups.insert(int(rng.integers(1, len(groups) + 1)), extra)
    groups = [g for g in groups if g]
    if not groups:
        return ["BREAST"]
    n_lines = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    n_lines = min(n_lines, len(groups))
    # cut points between groups, never inside one ("2 O'CLOCK" and "L BR" stay whole)
    cuts = sorted(rng.choice(np.arange(1, len(groups)), size=n_lines - 1, replace=False).tolist())
    bounds = [0, *cuts, len(groups)]
    return [" ".join(groups[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _title(line: str) -> str:
    # Mixed case as some users type it; clock and distance tokens stay readable.
    return " ".join(w.capitalize() if w.isalpha() and len(w) > 2 else w for w in line.split())


def probe_angle(orientation: str, marker_hour: float | None, rng: np.random.Generator) -> float:
    """Angle of the probe bar on the body marker, degrees counter-clockwise from horizontal."""
    if orientation == "trans":
        return 0.0
    if orientation == "long":
        return 90.0
    if orientation == "oblique":
        return float(rng.choice([45.0, 135.0]))
    if orientation in ("radial", "anti-radial") and marker_hour is not None:
        radial = (90.0 - 30.0 * marker_hour) % 180.0
        return radial if orientation == "radial" else (radial + 90.0) % 180.0
    return float(np.round(rng.uniform(0, 180), 1))

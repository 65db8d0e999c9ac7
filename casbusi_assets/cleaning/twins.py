"""Near-duplicate "twins": the same patient's capture saved twice from one frozen frame.

Sonographers freeze a frame, save it, then measure on it and save again: the second capture has
calipers, dotted lines and a measurement legend drawn on the first. Keeping the caliper-free
twin and leaving out the caliper capture gives a clean training image without inpainting.

The distance of two captures is the **mean absolute grey difference on the ultrasound field**,
computed in float32. The original (spec §5.3) subtracted uint8 arrays, so a pixel one level
darker in the twin wrapped to 255: a re-captured frame's ±1 noise gave a distance near 85 and
real twins looked less alike than unrelated views. Measured on a held-out generated series
(benchmarks/README.md, "Cleaning decisions": 120 twin images, 445 others), a true twin pair is
0.8-4.8 apart (the re-capture noise plus the caliper marks and dotted lines) and the nearest
capture that is not a twin 22.6 or more. The threshold (`Thresholds.twin_max_distance`, default
10) is the geometric middle of that gap (sqrt(4.8 x 22.6) ~ 10.4): twice the worst twin seen,
less than half the nearest non-twin, so neither side sits near it.

A small absolute distance alone also pairs two **dark** captures of one patient: little echo on
black differs by little whatever the tissue (seed 6160: two pairs 7.2 and 8.5 apart, both
`dark`). So the distance is also divided by the pair's **spread** (each image's mean absolute
deviation from its own mean on the field, averaged): a re-save differs by a small share of what
the picture itself varies, two different views by about as much as it varies. Measured on
seed 6160 (114 twin images, 959 other same-patient pairs): twins 0.03-0.12, the nearest
non-twin 0.71 (the two dark pairs 1.1 and 2.0); `Thresholds.twin_max_relative_distance`
(default 0.3) is again the geometric middle of that gap (sqrt(0.12 x 0.71) ~ 0.29). A twin
must pass both thresholds. The price: on a field with almost no echo (a spread of a few grey
levels) a re-save cannot be told from another view, so it is not paired; such a field is `dark`
and excluded for that reason instead.

Only captures of the same patient, the same pixel size and the same colour storage are compared
(a twin is a second save of one screen), and exact pixel duplicates are left to `duplicates`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Compare at most this many pixels per pair: every 2nd row and column of a 1280x960 field still
# gives ~250k samples, far more than a mean of ±1 noise needs, at a quarter of the cost.
_STRIDE_ABOVE = 400_000


@dataclass(frozen=True)
class TwinCandidate:
    key: str  # sop_instance_uid
    patient_id: str | None
    gray: np.ndarray  # HxW uint8
    field: tuple[int, int, int, int]  # x, y, w, h
    colour: bool
    pixel_hash: str | None = None


def _field_pixels(
    a: np.ndarray, b: np.ndarray, field: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    x, y, w, h = field
    ca = a[max(0, y) : y + h, max(0, x) : x + w]
    cb = b[max(0, y) : y + h, max(0, x) : x + w]
    step = 2 if ca.size > _STRIDE_ABOVE else 1
    return ca[::step, ::step].astype(np.float32), cb[::step, ::step].astype(np.float32)


def field_distance(a: np.ndarray, b: np.ndarray, field: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two equally sized grey images inside `field`, in float."""
    return field_distances(a, b, field)[0]


def field_distances(
    a: np.ndarray, b: np.ndarray, field: tuple[int, int, int, int]
) -> tuple[float, float]:
    """(distance, relative distance): `field_distance` and the same divided by the pair's spread.

    The spread is each image's mean absolute deviation from its own mean inside `field`,
    averaged over the two; a flat (blank) field has none, so its relative distance is infinite.
    """
    ca, cb = _field_pixels(a, b, field)
    if ca.size == 0:
        return float("inf"), float("inf")
    d = float(np.abs(ca - cb).mean())
    spread = 0.5 * float(np.abs(ca - ca.mean()).mean() + np.abs(cb - cb.mean()).mean())
    if spread <= 0.0:
        return d, (0.0 if d == 0.0 else float("inf"))
    return d, d / spread


def _intersect(
    f: tuple[int, int, int, int], g: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    x0, y0 = max(f[0], g[0]), max(f[1], g[1])
    x1, y1 = min(f[0] + f[2], g[0] + g[2]), min(f[1] + f[3], g[1] + g[3])
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def find_twins(
    candidates: list[TwinCandidate], max_distance: float, max_relative_distance: float
) -> pd.DataFrame:
    """For each candidate: its nearest same-patient capture and the distance.

    Returns a frame indexed by key with `nearest`, `nearest_distance`,
    `nearest_relative_distance` (null when there is no comparable capture) and `twin_of`
    (= nearest when nearest_distance <= max_distance and the relative distance <=
    max_relative_distance). With
    one twin per frame the relation is symmetric; with three saves of one frame each points at
    its own nearest, so a caliper capture still finds a clean copy.
    """
    by_patient: dict[str, list[TwinCandidate]] = {}
    for c in candidates:
        if c.patient_id:  # without a patient there is no "same patient"
            by_patient.setdefault(c.patient_id, []).append(c)
    nearest: dict[str, tuple[str | None, float | None, float | None]] = {
        c.key: (None, None, None) for c in candidates
    }
    for group in by_patient.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if a.gray.shape != b.gray.shape or a.colour != b.colour:
                    continue
                if a.pixel_hash is not None and a.pixel_hash == b.pixel_hash:
                    continue  # an exact duplicate, not a twin
                field = _intersect(a.field, b.field)
                if field[2] * field[3] < 0.5 * min(
                    a.field[2] * a.field[3], b.field[2] * b.field[3]
                ):
                    continue  # the fields hardly overlap: not the same view
                d, rel = field_distances(a.gray, b.gray, field)
                for me, other in ((a, b), (b, a)):
                    best = nearest[me.key][1]
                    # ties broken by the smaller UID, so the result does not depend on order
                    if best is None or d < best or (d == best and other.key < nearest[me.key][0]):
                        nearest[me.key] = (other.key, d, rel)
    rows = []
    for c in candidates:
        other, d, rel = nearest[c.key]
        # decided on the rounded values the table shows, so a reader can check it in SQL
        d = None if d is None else round(d, 4)
        rel = None if rel is None else round(rel, 4)
        is_twin = d is not None and d <= max_distance and rel <= max_relative_distance
        rows.append(
            {
                "key": c.key,
                "nearest": other,
                "nearest_distance": d,
                "nearest_relative_distance": rel,
                "twin_of": other if is_twin else None,
            }
        )
    columns = ["key", "nearest", "nearest_distance", "nearest_relative_distance", "twin_of"]
    return pd.DataFrame(rows, columns=columns).set_index("key")

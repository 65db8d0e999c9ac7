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


def field_distance(a: np.ndarray, b: np.ndarray, field: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of two equally sized grey images inside `field`, in float."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    x, y, w, h = field
    ca = a[max(0, y) : y + h, max(0, x) : x + w]
    cb = b[max(0, y) : y + h, max(0, x) : x + w]
    if ca.size == 0:
        return float("inf")
    step = 2 if ca.size > _STRIDE_ABOVE else 1
    ca, cb = ca[::step, ::step], cb[::step, ::step]
    return float(np.abs(ca.astype(np.float32) - cb.astype(np.float32)).mean())


def _intersect(
    f: tuple[int, int, int, int], g: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    x0, y0 = max(f[0], g[0]), max(f[1], g[1])
    x1, y1 = min(f[0] + f[2], g[0] + g[2]), min(f[1] + f[3], g[1] + g[3])
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def find_twins(candidates: list[TwinCandidate], max_distance: float) -> pd.DataFrame:
    """For each candidate: its nearest same-patient capture and the distance.

    Returns a frame indexed by key with `nearest`, `nearest_distance` (null when there is no
    comparable capture) and `twin_of` (= nearest when nearest_distance <= max_distance). With
    one twin per frame the relation is symmetric; with three saves of one frame each points at
    its own nearest, so a caliper capture still finds a clean copy.
    """
    by_patient: dict[str, list[TwinCandidate]] = {}
    for c in candidates:
        if c.patient_id:  # without a patient there is no "same patient"
            by_patient.setdefault(c.patient_id, []).append(c)
    nearest: dict[str, tuple[str | None, float | None]] = {c.key: (None, None) for c in candidates}
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
                d = field_distance(a.gray, b.gray, field)
                for me, other in ((a, b), (b, a)):
                    best = nearest[me.key][1]
                    # ties broken by the smaller UID, so the result does not depend on order
                    if best is None or d < best or (d == best and other.key < nearest[me.key][0]):
                        nearest[me.key] = (other.key, d)
    rows = []
    for c in candidates:
        other, d = nearest[c.key]
        twin = other if (d is not None and d <= max_distance) else None
        rows.append(
            {
                "key": c.key,
                "nearest": other,
                "nearest_distance": None if d is None else round(d, 4),
                "twin_of": twin,
            }
        )
    return pd.DataFrame(rows, columns=["key", "nearest", "nearest_distance", "twin_of"]).set_index(
        "key"
    )

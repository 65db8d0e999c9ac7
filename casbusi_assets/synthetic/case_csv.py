"""The case table shipped in every zip: `total_cases_anon.csv`, one row per biopsy.

Vocabulary follows casbusi-spec.md §3.7 (the values the BreastData mapping knows).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from casbusi_assets.cases.tables import REQUIRED_CASE_COLUMNS

CASE_CSV_NAME = "total_cases_anon.csv"
# The generator writes exactly the columns the platform requires of a real delivery.
CASE_COLUMNS = REQUIRED_CASE_COLUMNS
VALID_BIRADS = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
INVALID_BIRADS = ("7", "N/A", "4D", "")

# (Biopsy value, weight, pathology descriptions, BI-RADS choices)
_OUTCOMES: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Pathology Malignant",
        0.34,
        (
            "INVASIVE DUCTAL CARCINOMA",
            "INVASIVE LOBULAR CARCINOMA",
            "DUCTAL CARCINOMA IN SITU",
            "INVASIVE MAMMARY CARCINOMA WITH DUCTAL AND LOBULAR FEATURES",
            "MUCINOUS CARCINOMA",
            "TUBULAR CARCINOMA",
            "METASTATIC CARCINOMA IN LYMPH NODE",
        ),
        ("4B", "4C", "5", "5", "6"),
    ),
    ("Known Biopsy-Proven Malignancy", 0.04, ("INVASIVE DUCTAL CARCINOMA",), ("6",)),
    (
        "Pathology Benign",
        0.38,
        (
            "FIBROADENOMA",
            "FIBROCYSTIC CHANGES",
            "USUAL DUCTAL HYPERPLASIA",
            "INTRADUCTAL PAPILLOMA",
            "BENIGN BREAST TISSUE WITH STROMAL FIBROSIS",
            "PSEUDOANGIOMATOUS STROMAL HYPERPLASIA",
            "FAT NECROSIS",
            "BENIGN LYMPH NODE",
            "COMPLEX SCLEROSING LESION",
        ),
        ("3", "4A", "4A", "4B", "4"),
    ),
    (
        "Pathology Elevated Risk",
        0.08,
        (
            "ATYPICAL DUCTAL HYPERPLASIA",
            "LOBULAR CARCINOMA IN SITU",
            "FLAT EPITHELIAL ATYPIA",
            "RADIAL SCAR",
        ),
        ("4A", "4B"),
    ),
    ("Waiting for Pathology", 0.1, ("",), ("4A", "4B", "4C")),
    ("Probably Benign", 0.03, ("",), ("3",)),
    ("Suspicious", 0.03, ("",), ("4", "4B")),
)
_DENSITY = (
    "Almost entirely fat",
    "Scattered areas of fibroglandular density",
    "Heterogeneously dense",
    "Extremely dense",
    "",
)
_DENSITY_P = (0.1, 0.38, 0.36, 0.08, 0.08)
RACES = (
    ("White", 0.78),
    ("Black or African American", 0.06),
    ("Asian", 0.06),
    ("American Indian or Alaska Native", 0.02),
    ("Native Hawaiian or Other Pacific Islander", 0.01),
    ("Other", 0.03),
    ("Unknown", 0.04),
)
ETHNICITIES = (("Not Hispanic or Latino", 0.88), ("Hispanic or Latino", 0.07), ("Unknown", 0.05))


def pick_weighted(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    w = np.array([p for _, p in options])
    return options[int(rng.choice(len(options), p=w / w.sum()))][0]


def sample_biopsy_rows(
    rng: np.random.Generator,
    *,
    patient_id: str,
    accession: str,
    study_laterality: str,
    biopsy_sides: list[str],
    age: int,
    race: str,
    ethnicity: str,
    filter_case: str | None,
    csv_study_laterality: str,
) -> list[dict[str, str]]:
    """Rows of one accession (one per biopsy side in `biopsy_sides`)."""
    density = str(rng.choice(_DENSITY, p=_DENSITY_P))
    weights = np.array([o[1] for o in _OUTCOMES])
    rows: list[dict[str, str]] = []
    birads = None
    time_biop = int(rng.integers(0, 31)) if rng.random() < 0.9 else int(rng.integers(0, 8))
    if filter_case == "biopsy_late":
        time_biop = int(rng.integers(35, 180))
    for side in biopsy_sides:
        outcome = _OUTCOMES[int(rng.choice(len(_OUTCOMES), p=weights / weights.sum()))]
        if birads is None:  # BI-RADS is per study: taken from the first biopsy's suspicion
            birads = str(rng.choice(outcome[3]))
        rows.append(
            {
                "Patient_ID": patient_id,
                "Accession_Number": accession,
                "Biopsy_Accession": f"{int(rng.integers(10_000_000, 99_999_999)):08d}",
                "Biopsy_Laterality": side,
                "BI-RADS": birads,
                "Study_Laterality": csv_study_laterality,
                "Biopsy": outcome[0],
                "Path_Desc": str(rng.choice(outcome[2])),
                "Density_Desc": density,
                "Time_Biop": str(time_biop),
                "Age": str(age),
                "Race": race,
                "Ethnicity": ethnicity,
            }
        )
    if filter_case == "invalid_birads":
        bad = str(rng.choice(INVALID_BIRADS[:3]))
        for r in rows:
            r["BI-RADS"] = bad
    return rows


def render_csv(rows: list[dict[str, str]]) -> bytes:
    """CSV bytes with a fixed column order and '\\n' line ends (deterministic)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CASE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode("utf-8")

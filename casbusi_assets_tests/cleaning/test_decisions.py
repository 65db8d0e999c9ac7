"""Every reason code: a case that triggers it, and one that nearly does (and must not)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from casbusi_assets.cleaning.decisions import (
    CaseInfo,
    biopsied_sides,
    case_index,
    decide,
    label_category,
)
from casbusi_assets.cleaning.rules import REASON_CODES, Thresholds

TH = Thresholds()
CASE = CaseInfo(
    study_laterality="LEFT",
    biopsy_lateralities=("LEFT",),
    birads="4A",
    time_biop=12.0,
    patient_sex="F",
    study_description="US BREAST LEFT LIMITED",
)


def _row(**change: object) -> dict[str, object]:
    row: dict[str, object] = {
        "sop_instance_uid": "1.2.3",
        "patient_id": "P1",
        "accession_number": "A1",
        "missing_links": None,
        "is_corrupt": False,
        "duplicate_of": None,
        "darkness": 10.0,
        "has_calipers": False,
        "twin_of": None,
        "area": "breast",
        "laterality": "left",
        "region_count": 1,
        "is_doppler": False,
        "orientation": "long",
        "patient_sex": "F",
        "study_description": "US BREAST LEFT LIMITED",
    }
    row.update(change)
    return row


def _reasons(rows: list[dict[str, object]], case: CaseInfo | None = CASE) -> dict[str, list]:
    cases = {} if case is None else {("P1", "A1"): case}
    out = decide(pd.DataFrame(rows), cases, TH)
    return dict(zip(out["sop_instance_uid"], out["exclusion_reasons"], strict=True))


def test_the_base_row_is_included():
    out = decide(pd.DataFrame([_row()]), {("P1", "A1"): CASE}, TH)
    assert out["include"].tolist() == [True]
    assert out["exclusion_reasons"].tolist() == [[]]
    assert out["label_cat"].tolist() == ["long"]


# (code, what triggers it, what nearly does); changes to the row and to the case record
ROW_RULES = [
    ("corrupt", {"is_corrupt": True}, {"is_corrupt": False}),
    ("duplicate", {"duplicate_of": "1.2.0"}, {"duplicate_of": ""}),
    ("dark", {"darkness": 65.01}, {"darkness": 65.0}),
    ("non_breast_area", {"area": "axilla"}, {"area": "unknown"}),
    ("non_breast_area", {"area": "supraclavicular"}, {"area": None}),
    ("unknown_laterality", {"laterality": "unknown"}, {"laterality": "LEFT"}),
    ("unknown_laterality", {"laterality": None}, {"laterality": "left"}),
    ("multi_region", {"region_count": 2}, {"region_count": 1}),
    ("laterality_contradicts_study", {"laterality": "right"}, {"laterality": "left"}),
    ("male_patient", {"patient_sex": "M"}, {"patient_sex": "O"}),
    ("chest_or_mastectomy_study", {"study_description": "US CHEST WALL LEFT"}, {}),
    ("chest_or_mastectomy_study", {"study_description": "us left mastectomy site"}, {}),
    ("missing_patient_id", {"patient_id": ""}, {"patient_id": "P1"}),
    ("missing_patient_id", {"missing_links": "patient_id"}, {"missing_links": None}),
    ("missing_accession", {"accession_number": None}, {"accession_number": "A1"}),
    ("missing_accession", {"missing_links": "patient_id,accession_number"}, {}),
    ("no_case_record", {"accession_number": "A2"}, {"accession_number": "A1"}),
]


@pytest.mark.parametrize(("code", "trigger", "near"), ROW_RULES)
def test_row_rule_triggers_and_near_miss_does_not(code, trigger, near):
    got = _reasons([_row(sop_instance_uid="hit", **trigger), _row(sop_instance_uid="near", **near)])
    assert code in got["hit"]
    assert code not in got["near"]


CASE_RULES = [
    ("invalid_birads", {"birads": "7"}, {"birads": "6"}),
    ("invalid_birads", {"birads": "4D"}, {"birads": "4c"}),
    ("invalid_birads", {"birads": None}, {"birads": "0"}),
    ("biopsy_after_30_days", {"time_biop": 30.5}, {"time_biop": 30.0}),
    ("biopsy_after_30_days", {"time_biop": None}, {"time_biop": 0.0}),
    ("male_patient", {"patient_sex": "M"}, {"patient_sex": "F"}),
    ("laterality_contradicts_study", {"study_laterality": "RIGHT"}, {"study_laterality": "LEFT"}),
    # a right-only biopsy in a bilateral study leaves the left image unresolved ...
    (
        "bilateral_unresolved",
        {"study_laterality": "BILATERAL", "biopsy_lateralities": ("RIGHT",)},
        {"study_laterality": "BILATERAL", "biopsy_lateralities": ("RIGHT", "LEFT")},
    ),
    # ... and one biopsy naming the image's side is enough (the original wanted more than one)
    (
        "bilateral_unresolved",
        {"study_laterality": "BILATERAL", "biopsy_lateralities": ()},
        {"study_laterality": "BILATERAL", "biopsy_lateralities": ("LEFT",)},
    ),
]


@pytest.mark.parametrize(("code", "trigger", "near"), CASE_RULES)
def test_case_rule_triggers_and_near_miss_does_not(code, trigger, near):
    from dataclasses import replace

    # the image's own header has no sex: the case record's is used
    row = _row(patient_sex=None)
    assert code in _reasons([row], replace(CASE, **trigger))["1.2.3"]
    assert code not in _reasons([row], replace(CASE, **near))["1.2.3"]


def test_bilateral_study_with_an_unknown_side_image_is_unresolved():
    case = CaseInfo(
        study_laterality="BILATERAL", biopsy_lateralities=("LEFT", "RIGHT"), birads="3",
        time_biop=1.0,
    )  # fmt: skip
    got = _reasons([_row(laterality="unknown")], case)["1.2.3"]
    assert got == ["unknown_laterality", "bilateral_unresolved"]


def test_caliper_twin_only_when_the_clean_twin_is_kept():
    marked = _row(sop_instance_uid="cal", has_calipers=True, twin_of="clean")
    clean = _row(sop_instance_uid="clean", twin_of="cal")
    got = _reasons([marked, clean])
    assert got == {"cal": ["caliper_twin"], "clean": []}
    # nearly: the clean twin is dark itself, so the caliper capture is the better copy
    got = _reasons([marked, _row(sop_instance_uid="clean", twin_of="cal", darkness=90.0)])
    assert got == {"cal": [], "clean": ["dark"]}
    # nearly: both carry calipers, neither is a clean twin
    got = _reasons([marked, _row(sop_instance_uid="clean", has_calipers=True, twin_of="cal")])
    assert got == {"cal": [], "clean": []}
    # nearly: calipers but no twin found
    assert _reasons([_row(has_calipers=True)])["1.2.3"] == []


def test_case_rules_are_keyed_by_accession_not_by_patient():
    # The original keyed rules by patient: a male-patient/invalid study hit every study of the
    # patient. Here another accession of the same patient keeps its own verdict.
    from dataclasses import replace

    cases = {("P1", "A1"): CASE, ("P1", "A2"): replace(CASE, birads="N/A")}
    out = decide(
        pd.DataFrame([_row(), _row(sop_instance_uid="x", accession_number="A2")]), cases, TH
    )
    assert out["exclusion_reasons"].tolist() == [[], ["invalid_birads"]]


def test_no_case_record_only_when_both_links_are_present():
    got = _reasons([_row(patient_id=None)], case=None)["1.2.3"]
    assert got == ["missing_patient_id"]
    assert _reasons([_row()], case=None)["1.2.3"] == ["no_case_record"]


def test_reasons_come_in_the_canonical_order_and_every_code_is_reachable():
    row = _row(is_corrupt=True, darkness=99, area="axilla", laterality="right", region_count=3)
    got = _reasons([row])["1.2.3"]
    assert got == [c for c in REASON_CODES if c in set(got)]
    triggered = {c for c, _, _ in ROW_RULES} | {c for c, _, _ in CASE_RULES} | {"caliper_twin"}
    assert triggered == set(REASON_CODES)


def test_label_category():
    assert label_category(True, "long") == "doppler"
    assert label_category(False, "trans") == "trans"
    assert label_category(None, "radial") == "other"
    assert label_category(float("nan"), None) == "other"


def test_case_index_reads_case_study_rows():
    df = pd.DataFrame(
        [
            {
                "patient_id": "P1", "accession_number": "A1", "study_laterality": "bilateral",
                "biopsy_lateralities": json.dumps(["LEFT", None]), "birads": "4A",
                "time_biop": float("nan"), "patient_sex": None, "study_description": "US BREAST",
            }
        ]
    )  # fmt: skip
    info = case_index(df)[("P1", "A1")]
    assert info.study_laterality == "BILATERAL"
    assert info.biopsy_lateralities == ("LEFT",)
    assert info.time_biop is None and info.patient_sex is None
    assert biopsied_sides(("Bilateral",)) == {"left", "right"}

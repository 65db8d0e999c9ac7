from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from casbusi_assets.cleaning.resources import CleaningSettings
from casbusi_assets.cleaning.rules import (
    CASE_RULES,
    IMAGE_RULES,
    LINK_RULES,
    REASON_CODES,
    Thresholds,
    ordered,
    render_markdown,
)

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- reason-codes:start -->", "<!-- reason-codes:end -->"


def test_the_issue_s_codes_all_exist_once_with_a_meaning():
    assert IMAGE_RULES == (
        "corrupt", "duplicate", "dark", "caliper_twin", "non_breast_area",
        "unknown_laterality", "multi_region",
    )  # fmt: skip
    assert set(CASE_RULES) == {
        "laterality_contradicts_study", "bilateral_unresolved", "male_patient",
        "invalid_birads", "chest_or_mastectomy_study", "biopsy_after_30_days",
    }  # fmt: skip
    assert set(LINK_RULES) == {"missing_patient_id", "missing_accession", "no_case_record"}
    for code in REASON_CODES.values():
        assert code.meaning and "\n" not in code.meaning


def test_every_setting_named_by_a_code_is_a_threshold_and_a_resource_field():
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    for code in REASON_CODES.values():
        if code.setting is not None:
            assert code.setting in fields, code.code
            assert code.setting in CleaningSettings.model_fields, code.code


def test_resource_builds_thresholds_from_its_strings():
    th = CleaningSettings(valid_birads="1, 2,3", dark_percent=50).thresholds()
    assert th.valid_birads == ("1", "2", "3")
    assert th.dark_percent == 50
    assert th.orientation_min_confidence is None
    assert (
        CleaningSettings(orientation_min_confidence=0.4).thresholds().orientation_min_confidence
        == 0.4
    )


def test_ordered_is_canonical_and_rejects_unknown_codes():
    assert ordered({"dark", "corrupt", "no_case_record"}) == ["corrupt", "dark", "no_case_record"]
    with pytest.raises(ValueError, match="unknown reason"):
        ordered(["deleted"])


def test_readme_reason_code_table_is_up_to_date():
    text = README.read_text()
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert match, f"README.md needs the {START} ... {END} block"
    assert match.group(1) == render_markdown(), (
        "regenerate the README table: python -m casbusi_assets.cleaning.rules"
    )

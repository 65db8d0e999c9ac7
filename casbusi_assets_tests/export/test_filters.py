"""The original's export filters: each one stops what it should, can be turned off, is counted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from casbusi_assets.export.config import ExportConfig
from casbusi_assets.export.filters import (
    FILTER_CODES,
    apply_filters,
    as_code_list,
    cleaning_reason_counts,
    filter_counts,
)

GOOD = {
    "include": True,
    "exclusion_reasons": [],
    "duplicate_of_batch": None,
    "has_case": True,
    "laterality": "left",
    "crop_x": 0,
    "crop_y": 0,
    "crop_w": 400,
    "crop_h": 300,
    "trustworthiness": 1,
    "reject_image": pd.NA,
    "has_unknown": False,
    "lesion_count": 1,
    "source_exists": True,
}

CASES = {
    "cleaning": {"include": False, "exclusion_reasons": ["dark", "multi_region"]},
    "duplicate_sop": {"duplicate_of_batch": "batch_001"},
    "unknown_laterality": {"laterality": "unknown"},
    "no_case_record": {"has_case": False},
    "no_crop": {"crop_w": None},
    "no_crop_outside": {"crop_x": 900, "image_w": 800, "image_h": 600},
    "trust_ceiling": {"trustworthiness": 3},
    "crop_aspect_ratio": {"crop_w": 1300, "crop_h": 300},
    "crop_too_small": {"crop_w": 199, "crop_h": 150},
    "instance_reject": {"reject_image": True},
    "unknown_pathology": {"has_unknown": True},
    "multi_lesion_breast": {"lesion_count": 2},
    "missing_file": {"source_exists": False},
}


def _frame() -> pd.DataFrame:
    rows = [dict(GOOD)] + [{**GOOD, **change} for change in CASES.values()]
    return pd.DataFrame(rows)


def test_each_filter_stops_its_case_and_nothing_else():
    config = ExportConfig(only_one_lesion=True)
    out = apply_filters(_frame(), config, "image")
    assert out["export_reason"].iloc[0] is None
    expected = [c.replace("_outside", "") for c in CASES]
    assert list(out["export_reason"].iloc[1:]) == expected
    counts = {f["code"]: f["removed"] for f in filter_counts(out, config, "image")}
    assert counts["no_crop"] == 2
    assert all(counts[c] == 1 for c in CASES if c not in ("cleaning", "no_crop", "no_crop_outside"))
    assert cleaning_reason_counts(out) == {"dark": 1, "multi_region": 1}
    assert set(counts) <= set(FILTER_CODES)


def test_configurable_filters_can_be_turned_off():
    config = ExportConfig(
        max_trust=None,
        min_aspect=None,
        max_aspect=None,
        min_crop_side=None,
        use_reject_system=False,
        drop_unknown_pathology=False,
        only_one_lesion=False,
    )
    out = apply_filters(_frame(), config, "image")
    off = {
        "trust_ceiling",
        "crop_aspect_ratio",
        "crop_too_small",
        "instance_reject",
        "unknown_pathology",
        "multi_lesion_breast",
    }
    reasons = dict(zip(list(CASES), out["export_reason"].iloc[1:], strict=True))
    assert all(reasons[c] is None for c in off)
    assert all(
        reasons[c] == c.replace("_outside", "") for c in CASES if c not in off | {"cleaning"}
    )
    enabled = {f["code"]: f["enabled"] for f in filter_counts(out, config, "image")}
    assert not any(enabled[c] for c in off)


def test_the_original_ranges_are_inclusive():
    config = ExportConfig(min_aspect=0.5, max_aspect=4.0, min_crop_side=200)
    rows = [
        {**GOOD, "crop_w": 200, "crop_h": 400},  # 0.5
        {**GOOD, "crop_w": 800, "crop_h": 200},  # 4.0
        {**GOOD, "crop_w": 801, "crop_h": 200},  # just over
    ]
    out = apply_filters(pd.DataFrame(rows), config, "image")
    assert list(out["export_reason"]) == [None, None, "crop_aspect_ratio"]


def test_clips_skip_the_instance_label_filter():
    out = apply_filters(pd.DataFrame([{**GOOD, "reject_image": True}]), ExportConfig(), "video")
    assert out["export_reason"].iloc[0] is None


def test_reason_lists_in_every_storage_shape():
    assert as_code_list(["a", "b"]) == ["a", "b"]
    assert as_code_list(np.array(["a"])) == ["a"]
    assert as_code_list('["a", "b"]') == ["a", "b"]
    assert as_code_list("a,b") == ["a", "b"]
    assert as_code_list(None) == [] and as_code_list(float("nan")) == [] and as_code_list("") == []

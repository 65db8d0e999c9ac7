"""The export filters of the original tool (casbusi-spec.md §9), each configurable and counted.

They run after the cleaning stage's own decisions (`cleaned_images.include` with its
`exclusion_reasons`), on the images and clips that cleaning kept. Every candidate row stays in
the result with the first filter that stopped it in `export_reason` (null: exported), so the data
card can say how many each filter removed and nothing disappears without a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from casbusi_assets.export.config import ExportConfig

SIDES = ("left", "right")


@dataclass(frozen=True)
class ExportFilter:
    code: str
    meaning: str
    applies_to: tuple[str, ...]  # 'image', 'video'
    enabled: Callable[[ExportConfig], bool]
    rejects: Callable[[pd.DataFrame, ExportConfig], pd.Series]
    setting: str  # how it is configured, for the data card


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, df.index)


def truthy(value: object) -> bool:
    """A nullable boolean cell as a bool: None, NaN and pd.NA are False."""
    try:
        if pd.isna(value):
            return False
    except (TypeError, ValueError):  # list-like cells
        pass
    return bool(value)


def _flag(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(False, index=df.index)
    return df[col].astype(object).map(truthy).astype(bool)


def _aspect(df: pd.DataFrame) -> pd.Series:
    w, h = _num(df, "crop_w"), _num(df, "crop_h")
    return w / h.where(h > 0)


def _has_crop(df: pd.DataFrame) -> pd.Series:
    parts = [_num(df, c) for c in ("crop_x", "crop_y", "crop_w", "crop_h")]
    ok = pd.Series(True, index=df.index)
    for p in parts:
        ok &= p.notna()
    ok &= (parts[2] > 0) & (parts[3] > 0)
    # A box that misses the image entirely (when its size is known) is no crop either.
    width, height = _num(df, "image_w"), _num(df, "image_h")
    misses = (parts[0] >= width) | (parts[1] >= height) | (parts[0] + parts[2] <= 0)
    misses |= parts[1] + parts[3] <= 0
    return ok & ~misses.fillna(False)


def _outside_aspect(df: pd.DataFrame, c: ExportConfig) -> pd.Series:
    ratio = _aspect(df)
    bad = pd.Series(False, index=df.index)
    if c.min_aspect is not None:
        bad |= ratio < c.min_aspect
    if c.max_aspect is not None:
        bad |= ratio > c.max_aspect
    return bad


# In the order they are applied; the first that rejects a row is its export_reason.
FILTERS: tuple[ExportFilter, ...] = (
    ExportFilter(
        "duplicate_sop",
        "the same SOPInstanceUID was already exported from an earlier batch (a re-sent study)",
        ("image", "video"),
        lambda c: True,
        lambda df, c: (
            df["duplicate_of_batch"].notna()
            if "duplicate_of_batch" in df
            else pd.Series(False, index=df.index)
        ),
        "always on",
    ),
    ExportFilter(
        "unknown_laterality",
        "the breast side is not known, so the image belongs to no bag",
        ("image", "video"),
        lambda c: True,
        lambda df, c: ~df["laterality"].isin(SIDES),
        "always on",
    ),
    ExportFilter(
        "no_case_record",
        "no case-table row for the image's patient, accession and breast",
        ("image", "video"),
        lambda c: True,
        lambda df, c: ~_flag(df, "has_case"),
        "always on",
    ),
    ExportFilter(
        "no_crop",
        "no ultrasound-field crop box, or one outside the image",
        ("image", "video"),
        lambda c: True,
        lambda df, c: ~_has_crop(df),
        "always on",
    ),
    ExportFilter(
        "trust_ceiling",
        "the study's trustworthiness score is worse than the ceiling (1 best .. 3 worst)",
        ("image", "video"),
        lambda c: c.max_trust is not None,
        lambda df, c: _num(df, "trustworthiness").fillna(99) > c.max_trust,
        "max_trust",
    ),
    ExportFilter(
        "crop_aspect_ratio",
        "crop width / height outside the configured range",
        ("image", "video"),
        lambda c: c.min_aspect is not None or c.max_aspect is not None,
        _outside_aspect,
        "min_aspect, max_aspect",
    ),
    ExportFilter(
        "crop_too_small",
        "crop width or height below the minimum side",
        ("image", "video"),
        lambda c: c.min_crop_side is not None,
        lambda df, c: (
            (_num(df, "crop_w") < c.min_crop_side) | (_num(df, "crop_h") < c.min_crop_side)
        ),
        "min_crop_side",
    ),
    ExportFilter(
        "instance_reject",
        "an instance label says 'Reject Image' (or 'Discard Entire Exam')",
        ("image",),
        lambda c: c.use_reject_system,
        lambda df, c: _flag(df, "reject_image"),
        "use_reject_system",
    ),
    ExportFilter(
        "unknown_pathology",
        "the breast has a biopsy whose result is unknown",
        ("image", "video"),
        lambda c: c.drop_unknown_pathology,
        lambda df, c: _flag(df, "has_unknown"),
        "drop_unknown_pathology",
    ),
    ExportFilter(
        "multi_lesion_breast",
        "the breast has more or fewer than one biopsied lesion",
        ("image", "video"),
        lambda c: c.only_one_lesion,
        lambda df, c: _num(df, "lesion_count").fillna(-1) != 1,
        "only_one_lesion",
    ),
    ExportFilter(
        "missing_file",
        "the image or frame file to export is not on disk",
        ("image", "video"),
        lambda c: True,
        lambda df, c: ~_flag(df, "source_exists"),
        "always on",
    ),
)

# Decided after the filters above, once the bags are known.
NO_IMAGE_BAG = "no_image_bag"
NO_IMAGE_BAG_MEANING = "a clip whose breast has no exported still, so it belongs to no bag"

FILTER_CODES: dict[str, str] = {
    **{f.code: f.meaning for f in FILTERS},
    NO_IMAGE_BAG: NO_IMAGE_BAG_MEANING,
}


def apply_filters(candidates: pd.DataFrame, config: ExportConfig, kind: str) -> pd.DataFrame:
    """A copy of the candidates with `export_reason`: 'cleaning' for rows cleaning excluded, the
    first export filter that rejected the row, or None when it is exported."""
    df = candidates.copy()
    reason = pd.Series(None, index=df.index, dtype=object)
    if "include" in df:
        reason[~_flag(df, "include")] = "cleaning"
    for f in FILTERS:
        if kind not in f.applies_to or not f.enabled(config):
            continue
        open_rows = reason.isna()
        if not open_rows.any():
            break
        hit = f.rejects(df, config).fillna(False).astype(bool) & open_rows
        reason[hit] = f.code
    df["export_reason"] = pd.Series(
        [None if pd.isna(r) else str(r) for r in reason], index=df.index, dtype=object
    )
    return df


def filter_counts(filtered: pd.DataFrame, config: ExportConfig, kind: str) -> list[dict]:
    """One row per export filter: code, meaning, enabled, setting, rows removed (0 if off)."""
    removed = filtered["export_reason"].value_counts() if len(filtered) else pd.Series(dtype=int)
    out = []
    for f in FILTERS:
        if kind not in f.applies_to:
            continue
        out.append(
            {
                "code": f.code,
                "meaning": f.meaning,
                "enabled": bool(f.enabled(config)),
                "setting": f.setting,
                "removed": int(removed.get(f.code, 0)),
            }
        )
    if kind == "video":
        out.append(
            {
                "code": NO_IMAGE_BAG,
                "meaning": NO_IMAGE_BAG_MEANING,
                "enabled": True,
                "setting": "always on",
                "removed": int(removed.get(NO_IMAGE_BAG, 0)),
            }
        )
    return out


def cleaning_reason_counts(filtered: pd.DataFrame) -> dict[str, int]:
    """Cleaning's reason codes over the rows it excluded (a row may carry several codes)."""
    counts: dict[str, int] = {}
    if filtered.empty or "exclusion_reasons" not in filtered:
        return counts
    for reasons, why in zip(filtered["exclusion_reasons"], filtered["export_reason"], strict=True):
        if why != "cleaning":
            continue
        codes = as_code_list(reasons) or ["(no code given)"]
        for code in codes:
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items()))


def as_code_list(value: object) -> list[str]:
    """exclusion_reasons as a list of codes, whether stored as a list, an array or JSON text."""
    import json

    if value is None:
        return []
    if isinstance(value, float) and value != value:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            parsed = json.loads(text)
        except ValueError:
            return [c.strip() for c in text.split(",") if c.strip()]
        return [str(c) for c in parsed] if isinstance(parsed, list) else [str(parsed)]
    try:
        return [str(c) for c in list(value)]  # list, tuple, numpy array
    except TypeError:
        return [str(value)]

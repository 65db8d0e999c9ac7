"""The reason codes of the cleaning stage: the one list of why an image or clip is left out.

Every selection rule of the original tool (spec §6.1, versions A and B) is a named code here with
a one-line meaning and the setting (a field of `Thresholds`, configurable through the
`cleaning_settings` resource and its CASBUSI_* variable) that decides it. `exclusion_reasons` in
`cleaned_images` / `cleaned_videos` holds these codes; an empty list means the row is included.
The README's reason-code table is generated from `REASON_CODES` (`render_markdown`), and a test
keeps it up to date. Nothing is deleted: an excluded image stays on disk and in every table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReasonCode:
    code: str
    kind: str  # image | case | link
    meaning: str
    setting: str | None  # the Thresholds field (and CASBUSI_* variable) that decides it


@dataclass(frozen=True)
class Thresholds:
    """Every number and word list a rule uses; `CleaningSettings` builds one from its config."""

    # corrupt: the original's green test (mean G exceeds mean R and mean B by this many levels)
    green_margin: float = 10.0
    # dark: share (percent) of the field's echo-bearing pixels (quality.field_darkness) at or
    # below `dark_pixel_level` above which it is dark
    dark_percent: float = 65.0
    dark_pixel_level: int = 20
    # caliper_twin: mean absolute grey difference (0-255 scale, float arithmetic) on the
    # ultrasound field at or below which two same-patient captures are one frozen frame
    twin_max_distance: float = 10.0
    # caliper_twin: ... and that distance over the pair's own spread on the field (mean absolute
    # deviation), at or below which; two dark captures differ little in absolute terms only
    twin_max_relative_distance: float = 0.3
    areas_kept: tuple[str, ...] = ("breast", "unknown")
    valid_birads: tuple[str, ...] = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
    study_exclusion_words: tuple[str, ...] = ("chest", "mastectomy")
    max_biopsy_days: float = 30.0
    max_regions: int = 1
    # orientation model: predictions below this softmax confidence leave `unknown`
    orientation_min_confidence: float | None = None  # None: the model module's MIN_CONFIDENCE


_CODES = [
    # image rules (order: the order a reviewer reads them, most fundamental first)
    ReasonCode(
        "corrupt",
        "image",
        "pixels unusable: decode failed, PNG unreadable, blank, or a green capture-card cast "
        "(mean G above mean R and B by more than the margin, on the original colour pixels)",
        "green_margin",
    ),
    ReasonCode(
        "duplicate",
        "image",
        "same pixels as another image (this or an earlier batch); the kept copy is the one of "
        "the earliest batch, then the smallest SOPInstanceUID (`duplicate_of`)",
        None,
    ),
    ReasonCode(
        "dark",
        "image",
        "more than dark_percent % of the ultrasound field's echo-bearing part (the convex hull of its lit pixels, so a fan's unscanned corners do not count) is at or below dark_pixel_level",
        "dark_percent",
    ),
    ReasonCode(
        "caliper_twin",
        "image",
        "a capture with calipers whose caliper-free twin (same patient, same frozen frame, "
        "distance <= twin_max_distance and <= twin_max_relative_distance of the pair's spread) "
        "is kept",
        "twin_max_distance",
    ),
    ReasonCode(
        "non_breast_area",
        "image",
        "the annotation names an area other than the breast (axilla, supra-/infraclavicular); "
        "no area word counts as breast, as in the original",
        "areas_kept",
    ),
    ReasonCode(
        "unknown_laterality",
        "image",
        "the annotation gives no side (or both)",
        None,
    ),
    ReasonCode(
        "multi_region",
        "image",
        "more than max_regions ultrasound regions (dual / split-screen view)",
        "max_regions",
    ),
    # case rules: decided per (patient, accession), never per patient across studies
    ReasonCode(
        "laterality_contradicts_study",
        "case",
        "a LEFT study's right image or a RIGHT study's left image",
        None,
    ),
    ReasonCode(
        "bilateral_unresolved",
        "case",
        "a BILATERAL study whose biopsies do not name the image's side (or whose image has "
        "no side): the image cannot be tied to a biopsy result",
        None,
    ),
    ReasonCode("male_patient", "case", "PatientSex is M", None),
    ReasonCode(
        "invalid_birads",
        "case",
        "BI-RADS missing or not one of valid_birads (e.g. 7, N/A, 4D)",
        "valid_birads",
    ),
    ReasonCode(
        "chest_or_mastectomy_study",
        "case",
        "StudyDescription contains one of study_exclusion_words (case-insensitive)",
        "study_exclusion_words",
    ),
    ReasonCode(
        "biopsy_after_30_days",
        "case",
        "no biopsy time, or the biopsy came more than max_biopsy_days after the exam",
        "max_biopsy_days",
    ),
    # link rules: the image cannot be tied to a case at all
    ReasonCode("missing_patient_id", "link", "PatientID is empty", None),
    ReasonCode("missing_accession", "link", "AccessionNumber is empty", None),
    ReasonCode(
        "no_case_record",
        "link",
        "both IDs present but the batch's case CSV has no row for (PatientID, AccessionNumber)",
        None,
    ),
]

REASON_CODES: dict[str, ReasonCode] = {c.code: c for c in _CODES}
IMAGE_RULES = tuple(c.code for c in _CODES if c.kind == "image")
CASE_RULES = tuple(c.code for c in _CODES if c.kind == "case")
LINK_RULES = tuple(c.code for c in _CODES if c.kind == "link")


def ordered(codes: set[str] | list[str]) -> list[str]:
    """Codes in the canonical order of REASON_CODES (so reruns give identical lists)."""
    unknown = set(codes) - set(REASON_CODES)
    if unknown:
        raise ValueError(f"unknown reason code(s): {sorted(unknown)}")
    return [c for c in REASON_CODES if c in codes]


def render_markdown() -> str:
    """The README's reason-code table (a test checks the README holds exactly this)."""
    lines = ["| code | kind | meaning | setting |", "|---|---|---|---|"]
    defaults = Thresholds()
    for c in _CODES:
        if c.setting is None:
            setting = ""
        else:
            value = getattr(defaults, c.setting)
            shown = ", ".join(value) if isinstance(value, tuple) else value
            setting = f"`{c.setting}` = {shown}"
        lines.append(f"| `{c.code}` | {c.kind} | {c.meaning} | {setting} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")

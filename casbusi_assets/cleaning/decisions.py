"""The selection rules: which reason codes (rules.py) apply to an image or a clip.

Each rule is a small function of already-measured values, so every code can be tested by
building the case that triggers it and the one that nearly does. Differences from the original
(spec §6.1, §12), on purpose:
- case rules are keyed by (PatientID, AccessionNumber), never by the patient alone (the original
  let one study's filter hit every study of the patient);
- BILATERAL studies: a side counts as biopsied when it is named at least once (the original
  required "more than one" of each before it stopped excluding by side);
- nothing is deleted and no row is dropped for lack of a crop: the reasons are recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from casbusi_assets.cleaning.rules import Thresholds, ordered


def present(value: object) -> bool:
    """Not null / NaN / NA and not blank."""
    if value is None:
        return False
    try:
        if pd.isna(value):
            return False
    except (TypeError, ValueError):  # list-likes: present
        pass
    return str(value).strip() != ""


def text_or_none(value: object) -> str | None:
    return str(value).strip() if present(value) else None


@dataclass(frozen=True)
class CaseInfo:
    """What the case rules need from one case_study_table row."""

    study_laterality: str | None = None  # LEFT | RIGHT | BILATERAL | None
    biopsy_lateralities: tuple[str, ...] = ()
    birads: str | None = None
    time_biop: float | None = None
    patient_sex: str | None = None
    study_description: str | None = None


def _json_strings(value: object) -> tuple[str, ...]:
    if not present(value):
        return ()
    try:
        items = json.loads(str(value))
    except ValueError:
        return (str(value),)
    return tuple(str(i) for i in items if present(i)) if isinstance(items, list) else ()


def case_index(case_study: pd.DataFrame) -> dict[tuple[str, str], CaseInfo]:
    """case_study_table rows by (patient_id, accession_number)."""
    out: dict[tuple[str, str], CaseInfo] = {}
    if case_study is None or case_study.empty:
        return out
    for row in case_study.to_dict("records"):
        t = row.get("time_biop")
        out[(str(row["patient_id"]), str(row["accession_number"]))] = CaseInfo(
            study_laterality=(text_or_none(row.get("study_laterality")) or "").upper() or None,
            biopsy_lateralities=_json_strings(row.get("biopsy_lateralities")),
            birads=text_or_none(row.get("birads")),
            time_biop=float(t) if present(t) else None,
            patient_sex=text_or_none(row.get("patient_sex")),
            study_description=text_or_none(row.get("study_description")),
        )
    return out


# ----------------------------------------------------------------------------- link rules


def link_reasons(
    patient_id: object, accession: object, case: CaseInfo | None, missing_links: object = None
) -> list[str]:
    """missing_patient_id / missing_accession, else no_case_record when the case CSV lacks it.

    `missing_links` is the catalog's comma list of empty links ("patient_id,accession_number");
    an empty value in the row itself counts the same, whichever the catalog version.
    """
    named = {m.strip() for m in (text_or_none(missing_links) or "").split(",") if m.strip()}
    reasons = []
    if not present(patient_id) or "patient_id" in named:
        reasons.append("missing_patient_id")
    if not present(accession) or "accession_number" in named:
        reasons.append("missing_accession")
    if not reasons and case is None:
        reasons.append("no_case_record")
    return reasons


# ----------------------------------------------------------------------------- case rules


def _side(laterality: object) -> str | None:
    text = (text_or_none(laterality) or "").lower()
    return text if text in ("left", "right") else None


def biopsied_sides(lateralities: tuple[str, ...]) -> set[str]:
    """The breasts a study's biopsies name ('LEFT', 'right', 'Bilateral' counts as both)."""
    sides: set[str] = set()
    for text in lateralities:
        t = text.lower()
        if "bilat" in t:
            sides |= {"left", "right"}
        if "left" in t:
            sides.add("left")
        if "right" in t:
            sides.add("right")
    return sides


def case_reasons(
    laterality: object,
    case: CaseInfo | None,
    th: Thresholds,
    *,
    patient_sex: object = None,
    study_description: object = None,
) -> list[str]:
    """The case rules for one image or clip of a study.

    `patient_sex` / `study_description` are the image's own header values; the case record's
    are used where the header has none. Without a case record only the header rules can apply.
    """
    reasons = []
    sex = text_or_none(patient_sex) or (case.patient_sex if case else None)
    if sex is not None and sex.upper() == "M":
        reasons.append("male_patient")
    description = (
        text_or_none(study_description) or (case.study_description if case else None) or ""
    )
    if any(w.lower() in description.lower() for w in th.study_exclusion_words):
        reasons.append("chest_or_mastectomy_study")
    if case is None:
        return reasons
    side = _side(laterality)
    study = case.study_laterality
    if (study == "LEFT" and side == "right") or (study == "RIGHT" and side == "left"):
        reasons.append("laterality_contradicts_study")
    if study == "BILATERAL" and (
        side is None or side not in biopsied_sides(case.biopsy_lateralities)
    ):
        reasons.append("bilateral_unresolved")
    birads = (case.birads or "").strip().upper()
    if birads not in {b.upper() for b in th.valid_birads}:
        reasons.append("invalid_birads")
    if case.time_biop is None or case.time_biop > th.max_biopsy_days:
        reasons.append("biopsy_after_30_days")
    return reasons


# ----------------------------------------------------------------------------- image rules


def content_reasons(
    area: object, laterality: object, region_count: object, th: Thresholds
) -> list[str]:
    """non_breast_area, unknown_laterality, multi_region: what the capture shows."""
    reasons = []
    a = (text_or_none(area) or "unknown").lower()
    if a not in {k.lower() for k in th.areas_kept}:
        reasons.append("non_breast_area")
    if _side(laterality) is None:
        reasons.append("unknown_laterality")
    if present(region_count) and int(region_count) > th.max_regions:
        reasons.append("multi_region")
    return reasons


def quality_reasons(
    is_corrupt: bool, duplicate_of: object, darkness: object, th: Thresholds
) -> list[str]:
    """corrupt, duplicate, dark: whether the pixels themselves can be used."""
    reasons = []
    if is_corrupt:
        reasons.append("corrupt")
    if present(duplicate_of):
        reasons.append("duplicate")
    if present(darkness) and float(darkness) > th.dark_percent:
        reasons.append("dark")
    return reasons


def label_category(is_doppler: object, orientation: object) -> str:
    """doppler (a colour-flow capture, kept in colour), else long / trans, else other."""
    if present(is_doppler) and bool(is_doppler) is True:
        return "doppler"
    o = (text_or_none(orientation) or "").lower()
    return o if o in ("long", "trans") else "other"


# ----------------------------------------------------------------------------- whole frames


def decide(
    frame: pd.DataFrame, cases: dict[tuple[str, str], CaseInfo], th: Thresholds
) -> pd.DataFrame:
    """Add `exclusion_reasons`, `include` and `label_cat` to a frame of measured rows.

    Needs: sop_instance_uid, patient_id, accession_number, is_corrupt, duplicate_of, darkness,
    area, laterality, region_count, is_doppler, orientation, patient_sex, study_description;
    optionally has_calipers and twin_of (stills; caliper_twin is skipped without them).
    """
    out = frame.copy()
    if out.empty:
        out["exclusion_reasons"] = pd.Series(dtype=object)
        out["include"] = pd.Series(dtype=bool)
        out["label_cat"] = pd.Series(dtype=object)
        return out
    records = out.to_dict("records")
    quality = [
        quality_reasons(bool(r["is_corrupt"]), r["duplicate_of"], r["darkness"], th)
        for r in records
    ]
    usable = {r["sop_instance_uid"]: not q for r, q in zip(records, quality, strict=True)}
    calipers = {r["sop_instance_uid"]: bool(r.get("has_calipers")) for r in records}
    all_reasons = []
    for r, q in zip(records, quality, strict=True):
        reasons = list(q)
        twin = r.get("twin_of")
        # caliper_twin: the marked capture goes only when its clean twin really stays
        if (
            calipers[r["sop_instance_uid"]]
            and present(twin)
            and not calipers.get(twin, True)
            and usable.get(twin, False)
        ):
            reasons.append("caliper_twin")
        reasons += content_reasons(r["area"], r["laterality"], r["region_count"], th)
        key = (str(r["patient_id"]), str(r["accession_number"]))
        linked = present(r["patient_id"]) and present(r["accession_number"])
        case = cases.get(key) if linked else None
        reasons += link_reasons(
            r["patient_id"], r["accession_number"], case, r.get("missing_links")
        )
        reasons += case_reasons(
            r["laterality"],
            case,
            th,
            patient_sex=r.get("patient_sex"),
            study_description=r.get("study_description"),
        )
        all_reasons.append(ordered(set(reasons)))
    out["exclusion_reasons"] = all_reasons
    out["include"] = [not r for r in all_reasons]
    out["label_cat"] = [label_category(r["is_doppler"], r["orientation"]) for r in records]
    return out

"""The case CSV (`total_cases_anon.csv`) and the tables built from it.

Three tables come out of this module, each with exactly the columns of its schema in
`table_schemas`:

- `case_table` (`read_case_csv`): the CSV as typed rows, one per biopsy row, with its CSV line.
- `case_study_table` (`build_case_study_table`): one row per (patient, accession), the biopsy rows
  aggregated in CSV order, the DICOM study fields of that same accession, image / video counts and
  the trustworthiness score.
- `breast_table` (`build_breast_table`): two rows (LEFT, RIGHT) per (patient, accession) with the
  biopsy results of that breast only.

Compared with the original CASBUSI-Database code (spec §3.7, §3.8), these bugs are fixed: DICOM
study fields and image counts are joined per accession instead of per patient, `time_biop` is the
maximum over the biopsies instead of the last row, breast descriptions are all of that breast's
biopsies instead of the last one, lesion counts are per accession instead of per patient, and the
trust score classifies biopsy text with the mapping instead of a substring test.

Plain pandas; this module knows nothing of Dagster.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from casbusi_assets.storage.schemas import BREAST_TABLE, CASE_STUDY_TABLE, CASE_TABLE

REQUIRED_CASE_COLUMNS: tuple[str, ...] = (
    "Patient_ID",
    "Accession_Number",
    "Biopsy_Accession",
    "Biopsy_Laterality",
    "BI-RADS",
    "Study_Laterality",
    "Biopsy",
    "Path_Desc",
    "Density_Desc",
    "Time_Biop",
    "Age",
    "Race",
    "Ethnicity",
)

# CSV header -> case_table column.
_COLUMN_MAP: dict[str, str] = {
    "Patient_ID": "patient_id",
    "Accession_Number": "accession_number",
    "Biopsy_Accession": "biopsy_accession",
    "Biopsy_Laterality": "biopsy_laterality",
    "BI-RADS": "birads",
    "Study_Laterality": "study_laterality",
    "Biopsy": "biopsy",
    "Path_Desc": "path_desc",
    "Density_Desc": "density_desc",
    "Time_Biop": "time_biop",
    "Age": "age",
    "Race": "race",
    "Ethnicity": "ethnicity",
}

# Cells that mean "no value". Excel and pandas exports write these for missing data; keeping them
# as text would turn a missing Time_Biop into a parse error and a missing laterality into 'NAN'.
_NULL_TOKENS = frozenset({"", "nan", "none", "null", "na", "n/a", "#n/a"})

# Excel turns long numeric IDs into floats ("1234.0"); the integer part is the real ID.
_FLOAT_ID = re.compile(r"^(\d+)\.0+$")
# ...or into scientific notation ("1.23457E+11"), which has already lost digits: refuse it rather
# than join on a wrong ID.
_SCIENTIFIC_ID = re.compile(r"^\d(\.\d+)?[eE][+-]\d+$")

_MAX_REPORTED_ERRORS = 10

BiopsyClass = Literal["malignant", "benign", "unknown"]

# Spec §3.7 `biopsy_mapping`. Keys are normalised with `_norm_text` (case-folded, whitespace
# collapsed); any value not listed is 'unknown'.
BIOPSY_MAPPING: dict[str, BiopsyClass] = {
    "pathology malignant": "malignant",
    "known biopsy-proven malignancy": "malignant",
    "malignant": "malignant",
    "pathology benign": "benign",
    "probably benign": "benign",
    "pathology elevated risk": "benign",
    "benign": "benign",
    "waiting for pathology": "unknown",
    "low suspicion for malignancy": "unknown",
    "suspicious": "unknown",
    "need additional imaging evaluation": "unknown",
    "post procedure mammogram for marker placement": "unknown",
    "high suspicion for malignancy": "unknown",
    "highly suggestive of malignancy": "unknown",
    "moderate suspicion for malignancy": "unknown",
    "negative": "unknown",
    "elevated risk": "unknown",
}

_SIDES = ("LEFT", "RIGHT")

# DICOM-JSON tags read from the catalog header (the catalog has no typed column for them).
_TAG_PATIENT_SIZE = "00101020"
_TAG_PATIENT_WEIGHT = "00101030"

_CATALOG_COLUMNS = (
    "patient_id",
    "accession_number",
    "study_description",
    "study_date",
    "patient_sex",
    "kind",
    "status",
    "header",
)


class CaseCsvError(ValueError):
    """The case CSV cannot be used; the message names the file, column and row."""


# --------------------------------------------------------------------------------------------
# Small normalisers
# --------------------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    # pd.isna covers None, NaN and pd.NA: a case frame read back from Parquet with pandas'
    # string dtype holds pd.NA, which `is None` / math.isnan do not recognise.
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like values are not "missing"
        return False


def _norm_text(value: object) -> str | None:
    """Case-folded, whitespace-collapsed text, or None for a missing value."""
    if _is_missing(value):
        return None
    text = " ".join(str(value).split()).casefold()
    return text or None


def _is_null_cell(text: str) -> bool:
    return text.strip().casefold() in _NULL_TOKENS


def classify_biopsy(text: object) -> BiopsyClass:
    """Map a `Biopsy` value to 'malignant', 'benign' or 'unknown' with `BIOPSY_MAPPING`.

    Exact match after case-folding and collapsing whitespace, never a substring test: the original
    looked for "Malignant" inside the text, so "Known Biopsy-Proven Malignancy" was missed and any
    future text merely mentioning malignancy would have counted. Missing or unlisted text is
    'unknown'.
    """
    key = _norm_text(text)
    if key is None:
        return "unknown"
    return BIOPSY_MAPPING.get(key, "unknown")


def _norm_laterality(value: object) -> str | None:
    text = _norm_text(value)
    return text.upper() if text is not None else None


def _norm_birads(text: str) -> str:
    # '4 a', '4a' -> '4A'; Excel's '4.0' -> '4'.
    compact = "".join(text.split()).upper()
    match = _FLOAT_ID.match(compact)
    return match.group(1) if match else compact


# --------------------------------------------------------------------------------------------
# Reading the CSV
# --------------------------------------------------------------------------------------------


def _decode(data: bytes, source: str) -> str:
    # utf-8-sig drops a BOM; cp1252 is what Excel on Windows writes when it is not told UTF-8.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise CaseCsvError(f"{source} is neither UTF-8 nor Windows-1252 text: {exc}") from exc


def _header_key(name: str) -> str:
    return name.strip().casefold()


_REQUIRED_BY_KEY = {_header_key(c): c for c in REQUIRED_CASE_COLUMNS}


def _detect_delimiter(first_line: str) -> str:
    """Pick the delimiter under which the header names the most required columns.

    Matching against the known column names is what makes this reliable: a `;` file read with
    `,` yields one long header cell that matches nothing. Ties (including a header that matches
    nothing either way) keep the standard `,`.
    """
    best, best_hits = ",", -1
    for delimiter in (",", ";", "\t"):
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        hits = sum(_header_key(c) in _REQUIRED_BY_KEY for c in cells)
        if hits > best_hits:
            best, best_hits = delimiter, hits
    return best


def _empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()


def _conform(records: Sequence[dict[str, Any]], schema: pa.Schema) -> pd.DataFrame:
    """Build a frame with exactly the schema's columns, order and types.

    Going through Arrow both types an empty result and fails loudly if a value does not fit its
    column, instead of writing a wrongly typed Parquet file later.
    """
    if not records:
        return _empty_frame(schema)
    columns = {name: [r[name] for r in records] for name in schema.names}
    return pa.table(columns, schema=schema).to_pandas()


def _quote_list(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _rows_text(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_REPORTED_ERRORS])
    more = (
        f" and {len(rows) - _MAX_REPORTED_ERRORS} more" if len(rows) > _MAX_REPORTED_ERRORS else ""
    )
    return shown + more


def _parse_id(text: str, column: str, row: int, source: str) -> str:
    if _SCIENTIFIC_ID.match(text):
        raise CaseCsvError(
            f"{source}: column '{column}' row {row}: {text!r} is in scientific notation "
            "(a spreadsheet converted the ID to a number and lost digits); export the column as text"
        )
    match = _FLOAT_ID.match(text)
    return match.group(1) if match else text


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_case_csv(data: bytes, source: str, batch_id: str) -> pd.DataFrame:
    """Read `total_cases_anon.csv` into `case_table` rows (one per CSV data row).

    Header names are matched ignoring surrounding whitespace and case; extra columns are ignored; a
    UTF-8 BOM and `;` or tab delimiters are handled. Every value is read as text first, so IDs keep
    leading zeros; an Excel float ID "1234.0" becomes "1234". Lateralities and BI-RADS are
    upper-cased; `Time_Biop` and `Age` must be numbers or empty. `row_number` is the 1-based line
    of the file where the row starts (the header is line 1), the number an editor or spreadsheet
    shows, and the one error messages use.

    Raises `CaseCsvError` naming the file, column and rows for: missing required columns, a row
    with a different number of fields than the header, a non-numeric `Time_Biop` / `Age`, an ID
    in scientific notation, or rows without `Patient_ID` / `Accession_Number` (they could never be
    joined to the DICOMs, and dropping them silently would lose cases).
    """
    text = _decode(data, source)
    if not text.strip():
        raise CaseCsvError(f"{source} is empty (no header line)")
    delimiter = _detect_delimiter(text.splitlines()[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader)

    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        canonical = _REQUIRED_BY_KEY.get(_header_key(name))
        if canonical is None:
            continue
        if canonical in positions:
            raise CaseCsvError(
                f"{source} has column '{canonical}' more than once "
                f"(as {header[positions[canonical]]!r} and {name!r})"
            )
        positions[canonical] = index
    missing = [c for c in REQUIRED_CASE_COLUMNS if c not in positions]
    if missing:
        raise CaseCsvError(
            f"{source} is missing column(s) {_quote_list(missing)} "
            f"(found: {_quote_list(h.strip() for h in header)})"
        )

    records: list[dict[str, Any]] = []
    errors: list[str] = []
    unjoinable: list[int] = []
    line_after_previous = reader.line_num  # lines consumed so far; the next row starts after them
    for cells in reader:
        row = line_after_previous + 1
        line_after_previous = reader.line_num
        # Blank lines and Excel's trailing ",,,," rows carry no case.
        if all(_is_null_cell(c) for c in cells):
            continue
        if len(cells) > len(header) and all(_is_null_cell(c) for c in cells[len(header) :]):
            cells = cells[: len(header)]  # trailing empty cells some spreadsheets add
        if len(cells) != len(header):
            # More fields: usually an unquoted delimiter inside a description, which shifts the
            # columns after it. Fewer: a truncated row. Either way reading on would put values
            # into the wrong fields.
            errors.append(f"row {row}: has {len(cells)} fields, the header has {len(header)}")
            continue
        values = {
            column: (None if _is_null_cell(cells[i]) else cells[i].strip())
            for column, i in positions.items()
        }
        record: dict[str, Any] = {"batch_id": batch_id, "source": source, "row_number": row}
        try:
            for column in ("Patient_ID", "Accession_Number", "Biopsy_Accession"):
                value = values[column]
                record[_COLUMN_MAP[column]] = (
                    None if value is None else _parse_id(value, column, row, source)
                )
        except CaseCsvError as exc:
            errors.append(str(exc).removeprefix(f"{source}: "))
            continue
        for column in ("Biopsy_Laterality", "Study_Laterality"):
            record[_COLUMN_MAP[column]] = _norm_laterality(values[column])
        birads = values["BI-RADS"]
        record["birads"] = None if birads is None else _norm_birads(birads)
        for column, unit in (("Time_Biop", "a number of days"), ("Age", "a number of years")):
            raw = values[column]
            number = None if raw is None else _parse_number(raw)
            if raw is not None and number is None:
                errors.append(f"column '{column}' row {row}: {raw!r} is not {unit}")
            record[_COLUMN_MAP[column]] = number
        for column in ("Biopsy", "Path_Desc", "Density_Desc", "Race", "Ethnicity"):
            record[_COLUMN_MAP[column]] = values[column]
        if record["patient_id"] is None or record["accession_number"] is None:
            unjoinable.append(row)
        records.append(record)

    if unjoinable:
        errors.append(
            f"row(s) {_rows_text(unjoinable)}: empty 'Patient_ID' or 'Accession_Number' "
            "(such rows cannot be joined to the DICOMs)"
        )
    if errors:
        shown = "; ".join(errors[:_MAX_REPORTED_ERRORS])
        more = (
            f"; and {len(errors) - _MAX_REPORTED_ERRORS} more problem(s)"
            if len(errors) > _MAX_REPORTED_ERRORS
            else ""
        )
        raise CaseCsvError(f"{source}: {shown}{more}")
    return _conform(records, CASE_TABLE)


# --------------------------------------------------------------------------------------------
# Trustworthiness
# --------------------------------------------------------------------------------------------


def trustworthiness(
    study_laterality: object,
    biopsy_lateralities: Sequence[object],
    biopsies: Sequence[object],
    birads: object,
) -> tuple[int, str]:
    """Score how far an accession's biopsy results can be trusted as labels of its images.

    Returns (score, reason): 1 best, 3 worst. Version B's rules (spec §3.8), with its bugs fixed.
    Inputs are one accession's values; `biopsy_lateralities` and `biopsies` have one entry per
    biopsy row of the case CSV. Rules, first match wins:

    3, no biopsy result: every `Biopsy` is empty (or there is no biopsy row). There is no label to
       trust. B only caught the single-row case `[nan]`.
    3, BI-RADS 1 or 2 and any biopsy malignant: the radiologist called the exam negative/benign
       yet a biopsy found cancer, so the biopsy most likely belongs to another lesion or exam.
       BI-RADS 0 (incomplete) and 3 (probably benign) do not contradict malignancy and are not in
       the set (C's {0, 1} dropped 2 and added 0).
    3, BI-RADS 6 and no biopsy malignant: 6 means biopsy-proven cancer, so a case whose biopsies
       are all benign or unknown cannot carry the right label. (C looked for any "Benign", which
       also hits a case with one malignant and one benign lesion, and misses all-unknown.)
       Malignancy is decided by `classify_biopsy`, not B's substring test for "Malignant" (which
       missed "Known Biopsy-Proven Malignancy" and lower-case text); BI-RADS is compared as the
       normalised string ('4.0' -> '4'), not B's int-vs-str comparison.
    1, study LEFT or RIGHT and exactly one biopsy, whose laterality equals the study's: the one
       result belongs to the imaged breast.
    2, study LEFT or RIGHT and two or more biopsies, all of that laterality: every result belongs
       to the imaged breast, but which lesion in which image is ambiguous.
    2, study BILATERAL and every biopsy laterality is LEFT or RIGHT: each result can be tied to one
       breast (the breast table does so).
    3, otherwise (the default): unknown study laterality, a biopsy of the other breast or of
       unknown / bilateral laterality, so results cannot be tied to the imaged breast. B also gave
       2 to any accession "duplicated on (Patient_ID, Study_Laterality)", i.e. to a patient's
       second study of the same side regardless of its biopsies; that rule is dropped.
    """
    classes = [classify_biopsy(b) for b in biopsies]
    has_result = any(_norm_text(b) is not None for b in biopsies)
    if not has_result:
        return 3, "no biopsy result"
    birads_key = None if _is_missing(birads) else _norm_birads(str(birads))
    if birads_key in {"1", "2"} and "malignant" in classes:
        return 3, f"BI-RADS {birads_key} (negative/benign) but a biopsy is malignant"
    if birads_key == "6" and "malignant" not in classes:
        return 3, "BI-RADS 6 (known malignancy) but no biopsy is malignant"

    study = _norm_laterality(study_laterality)
    lateralities = [_norm_laterality(lat) for lat in biopsy_lateralities]
    n = len(lateralities)
    if study in _SIDES:
        if all(lat == study for lat in lateralities):
            if n == 1:
                return 1, f"one biopsy, same laterality as the study ({study})"
            return 2, f"{n} biopsies, all of the study laterality ({study})"
        others = sorted({lat or "missing" for lat in lateralities if lat != study})
        return 3, f"study is {study} but biopsy laterality is {' / '.join(others)}"
    if study == "BILATERAL":
        if all(lat in _SIDES for lat in lateralities):
            return 2, "bilateral study, every biopsy is LEFT or RIGHT"
        others = sorted({lat or "missing" for lat in lateralities if lat not in _SIDES})
        return 3, f"study is BILATERAL but biopsy laterality is {' / '.join(others)}"
    return 3, f"study laterality {study or 'missing'}"


# --------------------------------------------------------------------------------------------
# Case-study table
# --------------------------------------------------------------------------------------------


def _cases_in_csv_order(cases: pd.DataFrame) -> pd.DataFrame:
    # Stable sort: the frame may come back from Parquet in any order; row_number is the CSV order.
    return cases.sort_values("row_number", kind="mergesort")


def _first_present(values: Iterable[object]) -> object:
    for value in values:
        if not _is_missing(value):
            return value
    return None


def _json_list(values: Iterable[object]) -> str:
    # ensure_ascii=False keeps accented descriptions readable in SQL.
    return json.dumps([None if _is_missing(v) else v for v in values], ensure_ascii=False)


def _dicom_json_number(header: object, tag: str) -> float | None:
    """First numeric value of a tag in a DICOM-JSON header string, None when absent or unusable."""
    if not isinstance(header, str) or not header:
        return None
    try:
        element = json.loads(header).get(tag)
    except (ValueError, AttributeError):
        return None
    if not isinstance(element, dict):
        return None
    values = element.get("Value") or []
    if not values:
        return None
    # DS values may be JSON numbers or strings depending on the writer.
    try:
        number = float(values[0])
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ok_catalog(catalog: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _CATALOG_COLUMNS if c not in catalog.columns]
    if missing:
        raise ValueError(f"catalog is missing column(s) {_quote_list(missing)}")
    ok = catalog[catalog["status"] == "ok"].copy()
    # IDs are compared as exact strings (leading zeros matter); only stray padding is removed.
    for column in ("patient_id", "accession_number"):
        ok[column] = ok[column].map(lambda v: None if _is_missing(v) else str(v).strip())
    return ok


def _media_counts(ok: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """(image_count, video_count) per (patient, accession) from ok catalog rows."""
    media = ok[ok["kind"].isin(["image", "video"])]
    if "sop_instance_uid" in media.columns:
        # A zip can hold the same SOP instance twice; image_table keeps it once, so count it once.
        media = media.drop_duplicates(["patient_id", "accession_number", "sop_instance_uid"])
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    grouped = media.groupby(["patient_id", "accession_number", "kind"], sort=True).size()
    for (patient, accession, kind), size in grouped.items():
        images, videos = counts.get((patient, accession), (0, 0))
        if kind == "image":
            images = int(size)
        else:
            videos = int(size)
        counts[(patient, accession)] = (images, videos)
    return counts


def _study_fields(ok: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """DICOM study fields per (patient, accession), from one representative ok row each.

    Image rows are preferred, then videos, then pixel-less objects, then member path, so the choice
    does not depend on the order of the zip. Only that one row's header is parsed.
    """
    if ok.empty:
        return {}
    ranked = ok.assign(_rank=ok["kind"].map({"image": 0, "video": 1}).fillna(2))
    order = ["patient_id", "accession_number", "_rank"]
    order += [c for c in ("member_path", "sop_instance_uid") if c in ranked.columns]
    ranked = ranked.sort_values(order, kind="mergesort", na_position="last")
    firsts = ranked.drop_duplicates(["patient_id", "accession_number"], keep="first")
    fields: dict[tuple[str, str], dict[str, Any]] = {}
    for row in firsts.itertuples(index=False):
        fields[(row.patient_id, row.accession_number)] = {
            "study_description": None
            if _is_missing(row.study_description)
            else row.study_description,
            "study_date": None if _is_missing(row.study_date) else row.study_date,
            "patient_sex": None if _is_missing(row.patient_sex) else row.patient_sex,
            "patient_size": _dicom_json_number(row.header, _TAG_PATIENT_SIZE),
            "patient_weight": _dicom_json_number(row.header, _TAG_PATIENT_WEIGHT),
        }
    return fields


_NO_STUDY_FIELDS: dict[str, Any] = {
    "study_description": None,
    "study_date": None,
    "patient_sex": None,
    "patient_size": None,
    "patient_weight": None,
}


def build_case_study_table(
    cases: pd.DataFrame, catalog: pd.DataFrame, batch_id: str
) -> pd.DataFrame:
    """One `case_study_table` row per (patient, accession) of the case CSV.

    - Lists (JSON strings, CSV order, null entries kept so positions line up across lists):
      biopsy accessions, lateralities, biopsies, path and density descriptions.
    - First non-empty value: BI-RADS, study laterality, age, race, ethnicity.
    - `time_biop` is the MAX over the accession's biopsies. The later selection filter drops
      accessions whose biopsy came more than 30 days after the exam (the result may not describe
      what was imaged); with the original's "last row" one late biopsy could hide behind an early
      one depending on row order. Null only when every biopsy's value is null.
    - DICOM study fields (description, date, sex, size, weight) come from the ok catalog rows of
      the SAME (patient, accession); the original joined on the patient, giving every study of a
      patient the fields of one of them.
    - `image_count` / `video_count`: ok catalog images / videos of that accession (0 when none).
      Left join: an accession without DICOMs is kept, with null study fields.
    - `trustworthiness`, `trust_reason`: see `trustworthiness`.

    Accessions found in the DICOMs but not in the CSV are not rows here (there is no case to
    describe); `uncased_accessions` lists them. Sorted by patient, accession.
    """
    if cases.empty:
        return _empty_frame(CASE_STUDY_TABLE)
    ok = _ok_catalog(catalog)
    counts = _media_counts(ok)
    study_fields = _study_fields(ok)

    records: list[dict[str, Any]] = []
    ordered = _cases_in_csv_order(cases)
    for (patient, accession), group in ordered.groupby(
        ["patient_id", "accession_number"], sort=True
    ):
        lateralities = list(group["biopsy_laterality"])
        biopsies = list(group["biopsy"])
        times = [t for t in group["time_biop"] if not _is_missing(t)]
        birads = _first_present(group["birads"])
        study_laterality = _first_present(group["study_laterality"])
        score, reason = trustworthiness(study_laterality, lateralities, biopsies, birads)
        images, videos = counts.get((patient, accession), (0, 0))
        records.append(
            {
                "batch_id": batch_id,
                "patient_id": patient,
                "accession_number": accession,
                "biopsy_accessions": _json_list(group["biopsy_accession"]),
                "biopsy_lateralities": _json_list(lateralities),
                "biopsies": _json_list(biopsies),
                "path_descs": _json_list(group["path_desc"]),
                "density_descs": _json_list(group["density_desc"]),
                "birads": birads,
                "study_laterality": study_laterality,
                "time_biop": float(max(times)) if times else None,
                "age": _first_present(group["age"]),
                "race": _first_present(group["race"]),
                "ethnicity": _first_present(group["ethnicity"]),
                **study_fields.get((patient, accession), _NO_STUDY_FIELDS),
                "image_count": images,
                "video_count": videos,
                "trustworthiness": score,
                "trust_reason": reason,
            }
        )
    return _conform(records, CASE_STUDY_TABLE)


def uncased_accessions(cases: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """(patient, accession) pairs with ok DICOMs in the catalog but no row in the case CSV.

    Columns patient_id, accession_number, image_count, video_count; sorted. Their images have no
    biopsy label; the asset reports how many so a mismatched CSV is noticed.
    """
    ok = _ok_catalog(catalog)
    known = set(zip(cases["patient_id"], cases["accession_number"], strict=True))
    counts = _media_counts(ok)
    pairs = sorted(
        {
            (p, a)
            for p, a in zip(ok["patient_id"], ok["accession_number"], strict=True)
            if not _is_missing(p) and not _is_missing(a) and (p, a) not in known
        }
    )
    rows = [(p, a, *counts.get((p, a), (0, 0))) for p, a in pairs]
    frame = pd.DataFrame(
        rows, columns=["patient_id", "accession_number", "image_count", "video_count"]
    )
    return frame.astype(
        {
            "patient_id": object,
            "accession_number": object,
            "image_count": "int64",
            "video_count": "int64",
        }
    )


# --------------------------------------------------------------------------------------------
# Breast table
# --------------------------------------------------------------------------------------------


def _breasts_of(laterality: object) -> tuple[str, ...]:
    lat = _norm_laterality(laterality)
    if lat in _SIDES:
        return (lat,)
    if lat == "BILATERAL":
        return _SIDES
    return ()


def _join_descriptions(values: list[object]) -> str | None:
    present = [str(v) for v in values if not _is_missing(v)]
    return " | ".join(present) if present else None


def build_breast_table(cases: pd.DataFrame, batch_id: str) -> pd.DataFrame:
    """Two `breast_table` rows (LEFT, RIGHT) per (patient, accession) of the case CSV.

    Each biopsy row goes to the breast its `biopsy_laterality` names; BILATERAL goes to both
    breasts (the result applies to each); an empty or unrecognised laterality goes to neither,
    because guessing a side would put a label on the wrong breast. For each breast:

    - `has_malignant` / `has_benign` / `has_unknown`: some biopsy of that breast classifies so
      (`classify_biopsy`; an empty Biopsy is 'unknown').
    - `path_desc` / `density_desc`: that breast's descriptions in CSV order joined with " | "
      (empty ones skipped; null when none). The original kept only the last biopsy's text, which
      could also come from the other breast.
    - `lesion_count`: number of biopsy rows of that (patient, accession, breast). The original
      counted per (patient, laterality) across all of the patient's accessions.

    A breast with no biopsy still gets its row (flags False, count 0). Sorted by patient,
    accession, breast.
    """
    if cases.empty:
        return _empty_frame(BREAST_TABLE)
    records: list[dict[str, Any]] = []
    ordered = _cases_in_csv_order(cases)
    for (patient, accession), group in ordered.groupby(
        ["patient_id", "accession_number"], sort=True
    ):
        per_breast: dict[str, dict[str, Any]] = {
            side: {"path": [], "density": [], "classes": set(), "count": 0} for side in _SIDES
        }
        for row in group.itertuples(index=False):
            for side in _breasts_of(row.biopsy_laterality):
                acc = per_breast[side]
                acc["path"].append(row.path_desc)
                acc["density"].append(row.density_desc)
                acc["classes"].add(classify_biopsy(row.biopsy))
                acc["count"] += 1
        for side in _SIDES:
            acc = per_breast[side]
            records.append(
                {
                    "batch_id": batch_id,
                    "patient_id": patient,
                    "accession_number": accession,
                    "breast": side,
                    "path_desc": _join_descriptions(acc["path"]),
                    "density_desc": _join_descriptions(acc["density"]),
                    "has_malignant": "malignant" in acc["classes"],
                    "has_benign": "benign" in acc["classes"],
                    "has_unknown": "unknown" in acc["classes"],
                    "lesion_count": acc["count"],
                }
            )
    return _conform(records, BREAST_TABLE)

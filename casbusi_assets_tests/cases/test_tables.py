"""Tests of the case CSV reader and the case-study / breast tables built from it."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from casbusi_assets.cases.tables import (
    BIOPSY_MAPPING,
    REQUIRED_CASE_COLUMNS,
    CaseCsvError,
    build_breast_table,
    build_case_study_table,
    classify_biopsy,
    read_case_csv,
    trustworthiness,
    uncased_accessions,
)
from casbusi_assets.storage.schemas import BREAST_TABLE, CASE_STUDY_TABLE, CASE_TABLE

SOURCE = "zip:batch1/total_cases_anon.csv"
BATCH = "batch1"


def case_row(**overrides: Any) -> dict[str, str]:
    """One CSV row with plausible defaults; keys are the CSV headers."""
    row = {
        "Patient_ID": "P1",
        "Accession_Number": "A1",
        "Biopsy_Accession": "B1",
        "Biopsy_Laterality": "LEFT",
        "BI-RADS": "4",
        "Study_Laterality": "LEFT",
        "Biopsy": "Pathology Benign",
        "Path_Desc": "fibroadenoma",
        "Density_Desc": "scattered",
        "Time_Biop": "5",
        "Age": "50",
        "Race": "White",
        "Ethnicity": "Not Hispanic",
    }
    row.update(overrides)
    return row


def make_csv(
    rows: list[dict[str, str]],
    header: list[str] | None = None,
    delimiter: str = ",",
    bom: bool = False,
) -> bytes:
    header = list(REQUIRED_CASE_COLUMNS) if header is None else header
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, row.get(h.strip(), "")) for h in header])
    text = buffer.getvalue()
    return (("\ufeff" if bom else "") + text).encode("utf-8")


def read(rows: list[dict[str, str]], **kwargs: Any) -> pd.DataFrame:
    return read_case_csv(make_csv(rows, **kwargs), SOURCE, BATCH)


def catalog_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient_id": "P1",
        "accession_number": "A1",
        "sop_instance_uid": "1.2.3",
        "member_path": "a/1.dcm",
        "study_description": "US BREAST LEFT",
        "study_date": "20230101",
        "patient_sex": "F",
        "kind": "image",
        "status": "ok",
        "header": json.dumps(
            {"00101020": {"vr": "DS", "Value": [1.65]}, "00101030": {"vr": "DS", "Value": [60]}}
        ),
    }
    row.update(overrides)
    return row


def make_catalog(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = list(catalog_row().keys())
    return pd.DataFrame(rows, columns=columns)


EMPTY_CATALOG = make_catalog([])


def assert_schema(frame: pd.DataFrame, schema: pa.Schema) -> None:
    assert list(frame.columns) == schema.names
    # Arrow accepts the frame with exactly the schema's types.
    pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


# ------------------------------------------------------------------------------------------
# read_case_csv: columns and header tolerance
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dropped",
    [["BI-RADS", "Time_Biop"], ["Patient_ID"], ["Ethnicity"]],
)
def test_missing_columns_are_named(dropped: list[str]) -> None:
    header = [c for c in REQUIRED_CASE_COLUMNS if c not in dropped]
    with pytest.raises(CaseCsvError) as err:
        read([case_row()], header=header)
    message = str(err.value)
    assert SOURCE in message
    assert "missing column(s) " + ", ".join(f"'{c}'" for c in dropped) in message
    assert "found:" in message and "'Age'" in message


@pytest.mark.parametrize(
    ("header", "delimiter", "bom"),
    [
        (list(REQUIRED_CASE_COLUMNS), ",", False),
        ([f"  {c} " for c in REQUIRED_CASE_COLUMNS], ",", False),
        ([c.lower() for c in REQUIRED_CASE_COLUMNS], ",", True),
        ([c.upper() for c in REQUIRED_CASE_COLUMNS], ";", True),
        (["Facility", *REQUIRED_CASE_COLUMNS, "Notes"], ";", False),
        (list(REQUIRED_CASE_COLUMNS), "\t", False),
    ],
    ids=["plain", "padded", "lower+bom", "upper+semicolon+bom", "extra-columns", "tab"],
)
def test_header_variants_read_the_same(header: list[str], delimiter: str, bom: bool) -> None:
    canonical = {c.casefold(): c for c in REQUIRED_CASE_COLUMNS}
    row = case_row(Path_Desc="IDC, grade 2")  # a delimiter inside a quoted field
    rows = [{h: row.get(canonical.get(h.strip().casefold(), ""), "x") for h in header}]
    frame = read_case_csv(make_csv(rows, header, delimiter, bom), SOURCE, BATCH)
    assert_schema(frame, CASE_TABLE)
    record = frame.iloc[0]
    assert record["patient_id"] == "P1"
    assert record["birads"] == "4"
    assert record["path_desc"] == "IDC, grade 2"
    assert record["ethnicity"] == "Not Hispanic"
    assert record["source"] == SOURCE and record["batch_id"] == BATCH


def test_duplicate_column_after_normalisation_is_an_error() -> None:
    header = [*REQUIRED_CASE_COLUMNS, " age "]
    with pytest.raises(CaseCsvError, match="'Age' more than once"):
        read([case_row()], header=header)


def test_empty_file_is_an_error_but_header_only_is_an_empty_typed_frame() -> None:
    with pytest.raises(CaseCsvError, match="empty"):
        read_case_csv(b"", SOURCE, BATCH)
    frame = read([])
    assert frame.empty
    assert_schema(frame, CASE_TABLE)
    assert frame["row_number"].dtype == "int64" and frame["age"].dtype == "float64"
    for built, schema in (
        (build_case_study_table(frame, EMPTY_CATALOG, BATCH), CASE_STUDY_TABLE),
        (build_breast_table(frame, BATCH), BREAST_TABLE),
    ):
        assert built.empty
        assert_schema(built, schema)
        assert dict(built.dtypes) == dict(schema.empty_table().to_pandas().dtypes)


def test_cp1252_file_is_decoded() -> None:
    data = make_csv([case_row(Path_Desc="carcinome canalaire")]).replace(
        b"carcinome canalaire", "néoplasie".encode("cp1252")
    )
    assert read_case_csv(data, SOURCE, BATCH)["path_desc"].iloc[0] == "néoplasie"


# ------------------------------------------------------------------------------------------
# read_case_csv: values
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00001234", "00001234"),
        ("  00001234 ", "00001234"),
        ("1234.0", "1234"),
        ("001234.00", "001234"),
        ("1234.5", "1234.5"),
        ("AB-0012", "AB-0012"),
    ],
)
def test_ids_are_strings_that_keep_leading_zeros(raw: str, expected: str) -> None:
    frame = read([case_row(Patient_ID=raw, Accession_Number=raw, Biopsy_Accession=raw)])
    assert frame.loc[0, "patient_id"] == expected
    assert frame.loc[0, "accession_number"] == expected
    assert frame.loc[0, "biopsy_accession"] == expected


def test_id_in_scientific_notation_is_refused() -> None:
    with pytest.raises(CaseCsvError, match=r"'Accession_Number' row 2: '1\.23457E\+11'"):
        read([case_row(Accession_Number="1.23457E+11")])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("left", "LEFT"),
        (" Right ", "RIGHT"),
        ("Bilateral", "BILATERAL"),
        ("unknown", "UNKNOWN"),
        ("", None),
        ("   ", None),
        ("nan", None),
    ],
)
def test_lateralities_are_upper_case(raw: str, expected: str | None) -> None:
    frame = read([case_row(Biopsy_Laterality=raw, Study_Laterality=raw)])
    assert frame.loc[0, "biopsy_laterality"] == expected
    assert frame.loc[0, "study_laterality"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("4a", "4A"), (" 4 b ", "4B"), ("4.0", "4"), ("6", "6"), ("0", "0"), ("", None)],
)
def test_birads_is_a_normalised_string(raw: str, expected: str | None) -> None:
    assert read([case_row(**{"BI-RADS": raw})]).loc[0, "birads"] == expected


@pytest.mark.parametrize(
    ("time_biop", "age", "expected_time", "expected_age"),
    [("12", "55", 12.0, 55.0), ("-3.5", "40.5", -3.5, 40.5), ("", "", None, None)],
)
def test_time_biop_and_age_are_numbers(
    time_biop: str, age: str, expected_time: float | None, expected_age: float | None
) -> None:
    frame = read([case_row(Time_Biop=time_biop, Age=age)])
    for column, expected in (("time_biop", expected_time), ("age", expected_age)):
        value = frame.loc[0, column]
        assert math.isnan(value) if expected is None else value == expected


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("Time_Biop", "column 'Time_Biop' row 4: 'abc' is not a number of days"),
        ("Age", "column 'Age' row 4: 'abc' is not a number of years"),
    ],
)
def test_malformed_number_names_column_and_row(column: str, message: str) -> None:
    rows = [case_row(), case_row(), case_row(**{column: "abc"})]
    with pytest.raises(CaseCsvError) as err:
        read(rows)
    assert message in str(err.value)
    assert SOURCE in str(err.value)


def test_row_number_is_the_file_line_despite_blank_lines_and_multiline_fields() -> None:
    header = ",".join(REQUIRED_CASE_COLUMNS)
    first = 'P1,A1,B1,LEFT,4,LEFT,Benign,"two\nlines",d,1,50,W,N'
    second = "P1,A2,B2,LEFT,4,LEFT,Benign,p,d,1,50,W,N"
    bad = "P1,A3,B3,LEFT,4,LEFT,Benign,p,d,soon,50,W,N"
    data = "\n".join([header, first, "", second]).encode()
    frame = read_case_csv(data, SOURCE, BATCH)
    assert list(frame["row_number"]) == [2, 5]
    assert frame.loc[0, "path_desc"] == "two\nlines"
    with pytest.raises(CaseCsvError, match="'Time_Biop' row 6: 'soon'"):
        read_case_csv("\n".join([header, first, "", second, bad]).encode(), SOURCE, BATCH)


def test_rows_without_patient_or_accession_are_an_error_naming_them() -> None:
    rows = [case_row(), case_row(Patient_ID=""), case_row(), case_row(Accession_Number=" ")]
    with pytest.raises(CaseCsvError, match=r"row\(s\) 3, 5: empty 'Patient_ID' or"):
        read(rows)


def test_row_with_shifted_fields_is_an_error() -> None:
    header = ",".join(REQUIRED_CASE_COLUMNS)
    shifted = "P1,A1,B1,LEFT,4,LEFT,Benign,IDC, grade 2,d,1,50,W,N"
    with pytest.raises(CaseCsvError, match="row 2: has 14 fields, the header has 13"):
        read_case_csv(f"{header}\n{shifted}\n".encode(), SOURCE, BATCH)
    # Trailing empty cells and all-empty rows, as spreadsheets write them, are harmless.
    fine = "P1,A1,B1,LEFT,4,LEFT,Benign,IDC,d,1,50,W,N,,"
    frame = read_case_csv(f"{header}\n{fine}\n,,,,,,,,,,,,\n".encode(), SOURCE, BATCH)
    assert len(frame) == 1 and frame.loc[0, "ethnicity"] == "N"


# ------------------------------------------------------------------------------------------
# classify_biopsy
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pathology Malignant", "malignant"),
        ("Known Biopsy-Proven Malignancy", "malignant"),
        ("  malignant ", "malignant"),
        ("PATHOLOGY   BENIGN", "benign"),
        ("Pathology Elevated Risk", "benign"),
        ("Elevated Risk", "unknown"),
        ("Low Suspicion for Malignancy", "unknown"),
        ("Highly Suggestive of Malignancy", "unknown"),
        ("Malignant lesion, see report", "unknown"),  # unlisted, even though it says malignant
        ("", "unknown"),
        (None, "unknown"),
        (float("nan"), "unknown"),
    ],
)
def test_classify_biopsy(text: object, expected: str) -> None:
    assert classify_biopsy(text) == expected


def test_biopsy_mapping_matches_the_spec_lists() -> None:
    counts = pd.Series(BIOPSY_MAPPING).value_counts().to_dict()
    assert counts == {"malignant": 3, "benign": 4, "unknown": 10}
    assert all(classify_biopsy(key.title()) == value for key, value in BIOPSY_MAPPING.items())


# ------------------------------------------------------------------------------------------
# trustworthiness
# ------------------------------------------------------------------------------------------

M, B, U = "Pathology Malignant", "Pathology Benign", "Waiting for Pathology"


@pytest.mark.parametrize(
    ("study", "lateralities", "biopsies", "birads", "score", "reason_part"),
    [
        # 1: one biopsy of the study's side.
        ("LEFT", ["LEFT"], [B], "4", 1, "one biopsy"),
        ("right", ["Right"], [M], "5", 1, "one biopsy"),
        # 2: several biopsies, all of the study's side.
        ("LEFT", ["LEFT", "LEFT"], [B, M], "4", 2, "2 biopsies"),
        ("RIGHT", ["RIGHT"] * 3, [B, B, U], "4", 2, "3 biopsies"),
        # 2: bilateral study, each biopsy LEFT or RIGHT.
        ("BILATERAL", ["LEFT", "RIGHT"], [B, M], "4", 2, "bilateral study"),
        ("BILATERAL", ["LEFT"], [B], "4", 2, "bilateral study"),
        # 3 by default: biopsies that cannot be tied to the imaged breast.
        ("BILATERAL", ["LEFT", None], [B, B], "4", 3, "missing"),
        ("BILATERAL", ["BILATERAL"], [B], "4", 3, "BILATERAL"),
        ("LEFT", ["RIGHT"], [B], "4", 3, "RIGHT"),
        ("LEFT", ["LEFT", "RIGHT"], [B, B], "4", 3, "RIGHT"),
        ("LEFT", [None], [B], "4", 3, "missing"),
        (None, ["LEFT"], [B], "4", 3, "study laterality missing"),
        ("UNKNOWN", ["LEFT"], [B], "4", 3, "study laterality UNKNOWN"),
        # 3: no biopsy result at all (B only caught a single [nan]).
        ("LEFT", ["LEFT"], [None], "4", 3, "no biopsy result"),
        ("LEFT", ["LEFT", "LEFT"], [None, float("nan")], "4", 3, "no biopsy result"),
        ("LEFT", [], [], "4", 3, "no biopsy result"),
        # 3: BI-RADS 1/2 with a malignant biopsy overrides a 1.
        ("LEFT", ["LEFT"], [M], "2", 3, "BI-RADS 2"),
        ("LEFT", ["LEFT"], [M], "1", 3, "BI-RADS 1"),
        ("LEFT", ["LEFT"], [M], "2.0", 3, "BI-RADS 2"),
        ("LEFT", ["LEFT"], ["pathology malignant"], "2", 3, "BI-RADS 2"),
        # Fixed substring bug: B's "Malignant" test missed this malignant text...
        ("LEFT", ["LEFT"], ["Known Biopsy-Proven Malignancy"], "1", 3, "BI-RADS 1"),
        # ...and mentions of malignancy that are not a malignant result do not count.
        ("LEFT", ["LEFT"], ["Low Suspicion for Malignancy"], "2", 1, "one biopsy"),
        ("LEFT", ["LEFT"], ["Highly Suggestive of Malignancy"], "1", 1, "one biopsy"),
        # BI-RADS 0 (incomplete) and 3 (probably benign) do not contradict malignancy.
        ("LEFT", ["LEFT"], [M], "0", 1, "one biopsy"),
        ("LEFT", ["LEFT"], [M], "3", 1, "one biopsy"),
        # 3: BI-RADS 6 (known cancer) but no malignant biopsy.
        ("LEFT", ["LEFT"], [B], "6", 3, "BI-RADS 6"),
        ("LEFT", ["LEFT"], [U], "6", 3, "BI-RADS 6"),
        ("LEFT", ["LEFT", "LEFT"], [M, B], "6", 2, "2 biopsies"),
        ("LEFT", ["LEFT"], [M], "6", 1, "one biopsy"),
        # Missing BI-RADS applies no override.
        ("LEFT", ["LEFT"], [M], None, 1, "one biopsy"),
    ],
)
def test_trustworthiness_rules(
    study: str | None,
    lateralities: list[str | None],
    biopsies: list[object],
    birads: str | None,
    score: int,
    reason_part: str,
) -> None:
    got_score, reason = trustworthiness(study, lateralities, biopsies, birads)
    assert got_score == score
    assert reason_part in reason


# ------------------------------------------------------------------------------------------
# build_case_study_table
# ------------------------------------------------------------------------------------------


def test_biopsies_aggregate_per_accession_in_csv_order() -> None:
    rows = [
        case_row(
            Biopsy_Accession="B1", Path_Desc="p1", Time_Biop="40", Age="51", **{"BI-RADS": ""}
        ),
        case_row(Accession_Number="A2", Biopsy_Accession="X", Time_Biop="1"),
        case_row(Biopsy_Accession="B2", Biopsy=M, Path_Desc="", Time_Biop="2", **{"BI-RADS": ""}),
        case_row(Biopsy_Accession="B3", Path_Desc="p3", Time_Biop="", **{"BI-RADS": "5"}),
    ]
    cases = read(rows)
    table = build_case_study_table(cases, EMPTY_CATALOG, BATCH)
    assert_schema(table, CASE_STUDY_TABLE)
    assert list(table["accession_number"]) == ["A1", "A2"]
    a1 = table.iloc[0]
    assert json.loads(a1["biopsy_accessions"]) == ["B1", "B2", "B3"]
    assert json.loads(a1["biopsies"]) == [B, M, B]
    assert json.loads(a1["path_descs"]) == ["p1", None, "p3"]
    assert json.loads(a1["biopsy_lateralities"]) == ["LEFT"] * 3
    assert a1["birads"] == "5"  # first non-empty
    assert a1["age"] == 51.0
    assert a1["time_biop"] == 40.0  # max, not the last row's 2 / null
    assert table.iloc[1]["time_biop"] == 1.0
    assert (table["batch_id"] == BATCH).all()


@pytest.mark.parametrize("times", [["40", "2"], ["2", "40"], ["", "40"], ["40", ""]])
def test_time_biop_is_the_max_whatever_the_order(times: list[str]) -> None:
    cases = read([case_row(Time_Biop=t) for t in times])
    assert build_case_study_table(cases, EMPTY_CATALOG, BATCH).loc[0, "time_biop"] == 40.0


def test_time_biop_all_empty_is_null() -> None:
    cases = read([case_row(Time_Biop=""), case_row(Time_Biop="")])
    assert math.isnan(build_case_study_table(cases, EMPTY_CATALOG, BATCH).loc[0, "time_biop"])


def test_study_fields_come_from_the_same_accession_not_the_patient() -> None:
    cases = read([case_row(Accession_Number="A1"), case_row(Accession_Number="A2")])
    header_a2 = json.dumps(
        {"00101020": {"vr": "DS", "Value": ["1.70"]}, "00101030": {"vr": "DS", "Value": [72.5]}}
    )
    catalog = make_catalog(
        [
            catalog_row(accession_number="A1", study_description="US BREAST LEFT"),
            catalog_row(
                accession_number="A2",
                sop_instance_uid="9",
                study_description="US BREAST RIGHT LIMITED",
                study_date="20230505",
                header=header_a2,
            ),
            # Another patient's study with the same accession number must not leak in.
            catalog_row(patient_id="P2", study_description="OTHER PATIENT", sop_instance_uid="7"),
        ]
    )
    table = build_case_study_table(cases, catalog, BATCH).set_index("accession_number")
    assert table.loc["A1", "study_description"] == "US BREAST LEFT"
    assert table.loc["A2", "study_description"] == "US BREAST RIGHT LIMITED"
    assert table.loc["A2", "study_date"] == "20230505"
    assert table.loc["A1", "patient_size"] == 1.65 and table.loc["A1", "patient_weight"] == 60.0
    assert table.loc["A2", "patient_size"] == 1.70 and table.loc["A2", "patient_weight"] == 72.5


def test_study_fields_prefer_ok_image_rows_and_tolerate_bad_headers() -> None:
    cases = read([case_row()])
    catalog = make_catalog(
        [
            catalog_row(status="quarantined", study_description="BROKEN", member_path="a/0.dcm"),
            catalog_row(kind="video", study_description="FROM VIDEO", member_path="a/1.dcm"),
            catalog_row(study_description="FROM IMAGE", member_path="a/9.dcm", header="{not json"),
        ]
    )
    row = build_case_study_table(cases, catalog, BATCH).iloc[0]
    assert row["study_description"] == "FROM IMAGE"
    assert math.isnan(row["patient_size"]) and math.isnan(row["patient_weight"])


def test_image_and_video_counts_per_accession() -> None:
    cases = read([case_row(Accession_Number="A1"), case_row(Accession_Number="A2")])
    catalog = make_catalog(
        [
            catalog_row(sop_instance_uid="1"),
            catalog_row(sop_instance_uid="2"),
            catalog_row(sop_instance_uid="2", member_path="copy/2.dcm"),  # same SOP twice
            catalog_row(sop_instance_uid="3", kind="video"),
            catalog_row(sop_instance_uid="4", kind="no_pixels"),
            catalog_row(sop_instance_uid="5", status="quarantined", kind=None),
            catalog_row(sop_instance_uid="6", status="quarantined"),
            catalog_row(sop_instance_uid="8", patient_id="P2"),  # other patient, same accession
            catalog_row(sop_instance_uid="9", accession_number="A9"),  # not in the CSV
        ]
    )
    table = build_case_study_table(cases, catalog, BATCH).set_index("accession_number")
    assert (table.loc["A1", "image_count"], table.loc["A1", "video_count"]) == (2, 1)
    # Left join: an accession without DICOMs is kept with zero counts and null study fields.
    assert (table.loc["A2", "image_count"], table.loc["A2", "video_count"]) == (0, 0)
    assert table.loc["A2", "study_description"] is None
    assert table["image_count"].dtype == "int64"

    uncased = uncased_accessions(cases, catalog)
    assert uncased.to_dict("records") == [
        {"patient_id": "P1", "accession_number": "A9", "image_count": 1, "video_count": 0},
        {"patient_id": "P2", "accession_number": "A1", "image_count": 1, "video_count": 0},
    ]
    assert uncased_accessions(cases, EMPTY_CATALOG).empty


def test_catalog_without_required_columns_is_an_error() -> None:
    with pytest.raises(ValueError, match="'header'"):
        build_case_study_table(read([case_row()]), EMPTY_CATALOG.drop(columns="header"), BATCH)


def test_trust_columns_in_the_case_study_table() -> None:
    rows = [
        case_row(Accession_Number="A1"),
        # Same patient and study laterality, biopsy of the other side: B's "duplicated on
        # (Patient_ID, Study_Laterality)" rule would have scored both accessions 2.
        case_row(Accession_Number="A2", Biopsy_Laterality="RIGHT"),
        case_row(Accession_Number="A3", Biopsy_Laterality="RIGHT"),
        case_row(
            Accession_Number="A4", Biopsy="Known Biopsy-Proven Malignancy", **{"BI-RADS": "2"}
        ),
    ]
    table = build_case_study_table(read(rows), EMPTY_CATALOG, BATCH)
    assert list(table["trustworthiness"]) == [1, 3, 3, 3]
    assert table["trust_reason"].str.len().gt(0).all()
    assert "BI-RADS 2" in table.loc[3, "trust_reason"]


# ------------------------------------------------------------------------------------------
# build_breast_table
# ------------------------------------------------------------------------------------------


def breast_rows(table: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["patient_id"], r["accession_number"], r["breast"]): r for r in table.to_dict("records")
    }


def test_breast_table_flags_counts_and_descriptions_per_breast() -> None:
    rows = [
        case_row(Biopsy_Laterality="LEFT", Biopsy=M, Path_Desc="IDC", Density_Desc="dense"),
        case_row(Biopsy_Laterality="RIGHT", Biopsy=B, Path_Desc="FA", Density_Desc="fatty"),
        case_row(Biopsy_Laterality="left", Biopsy=U, Path_Desc="", Density_Desc="het"),
        case_row(Biopsy_Laterality="LEFT", Biopsy=B, Path_Desc="cyst", Density_Desc=""),
        # Same patient, another accession: must not add to A1's lesion counts.
        case_row(Accession_Number="A2", Biopsy_Laterality="LEFT", Biopsy=B, Path_Desc="other"),
    ]
    table = build_breast_table(read(rows), BATCH)
    assert_schema(table, BREAST_TABLE)
    got = breast_rows(table)
    left, right = got[("P1", "A1", "LEFT")], got[("P1", "A1", "RIGHT")]
    assert (left["has_malignant"], left["has_benign"], left["has_unknown"]) == (True, True, True)
    assert (right["has_malignant"], right["has_benign"], right["has_unknown"]) == (
        False,
        True,
        False,
    )
    assert left["lesion_count"] == 3 and right["lesion_count"] == 1
    assert left["path_desc"] == "IDC | cyst"
    assert left["density_desc"] == "dense | het"
    assert right["path_desc"] == "FA" and right["density_desc"] == "fatty"
    a2_left, a2_right = got[("P1", "A2", "LEFT")], got[("P1", "A2", "RIGHT")]
    assert a2_left["lesion_count"] == 1 and a2_left["path_desc"] == "other"
    # A breast without biopsies still has its row.
    assert a2_right["lesion_count"] == 0 and a2_right["path_desc"] is None
    assert not (a2_right["has_malignant"] or a2_right["has_benign"] or a2_right["has_unknown"])


@pytest.mark.parametrize(
    ("laterality", "left_count", "right_count"),
    [("BILATERAL", 1, 1), ("LEFT", 1, 0), ("Right", 0, 1), ("", 0, 0), ("UNKNOWN", 0, 0)],
)
def test_breast_table_laterality_routing(
    laterality: str, left_count: int, right_count: int
) -> None:
    table = build_breast_table(read([case_row(Biopsy_Laterality=laterality, Biopsy=M)]), BATCH)
    got = breast_rows(table)
    for side, count in (("LEFT", left_count), ("RIGHT", right_count)):
        row = got[("P1", "A1", side)]
        assert row["lesion_count"] == count
        assert row["has_malignant"] == (count > 0)
        assert row["path_desc"] == ("fibroadenoma" if count else None)


def test_output_order_is_sorted_and_independent_of_input_order() -> None:
    rows = [
        case_row(Patient_ID="P2", Accession_Number="A9"),
        case_row(Patient_ID="P1", Accession_Number="A2", Biopsy_Accession="first"),
        case_row(Patient_ID="P1", Accession_Number="A1"),
        case_row(Patient_ID="P1", Accession_Number="A2", Biopsy_Accession="second"),
    ]
    cases = read(rows)
    shuffled = cases.sample(frac=1.0, random_state=3).reset_index(drop=True)
    breast = build_breast_table(shuffled, BATCH)
    assert list(
        zip(breast["patient_id"], breast["accession_number"], breast["breast"], strict=True)
    ) == [
        ("P1", "A1", "LEFT"),
        ("P1", "A1", "RIGHT"),
        ("P1", "A2", "LEFT"),
        ("P1", "A2", "RIGHT"),
        ("P2", "A9", "LEFT"),
        ("P2", "A9", "RIGHT"),
    ]
    pd.testing.assert_frame_equal(breast, build_breast_table(cases, BATCH))
    study = build_case_study_table(shuffled, EMPTY_CATALOG, BATCH)
    assert list(study["accession_number"]) == ["A1", "A2", "A9"]
    # CSV order within an accession comes from row_number, not from the frame's order.
    assert json.loads(study.loc[1, "biopsy_accessions"]) == ["first", "second"]
    pd.testing.assert_frame_equal(study, build_case_study_table(cases, EMPTY_CATALOG, BATCH))


def test_builders_accept_a_frame_with_pandas_string_dtype() -> None:
    # As read back from Parquet with string dtype: nulls are pd.NA, not None.
    rows = [
        case_row(Biopsy_Laterality="", Path_Desc="", Biopsy="", Time_Biop=""),
        case_row(Biopsy_Accession="B2", Biopsy=M, Path_Desc="IDC"),
    ]
    cases = read(rows)
    text_columns = [f.name for f in CASE_TABLE if f.type == pa.string()]
    as_string = cases.astype({c: "string" for c in text_columns})
    study = build_case_study_table(as_string, EMPTY_CATALOG, BATCH)
    pd.testing.assert_frame_equal(study, build_case_study_table(cases, EMPTY_CATALOG, BATCH))
    assert json.loads(study.loc[0, "path_descs"]) == [None, "IDC"]
    breast = build_breast_table(as_string, BATCH)
    pd.testing.assert_frame_equal(breast, build_breast_table(cases, BATCH))
    assert breast.loc[0, "path_desc"] == "IDC" and breast.loc[0, "lesion_count"] == 1

"""PHI screen: identifying header fields set in a file are found; anonymised files pass."""

from __future__ import annotations

import json

import pandas as pd
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from casbusi_assets.ingest.phi import fields_summary, identifying_fields, phi_findings


def _header(**attrs: str) -> str:
    ds = Dataset()
    ds.PatientID = "00001234"
    ds.AccessionNumber = "87654321"
    for k, v in attrs.items():
        setattr(ds, k, v)
    return json.dumps(ds.to_json_dict())


def test_anonymised_header_passes() -> None:
    assert identifying_fields(_header(PatientName="", PatientBirthDate="")) == []
    # the profile's dummy value: the anonymised id, ANON, empty components
    assert identifying_fields(_header(PatientName="ANON^00001234"), "00001234") == []
    assert identifying_fields(_header(PatientName="^^^^")) == []
    # the id was blanked but the pseudonymous name kept (the generator's missing-link case)
    assert identifying_fields(_header(PatientName="ANON^00001234"), None) == []


def test_each_identifying_field_is_found() -> None:
    header = _header(
        PatientName="Doe^Jane",
        PatientBirthDate="19700101",
        InstitutionName="Mayo Clinic",
        ReferringPhysicianName="Smith^John",
        StationName="US-ROOM-3",
    )
    assert identifying_fields(header, "00001234") == [
        "PatientName",
        "PatientBirthDate",
        "InstitutionName",
        "ReferringPhysicianName",
        "StationName",
    ]


def test_a_real_name_next_to_the_anonymised_id_is_found() -> None:
    assert identifying_fields(_header(PatientName="Doe^00001234"), "00001234") == ["PatientName"]


def test_real_captures_carry_identifying_fields() -> None:
    # pydicom-data's US1 keeps its (test) patient name, institution, station and serial number
    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"), stop_before_pixels=True)
    fields = identifying_fields(json.dumps(ds.to_json_dict()), str(ds.PatientID))
    assert {"PatientName", "InstitutionName", "StationName", "DeviceSerialNumber"} <= set(fields)


def test_findings_table_lists_only_ok_members_with_fields() -> None:
    catalog = pd.DataFrame(
        [
            {
                "member_path": "a",
                "sop_instance_uid": "1",
                "status": "ok",
                "patient_id": "7",
                "header": _header(PatientName="Doe^Jane"),
            },
            {
                "member_path": "b",
                "sop_instance_uid": "2",
                "status": "ok",
                "patient_id": "7",
                "header": _header(PatientName=""),
            },
            {
                "member_path": "c",
                "sop_instance_uid": None,
                "status": "quarantined",
                "patient_id": None,
                "header": None,
            },
        ]
    )
    found = phi_findings(catalog)
    assert found.to_dict("records") == [
        {"member_path": "a", "sop_instance_uid": "1", "fields": "PatientName"}
    ]
    assert fields_summary(found) == {"PatientName": 1}
    assert phi_findings(catalog.iloc[[1]]).empty

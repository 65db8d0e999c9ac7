"""Identifying header fields that anonymised data must leave empty (DICOM PS3.15 Annex E, the
Basic Application Level Confidentiality Profile).

The profile removes (X) or empties (Z) these attributes; a value means the file was not
anonymised, or was anonymised badly, and must not leave the building (Labelbox, exports).
PatientID and AccessionNumber are replaced by anonymised values in this data (Mayo's
`<patient>_dicoms_anon` convention), so they are links, not findings. A PatientName made only of
`ANON`-like words, the anonymised PatientID or bare pseudonym numbers (`ANON^00001234`, empty
components) is the profile's "dummy value" and passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pandas as pd

# DICOM-JSON tag -> keyword. Names, birth data, addresses, phone numbers, other identifiers,
# physicians and operators, the institution and the device that could point back to a person.
IDENTIFYING_ATTRIBUTES: dict[str, str] = {
    "00100010": "PatientName",
    "00100030": "PatientBirthDate",
    "00100032": "PatientBirthTime",
    "00101000": "OtherPatientIDs",
    "00101001": "OtherPatientNames",
    "00101002": "OtherPatientIDsSequence",
    "00101005": "PatientBirthName",
    "00101040": "PatientAddress",
    "00101060": "PatientMotherBirthName",
    "00102154": "PatientTelephoneNumbers",
    "00102160": "EthnicGroup",
    "00104000": "PatientComments",
    "00080080": "InstitutionName",
    "00080081": "InstitutionAddress",
    "00080090": "ReferringPhysicianName",
    "00080092": "ReferringPhysicianAddress",
    "00080094": "ReferringPhysicianTelephoneNumbers",
    "00081040": "InstitutionalDepartmentName",
    "00081048": "PhysiciansOfRecord",
    "00081050": "PerformingPhysicianName",
    "00081060": "NameOfPhysiciansReadingStudy",
    "00081070": "OperatorsName",
    "00081010": "StationName",
    "00181000": "DeviceSerialNumber",
    "00321032": "RequestingPhysician",
    "00380010": "AdmissionID",
}

_DUMMY_NAME = re.compile(r"^(ANON(YMOUS|YMIZED|YMISED)?)?$", re.IGNORECASE)


def _has_value(element: dict) -> bool:
    values = element.get("Value")
    if not values:
        return False
    for v in values:
        if isinstance(v, dict):  # a person name ({"Alphabetic": ...}) or a sequence item
            if any(str(x).strip("^ =") for x in v.values()):
                return True
        elif str(v).strip():
            return True
    return False


def _name_is_dummy(element: dict, patient_id: str | None) -> bool:
    for v in element.get("Value") or []:
        text = v.get("Alphabetic", "") if isinstance(v, dict) else str(v)
        parts = [p.strip() for p in re.split(r"[\^=]", text) if p.strip()]
        # a component passes when it is ANON-like, the anonymised id, or a bare pseudonym number
        if any(
            not (_DUMMY_NAME.match(p) or (patient_id and p == patient_id) or p.isdigit())
            for p in parts
        ):
            return False
    return True


def identifying_fields(header_json: str | None, patient_id: str | None = None) -> list[str]:
    """Keywords of the identifying attributes that carry a value in one file's DICOM-JSON."""
    if not header_json:
        return []
    header = json.loads(header_json)
    found = []
    for tag, keyword in IDENTIFYING_ATTRIBUTES.items():
        element = header.get(tag)
        if not element or not _has_value(element):
            continue
        if keyword == "PatientName" and _name_is_dummy(element, patient_id):
            continue
        found.append(keyword)
    return found


def phi_findings(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per catalogued DICOM member with identifying fields set: member_path,
    sop_instance_uid and the comma-separated `fields`. Empty when the batch is clean."""
    rows = []
    usable = catalog[catalog["status"] == "ok"] if len(catalog) else catalog
    for row in usable.itertuples():
        fields = identifying_fields(getattr(row, "header", None), getattr(row, "patient_id", None))
        if fields:
            rows.append(
                {
                    "member_path": row.member_path,
                    "sop_instance_uid": row.sop_instance_uid,
                    "fields": ", ".join(fields),
                }
            )
    return pd.DataFrame(rows, columns=["member_path", "sop_instance_uid", "fields"])


def fields_summary(findings: pd.DataFrame) -> dict[str, int]:
    """How many files carry each identifying field (for check metadata)."""
    counts: dict[str, int] = {}
    for fields in findings.get("fields", pd.Series(dtype=str)):
        for f in _split(fields):
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))


def _split(fields: str) -> Iterable[str]:
    return (f.strip() for f in fields.split(",") if f.strip())

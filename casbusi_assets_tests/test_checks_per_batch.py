"""Asset checks are recorded per batch, so the UI says which batch a result speaks for; the PHI
check fails on a batch whose headers carry identifying fields."""

from __future__ import annotations

import io

import dagster as dg
import pydicom

from casbusi_assets.runner import run_batch

from .conftest import with_identifiers, write_zip


def _latest(instance: dg.DagsterInstance, asset: str, name: str) -> dict[str, str]:
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
    out: dict[str, str] = {}
    for rec in records:  # newest first
        out.setdefault(rec.partition, rec.status.value)
    return out


def test_check_results_carry_their_batch_and_phi_is_caught(home, tmp_path):
    # US1 keeps pydicom-data's test patient name, institution, station and serial number
    phi = write_zip(tmp_path / "phi.zip", {"a/1": with_identifiers("US1_UNCR.dcm", "1", "A1")})
    clean_bytes = with_identifiers("US1_UNCR.dcm", "2", "A2")
    ds = pydicom.dcmread(io.BytesIO(clean_bytes))
    for keyword in ("PatientName", "InstitutionName", "StationName", "DeviceSerialNumber"):
        setattr(ds, keyword, "")
    buf = io.BytesIO()
    ds.save_as(buf)
    clean = write_zip(tmp_path / "clean.zip", {"a/1": buf.getvalue()})
    for z in (phi, clean):
        run_batch(z, home, select=["dicom_catalog", "image_table"], echo=lambda m: None)
    with dg.DagsterInstance.get() as instance:
        assert _latest(instance, "dicom_catalog", "no_identifying_header_fields") == {
            "phi": "FAILED",
            "clean": "SUCCEEDED",
        }
        assert _latest(instance, "image_table", "unique_sop_instance_uid") == {
            "phi": "SUCCEEDED",
            "clean": "SUCCEEDED",
        }
        assert set(_latest(instance, "dicom_catalog", "quarantine_share")) == {"phi", "clean"}

"""One member in a worker: catalog row plus export record from one read, and a light import."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

from casbusi_assets.ingest.zip_members import DEFAULT_LIMITS, list_members
from casbusi_assets.pixels.member import ExportPlan, MemberTask, ingest_member_task
from casbusi_assets_tests.ingest.test_catalog import gray, make_dicom


def test_worker_module_imports_without_pandas_or_dagster() -> None:
    # Every ingest worker imports this module when it starts (spawn): pandas would add ~0.45 s of
    # CPU per worker per run for nothing, dagster far more.
    code = (
        "import sys, casbusi_assets.pixels.member; "
        "print(sorted(m for m in ('pandas', 'dagster') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_member_task_gives_row_and_png_or_a_quarantine(tmp_path: Path) -> None:
    still = gray(40, 56, seed=5)
    zip_path = tmp_path / "b.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("p/still.dcm", make_dicom(still, sop_uid="1.2.3.4"))
        zf.writestr("p/cut.dcm", make_dicom(gray(200, 200))[:3000])
    with zipfile.ZipFile(zip_path) as zf:
        members = {m.path: m for m in list_members(zf)}
    out = tmp_path / "images"
    out.mkdir()
    plan = ExportPlan(images_dir=str(out), policy="first_middle")

    row, record = ingest_member_task(
        MemberTask(str(zip_path), members["p/still.dcm"], DEFAULT_LIMITS, plan)
    )
    assert row["status"] == "ok" and row["kind"] == "image" and row["sop_instance_uid"] == "1.2.3.4"
    assert record is not None and record["status"] == "ok" and record["stored_as"] == "gray"
    png = cv2.imread(record["_out"], cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, still) and record["png_bytes"] == Path(record["_out"]).stat().st_size

    row, record = ingest_member_task(
        MemberTask(str(zip_path), members["p/cut.dcm"], DEFAULT_LIMITS, plan)
    )
    assert row["status"] == "quarantined" and row["error_code"] == "truncated" and row["error"]
    assert record is None
    assert len(list(out.iterdir())) == 1  # the still's PNG only: nothing for the quarantined one

"""A small warehouse shaped like the real one, for export tests.

Each batch holds, per patient, one accession with stills of both breasts and a clip, PNG files on
disk, and rows in the tables the export reads (image_table, video_table, dicom_catalog,
ocr_table, case_study_table, breast_table, and optionally cleaned_images / cleaned_videos,
inpainted_images and labels_archive, with the columns those stages write). Files are written
straight to `<home>/warehouse/<table>/batch_id=<b>/data.parquet`, as the IO manager does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from casbusi_assets.storage import warehouse
from casbusi_assets.storage.home import HomeLayout

W, H = 420, 320
CROP = (30, 20, 340, 260)  # x, y, w, h: aspect 1.31, both sides >= 200


def _uid(*parts: object) -> str:
    return (
        "2.25." + str(int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest(), 16))[:30]
    )


def _png(path: Path, seed: str, value: int | None = None) -> None:
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    img = (
        rng.integers(0, 255, (H, W), dtype=np.uint8)
        if value is None
        else np.full((H, W), value, np.uint8)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


@dataclass
class FakeBatch:
    batch_id: str
    patients: list[str]
    # Options per batch.
    cleaned: bool = True
    inpaint_first: bool = False  # an inpainted copy of each patient's first still
    labels: bool = False  # a labels archive row (with mask) for each patient's first still
    reject_second: bool = False  # the labels archive rejects each patient's second still
    resend: list[str] = field(default_factory=list)  # patients re-sent from an earlier batch


def _write(home: HomeLayout, table: str, batch_id: str, rows: list[dict]) -> None:
    if not rows:
        return
    folder = warehouse.batch_dir(home.warehouse, table, batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / warehouse.PARQUET_NAME)


def patient_class(patient: str) -> str:
    """Malignant for every other patient (by the last digit), benign otherwise."""
    return "malignant" if int(patient[-1]) % 2 == 0 else "benign"


def add_batch(home: HomeLayout, batch: FakeBatch, origin: str | None = None) -> None:
    b = batch.batch_id
    tables: dict[str, list[dict]] = {
        t: []
        for t in (
            "image_table",
            "video_table",
            "dicom_catalog",
            "ocr_table",
            "case_study_table",
            "breast_table",
            "cleaned_images",
            "cleaned_videos",
            "inpainted_images",
            "labels_archive",
        )
    }
    for patient in batch.patients + batch.resend:
        # A re-sent patient carries the UIDs of its first batch (same bytes, same identity).
        src_batch = origin if patient in batch.resend else b
        acc = f"9{patient}"
        malignant = patient_class(patient) == "malignant"
        tables["case_study_table"].append(
            {"batch_id": b, "patient_id": patient, "accession_number": acc, "trustworthiness": 1}
        )
        for breast, biopsied in (("LEFT", True), ("RIGHT", False)):
            tables["breast_table"].append(
                {
                    "batch_id": b,
                    "patient_id": patient,
                    "accession_number": acc,
                    "breast": breast,
                    "has_malignant": biopsied and malignant,
                    "has_benign": biopsied and not malignant,
                    "has_unknown": False,
                    "lesion_count": 1 if biopsied else 0,
                }
            )
        stills = [("left", 0), ("left", 1), ("right", 2)]
        for side, n in stills:
            sop = _uid(src_batch, patient, "img", n)
            member = f"{patient}_dicoms_anon/{acc}/IM{n:06d}"
            path = home.files / "image_table" / b / f"{sop}.png"
            _png(path, sop)
            tables["image_table"].append(
                {
                    "batch_id": b,
                    "sop_instance_uid": sop,
                    "study_instance_uid": _uid(patient, acc),
                    "patient_id": patient,
                    "accession_number": acc,
                    "member_path": member,
                    "image_path": str(path),
                    "status": "ok",
                    "rows": H,
                    "columns": W,
                    "region_count": 1,
                    "region_x0": CROP[0],
                    "region_y0": CROP[1],
                    "region_x1": CROP[0] + CROP[2] - 1,
                    "region_y1": CROP[1] + CROP[3] - 1,
                }
            )
            tables["dicom_catalog"].append(
                {
                    "batch_id": b,
                    "member_path": member,
                    "sop_instance_uid": sop,
                    "file_sha256": hashlib.sha256(f"file{sop}".encode()).hexdigest(),
                    "pixel_sha256": hashlib.sha256(f"pix{sop}".encode()).hexdigest(),
                    "kind": "image",
                    "status": "ok",
                }
            )
            tables["ocr_table"].append(
                {"batch_id": b, "sop_instance_uid": sop, "source": "image", "laterality": side}
            )
            resent = patient in batch.resend
            tables["cleaned_images"].append(
                {
                    "batch_id": b,
                    "sop_instance_uid": sop,
                    "patient_id": patient,
                    "accession_number": acc,
                    "image_path": str(path),
                    "include": not resent,
                    "exclusion_reasons": ["duplicate"] if resent else [],
                    "label_cat": "trans",
                    "crop_x": CROP[0],
                    "crop_y": CROP[1],
                    "crop_w": CROP[2],
                    "crop_h": CROP[3],
                    "orientation": "trans",
                    "has_calipers": n == 0,
                    "laterality": side,
                }
            )
            if batch.inpaint_first and n == 0:
                inp = home.files / "inpainted_images" / b / f"{sop}.png"
                _png(inp, "inpainted" + sop)
                tables["inpainted_images"].append(
                    {
                        "batch_id": b,
                        "sop_instance_uid": sop,
                        "mask_path": str(inp) + ".mask.png",
                        "inpainted_path": str(inp),
                    }
                )
            if batch.labels and n in (0, 1):
                mask = home.root / "labelbox" / "masks" / f"{sop}.png"
                _png(mask, "mask" + sop, value=255)
                reject = batch.reject_second and n == 1
                tables["labels_archive"].append(
                    {
                        "batch_id": b,
                        "archive_version": "v1",
                        "global_key": sop,
                        "sop_instance_uid": sop,
                        "classifications": json.dumps({"Reject Image": reject}),
                        "mask_path": str(mask) if n == 0 else None,
                        "reject_image": reject,
                        "only_normal_tissue": False,
                        "cyst_lesion_present": False,
                        "benign_lesion_present": not malignant and n == 0,
                        "malignant_lesion_present": malignant and n == 0,
                    }
                )
        sop = _uid(src_batch, patient, "clip")
        member = f"{patient}_dicoms_anon/{acc}/CINE0001"
        frames = home.files / "video_table" / b / sop
        for i in (0, 4):
            _png(frames / f"frame_{i:04d}.png", f"{sop}-{i}")
        tables["video_table"].append(
            {
                "batch_id": b,
                "sop_instance_uid": sop,
                "study_instance_uid": _uid(patient, acc),
                "patient_id": patient,
                "accession_number": acc,
                "member_path": member,
                "frames_dir": str(frames),
                "saved_frame_indices": "[0, 4]",
                "status": "ok",
                "region_x0": CROP[0],
                "region_y0": CROP[1],
                "region_x1": CROP[0] + CROP[2] - 1,
                "region_y1": CROP[1] + CROP[3] - 1,
            }
        )
        tables["dicom_catalog"].append(
            {
                "batch_id": b,
                "member_path": member,
                "sop_instance_uid": sop,
                "file_sha256": "f" * 64,
                "pixel_sha256": "p" * 64,
                "kind": "video",
                "status": "ok",
            }
        )
        tables["ocr_table"].append(
            {"batch_id": b, "sop_instance_uid": sop, "source": "video", "laterality": "left"}
        )
        tables["cleaned_videos"].append(
            {
                "batch_id": b,
                "sop_instance_uid": sop,
                "patient_id": patient,
                "accession_number": acc,
                "frames_dir": str(frames),
                "include": patient not in batch.resend,
                "exclusion_reasons": ["duplicate"] if patient in batch.resend else [],
                "crop_x": CROP[0],
                "crop_y": CROP[1],
                "crop_w": CROP[2],
                "crop_h": CROP[3],
                "laterality": "left",
            }
        )
    skip = set() if batch.cleaned else {"cleaned_images", "cleaned_videos"}
    for table, rows in tables.items():
        if table not in skip:
            _write(home, table, b, rows)
    warehouse.ensure_views(home.catalog, home.warehouse, warehouse.tables_present(home.warehouse))


@pytest.fixture
def fake_home(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home").create()


def pids(start: int, n: int) -> list[str]:
    return [f"{10000000 + i:08d}" for i in range(start, start + n)]


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)

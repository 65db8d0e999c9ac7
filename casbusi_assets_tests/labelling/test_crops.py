"""Crops of the included images, cut from the caliper-free copy where there is one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.labelling.backend import RowOutcome, UploadResult
from casbusi_assets.labelling.crops import apply_upload, build_crops, data_row_specs
from casbusi_assets.storage.file_staging import staged_batch_dir


def _png(path: Path, value: int, shape=(60, 80)) -> str:
    img = np.full(shape, value, np.uint8)
    img[10, 20] = 7  # a marker pixel to check the offset
    cv2.imwrite(str(path), img)
    return str(path)


def _cleaned(tmp_path: Path) -> pd.DataFrame:
    base = {
        "patient_id": "p1",
        "accession_number": "a1",
        "label_cat": "trans",
        "orientation": "trans",
    }
    return pd.DataFrame(
        [
            {
                **base,
                "sop_instance_uid": "1.1",
                "image_path": _png(tmp_path / "o1.png", 100),
                "include": True,
                "crop_x": 20,
                "crop_y": 10,
                "crop_w": 30,
                "crop_h": 20,
                "laterality": "left",
            },
            {
                **base,
                "sop_instance_uid": "1.2",
                "image_path": _png(tmp_path / "o2.png", 110),
                "include": True,
                "crop_x": 70,
                "crop_y": 50,
                "crop_w": 30,
                "crop_h": 30,
                "laterality": None,
            },
            {
                **base,
                "sop_instance_uid": "1.3",
                "image_path": _png(tmp_path / "o3.png", 120),
                "include": False,
                "crop_x": 0,
                "crop_y": 0,
                "crop_w": 10,
                "crop_h": 10,
            },
            {
                **base,
                "sop_instance_uid": "1.4",
                "image_path": str(tmp_path / "gone.png"),
                "include": True,
                "crop_x": 0,
                "crop_y": 0,
                "crop_w": 10,
                "crop_h": 10,
            },
            {
                **base,
                "sop_instance_uid": "1.5",
                "image_path": _png(tmp_path / "o5.png", 1),
                "include": True,
                "crop_x": None,
                "crop_y": None,
                "crop_w": None,
                "crop_h": None,
            },
        ]
    )


def test_crops_use_the_inpainted_copy_and_record_why_others_were_skipped(tmp_path):
    inpainted = pd.DataFrame(
        [
            {
                "sop_instance_uid": "1.1",
                "inpainted_path": _png(tmp_path / "i1.png", 200),
                "mask_path": None,
                "n_calipers": 2,
                "method": "telea",
            }
        ]
    )
    ocr = pd.DataFrame([{"sop_instance_uid": "1.2", "source": "image", "laterality": "right"}])
    with staged_batch_dir(tmp_path / "files", "labelbox_crops", "b1") as staged:
        df = build_crops("b1", _cleaned(tmp_path), inpainted, ocr, staged, "casbusi-")
    rows = df.set_index("sop_instance_uid")
    assert list(rows.index) == ["1.1", "1.2", "1.4", "1.5"]  # 1.3 is excluded by cleaning
    one = rows.loc["1.1"]
    assert one["inpainted"] and one["source_path"].endswith("i1.png")
    crop = cv2.imread(one["crop_path"], cv2.IMREAD_UNCHANGED)
    assert crop.shape == (20, 30) and crop[0, 0] == 7 and crop[5, 5] == 200
    assert Path(one["crop_path"]) == tmp_path / "files" / "labelbox_crops" / "b1" / "1.1.png"
    assert (one["image_width"], one["image_height"]) == (80, 60)
    # A box poking out of the image is clipped, and the clipped box is what is recorded.
    two = rows.loc["1.2"]
    assert (two["crop_x"], two["crop_y"], two["crop_w"], two["crop_h"]) == (70, 50, 10, 10)
    assert two["laterality"] == "right" and not two["inpainted"]
    assert rows.loc["1.4", "upload_status"] == "skipped"
    assert "cannot read image" in rows.loc["1.4", "upload_error"]
    assert rows.loc["1.5", "upload_error"] == "no crop box"

    specs = data_row_specs(df)
    assert [s.global_key for s in specs] == ["casbusi-1.1", "casbusi-1.2"]
    assert specs[0].original_path.endswith("o1.png")
    assert specs[0].metadata["casbusi_laterality"] == "left"

    result = UploadResult(
        "online",
        {
            "casbusi-1.1": RowOutcome("created", None, "dr-1"),
            "casbusi-1.2": RowOutcome("failed", "Duplicate global key"),
        },
        labelling_batch="b1",
    )
    done = apply_upload(df, result).set_index("sop_instance_uid")
    assert (
        done.loc["1.1", "upload_status"] == "created" and done.loc["1.1", "data_row_id"] == "dr-1"
    )
    assert done.loc["1.2", "upload_status"] == "failed"
    assert done.loc["1.4", "upload_status"] == "skipped"


def test_rerun_gives_identical_crops(tmp_path):
    cleaned = _cleaned(tmp_path)
    empty = pd.DataFrame(columns=["sop_instance_uid", "inpainted_path"])
    with staged_batch_dir(tmp_path / "files", "labelbox_crops", "b1") as staged:
        first = build_crops("b1", cleaned, empty, None, staged, "casbusi-")
    bytes1 = Path(first.loc[0, "crop_path"]).read_bytes()
    with staged_batch_dir(tmp_path / "files", "labelbox_crops", "b1") as staged:
        second = build_crops("b1", cleaned, empty, None, staged, "casbusi-")
    assert first.equals(second) and Path(second.loc[0, "crop_path"]).read_bytes() == bytes1

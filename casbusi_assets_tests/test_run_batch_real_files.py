"""End to end on the real ultrasound captures that pydicom and pydicom-data ship."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse

from .conftest import REAL_US_FILES, with_identifiers, write_zip


@pytest.fixture(scope="module")
def ingested(module_home, tmp_path_factory):
    members = {
        f"PAT{i % 3:02d}/ST01/{name.lower().replace('.dcm', '')}": with_identifiers(
            name, f"{i % 3:08d}", f"ACC{i % 3:05d}"
        )
        for i, name in enumerate(REAL_US_FILES)
    }
    members["PAT00/ST01/.DS_Store"] = b"\x00\x00\x00\x01Bud1" + bytes(64)
    zip_path = write_zip(tmp_path_factory.mktemp("in") / "Real US.zip", members)
    outcome = run_batch(zip_path, module_home, echo=lambda m: None)
    return module_home, outcome


def _table(home, name, batch="real_us"):
    return warehouse.read_batch(home.warehouse, name, batch)


def test_every_real_file_is_catalogued_with_its_kind(ingested):
    home, outcome = ingested
    assert outcome.batch_id == "real_us"
    cat = _table(home, "dicom_catalog")
    ok = cat[cat["status"] == "ok"]
    expected = {f"{name.lower().replace('.dcm', '')}": kind for name, kind in REAL_US_FILES.items()}
    got = {Path(p).name: k for p, k in zip(ok["member_path"], ok["kind"], strict=True)}
    assert got == expected
    ds_store = cat[cat["member_path"].str.endswith(".DS_Store")].iloc[0]
    assert (ds_store["status"], ds_store["error_code"]) == ("quarantined", "not_dicom")
    header = json.loads(ok.iloc[0]["header"])
    assert "7FE00010" not in header and header["00080060"]["Value"] == ["US"]


def test_stills_decode_to_png_with_the_right_geometry(ingested):
    home, _ = ingested
    images = _table(home, "image_table")
    cat = _table(home, "dicom_catalog")
    stills = cat[(cat["status"] == "ok") & (cat["kind"] == "image")]
    # OBXXXX1A, OBXXXX1A_rle and examples_palette carry one SOP instance UID: one image,
    # exported once, with the number of copies recorded.
    assert len(images) == stills["sop_instance_uid"].nunique() == 5
    assert sorted(images["n_members"]) == [1, 1, 1, 1, 3]
    assert (images["status"] == "ok").all(), images[["member_path", "error"]]
    for row in images.itertuples():
        png = cv2.imread(row.image_path, cv2.IMREAD_UNCHANGED)
        assert png is not None and png.shape[:2] == (row.rows, row.columns)
        assert (png.ndim == 3) == (row.stored_as == "rgb")
        assert Path(row.image_path).parent == home.files / "image_table" / "real_us"
    by_name = {
        Path(p).name: r for p, r in zip(images["member_path"], images.itertuples(), strict=True)
    }
    # JPEG 2000, JPEG lossless, RLE (first member path of its SOP instance) and 16-bit palette.
    assert set(by_name) == {
        "us1_j2kr",
        "us1_uncr",
        "obxxxx1a_rle",
        "gdcm-us-aloka-16",
        "jpglosslessp14sv1_1s_1f_8b",
    }
    assert (by_name["us1_j2kr"].rows, by_name["us1_j2kr"].columns) == (480, 640)
    # The ALOKA dual-view capture declares several ultrasound regions; the first box is kept.
    aloka = by_name["gdcm-us-aloka-16"]
    assert aloka.region_count == 3 and (aloka.region_x0, aloka.region_x1) == (32, 335)


def test_cine_frames_follow_the_default_policy(ingested):
    home, _ = ingested
    videos = _table(home, "video_table").set_index("member_path")
    cine = videos.loc["PAT02/ST01/color3d_jpeg_baseline"]
    assert cine["n_frames"] == 120 and cine["saved_frames"] == 30  # every 4th frame
    frames = sorted(Path(cine["frames_dir"]).glob("*.png"))
    assert len(frames) == 30 and frames[0].name == "frame_0000.png"
    two = videos.loc["PAT01/ST01/obxxxx1a_rle_2frame"]
    assert two["n_frames"] == 2 and json.loads(two["saved_frame_indices"]) == [0]


def test_rerun_replaces_rows_and_files_exactly(ingested):
    home, outcome = ingested
    before = _table(home, "image_table").sort_values("sop_instance_uid").reset_index(drop=True)
    files_before = sorted((home.files / "image_table" / "real_us").iterdir())
    zip_path = Path(json.loads((home.registry / "real_us.json").read_text())["zip_path"])
    run_batch(zip_path, home, select=["dicom_catalog", "image_table"], echo=lambda m: None)
    after = _table(home, "image_table").sort_values("sop_instance_uid").reset_index(drop=True)
    assert after.drop(columns=[]).equals(before)
    assert sorted((home.files / "image_table" / "real_us").iterdir()) == files_before
    counts = warehouse.query(
        home.catalog,
        home.warehouse,
        "SELECT count(*) AS n FROM image_table WHERE batch_id = 'real_us'",
    )
    assert int(counts["n"][0]) == len(before)

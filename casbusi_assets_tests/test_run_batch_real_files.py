"""End to end on every real ultrasound capture that pydicom and pydicom-data ship, as shipped.

The files go into the zip byte for byte (headers untouched): most have an empty AccessionNumber
and some no PatientID, which makes them unlinkable to a case but not unusable. Every one must
be catalogued ok with its kind, exported (PNG or frames), and read by OCR.

Beside them go copies of a few captures with SequenceOfUltrasoundRegions removed and a new
SOPInstanceUID (distinct members, not duplicates of the originals): a screen without region
metadata must be used just the same, its ultrasound field estimated from the pixels.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse

from .conftest import REAL_US_FILES, write_zip

US1 = ("US1_UNCR.dcm", "US1_UNCI.dcm", "US1_J2KR.dcm", "US1_J2KI.dcm", "examples_jpeg2k.dcm")


# Copies without SequenceOfUltrasoundRegions: palette colour, 16-bit dual view, JPEG lossless,
# and a two-frame clip (the small ones, so the test stays quick).
NO_REGION_COPIES = {
    "OBXXXX1A.dcm": "image",
    "gdcm-US-ALOKA-16.dcm": "image",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "image",
    "OBXXXX1A_2frame.dcm": "video",
}


def _member(name: str) -> str:
    return f"real/{name}"


def _copy_member(name: str) -> str:
    return f"real/no_regions/{name}"


def without_regions(name: str) -> bytes:
    """The capture with its region sequence removed, under a new (deterministic) instance UID."""
    ds = pydicom.dcmread(get_testdata_file(name))
    assert "SequenceOfUltrasoundRegions" in ds, name
    del ds.SequenceOfUltrasoundRegions
    uid = generate_uid(entropy_srcs=[name, "without SequenceOfUltrasoundRegions"])
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ingested(module_home, tmp_path_factory):
    members = {_member(n): Path(get_testdata_file(n)).read_bytes() for n in REAL_US_FILES}
    members |= {_copy_member(n): without_regions(n) for n in NO_REGION_COPIES}
    members["real/.DS_Store"] = b"\x00\x00\x00\x01Bud1" + bytes(64)
    zip_path = write_zip(tmp_path_factory.mktemp("in") / "Real US.zip", members)
    outcome = run_batch(zip_path, module_home, echo=lambda m: None)
    return module_home, outcome


def _table(home, name, batch="real_us"):
    return warehouse.read_batch(home.warehouse, name, batch)


def test_every_real_file_is_ok_with_its_kind_and_missing_links_named(ingested):
    home, outcome = ingested
    assert outcome.batch_id == "real_us"
    cat = _table(home, "dicom_catalog").set_index("member_path")
    dicoms = cat.drop(index="real/.DS_Store")
    assert sorted(dicoms.index) == sorted(
        [*(_member(n) for n in REAL_US_FILES), *(_copy_member(n) for n in NO_REGION_COPIES)]
    )
    assert (dicoms["status"] == "ok").all(), dicoms.loc[dicoms["status"] != "ok", "error"]
    assert dicoms["error_code"].isna().all()
    for name, kind in REAL_US_FILES.items():
        assert dicoms.loc[_member(name), "kind"] == kind, name
    for name, kind in NO_REGION_COPIES.items():
        assert dicoms.loc[_copy_member(name), "kind"] == kind, name
    # Unlinkable, not unusable: the empty links are named, nothing else is wrong with the files.
    assert dicoms.loc[_member("US1_UNCR.dcm"), "missing_links"] == "accession_number"
    assert dicoms.loc[_member("color-pl.dcm"), "missing_links"] == "patient_id,accession_number"
    assert dicoms.loc[_member("gdcm-US-ALOKA-16.dcm"), "missing_links"] is None
    assert dicoms["missing_links"].notna().sum() >= 16
    ds_store = cat.loc["real/.DS_Store"]
    assert (ds_store["status"], ds_store["error_code"]) == ("quarantined", "not_dicom")
    header = json.loads(dicoms.iloc[0]["header"])
    assert "7FE00010" not in header and header["00080060"]["Value"] == ["US"]


def test_every_member_has_a_png_or_frames(ingested):
    home, _ = ingested
    cat = _table(home, "dicom_catalog").set_index("member_path")
    images = _table(home, "image_table").set_index("sop_instance_uid")
    videos = _table(home, "video_table").set_index("sop_instance_uid")
    assert (images["status"] == "ok").all(), images["error"]
    assert (videos["status"] == "ok").all(), videos["error"]
    for name, kind in REAL_US_FILES.items():
        sop = cat.loc[_member(name), "sop_instance_uid"]
        if kind == "image":
            row = images.loc[sop]
            png = cv2.imread(row["image_path"], cv2.IMREAD_UNCHANGED)
            assert png is not None and png.shape[:2] == (row["rows"], row["columns"]), name
            assert (png.ndim == 3) == (row["stored_as"] == "rgb"), name
        else:
            frames = sorted(Path(videos.loc[sop, "frames_dir"]).glob("frame_*.png"))
            assert len(frames) == videos.loc[sop, "saved_frames"] >= 1, name
    # Members holding one SOP instance (the same capture stored several ways) are one image,
    # exported once, with the number of copies recorded; the copies add up to every member.
    assert int(images["n_members"].sum()) == sum(
        k == "image" for k in [*REAL_US_FILES.values(), *NO_REGION_COPIES.values()]
    )
    copies = cat[cat["kind"] == "image"].groupby("sop_instance_uid").size()
    assert images["n_members"].to_dict() == copies.to_dict()
    assert images.loc[cat.loc[_member("OBXXXX1A.dcm"), "sop_instance_uid"], "n_members"] == 4
    assert images["missing_links"].notna().sum() >= 5  # carried from the catalog


def test_copies_without_regions_are_distinct_members_exported_and_read(ingested):
    home, _ = ingested
    cat = _table(home, "dicom_catalog").set_index("member_path")
    images = _table(home, "image_table").set_index("sop_instance_uid")
    videos = _table(home, "video_table").set_index("sop_instance_uid")
    ocr = _table(home, "ocr_table").set_index(["sop_instance_uid", "source"])
    for name, kind in NO_REGION_COPIES.items():
        copy, original = cat.loc[_copy_member(name)], cat.loc[_member(name)]
        assert copy["status"] == "ok" and not isinstance(copy["error_code"], str), name
        # a new instance, not a duplicate of the original: exported on its own
        assert copy["sop_instance_uid"] != original["sop_instance_uid"], name
        if kind == "image":
            row = images.loc[copy["sop_instance_uid"]]
            assert row["n_members"] == 1 and row["region_count"] == 0, name
            first = images.loc[original["sop_instance_uid"]]
            png = cv2.imread(row["image_path"], cv2.IMREAD_UNCHANGED)
            assert png is not None and png.shape[:2] == (first["rows"], first["columns"]), name
            assert row["stored_as"] == first["stored_as"], name
        else:
            row = videos.loc[copy["sop_instance_uid"]]
            frames = sorted(Path(row["frames_dir"]).glob("frame_*.png"))
            assert row["status"] == "ok" and len(frames) == row["saved_frames"] >= 1, name
        read = ocr.loc[(copy["sop_instance_uid"], kind)]
        assert read["status"] == "ok" and not isinstance(read["error"], str), name


def test_us1_is_power_doppler_stored_in_colour(ingested):
    home, _ = ingested
    cat = _table(home, "dicom_catalog").set_index("member_path")
    images = _table(home, "image_table").set_index("sop_instance_uid")
    # US1 is stored three ways under three SOP instance UIDs (uncompressed, J2K lossless, lossy).
    us1_rows = images.loc[sorted({cat.loc[_member(n), "sop_instance_uid"] for n in US1})]
    assert len(us1_rows) == 3
    for _, us1 in us1_rows.iterrows():
        assert us1["is_doppler"] and us1["doppler_kind"] == "power", us1["member_path"]
        assert us1["stored_as"] == "rgb" and us1["yellow_pixels_whitened"] == 0
        png = cv2.imread(us1["image_path"], cv2.IMREAD_UNCHANGED)
        png = cv2.cvtColor(png, cv2.COLOR_BGR2RGB).astype(int)
        # The top of the power scale stays yellow: the annotation-whitening rule left flow alone.
        assert (np.abs(png - (255, 255, 0)).max(axis=-1) <= 6).sum() > 500
    colour_flow = images.loc[cat.loc[_member("color-pl.dcm"), "sop_instance_uid"]]
    assert colour_flow["is_doppler"] and colour_flow["doppler_kind"] == "color"
    for name in ("ExplVR_BigEnd.dcm", "examples_rgb_color.dcm"):
        row = images.loc[cat.loc[_member(name), "sop_instance_uid"]]
        assert row["doppler_kind"] == "power" and row["stored_as"] == "rgb", name
    # B-mode captures with coloured chrome (Philips blue header and ticks, ALOKA green marks).
    for name in ("OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"):
        row = images.loc[cat.loc[_member(name), "sop_instance_uid"]]
        assert not row["is_doppler"] and row["doppler_kind"] is None, name
        assert row["stored_as"] == "gray", name
    videos = _table(home, "video_table")
    assert not videos["is_doppler"].any() and videos["doppler_kind"].isna().all()


def test_every_image_and_clip_has_an_ocr_row(ingested):
    home, _ = ingested
    ocr = _table(home, "ocr_table")
    images = _table(home, "image_table")
    videos = _table(home, "video_table")
    assert len(ocr) == len(images) + len(videos)
    assert set(zip(ocr["sop_instance_uid"], ocr["source"], strict=True)) == {
        *((s, "image") for s in images["sop_instance_uid"]),
        *((s, "video") for s in videos["sop_instance_uid"]),
    }
    assert (ocr["status"] == "ok").all(), ocr[["sop_instance_uid", "error"]]
    assert ocr["ocr_engine"].notna().all()


def test_stills_keep_their_geometry_and_regions(ingested):
    home, _ = ingested
    cat = _table(home, "dicom_catalog").set_index("member_path")
    images = _table(home, "image_table").set_index("sop_instance_uid")
    us1 = images.loc[cat.loc[_member("US1_J2KR.dcm"), "sop_instance_uid"]]
    assert (us1["rows"], us1["columns"]) == (480, 640)
    # The ALOKA dual-view capture declares several ultrasound regions; the first box is kept.
    aloka = images.loc[cat.loc[_member("gdcm-US-ALOKA-16.dcm"), "sop_instance_uid"]]
    assert aloka["region_count"] == 3 and (aloka["region_x0"], aloka["region_x1"]) == (32, 335)
    for row in images.itertuples():
        assert Path(row.image_path).parent == home.files / "image_table" / "real_us"


def test_cine_frames_follow_the_default_policy(ingested):
    home, _ = ingested
    cat = _table(home, "dicom_catalog").set_index("member_path")
    videos = _table(home, "video_table").set_index("sop_instance_uid")
    # examples_ybr_color and color3d_jpeg_baseline carry one SOP instance UID; the first member
    # path (color3d, the 120-frame original) is the one exported.
    cine = videos.loc[cat.loc[_member("color3d_jpeg_baseline.dcm"), "sop_instance_uid"]]
    assert cine["member_path"] == _member("color3d_jpeg_baseline.dcm")
    assert cine["n_frames"] == 120 and cine["saved_frames"] == 30  # every 4th frame
    frames = sorted(Path(cine["frames_dir"]).glob("*.png"))
    assert len(frames) == 30 and frames[0].name == "frame_0000.png"
    two = videos.loc[cat.loc[_member("OBXXXX1A_2frame.dcm"), "sop_instance_uid"]]
    assert two["n_frames"] == 2 and json.loads(two["saved_frame_indices"]) == [0]


def test_rerun_replaces_rows_and_files_exactly(ingested):
    home, outcome = ingested
    before = _table(home, "image_table").sort_values("sop_instance_uid").reset_index(drop=True)
    files_before = sorted((home.files / "image_table" / "real_us").iterdir())
    zip_path = Path(json.loads((home.registry / "real_us.json").read_text())["zip_path"])
    run_batch(zip_path, home, select=["dicom_catalog", "image_table"], echo=lambda m: None)
    after = _table(home, "image_table").sort_values("sop_instance_uid").reset_index(drop=True)
    assert after.equals(before)
    assert sorted((home.files / "image_table" / "real_us").iterdir()) == files_before
    counts = warehouse.query(
        home.catalog,
        home.warehouse,
        "SELECT count(*) AS n FROM image_table WHERE batch_id = 'real_us'",
    )
    assert int(counts["n"][0]) == len(before)

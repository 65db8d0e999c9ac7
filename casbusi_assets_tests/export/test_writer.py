"""The export as a researcher receives it: splits, stability, determinism, the CADBUSI-Training
format, lineage, labels or none, and no secrets."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from casbusi_assets.export.config import ExportConfig
from casbusi_assets.export.manifest import content_hash
from casbusi_assets.export.writer import ExportError, export_home
from casbusi_assets.storage import warehouse
from casbusi_assets_tests.export.conftest import CROP, FakeBatch, add_batch, pids


def _manifest(result) -> pd.DataFrame:
    return pq.read_table(result.export_dir / "manifest.parquet").to_pandas()


def _train(result) -> pd.DataFrame:
    return pd.read_csv(result.export_dir / "TrainData.csv")


def test_no_patient_in_two_splits(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 40)))
    result = export_home(fake_home, ExportConfig(val_fraction=0.25, test_fraction=0.25))
    manifest = _manifest(result)
    assert set(manifest["split"]) == {"train", "val", "test"}  # all three used, so it can fail
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1
    # TrainData agrees: one Valid per patient across its bags.
    train = _train(result)
    patient_of = manifest.drop_duplicates("bag_id").set_index("bag_id")["patient_id"]
    train["patient"] = train["ID"].map(patient_of)
    assert train.groupby("patient")["Valid"].nunique().max() == 1
    assert set(train["Valid"]) == {0, 1, 2}


@pytest.mark.parametrize("mode", ["hash", "stratified"])
def test_adding_a_batch_keeps_every_earlier_patients_split(fake_home, mode):
    config = ExportConfig(split_mode=mode, val_fraction=0.2, test_fraction=0.2)
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 30)))
    first = _manifest(export_home(fake_home, config))
    add_batch(fake_home, FakeBatch("batch_002", pids(30, 30)))
    second = _manifest(export_home(fake_home, config))
    before = first.drop_duplicates("patient_id").set_index("patient_id")["split"]
    after = second.drop_duplicates("patient_id").set_index("patient_id")["split"]
    assert set(after.index) > set(before.index)
    assert (after[before.index] == before).all()
    # Every file exported the first time is exported again, unchanged, in the same split.
    merged = first.merge(second, on="export_path", suffixes=("_1", "_2"))
    assert len(merged) == len(first)
    assert (merged["sha256_1"] == merged["sha256_2"]).all()
    assert (merged["split_1"] == merged["split_2"]).all()


def test_two_exports_of_the_same_data_have_identical_manifests(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 12), inpaint_first=True, labels=True))
    a = export_home(fake_home, ExportConfig())
    b = export_home(fake_home, ExportConfig())
    assert a.export_dir != b.export_dir and a.export_dir.is_dir() and b.export_dir.is_dir()
    assert a.manifest_sha256 == b.manifest_sha256
    assert content_hash(pq.read_table(a.export_dir / "manifest.parquet")) == a.manifest_sha256
    # Byte for byte, too: manifest and TrainData.
    for name in ("manifest.parquet", "TrainData.csv", "InstanceData.csv"):
        assert (a.export_dir / name).read_bytes() == (b.export_dir / name).read_bytes(), name
    # A changed setting changes the content, and so the hash.
    c = export_home(fake_home, ExportConfig(salt="another-salt"))
    assert c.manifest_sha256 != a.manifest_sha256


def test_train_data_parses_the_way_cadbusi_training_reads_it(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 10)))
    result = export_home(fake_home, ExportConfig())
    data = pd.read_csv(result.export_dir / "TrainData.csv")
    assert list(data.columns) == [
        "ID", "Accession_Number", "Breast", "Images", "Has_Malignant", "Has_Benign", "Valid",
        "VideoPaths",
    ]  # fmt: skip
    root = f"{result.export_dir}/"
    n_images = 0
    for _, row in data.iterrows():
        images = ast.literal_eval(row["Images"])
        assert images and all(isinstance(n, str) for n in images)
        for name in images:
            # data/format_data.py: os.path.join(f'{root_dir}images/', img_name)
            assert os.path.isfile(os.path.join(f"{root}images/", name)), name
        n_images += len(images)
        labels = [int(row[c]) for c in ("Has_Malignant", "Has_Benign")]
        assert labels in ([1, 0], [0, 1], [0, 0], [1, 1])
        for clip in ast.literal_eval(row["VideoPaths"]):
            assert sorted((result.export_dir / "videos" / clip).glob("frame_*.png")), clip
    assert n_images == len(list((result.export_dir / "images").iterdir()))
    # One bag per (accession, breast): each fake patient has a biopsied left and a right breast.
    assert len(data) == 20 and set(data["Breast"]) == {"LEFT", "RIGHT"}
    left = data[data["Breast"] == "LEFT"]
    assert (left["Has_Malignant"] | left["Has_Benign"]).all()
    assert (
        data.loc[data["Breast"] == "LEFT", "VideoPaths"].map(ast.literal_eval).map(len) == 1
    ).all()


def test_exported_pixels_are_the_crop_of_the_inpainted_copy_with_lineage(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 4), inpaint_first=True))
    result = export_home(fake_home, ExportConfig())
    manifest = _manifest(result)
    images = manifest[manifest["file_kind"] == "image"]
    catalog = warehouse.query(fake_home.catalog, fake_home.warehouse, "SELECT * FROM dicom_catalog")
    inp = warehouse.query(fake_home.catalog, fake_home.warehouse, "SELECT * FROM inpainted_images")
    assert images["inpainted"].sum() == len(inp) == 4
    x, y, w, h = CROP
    for row in images.itertuples():
        source = fake_home.root / row.source_path
        expected = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[y : y + h, x : x + w]
        got = cv2.imread(str(result.export_dir / row.export_path), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, expected), row.export_path
        assert (row.crop_x, row.crop_y, row.crop_w, row.crop_h) == CROP
        is_inpainted_copy = row.sop_instance_uid in set(inp["sop_instance_uid"])
        assert row.inpainted == is_inpainted_copy
        assert ("inpainted_images" in row.source_path) == is_inpainted_copy
        member = catalog[catalog["sop_instance_uid"] == row.sop_instance_uid].iloc[0]
        assert row.member_path == member["member_path"] and row.batch_id == member["batch_id"]
        assert row.dicom_file_sha256 == member["file_sha256"]
        assert row.dicom_pixel_sha256 == member["pixel_sha256"]
    frames = manifest[manifest["file_kind"] == "video_frame"]
    assert len(frames) == 8 and set(frames["frame_index"]) == {0, 4}
    # The caliper captures went out as their caliper-free copies, and the manifest says so.
    assert (images["has_calipers"] == images["inpainted"]).all()
    assert result.stats["calipers_not_removed"] == 0


def test_export_without_labels_works_and_says_so(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 6)))
    result = export_home(fake_home, ExportConfig())
    assert not (result.export_dir / "InstanceData.csv").exists()
    assert not any((result.export_dir / "masks").iterdir())
    card = (result.export_dir / "README.md").read_text()
    assert "labels: none (no labels archive" in card
    assert set(_manifest(result)["label_source"]) == {"case_table"}
    # No inpainting in this home: the caliper captures are exported as they are, and counted.
    assert result.stats["calipers_not_removed"] == 6
    assert "6 exported stills show calipers" in card
    assert _manifest(result)["labels_archive_version"].isna().all()


def test_labels_give_instance_data_masks_and_the_reject_system(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 6), labels=True, reject_second=True))
    result = export_home(fake_home, ExportConfig())
    instances = pd.read_csv(result.export_dir / "InstanceData.csv")
    images = set(os.listdir(result.export_dir / "images"))
    assert set(instances["ImageName"]) <= images and len(instances) == 6  # the firsts only
    assert not instances["Reject Image"].any()
    masks = sorted(os.listdir(result.export_dir / "masks"))
    assert len(masks) == 6 and set(masks) <= images
    mask = cv2.imread(str(result.export_dir / "masks" / masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (CROP[3], CROP[2])
    manifest = _manifest(result)
    labelled = manifest[manifest["label_source"] == "case_table+labels_archive"]
    assert len(labelled) == 6 and set(labelled["labels_archive_version"]) == {"v1"}
    assert (
        result.stats["filters_images"][
            [f["code"] for f in result.stats["filters_images"]].index("instance_reject")
        ]["removed"]
        == 6
    )
    assert "labels archive version(s) v1" in (result.export_dir / "README.md").read_text()
    # With the reject system off the rejected stills are exported and marked for the trainer.
    off = export_home(fake_home, ExportConfig(use_reject_system=False))
    instances = pd.read_csv(off.export_dir / "InstanceData.csv")
    assert instances["Reject Image"].sum() == 6


def test_no_secret_in_any_exported_file(fake_home, monkeypatch):
    fake = "lb-FAKE-KEY-eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRlc3Q"
    monkeypatch.setenv("CASBUSI_LABELBOX_API_KEY", fake)
    monkeypatch.setenv("LABELBOX_API_KEY", fake + "-2")
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 6), labels=True))
    result = export_home(fake_home, ExportConfig())
    files = [p for p in result.export_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        assert fake.encode() not in data and b"FAKE-KEY" not in data, path
    assert "LABELBOX" not in (result.export_dir / "export_config.json").read_text().upper()


def test_an_export_that_would_leak_a_secret_is_refused_and_leaves_nothing(fake_home, monkeypatch):
    secret = "super-secret-token-value-123"
    monkeypatch.setenv("LABELBOX_API_KEY", secret)
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 3)))
    with pytest.raises(ExportError, match="credential"):
        export_home(fake_home, ExportConfig(salt=secret))  # the salt lands in export_config.json
    assert list((fake_home.root / "exports").iterdir()) == []


def test_exports_are_new_read_only_folders(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 3)))
    a = export_home(fake_home, ExportConfig())
    before = {p: p.read_bytes() for p in a.export_dir.rglob("*") if p.is_file()}
    b = export_home(fake_home, ExportConfig())
    assert b.export_dir != a.export_dir
    assert {p: p.read_bytes() for p in a.export_dir.rglob("*") if p.is_file()} == before
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in before)
    assert all((p.stat().st_mode & 0o222) == 0 for p in before)
    assert not [p for p in (fake_home.root / "exports").iterdir() if p.name.startswith(".")]


def test_cross_batch_resend_is_exported_once_and_case_rows_once(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 4)))
    add_batch(fake_home, FakeBatch("batch_002", pids(4, 4), resend=[pids(0, 1)[0]]), "batch_001")
    result = export_home(fake_home, ExportConfig())
    manifest = _manifest(result)
    assert manifest["export_path"].is_unique
    images = manifest[manifest["file_kind"] == "image"]
    assert images["sop_instance_uid"].is_unique and len(images) == 8 * 3
    resent = images[images["patient_id"] == pids(0, 1)[0]]
    assert set(resent["batch_id"]) == {"batch_001"}
    assert result.stats["cleaning_reasons_images"] == {"duplicate": 3}
    # One bag per (accession, breast), not one per batch that carried the case rows.
    train = _train(result)
    assert not train.duplicated(["Accession_Number", "Breast"]).any()


def test_without_cleaned_tables_the_export_falls_back_and_says_so(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 4), cleaned=False))
    result = export_home(fake_home, ExportConfig())
    assert result.stats["files"]["image"] == 12
    card = (result.export_dir / "README.md").read_text()
    assert "cleaned_images not materialised" in card


def test_filters_are_counted_in_the_data_card(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 6)))
    # A crop-size floor above the fake crops removes every still and clip, and says so.
    result = export_home(fake_home, ExportConfig(min_crop_side=300))
    removed = {f["code"]: f["removed"] for f in result.stats["filters_images"]}
    assert removed["crop_too_small"] == 18
    assert result.stats["files"] == {}
    card = (result.export_dir / "README.md").read_text()
    assert "| `crop_too_small` |" in card and "`min_crop_side=300`" in card
    assert pd.read_csv(result.export_dir / "TrainData.csv").empty


def test_an_empty_warehouse_is_a_clear_error(fake_home):
    from casbusi_assets.export.inputs import ExportInputError

    with pytest.raises(ExportInputError, match="ingest a batch first"):
        export_home(fake_home, ExportConfig())
    assert not (fake_home.root / "exports").exists() or not any(
        Path(fake_home.root / "exports").iterdir()
    )


def _labelling_crops(home, batch_id: str) -> pd.DataFrame:
    """What labelbox_crops writes for the batch: its crop files and table (offline, no upload)."""
    from casbusi_assets.labelling.crops import build_crops
    from casbusi_assets.storage.file_staging import staged_batch_dir

    cleaned = warehouse.read_batch(home.warehouse, "cleaned_images", batch_id)
    inpainted = warehouse.read_batch(home.warehouse, "inpainted_images", batch_id)
    with staged_batch_dir(home.files, "labelbox_crops", batch_id) as staged:
        crops = build_crops(batch_id, cleaned, inpainted, None, staged, "t", workers=2)
    warehouse.write_batch(home.warehouse, "labelbox_crops", batch_id, crops)
    warehouse.ensure_views(home.catalog, home.warehouse, ["labelbox_crops"])
    return crops


def test_the_labelling_crops_are_reused_byte_for_byte_and_never_when_stale(fake_home, monkeypatch):
    from casbusi_assets.export import writer

    decoded_sources: list[str] = []
    real_read = writer.read_image

    def counting_read(path, *args):
        decoded_sources.append(str(path))
        return real_read(path, *args)

    monkeypatch.setattr(writer, "read_image", counting_read)
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 4), inpaint_first=True))
    decoded = _manifest(export_home(fake_home, ExportConfig())).set_index("export_path")
    crops = _labelling_crops(fake_home, "batch_001")
    assert (crops["upload_status"] == "pending").all() and crops["inpainted"].any()
    sources = set(crops["source_path"])

    # A crop newer than its source is copied (no still decoded): the same bytes the export
    # would have encoded.
    decoded_sources.clear()
    reused = _manifest(export_home(fake_home, ExportConfig())).set_index("export_path")
    assert not sources & set(decoded_sources)
    assert reused["sha256"].equals(decoded["sha256"])
    assert reused[["crop_x", "crop_y", "crop_w", "crop_h"]].equals(
        decoded[["crop_x", "crop_y", "crop_w", "crop_h"]]
    )

    # A crop cut before its source was last written (inpainting re-run since) is not copied:
    # scribble on every crop, date them before their sources; the export decodes the sources.
    for rec in crops.itertuples():
        path = Path(rec.crop_path)
        cv2.imwrite(str(path), np.zeros((5, 5), np.uint8))
        source_mtime = Path(rec.source_path).stat().st_mtime
        os.utime(path, (source_mtime - 60, source_mtime - 60))
    decoded_sources.clear()
    stale = _manifest(export_home(fake_home, ExportConfig())).set_index("export_path")
    assert sources <= set(decoded_sources)
    assert stale["sha256"].equals(decoded["sha256"])

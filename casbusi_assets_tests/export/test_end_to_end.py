"""Generated batches through the whole graph, then `casbusi export`: the real tables, the real
files, and lineage that leads back into the zip."""

from __future__ import annotations

import ast
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.cli import main
from casbusi_assets.export.assets import run_export
from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.synthetic import generate_batches
from casbusi_assets_tests.labelling.export_fixture import export_line, ndjson


@pytest.fixture(scope="module")
def exported(module_home, tmp_path_factory):
    files = generate_batches(tmp_path_factory.mktemp("gen"), batches=2, patients=3, seed=5150)
    run_batch(files[0].zip_path, module_home, echo=lambda m: None)
    first = run_export(module_home, echo=lambda m: None)
    run_batch(files[1].zip_path, module_home, echo=lambda m: None)
    second = run_export(module_home, echo=lambda m: None)
    return module_home, files, first, second


def _manifest(outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.export_dir / "manifest.parquet")


def test_every_exported_file_leads_back_to_a_member_of_its_zip(exported):
    home, files, _, second = exported
    manifest = _manifest(second)
    assert len(manifest) and set(manifest["batch_id"]) <= {"batch_001", "batch_002"}
    zips = {f.batch_id: zipfile.ZipFile(f.zip_path) for f in files}
    truth = pd.concat([pd.read_parquet(f.truth_path) for f in files])
    by_member = truth.set_index(["batch_id", "member_path"])
    for row in manifest.itertuples():
        assert row.member_path in zips[row.batch_id].namelist(), row.member_path
        t = by_member.loc[(row.batch_id, row.member_path)]
        t = t.iloc[0] if isinstance(t, pd.DataFrame) else t
        assert t["sop_instance_uid"] == row.sop_instance_uid
        assert t["file_sha256"] == row.dicom_file_sha256
        assert (second.export_dir / row.export_path).is_file()
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1


def test_the_second_batch_moves_no_patient_of_the_first(exported):
    _, _, first, second = exported
    a = _manifest(first).drop_duplicates("patient_id").set_index("patient_id")["split"]
    b = _manifest(second).drop_duplicates("patient_id").set_index("patient_id")["split"]
    assert len(a) and set(a.index) <= set(b.index)
    assert (b[a.index] == a).all()
    assert first.export_dir.is_dir() and first.export_dir != second.export_dir


def test_train_data_names_real_cropped_files(exported):
    _, _, _, second = exported
    data = pd.read_csv(second.export_dir / "TrainData.csv")
    assert len(data)
    for images in data["Images"].map(ast.literal_eval):
        for name in images:
            assert (second.export_dir / "images" / name).is_file()
    assert second.summary and second.summary[0].startswith("export ")


def test_casbusi_export_prints_the_folder_and_the_summary(exported, capsys):
    home, _, _, second = exported
    assert main(["--home", str(home.root), "export"]) == 0
    out = capsys.readouterr().out
    assert "export written to " + str(home.root / "exports") in out
    assert "splits: train" in out and "manifest sha256 " in out
    # Same data, same manifest: the printed hash is the previous export's.
    assert second.summary[-1] in out


def test_labels_imported_from_labelbox_reach_the_export(exported, tmp_path):
    """Labels back through `casbusi labels import` (a Labelbox export in the documented
    structure, composite masks from a folder): the next export has InstanceData.csv, cropped
    masks and drops the rejected still."""
    home, _, _, second = exported
    shipped = _manifest(second)
    shipped = set(shipped.loc[shipped["file_kind"] == "image", "sop_instance_uid"])
    crops = warehouse.query(home.catalog, home.warehouse, "SELECT * FROM labelbox_crops")
    crops = crops[crops["sop_instance_uid"].isin(shipped)].sort_values("sop_instance_uid")
    assert len(crops) >= 2, "the generated batches should leave labelled stills to export"
    crops = crops.head(3)
    masks, lines = tmp_path / "masks", []
    masks.mkdir()
    for i, c in enumerate(crops.itertuples()):
        colour = [123, 103, 152]
        img = np.zeros((int(c.crop_h), int(c.crop_w), 3), np.uint8)
        img[10:60, 10:80] = colour[::-1]  # BGR on disk
        cv2.imwrite(str(masks / f"cm{i}.png"), img)
        answers = ["Reject Image"] if i == 0 else ["Malignant Lesion Present"]
        lines.append(
            export_line(
                c.global_key,
                f"dr{i}",
                int(c.crop_w),
                int(c.crop_h),
                label_id=f"lb{i}",
                composite=(f"cm{i}", colour),
                answers=answers,
            )  # fmt: skip
        )
    path = tmp_path / "export.ndjson"
    path.write_text(ndjson(lines))
    assert (
        main(["--home", str(home.root), "labels", "import", str(path), "--masks", str(masks)]) == 0
    )
    labelled = run_export(home, echo=lambda m: None)
    out = labelled.export_dir
    instances = pd.read_csv(out / "InstanceData.csv")
    rejected, kept = crops["sop_instance_uid"].iloc[0], list(crops["sop_instance_uid"].iloc[1:])
    manifest = _manifest(labelled)
    images = manifest[manifest["file_kind"] == "image"].set_index("sop_instance_uid")
    assert rejected not in images.index  # the reject system dropped it
    assert set(kept) <= set(images.index)
    names = {images.loc[s, "export_path"].split("/", 1)[1] for s in kept}
    assert names <= set(instances["ImageName"])
    assert instances.set_index("ImageName").loc[sorted(names), "Malignant Lesion Present"].all()
    version = warehouse.query(
        home.catalog, home.warehouse, "SELECT DISTINCT archive_version FROM labels_archive"
    )["archive_version"].tolist()
    assert set(images.loc[kept, "labels_archive_version"]) <= set(version)
    for name in names:
        mask = cv2.imread(str(out / "masks" / name), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(out / "images" / name), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.shape[:2] == image.shape[:2]
        assert mask.max() > 0
    assert any(line.startswith("labels: labels archive version") for line in labelled.summary)

"""Export fixture → archive rows and masks in the original geometry (pixel-exact); unknown keys
and malformed lines are recorded, not dropped; exams discarded as a whole; versions kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.labelling.archive import (
    build_archive,
    ensure_view,
    latest_labels,
    mask_pixels,
    read_versions,
    stored_versions,
    write_version,
)
from casbusi_assets.labelling.export_parsing import parse_export_lines
from casbusi_assets.labelling.masks import MaskResolver
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.warehouse import query
from casbusi_assets_tests.labelling.export_fixture import export_line, ndjson

WHEN = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# Original 200x150; the ultrasound field (the crop) is 100x80 at (30, 20).
CROP = {
    "crop_x": 30,
    "crop_y": 20,
    "crop_w": 100,
    "crop_h": 80,
    "image_width": 200,
    "image_height": 150,
}


def _crops(tmp_path: Path) -> pd.DataFrame:
    rows = []
    for i, (patient, acc) in enumerate([("p1", "a1"), ("p1", "a1"), ("p2", "a2")]):
        rows.append(
            {
                "batch_id": "batch_001",
                "sop_instance_uid": f"1.2.{i}",
                "global_key": f"casbusi-1.2.{i}",
                "patient_id": patient,
                "accession_number": acc,
                "crop_path": str(tmp_path / f"1.2.{i}.png"),
                **CROP,
            }
        )
    return pd.DataFrame(rows)


def _composite_png(folder: Path, name: str, color_rgb, box, other_box=None) -> None:
    """A composite mask PNG as Labelbox serves it: the crop's size, one colour per instance."""
    img = np.zeros((80, 100, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = color_rgb[::-1]  # OpenCV writes BGR
    if other_box:
        a0, b0, a1, b1 = other_box
        img[b0:b1, a0:a1] = (40, 50, 60)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), img)


def _build(tmp_path, text, crops=None, masks=None, version="lv-1"):
    labels, errors = parse_export_lines(text.splitlines())
    files = tmp_path / "files"
    with staged_batch_dir(files, "labels_archive", version) as staged:
        built = build_archive(
            version,
            WHEN,
            labels,
            errors,
            _crops(tmp_path) if crops is None else crops,
            MaskResolver(masks or tmp_path / "masks"),
            staged,
        )
    return built


def test_a_mask_drawn_on_the_crop_lands_on_the_right_pixels_of_the_original(tmp_path):
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (10, 5, 30, 25), (50, 50, 60, 60))
    built = _build(tmp_path, ndjson([export_line("casbusi-1.2.0", "dr1", 100, 80)]))
    (row,) = built.rows.to_dict("records")
    assert (row["status"], row["mask_status"], row["sop_instance_uid"]) == ("ok", "ok", "1.2.0")
    mask = mask_pixels(row["mask_path"])
    expected = np.zeros((150, 200), bool)
    expected[20 + 5 : 20 + 25, 30 + 10 : 30 + 30] = True
    assert mask.shape == (150, 200)
    assert np.array_equal(mask, expected)
    # Boxes, polygons and points are moved by the same offset.
    box, polygon, point = json.loads(row["objects"])
    assert box["bounding_box"] == {"top": 68.0, "left": 88.0, "height": 65.0, "width": 12.0}
    assert polygon["polygon"][0] == {"x": 177.7, "y": 138.2}
    assert point["point"] == {"x": 150.0, "y": 100.0}
    assert json.loads(row["classifications"])["quality"] == "good"
    assert row["labeler"] == "labeler@example.org"


def test_single_instance_and_composite_masks_of_one_label_are_united(tmp_path):
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (0, 0, 10, 10))
    inst = np.zeros((80, 100), np.uint8)
    inst[70:80, 90:100] = 1
    cv2.imwrite(str(tmp_path / "masks" / "feat-9.png"), inst)
    line = export_line("casbusi-1.2.0", "dr1", 100, 80, instance_mask="feat-9")
    (row,) = _build(tmp_path, ndjson([line])).rows.to_dict("records")
    mask = mask_pixels(row["mask_path"])
    assert mask.sum() == 200 and mask[20, 30] and mask[20 + 79, 30 + 99]
    assert [o["status"] for o in json.loads(row["mask_objects"])] == ["ok", "ok"]


def test_missing_and_mis_sized_masks_are_archived_with_the_reason(tmp_path):
    text = ndjson(
        [
            export_line("casbusi-1.2.0", "dr1", 100, 80, composite=("cm-absent", [1, 2, 3])),
            export_line("casbusi-1.2.2", "dr3", 100, 80, composite=("cm-small", [1, 2, 3])),
        ]
    )
    small = tmp_path / "masks"
    small.mkdir()
    cv2.imwrite(str(small / "cm-small.png"), np.zeros((10, 10, 3), np.uint8))
    rows = _build(tmp_path, text).rows.set_index("sop_instance_uid")
    assert rows.loc["1.2.0", "mask_status"] == "missing"
    assert "cm-absent.png not in" in rows.loc["1.2.0", "mask_error"]
    assert rows.loc["1.2.2", "mask_status"] == "missing"
    assert "10x10 but the crop is 100x80" in rows.loc["1.2.2", "mask_error"]
    assert rows["mask_path"].isna().all()


def test_unknown_global_key_and_malformed_line_are_reported_not_dropped(tmp_path):
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (0, 0, 5, 5))
    text = ndjson(
        [
            export_line("casbusi-1.2.0", "dr1", 100, 80),
            "{broken json",
            export_line("someone-elses-key", "dr9", 100, 80),
        ]
    )
    built = _build(tmp_path, text)
    by_status = built.rows.set_index("status")
    assert sorted(built.rows["status"]) == ["malformed", "ok", "unknown_global_key"]
    assert by_status.loc["malformed", "source_line"] == 2
    assert by_status.loc["malformed", "error"].startswith("line 2: not valid JSON")
    assert built.unknown_keys == ["someone-elses-key"]
    assert "not in labelbox_crops" in by_status.loc["unknown_global_key", "error"]
    assert by_status.loc["unknown_global_key", "label_id"] == "lb1"
    assert by_status.loc["ok", "mask_status"] == "ok"


def test_discard_entire_exam_rejects_every_image_of_the_exam(tmp_path):
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (0, 0, 5, 5))
    line = export_line("casbusi-1.2.0", "dr1", 100, 80, answers=["Discard Entire Exam"])
    other_exam = export_line("casbusi-1.2.2", "dr3", 100, 80, label_id="lb3")
    rows = _build(tmp_path, ndjson([line, other_exam])).rows.set_index("sop_instance_uid")
    # 1.2.1 is in the same exam (p1/a1) but was not in the export: it still gets a row.
    assert rows.loc["1.2.1", "status"] == "exam_discarded"
    assert rows.loc[["1.2.0", "1.2.1"], "discard_entire_exam"].all()
    assert rows.loc[["1.2.0", "1.2.1"], "reject_image"].all()
    assert not rows.loc["1.2.2", "discard_entire_exam"] and not rows.loc["1.2.2", "reject_image"]


def test_versions_are_never_overwritten_and_latest_picks_the_newest(tmp_path):
    warehouse, catalog = tmp_path / "warehouse", tmp_path / "catalog.duckdb"
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (0, 0, 5, 5))
    v1 = _build(tmp_path, ndjson([export_line("casbusi-1.2.0", "dr1", 100, 80)]), version="lv-1")
    v2 = _build(
        tmp_path,
        ndjson([export_line("casbusi-1.2.0", "dr1", 100, 80, label_id="lb-new")]),
        version="lv-2",
    )
    write_version(warehouse, "lv-1", v1.rows)
    write_version(warehouse, "lv-2", v2.rows)
    assert stored_versions(warehouse) == ["lv-1", "lv-2"]
    write_version(warehouse, "lv-2", v2.rows)  # re-materialising a version replaces only it
    assert len(read_versions(warehouse)) == 2
    everything = read_versions(warehouse)
    assert sorted(everything["label_id"]) == ["lb-new", "lb1"]
    assert list(latest_labels(everything)["label_id"]) == ["lb-new"]
    ensure_view(catalog, warehouse)
    got = query(
        catalog, warehouse, "SELECT archive_version, label_id FROM labels_archive ORDER BY 1"
    )
    assert got.values.tolist() == [["lv-1", "lb1"], ["lv-2", "lb-new"]]
    # Both versions' masks are still on disk.
    assert (tmp_path / "files" / "labels_archive" / "lv-1").is_dir()
    assert (tmp_path / "files" / "labels_archive" / "lv-2").is_dir()


def test_row_exported_without_global_key_is_matched_by_its_external_id(tmp_path):
    line = export_line(None, "dr1", 100, 80, composite=None)
    line["data_row"]["external_id"] = "1.2.0.png"
    (row,) = _build(tmp_path, ndjson([line])).rows.to_dict("records")
    assert row["sop_instance_uid"] == "1.2.0" and row["global_key"] == "casbusi-1.2.0"


@pytest.mark.parametrize("n_lines", [0])
def test_an_empty_export_gives_an_empty_version(tmp_path, n_lines):
    built = _build(tmp_path, "")
    assert built.rows.empty and built.line_errors == []


def test_removing_a_batch_takes_its_rows_and_masks_and_leaves_other_batches(tmp_path):
    from casbusi_assets.labelling.archive import remove_batch_labels

    warehouse = tmp_path / "warehouse"
    _composite_png(tmp_path / "masks", "cm7", [123, 103, 152], (0, 0, 5, 5))
    crops = _crops(tmp_path)
    crops.loc[crops["sop_instance_uid"] == "1.2.2", "batch_id"] = "batch_002"
    lines = [
        export_line("casbusi-1.2.0", "dr1", 100, 80),
        export_line("casbusi-1.2.2", "dr3", 100, 80, label_id="lb3"),
    ]
    built = _build(tmp_path, ndjson(lines), crops=crops)
    write_version(warehouse, "lv-1", built.rows)
    masks = built.rows.set_index("sop_instance_uid")["mask_path"]
    assert Path(masks["1.2.0"]).is_file() and Path(masks["1.2.2"]).is_file()

    assert remove_batch_labels(warehouse, "batch_002") == 1
    assert not Path(masks["1.2.2"]).exists()
    assert Path(masks["1.2.0"]).is_file()  # the same version's mask of another batch stays
    assert read_versions(warehouse)["sop_instance_uid"].tolist() == ["1.2.0"]
    assert remove_batch_labels(warehouse, "batch_002") == 0  # nothing left: no error

"""What the export reads from the warehouse: cross-batch rules and the newest usable label."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from casbusi_assets.export.inputs import load_inputs
from casbusi_assets.storage import warehouse
from casbusi_assets_tests.export.conftest import FakeBatch, add_batch, pids


def _labels(home, rows):
    folder = warehouse.batch_dir(home.warehouse, "labels_archive", "batch_001")
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / warehouse.PARQUET_NAME)
    warehouse.ensure_views(home.catalog, home.warehouse, ["labels_archive"])


def test_the_newest_usable_label_of_an_image_wins(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 1)))
    sop = load_inputs(fake_home).images["sop_instance_uid"].iloc[0]
    base = {"batch_id": "batch_001", "sop_instance_uid": sop, "mask_path": None}
    _labels(
        fake_home,
        [
            {**base, "archive_version": "lv-1", "status": "ok", "reject_image": True},
            {**base, "archive_version": "lv-2", "status": "ok", "reject_image": False},
            # A newer retrieval in which the image came back unlabelled does not erase the label.
            {**base, "archive_version": "lv-3", "status": "unlabeled", "reject_image": None},
            {**base, "archive_version": "lv-3", "status": "ok", "sop_instance_uid": None},
        ],
    )
    inputs = load_inputs(fake_home)
    row = inputs.images.set_index("sop_instance_uid").loc[sop]
    assert row["labels_archive_version"] == "lv-2" and not row["reject_image"]
    assert row["has_instance_label"]
    assert inputs.has_labels and inputs.sources["labels"] == "labels_archive"
    others = inputs.images[inputs.images["sop_instance_uid"] != sop]
    assert not others["has_instance_label"].any()


def test_case_rows_resent_later_are_read_once_from_the_latest_batch(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 2)))
    add_batch(fake_home, FakeBatch("batch_002", pids(2, 1), resend=pids(0, 1)), "batch_001")
    # The re-sent study's trust changed in the later delivery.
    path = (
        warehouse.batch_dir(fake_home.warehouse, "case_study_table", "batch_002") / "data.parquet"
    )
    t = pq.read_table(path).to_pandas()
    t.loc[t["patient_id"] == pids(0, 1)[0], "trustworthiness"] = 3
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), path)
    images = load_inputs(fake_home).images
    first = images[images["patient_id"] == pids(0, 1)[0]]
    assert len(first) == 6  # three stills in each batch: one row each, not one per case row
    assert set(first["trustworthiness"]) == {3}
    # The later copies of the same SOP are marked as duplicates of the earliest batch.
    later = first[first["batch_id"] == "batch_002"]
    assert set(later["duplicate_of_batch"]) == {"batch_001"}
    assert first[first["batch_id"] == "batch_001"]["duplicate_of_batch"].isna().all()

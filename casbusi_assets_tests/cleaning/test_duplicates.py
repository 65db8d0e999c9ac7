from __future__ import annotations

import numpy as np
import pandas as pd

from casbusi_assets.cleaning.duplicates import assign_duplicates, earlier_copies, find_duplicates
from casbusi_assets.cleaning.quality import pixel_hash
from casbusi_assets.storage import warehouse


def _rows(batch: str, items: list[tuple[str, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"batch_id": batch, "sop_instance_uid": s, "raw_hash": r, "pixel_hash": p}
            for s, r, p in items
        ]
    )


def _store(wh, batch: str, cleaned: pd.DataFrame, catalog: list[tuple[str, str]] = ()) -> None:
    warehouse.write_batch(wh, "cleaned_images", batch, cleaned)
    cat = pd.DataFrame(
        [
            {"batch_id": batch, "sop_instance_uid": s, "pixel_sha256": h, "kind": "image",
             "status": "ok"}
            for s, h in catalog
        ]
    )  # fmt: skip
    warehouse.write_batch(wh, "dicom_catalog", batch, cat)


def test_within_a_batch_the_smallest_uid_is_kept():
    cur = _rows("b1", [("1.9", "r1", "p1"), ("1.10", "r2", "p1"), ("1.5", "r3", "p3")])
    got = assign_duplicates(cur, _rows("b0", []), ["b1"])
    # "1.10" < "1.9" as strings: the rule is plain string order, stated in the docs
    assert got["duplicate_of"].tolist() == ["1.10", None, None]
    assert got["duplicate_of_batch"].tolist() == ["b1", None, None]


def test_near_miss_one_pixel_differs_is_not_a_duplicate():
    a = np.zeros((20, 30), np.uint8)
    b = a.copy()
    b[3, 4] = 1
    cur = _rows("b1", [("1", "ra", pixel_hash(a)), ("2", "rb", pixel_hash(b))])
    assert assign_duplicates(cur, _rows("b0", []), ["b1"])["duplicate_of"].isna().all()


def test_decoded_hash_matches_across_encodings_and_raw_hash_links_groups():
    # "2" shares the decoded pixels of "1" (another transfer syntax); "3" shares the raw bytes
    # of "2": all three are one group.
    cur = _rows("b1", [("1", "r1", "p"), ("2", "r2", "p"), ("3", "r2", None)])
    got = assign_duplicates(cur, _rows("b0", []), ["b1"])
    assert got["duplicate_of"].tolist() == [None, "1", "1"]


def test_a_resent_image_points_at_the_earliest_batch_through_duckdb(tmp_path):
    wh = tmp_path / "warehouse"
    # ingestion order z_first, then a_second: names do not decide, the order does
    _store(wh, "z_first", _rows("z_first", [("9.9", "raw", "pix")]), [("9.9", "raw")])
    _store(wh, "a_second", _rows("a_second", [("1.1", "raw", "pix")]), [("1.1", "raw")])
    cur = _rows("c_third", [("5.5", "raw2", "pix"), ("6.6", "raw3", "other")])
    got = find_duplicates(cur, wh, ["z_first", "a_second", "c_third"])
    assert got["duplicate_of"].tolist() == ["9.9", None]
    assert got["duplicate_of_batch"].tolist() == ["z_first", None]
    # a_second's copy is a duplicate of z_first's, not the other way round
    again = find_duplicates(_rows("a_second", [("1.1", "raw", "pix")]), wh, ["z_first", "a_second"])
    assert again["duplicate_of"].tolist() == ["9.9"]


def test_a_later_batch_is_never_the_kept_copy_of_an_earlier_one(tmp_path):
    wh = tmp_path / "warehouse"
    _store(wh, "b2", _rows("b2", [("0.1", "raw", "pix")]), [("0.1", "raw")])
    got = find_duplicates(_rows("b1", [("5.5", "raw", "pix")]), wh, ["b1", "b2"])
    assert got["duplicate_of"].isna().all()  # b2 came later: b1's copy stays the kept one


def test_same_uid_resent_in_a_later_batch_is_a_duplicate_of_the_first_batch(tmp_path):
    wh = tmp_path / "warehouse"
    _store(wh, "b1", _rows("b1", [("7.7", "raw", "pix")]), [("7.7", "raw")])
    got = find_duplicates(_rows("b2", [("7.7", "raw", "pix")]), wh, ["b1", "b2"])
    assert got["duplicate_of"].tolist() == ["7.7"]
    assert got["duplicate_of_batch"].tolist() == ["b1"]


def test_catalog_hash_finds_earlier_batches_that_were_never_cleaned(tmp_path):
    wh = tmp_path / "warehouse"
    warehouse.write_batch(
        wh,
        "dicom_catalog",
        "b1",
        pd.DataFrame(
            [
                {"sop_instance_uid": "3.3", "pixel_sha256": "raw", "kind": "image", "status": "ok"},
                {"sop_instance_uid": "4.4", "pixel_sha256": "raw", "kind": "video", "status": "ok"},
            ]
        ),
    )
    found = earlier_copies(wh, ["b1"], ["raw"], ["pix"])
    assert found["sop_instance_uid"].tolist() == ["3.3"]  # clips are not still duplicates
    got = find_duplicates(_rows("b2", [("8.8", "raw", "pix")]), wh, ["b1", "b2"])
    assert got["duplicate_of"].tolist() == ["3.3"]


def test_no_earlier_batches_and_an_empty_warehouse(tmp_path):
    cur = _rows("b1", [("1", "r", "p")])
    assert find_duplicates(cur, tmp_path / "nothing", ["b1"])["duplicate_of"].isna().all()
    assert find_duplicates(cur.iloc[:0], tmp_path, ["b1"]).empty

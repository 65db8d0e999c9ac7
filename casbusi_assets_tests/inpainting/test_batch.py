"""A batch's masks and copies: only included images with calipers, originals untouched, reruns
replace exactly the batch's files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.inpainting.batch import (
    check_copies,
    inpaint_batch,
    preview_strip,
    read_rgb,
)
from casbusi_assets.inpainting.methods import OpenCVInpainter
from casbusi_assets.inpainting.pairs import truth_boxes
from casbusi_assets.pixels.decode import write_png
from casbusi_assets.storage.file_staging import batch_files_dir, staged_batch_dir
from casbusi_assets.storage.schemas import INPAINTED_IMAGES


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def batch(tmp_path, fresh_pairs):
    """Originals where image_table puts them, and a cleaned_images-like table."""
    files = tmp_path / "files"
    originals = batch_files_dir(files, "image_table", "batch_001")
    rows = []
    for i, pair in enumerate(fresh_pairs):
        path = originals / f"1.2.{i}.png"
        write_png(path, pair.image)
        rows.append(
            {
                "sop_instance_uid": f"1.2.{i}",
                "image_path": str(path),
                "include": i != 1,  # one excluded image with calipers: not inpainted
                "has_calipers": True,
                "caliper_boxes": json.dumps(truth_boxes(pair.marks)),
            }
        )
    plain = originals / "1.2.99.png"
    write_png(plain, fresh_pairs[0].clean)
    rows.append(
        {
            "sop_instance_uid": "1.2.99",
            "image_path": str(plain),
            "include": True,
            "has_calipers": False,
            "caliper_boxes": "[]",
        }
    )
    rows.append(
        {
            "sop_instance_uid": "1.2.98",
            "image_path": str(originals / "gone.png"),
            "include": True,
            "has_calipers": True,
            "caliper_boxes": "[[10, 10, 9, 9]]",
        }
    )
    rows.append(
        {
            "sop_instance_uid": "1.2.97",
            "image_path": str(plain),
            "include": True,
            "has_calipers": True,
            "caliper_boxes": "[]",
        }
    )
    return files, originals, pd.DataFrame(rows)


def _run(files: Path, cleaned: pd.DataFrame):
    with staged_batch_dir(files, "inpainted_images", "batch_001") as staged:
        return inpaint_batch("batch_001", cleaned, staged, OpenCVInpainter("ns"))


def test_one_row_per_included_image_with_calipers_and_reasons_for_the_rest(batch, fresh_pairs):
    files, _, cleaned = batch
    result = _run(files, cleaned)
    df = result.table.set_index("sop_instance_uid")
    assert list(result.table.columns) == INPAINTED_IMAGES.names
    expected = {f"1.2.{i}" for i in range(len(fresh_pairs)) if i != 1} | {"1.2.98", "1.2.97"}
    assert set(df.index) == expected  # not the excluded one, not the caliper-free one
    assert df.loc["1.2.98", "status"] == "failed" and "cannot read" in df.loc["1.2.98", "error"]
    assert df.loc["1.2.97", "status"] == "no_boxes" and pd.isna(df.loc["1.2.97", "mask_path"])
    ok = df[df["status"] == "ok"]
    assert len(ok) == len(fresh_pairs) - 1
    assert (ok["method"] == "ns").all() and (ok["inpaint_ms"] > 0).all()
    for sop, row in ok.iterrows():
        i = int(sop.split(".")[-1])
        assert row["n_calipers"] == len(fresh_pairs[i].marks)
        assert row["n_lines"] >= 1 and row["mask_pixels"] > 0
        assert Path(row["mask_path"]).is_file() and Path(row["inpainted_path"]).is_file()
        assert "inpainted_images/batch_001/" in row["inpainted_path"]


def test_outside_the_mask_the_copy_equals_the_original_pixel_for_pixel(batch):
    files, _, cleaned = batch
    table = _run(files, cleaned).table
    ok = table[table["status"] == "ok"]
    for row in ok.itertuples():
        original, copy = read_rgb(row.image_path), read_rgb(row.inpainted_path)
        mask = cv2.imread(row.mask_path, cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(copy[mask == 0], original[mask == 0])
        assert (copy[mask > 0] != original[mask > 0]).any()
    checked = check_copies(table)
    assert len(checked) == len(ok) and (checked["outside"] == 0).all()


def test_check_copies_catches_a_copy_changed_outside_its_mask(batch):
    files, _, cleaned = batch
    table = _run(files, cleaned).table
    row = table[table["status"] == "ok"].iloc[0]
    copy = read_rgb(row["inpainted_path"])
    copy[0:3, 0:3] = 255 - copy[0:3, 0:3]
    write_png(row["inpainted_path"], copy)
    checked = check_copies(table).set_index("sop_instance_uid")
    assert checked.loc[row["sop_instance_uid"], "outside"] == 9


def test_rerun_replaces_exactly_the_batch_files_and_never_touches_originals(batch):
    files, originals, cleaned = batch
    before = {p.name: _sha(p) for p in sorted(originals.iterdir())}
    first = _run(files, cleaned).table
    out_dir = batch_files_dir(files, "inpainted_images", "batch_001")
    first_files = {str(p) for p in out_dir.rglob("*.png")}
    assert first_files == set(first["mask_path"].dropna()) | set(first["inpainted_path"].dropna())
    # Second run: one image is no longer included; its mask and copy must go, no orphans.
    dropped = first[first["status"] == "ok"]["sop_instance_uid"].iloc[0]
    second_in = cleaned.assign(
        include=cleaned["include"] & (cleaned["sop_instance_uid"] != dropped)
    )
    second = _run(files, second_in).table
    second_files = {str(p) for p in out_dir.rglob("*.png")}
    assert second_files == set(second["mask_path"].dropna()) | set(
        second["inpainted_path"].dropna()
    )
    assert dropped not in set(second["sop_instance_uid"])
    assert not any(dropped in f for f in second_files)
    # Nothing left beside the batch folder (staging or trash), other batches' folders untouched.
    assert sorted(p.name for p in out_dir.parent.iterdir()) == ["batch_001"]
    after = {p.name: _sha(p) for p in sorted(originals.iterdir())}
    assert after == before
    # Same input, same output: a rerun of the same batch gives the same files and bytes.
    third = _run(files, second_in).table
    for a, b in zip(
        second["inpainted_path"].dropna(), third["inpainted_path"].dropna(), strict=True
    ):
        assert a == b
    assert {str(p) for p in out_dir.rglob("*.png")} == second_files


def test_a_failed_run_leaves_the_previous_files(batch):
    files, _, cleaned = batch
    _run(files, cleaned)
    out_dir = batch_files_dir(files, "inpainted_images", "batch_001")
    kept = {p: _sha(p) for p in out_dir.rglob("*.png")}

    class Broken:
        name = "broken"

        def inpaint(self, image, mask):
            raise RuntimeError("device lost")

    with pytest.raises(RuntimeError), staged_batch_dir(files, "inpainted_images", "batch_001") as s:
        inpaint_batch("batch_001", cleaned, s, Broken())
    assert {p: _sha(p) for p in out_dir.rglob("*.png")} == kept


def test_preview_strip_is_before_mask_after_per_image(fresh_pairs):
    samples = []
    for pair in fresh_pairs[:3]:
        mask = np.zeros(pair.image.shape[:2], np.uint8)
        mask[100:110, 200:230] = 255
        samples.append((pair.image, mask, pair.clean))
    strip = preview_strip(samples, tile=96)
    assert strip.shape == (3 * 96, 3 * 96, 3) and strip.dtype == np.uint8
    assert preview_strip([]) is None

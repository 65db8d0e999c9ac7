"""The ingest step as Dagster runs it: one step, three assets, each selectable on its own."""

from __future__ import annotations

import multiprocessing

import dagster as dg
import numpy as np
import pytest

from casbusi_assets.definitions import defs
from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets_tests.conftest import with_identifiers, write_zip
from casbusi_assets_tests.ingest.test_catalog import gray, make_dicom

TABLES = ("dicom_catalog", "image_table", "video_table")


@pytest.fixture
def zip_path(tmp_path):
    cine = make_dicom(np.stack([gray(seed=s) for s in range(3)]), frames=3)
    return write_zip(
        tmp_path / "b1.zip",
        {
            "p/still.dcm": with_identifiers("US1_UNCR.dcm", "00000001", "A1"),
            "p/cine.dcm": cine,
            "p/junk.txt": b"hello",
        },
    )


def _stored(home) -> set[str]:
    return {
        t
        for t in TABLES
        if (home.warehouse / t).exists() and any((home.warehouse / t).rglob("*.parquet"))
    }


def test_the_three_tables_are_one_step() -> None:
    for table in TABLES:
        node = defs.resolve_assets_def(table)
        assert node.keys == {dg.AssetKey(t) for t in TABLES}
        assert node.node_def.name == "dicom_catalog"  # the step keeps the catalog's old name
        assert node.can_subset


def test_selecting_the_catalog_alone_writes_no_pixels(home, zip_path) -> None:
    outcome = run_batch(zip_path, home, select=["dicom_catalog"], echo=lambda m: None)
    assert outcome.materialized == ["dicom_catalog"]
    assert _stored(home) == {"dicom_catalog"}
    assert not list(home.files.rglob("*.png"))
    cat = warehouse.read_batch(home.warehouse, "dicom_catalog", outcome.batch_id)
    assert sorted(cat["kind"].dropna()) == ["image", "video"]
    assert multiprocessing.active_children() == []  # the step's workers are gone


def test_selecting_one_table_makes_just_that_table(home, zip_path) -> None:
    outcome = run_batch(zip_path, home, select=["image_table"], echo=lambda m: None)
    assert outcome.materialized == ["image_table"]
    assert _stored(home) == {"image_table"}
    images = warehouse.read_batch(home.warehouse, "image_table", outcome.batch_id)
    assert images["status"].tolist() == ["ok"]
    assert not (home.files / "video_table").exists()


def test_all_three_in_one_run(home, zip_path) -> None:
    outcome = run_batch(zip_path, home, select=list(TABLES), echo=lambda m: None)
    assert outcome.materialized == sorted(TABLES)
    videos = warehouse.read_batch(home.warehouse, "video_table", outcome.batch_id)
    assert videos["n_frames"].tolist() == [3]
    assert multiprocessing.active_children() == []

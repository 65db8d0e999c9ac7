"""cleaned_images / cleaned_videos through the real graph on two generated batches, against truth.

The second batch re-sends a study of the first (the generator does this for every batch after
the first): its images must point at the first batch's copies, found through DuckDB.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from casbusi_assets.cleaning.rules import REASON_CODES
from casbusi_assets.runner import run_batch
from casbusi_assets.shared.parallel import default_workers
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.warehouse import query
from casbusi_assets.synthetic import generate_batches

UPSTREAM = [
    "dicom_catalog", "image_table", "video_table", "case_table", "case_study_table",
    "breast_table", "ocr_table",
]  # fmt: skip


@pytest.fixture(scope="module")
def two_batches(module_home, tmp_path_factory):
    files = generate_batches(tmp_path_factory.mktemp("gen"), batches=2, patients=3, seed=9191)
    for f in files:
        run_batch(
            f.zip_path,
            module_home,
            select=[*UPSTREAM, "cleaned_images", "cleaned_videos"],
            echo=lambda m: None,
        )
    truths = {f.batch_id: pd.read_parquet(f.truth_path) for f in files}
    return module_home, truths


def _read(home, table, batch):
    return warehouse.read_batch(home.warehouse, table, batch)


def test_one_row_per_still_and_clip_with_consistent_decisions(two_batches):
    home, truths = two_batches
    for batch in truths:
        images, cleaned = _read(home, "image_table", batch), _read(home, "cleaned_images", batch)
        assert sorted(cleaned["sop_instance_uid"]) == sorted(images["sop_instance_uid"])
        for reasons, include in zip(cleaned["exclusion_reasons"], cleaned["include"], strict=True):
            assert set(reasons) <= set(REASON_CODES)
            assert include == (len(reasons) == 0)
        assert set(cleaned["orientation_source"]) <= {"ocr", "model", "none"}
        assert set(cleaned["label_cat"]) <= {"doppler", "long", "trans", "other"}
        assert set(cleaned["crop_source"].dropna()) <= {"regions", "heuristic"}
        videos = _read(home, "cleaned_videos", batch)
        assert sorted(videos["sop_instance_uid"]) == sorted(
            _read(home, "video_table", batch)["sop_instance_uid"]
        )


def test_corrupt_and_dark_match_truth(two_batches):
    home, truths = two_batches
    for batch, truth in truths.items():
        cleaned = _read(home, "cleaned_images", batch).set_index("sop_instance_uid")
        t = truth[truth["member_kind"] == "image"].drop_duplicates("sop_instance_uid")
        t = t.set_index("sop_instance_uid").reindex(cleaned.index)
        assert (cleaned["is_corrupt"] == (t["capture"] == "green_corrupt")).all()
        dark = cleaned["exclusion_reasons"].map(lambda r: "dark" in r)
        assert (dark[t["capture"] == "dark"]).all()


def test_the_resent_study_points_at_the_first_batch(two_batches):
    home, truths = two_batches
    t = truths["batch_002"]
    resent = set(
        t.loc[(t["member_kind"] == "image") & t["resent_from_batch"].notna(), "sop_instance_uid"]
    )
    assert resent, "the generator re-sends a study from batch 2 on"
    cleaned = _read(home, "cleaned_images", "batch_002").set_index("sop_instance_uid")
    dup = cleaned[cleaned["duplicate_of"].notna()]
    assert set(dup.index) == resent  # all found, none false
    assert (dup["duplicate_of_batch"] == "batch_001").all()
    first = set(_read(home, "cleaned_images", "batch_001")["sop_instance_uid"])
    assert set(dup["duplicate_of"]) <= first
    assert all("duplicate" in r for r in dup["exclusion_reasons"])
    # and the first batch keeps its copies
    assert _read(home, "cleaned_images", "batch_001")["duplicate_of"].isna().all()


def test_sql_answers_why_an_image_is_excluded(two_batches):
    home, _ = two_batches
    df = query(
        home.catalog,
        home.warehouse,
        "SELECT r, count(*) AS n FROM (SELECT unnest(exclusion_reasons) AS r FROM cleaned_images) "
        "GROUP BY r",
    )
    assert set(df["r"]) <= set(REASON_CODES) and "duplicate" in set(df["r"])


def test_metadata_counts_every_reason_and_the_check_passes(two_batches):
    home, _ = two_batches
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("cleaned_images"))
        meta = event.asset_materialization.metadata
        counts = meta["excluded_by_reason"].value
        assert set(counts) == set(REASON_CODES)
        assert counts["duplicate"] >= 1
        sheets = [k for k in meta if k.startswith("sheet_")]
        assert "sheet_duplicate" in sheets
        assert sum(len(meta[k].value) for k in sheets) < 100_000
        # the CPU model runs where the pixels are: the pool workers, when there are several
        where = "in the pool workers" if default_workers() > 1 else "in the step process"
        note = meta["orientation_model"].value
        assert " on cpu, min confidence " in note and note.endswith(f", {where}")
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("cleaned_images"), "included_images_have_crop_inside")]
        )
        record = next(iter(check.values()))
        assert record.event.asset_check_evaluation.passed

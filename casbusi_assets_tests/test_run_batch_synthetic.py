"""End to end on a generated Mayo-style batch, checked against the generator's ground truth."""

from __future__ import annotations

import pandas as pd
import pytest

from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.synthetic import generate_batches


@pytest.fixture(scope="module")
def batch(module_home, tmp_path_factory):
    files = generate_batches(tmp_path_factory.mktemp("gen"), batches=1, patients=8, seed=4242)
    f = files[0]
    outcome = run_batch(f.zip_path, module_home, echo=lambda m: None)
    truth = pd.read_parquet(f.truth_path)
    return module_home, outcome, truth


def _read(home, table, batch_id="batch_001"):
    return warehouse.read_batch(home.warehouse, table, batch_id)


def test_catalog_has_every_member_with_the_expected_status_and_reason(batch):
    home, outcome, truth = batch
    assert outcome.batch_id == "batch_001"
    cat = _read(home, "dicom_catalog").set_index("member_path")
    t = truth.set_index("member_path")
    assert sorted(cat.index) == sorted(t.index)
    assert (cat["status"] == t["expected_status"].reindex(cat.index)).all()
    quarantined = t[t["expected_status"] == "quarantined"]
    assert set(quarantined["quarantine_code"]) >= {"not_dicom", "truncated"}
    # The member without PatientID is readable: ok, with the missing link named.
    unlinked = t[t["missing_links"].notna()]
    assert len(unlinked) >= 1 and (unlinked["expected_status"] == "ok").all()
    assert (cat.loc[unlinked.index, "missing_links"] == unlinked["missing_links"]).all()
    assert (cat.loc[unlinked.index, "status"] == "ok").all()
    assert cat["missing_links"].notna().sum() == len(unlinked)
    for path, row in quarantined.iterrows():
        assert cat.loc[path, "error_code"] == row["quarantine_code"], path
        assert cat.loc[path, "error"], path
    ok = t[t["expected_status"] == "ok"]
    for got, want in (
        ("kind", "member_kind"),
        ("sop_instance_uid", "sop_instance_uid"),
        ("patient_id", "patient_id"),
        ("accession_number", "accession_number"),
        ("transfer_syntax_uid", "transfer_syntax_uid"),
    ):
        mismatch = cat.loc[ok.index, got].fillna("-") != ok[want].fillna("-")
        assert not mismatch.any(), (
            got,
            cat.loc[ok.index, got][mismatch].head(3).tolist(),
            ok[want][mismatch].head(3).tolist(),
        )


def test_images_match_truth_geometry_doppler_and_regions(batch):
    home, _, truth = batch
    images = _read(home, "image_table").set_index("sop_instance_uid")
    stills = truth[(truth["expected_status"] == "ok") & (truth["member_kind"] == "image")]
    expected = stills.drop_duplicates("sop_instance_uid").set_index("sop_instance_uid")
    assert sorted(images.index) == sorted(expected.index)
    assert (images["status"] == "ok").all()
    for col in (
        "rows",
        "columns",
        "region_count",
        "region_x0",
        "region_y0",
        "region_x1",
        "region_y1",
    ):
        assert (images[col].astype(int) == expected.loc[images.index, col].astype(int)).all(), col
    assert (images["is_doppler"] == expected.loc[images.index, "is_doppler"]).all()
    kinds = images["doppler_kind"].fillna("-") == expected.loc[images.index, "doppler_kind"].fillna(
        "-"
    )
    assert kinds.all(), images.loc[~kinds, ["member_path", "doppler_kind"]]
    # The unlinked still is exported like any other, its missing link carried along.
    unlinked = expected[expected["missing_links"].notna()]
    assert (
        len(unlinked) >= 1 and (images.loc[unlinked.index, "missing_links"] == "patient_id").all()
    )
    assert images["is_doppler"].any() and not images["is_doppler"].all()
    # Doppler keeps colour; everything else, yellow overlays included, is stored grey.
    assert (images.loc[images["is_doppler"], "stored_as"] == "rgb").all()
    assert (images.loc[~images["is_doppler"], "stored_as"] == "gray").all()
    dup = stills[stills["exact_duplicate_of"].notna()]
    assert len(dup) >= 1 and (images.loc[dup["sop_instance_uid"], "n_members"] == 2).all()


def test_videos_match_truth_frame_counts(batch):
    home, _, truth = batch
    videos = _read(home, "video_table").set_index("sop_instance_uid")
    clips = truth[(truth["expected_status"] == "ok") & (truth["member_kind"] == "video")]
    clips = clips.drop_duplicates("sop_instance_uid").set_index("sop_instance_uid")
    assert sorted(videos.index) == sorted(clips.index) and len(videos) >= 1
    assert (videos["n_frames"] == clips.loc[videos.index, "number_of_frames"]).all()
    expected_saved = [len(range(0, int(n), 4)) for n in clips.loc[videos.index, "number_of_frames"]]
    assert videos["saved_frames"].tolist() == expected_saved


def test_case_tables_cover_every_accession_of_the_csv(batch):
    home, _, truth = batch
    cases = _read(home, "case_table")
    studies = _read(home, "case_study_table")
    breasts = _read(home, "breast_table")
    pairs = set(zip(cases["patient_id"], cases["accession_number"], strict=True))
    assert set(zip(studies["patient_id"], studies["accession_number"], strict=True)) == pairs
    assert len(breasts) == 2 * len(pairs)
    # Image counts per accession agree with the DICOMs the generator wrote for it.
    ok_images = truth[(truth["expected_status"] == "ok") & (truth["member_kind"] == "image")]
    # An image without PatientID cannot be linked to a (patient, accession): not counted.
    ok_images = ok_images[ok_images["missing_links"].isna()]
    per_acc = ok_images.drop_duplicates("sop_instance_uid").groupby("accession_number").size()
    got = studies.set_index("accession_number")["image_count"]
    for acc, n in per_acc.items():
        if acc in got.index:
            assert got[acc] == n, acc
    # The male-patient filter case carries PatientSex M into the study table.
    male = truth[truth["filter_case"] == "male"]["accession_number"].dropna().unique()
    if len(male):
        assert set(studies.set_index("accession_number").loc[list(male), "patient_sex"]) == {"M"}


def test_ocr_reads_the_burned_in_laterality_and_orientation(batch):
    home, _, truth = batch
    ocr = _read(home, "ocr_table")
    images = _read(home, "image_table")
    videos = _read(home, "video_table")
    assert len(ocr) == len(images) + len(videos)
    assert set(ocr["source"]) == {"image", "video"}
    assert (ocr["status"] == "ok").all()
    t = truth.drop_duplicates("sop_instance_uid").set_index("sop_instance_uid")
    merged = ocr.join(
        t[["laterality", "orientation", "area"]], on="sop_instance_uid", rsuffix="_truth"
    )
    for field in ("laterality", "orientation", "area"):
        accuracy = (merged[field] == merged[f"{field}_truth"]).mean()
        assert accuracy >= 0.9, (field, accuracy)

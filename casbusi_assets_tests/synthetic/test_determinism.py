"""Same arguments, same bytes; different seeds, different batches."""

from __future__ import annotations

import pandas as pd

from casbusi_assets.synthetic import GeneratorConfig, generate_batch, generate_batches

# Small studies keep these tests quick; edge and filter cases stay on (they are part of the bytes).
SMALL = GeneratorConfig(
    stills_per_study=(1, 2),
    stills_per_filter_study=(1, 1),
    cine_frames=(10, 12),
    ensure_coverage=False,
)


def _bytes(files):
    return [(f.zip_path.read_bytes(), f.truth_path.read_bytes()) for f in files]


def test_same_arguments_give_byte_identical_zips_and_truth(tmp_path):
    a = generate_batches(tmp_path / "a", batches=2, patients=2, seed=11, config=SMALL)
    b = generate_batches(tmp_path / "b", batches=2, patients=2, seed=11, config=SMALL)
    assert _bytes(a) == _bytes(b)
    # The worker count is not part of the output either.
    c = generate_batch(tmp_path / "c", 1, patients=2, seed=11, config=SMALL, workers=1)
    assert c.zip_path.read_bytes() == a[1].zip_path.read_bytes()
    assert c.truth_path.read_bytes() == a[1].truth_path.read_bytes()


def test_different_seeds_give_different_batches(tmp_path):
    a = generate_batch(tmp_path / "a", 0, patients=2, seed=1, config=SMALL)
    b = generate_batch(tmp_path / "b", 0, patients=2, seed=2, config=SMALL)
    assert a.zip_path.read_bytes() != b.zip_path.read_bytes()
    ta, tb = pd.read_parquet(a.truth_path), pd.read_parquet(b.truth_path)
    assert not set(ta["sop_instance_uid"].dropna()) & set(tb["sop_instance_uid"].dropna())
    assert not set(ta["patient_id"].dropna()) & set(tb["patient_id"].dropna())
    assert set(ta["annotation_text"].dropna()) != set(tb["annotation_text"].dropna())


def test_edge_and_filter_cases_can_be_switched_off(tmp_path):
    cfg = GeneratorConfig(
        stills_per_study=(1, 2), edge_cases=False, filter_cases=False, ensure_coverage=False
    )
    files = generate_batches(tmp_path, batches=2, patients=2, seed=3, config=cfg)
    for f in files:
        t = pd.read_parquet(f.truth_path)
        assert t["filter_case"].isna().all()
        assert t["resent_from_batch"].isna().all() and t["exact_duplicate_of"].isna().all()
        # Only the case CSV is a non-DICOM member, and it is expected, not quarantined.
        assert (t["member_kind"] != "non_dicom").all()
        assert t.loc[t["member_role"] == "case_csv", "member_kind"].tolist() == ["case_csv"]
        assert t["quarantine_code"].isna().all()
        assert (t.loc[t["member_role"] == "dicom", "expected_status"] == "ok").all()

"""Patient splits: a pure function of the patient in hash mode, ledger-stable when stratified."""

from __future__ import annotations

import pandas as pd
import pytest

from casbusi_assets.export.config import ExportConfig, ExportConfigError
from casbusi_assets.export.splits import (
    append_ledger,
    assign_splits,
    hash_split,
    ledger_name,
    patient_classes,
    patient_unit,
    read_ledger,
)


def _patients(n: int, start: int = 0, malignant_every: int = 4) -> pd.DataFrame:
    ids = [f"P{i:06d}" for i in range(start, start + n)]
    cls = ["malignant" if i % malignant_every == 0 else "benign" for i in range(start, start + n)]
    return pd.DataFrame({"patient_id": ids, "patient_class": cls})


def test_hash_split_is_a_function_of_patient_and_salt_only():
    assert patient_unit("P1", "s") == patient_unit("P1", "s")
    assert patient_unit("P1", "s") != patient_unit("P1", "t")
    assert 0 <= patient_unit("P1", "s") < 1
    assert [hash_split(u, 0.2, 0.1) for u in (0.05, 0.1, 0.29, 0.31, 0.99)] == [
        "test", "val", "val", "train", "train"
    ]  # fmt: skip
    config = ExportConfig(val_fraction=0.2, test_fraction=0.1)
    alone, _ = assign_splits(_patients(1, 7), config)
    among, _ = assign_splits(_patients(500), config)
    assert among.set_index("patient_id").loc["P000007", "split"] == alone["split"].iloc[0]


def test_hash_fractions_hold_on_many_patients():
    config = ExportConfig(val_fraction=0.15, test_fraction=0.15)
    out, new = assign_splits(_patients(4000), config)
    shares = out["split"].value_counts(normalize=True)
    assert abs(shares["val"] - 0.15) < 0.02 and abs(shares["test"] - 0.15) < 0.02
    assert new.empty and set(out["split_source"]) == {"hash"}
    assert dict(zip(out["split"], out["valid"], strict=True)) == {"train": 0, "val": 1, "test": 2}


def test_a_new_salt_is_a_new_split():
    a, _ = assign_splits(_patients(300), ExportConfig(salt="a"))
    b, _ = assign_splits(_patients(300), ExportConfig(salt="b"))
    assert (a["split"] != b["split"]).mean() > 0.2


def test_stratified_balances_each_class_within_one_patient():
    config = ExportConfig(split_mode="stratified", val_fraction=0.2, test_fraction=0.2)
    patients = _patients(103, malignant_every=5)
    out, new = assign_splits(patients, config)
    merged = out.merge(patients, on="patient_id")
    for cls, group in merged.groupby("patient_class"):
        n = len(group)
        counts = group["split"].value_counts()
        for split, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
            assert abs(counts.get(split, 0) - frac * n) <= 1, (cls, split)
    assert len(new) == 103


def test_stratified_needs_its_ledger_to_stay_stable(tmp_path):
    config = ExportConfig(split_mode="stratified", val_fraction=0.2, test_fraction=0.2)
    first, new = assign_splits(_patients(40), config)
    path = tmp_path / ledger_name(config)
    append_ledger(path, new)
    more = _patients(80)
    # The class of a recorded patient changes later (a malignant biopsy in a new batch): it stays.
    more.loc[more["patient_id"] == "P000001", "patient_class"] = "malignant"
    with_ledger, new2 = assign_splits(more, config, read_ledger(path))
    kept = with_ledger.set_index("patient_id").loc[first["patient_id"], "split"]
    assert (kept.values == first["split"].values).all()
    assert set(new2["patient_id"]) == {f"P{i:06d}" for i in range(40, 80)}
    # Without the ledger a stratified re-assignment moves some earlier patients: that is why the
    # ledger exists (hash mode needs none).
    without, _ = assign_splits(more, config)
    moved = without.set_index("patient_id").loc[first["patient_id"], "split"]
    assert (moved.values != first["split"].values).any()
    # The ledger is append-only: recorded rows are never rewritten.
    append_ledger(path, new2)
    append_ledger(path, new.assign(split="test"))
    ledger = read_ledger(path).set_index("patient_id")
    assert len(ledger) == 80
    assert (ledger.loc[first["patient_id"], "split"].values == first["split"].values).all()


def test_patient_class_is_malignant_over_benign_over_unknown():
    bags = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "c"],
            "has_malignant": [False, True, False, False],
            "has_benign": [True, False, True, False],
        }
    )
    out = patient_classes(bags).set_index("patient_id")["patient_class"].to_dict()
    assert out == {"a": "malignant", "b": "benign", "c": "unknown"}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
        ({"split_mode": "random"}, "split_mode"),
        ({"salt": ""}, "salt"),
        ({"min_aspect": 3.0, "max_aspect": 1.0}, "min_aspect"),
    ],
)
def test_bad_settings_name_the_setting(kwargs, field):
    with pytest.raises(ExportConfigError, match=field):
        ExportConfig(**kwargs).validate()

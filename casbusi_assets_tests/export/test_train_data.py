"""TrainData.csv / InstanceData.csv: bags per (accession, breast), lists as Python literals."""

from __future__ import annotations

import ast

import pandas as pd

from casbusi_assets.export.train_data import (
    TRAIN_DATA_COLUMNS,
    build_bags,
    build_instance_data,
    export_stem,
    write_instance_data,
    write_train_data,
)


def _images() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p1", "p2"],
            "accession_number": ["a1", "a1", "a1", "a2"],
            "breast": ["LEFT", "LEFT", "RIGHT", "LEFT"],
            "export_name": ["z.png", "b.png", "c.png", "d.png"],
            "has_malignant": [True, True, False, pd.NA],
            "has_benign": [False, False, True, True],
            "valid": [0, 0, 0, 1],
            "has_instance_label": [True, False, pd.NA, True],
            "reject_image": [False, None, None, True],
            "malignant_lesion_present": [True, None, None, False],
        }
    )


def test_bags_are_per_accession_and_breast_in_a_stable_order(tmp_path):
    videos = pd.DataFrame(
        {
            "patient_id": ["p1", "p1"],
            "accession_number": ["a1", "a1"],
            "breast": ["LEFT", "LEFT"],
            "clip_name": ["v2", "v1"],
        }
    )
    bags = build_bags(_images(), videos)
    assert list(bags.columns[:-1]) == TRAIN_DATA_COLUMNS
    assert list(bags["ID"]) == [0, 1, 2]
    assert list(zip(bags["Accession_Number"], bags["Breast"], strict=True)) == [
        ("a1", "LEFT"), ("a1", "RIGHT"), ("a2", "LEFT")
    ]  # fmt: skip
    path = tmp_path / "TrainData.csv"
    write_train_data(bags, path)
    read = pd.read_csv(path)
    assert list(read.columns) == TRAIN_DATA_COLUMNS
    assert ast.literal_eval(read.loc[0, "Images"]) == ["b.png", "z.png"]
    assert ast.literal_eval(read.loc[0, "VideoPaths"]) == ["v1", "v2"]
    assert ast.literal_eval(read.loc[1, "VideoPaths"]) == []
    assert [int(v) for v in read["Has_Malignant"]] == [1, 0, 0]
    assert [int(v) for v in read["Has_Benign"]] == [0, 1, 1]
    assert list(read["Valid"]) == [0, 0, 1]
    # Shuffled input, same file.
    write_train_data(build_bags(_images().sample(frac=1, random_state=3), videos), tmp_path / "b")
    assert path.read_bytes() == (tmp_path / "b").read_bytes()


def test_instance_data_lists_labelled_images_with_the_original_column_names(tmp_path):
    inst = build_instance_data(_images())
    write_instance_data(inst, tmp_path / "InstanceData.csv")
    read = pd.read_csv(tmp_path / "InstanceData.csv")
    assert list(read.columns) == [
        "Accession_Number", "ImageName", "Reject Image", "Only Normal Tissue",
        "Cyst Lesion Present", "Benign Lesion Present", "Malignant Lesion Present",
    ]  # fmt: skip
    assert list(read["ImageName"]) == ["z.png", "d.png"]
    assert list(read["Reject Image"]) == [False, True]
    assert list(read["Malignant Lesion Present"]) == [True, False]
    assert not read["Only Normal Tissue"].any()  # absent from the archive: False


def test_export_names_are_stable_unique_and_safe():
    a = export_stem("00481080", "27319490", "left", "2.25.1")
    assert a == export_stem("00481080", "27319490", "left", "2.25.1")
    assert a != export_stem("00481080", "27319490", "left", "2.25.2")
    assert a.startswith("00481080_27319490_left_")
    assert "/" not in export_stem("../x", "a b", "left", "u")

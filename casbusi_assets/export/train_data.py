"""TrainData.csv and InstanceData.csv in the format CADBUSI-Training reads.

CADBUSI-Training (`data/format_data.py`) reads `TrainData.csv` with pandas, treats each row as a
multiple-instance *bag*, parses `Images` with `ast.literal_eval`, joins each name to
`<export>/images/`, takes labels with `int(row[col])` (`Has_Malignant`, `Has_Benign`), and splits
on `Valid` (0 train, 1 val; this export also writes 2 for test, as the original's test rows did).
`InstanceData.csv` is optional; its `ImageName` matches names in `Images`, `Reject Image` drops an
image from its bag and the other boolean columns are instance labels.

A bag here is one breast of one study (version C of the original): (accession, breast), with the
clips of that breast in `VideoPaths` (folder names under `<export>/videos/`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from casbusi_assets.export.filters import truthy

TRAIN_DATA_COLUMNS = [
    "ID",
    "Accession_Number",
    "Breast",
    "Images",
    "Has_Malignant",
    "Has_Benign",
    "Valid",
    "VideoPaths",
]

# Instance label columns as the original and CADBUSI-Training name them, with the archive's
# flattened boolean column for each.
INSTANCE_COLUMNS = {
    "Reject Image": "reject_image",
    "Only Normal Tissue": "only_normal_tissue",
    "Cyst Lesion Present": "cyst_lesion_present",
    "Benign Lesion Present": "benign_lesion_present",
    "Malignant Lesion Present": "malignant_lesion_present",
}
INSTANCE_DATA_COLUMNS = ["Accession_Number", "ImageName", *INSTANCE_COLUMNS]

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def _safe(part: object) -> str:
    text = _UNSAFE.sub("-", str(part)).strip("-.")
    return text or "x"


def export_stem(patient_id: str, accession: str, laterality: str, sop_instance_uid: str) -> str:
    """`{patient}_{accession}_{side}_{uid12}`: readable like the original's names, but unique and
    stable (the suffix is a hash of the SOPInstanceUID, not a running counter that collides
    across batches)."""
    uid = hashlib.sha256(str(sop_instance_uid).encode()).hexdigest()[:12]
    return f"{_safe(patient_id)}_{_safe(accession)}_{_safe(laterality)}_{uid}"


def build_bags(images: pd.DataFrame, videos: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (patient, accession, breast) that has at least one exported image.

    `images`: patient_id, accession_number, breast, export_name, has_malignant, has_benign, valid.
    `videos`: patient_id, accession_number, breast, clip_name. Returns the TrainData columns plus
    `patient_id`, sorted by accession, breast and patient, with `ID` 0..n-1 in that order (lists
    sorted by name), so the same exported files always give the same file.
    """
    key = ["accession_number", "breast", "patient_id"]
    if images.empty:
        return pd.DataFrame(columns=[*TRAIN_DATA_COLUMNS, "patient_id"])
    clips: dict[tuple, list[str]] = {}
    if videos is not None and not videos.empty:
        for k, group in videos.groupby(key, sort=True):
            clips[k] = sorted(group["clip_name"].astype(str))
    rows = []
    for k, group in images.groupby(key, sort=True):
        accession, breast, patient = k
        rows.append(
            {
                "Accession_Number": str(accession),
                "Breast": str(breast),
                "Images": repr(sorted(group["export_name"].astype(str))),
                "Has_Malignant": any(map(truthy, group["has_malignant"])),
                "Has_Benign": any(map(truthy, group["has_benign"])),
                "Valid": int(group["valid"].iloc[0]),
                "VideoPaths": repr(clips.get(k, [])),
                "patient_id": str(patient),
            }
        )
    bags = pd.DataFrame(rows)
    bags.insert(0, "ID", range(len(bags)))
    return bags[[*TRAIN_DATA_COLUMNS, "patient_id"]]


def write_train_data(bags: pd.DataFrame, path: Path) -> None:
    bags[TRAIN_DATA_COLUMNS].to_csv(path, index=False, lineterminator="\n")


def build_instance_data(images: pd.DataFrame) -> pd.DataFrame:
    """InstanceData rows for exported images that carry an instance label.

    `images`: accession_number, export_name, has_instance_label and the archive's boolean
    columns (INSTANCE_COLUMNS values; a missing one is False)."""
    if images.empty or "has_instance_label" not in images:
        return pd.DataFrame(columns=INSTANCE_DATA_COLUMNS)
    labelled = images[images["has_instance_label"].astype(object).map(truthy).astype(bool)]
    out = pd.DataFrame(
        {
            "Accession_Number": labelled["accession_number"].astype(str).values,
            "ImageName": labelled["export_name"].astype(str).values,
        }
    )
    for title, column in INSTANCE_COLUMNS.items():
        values = labelled[column] if column in labelled else pd.Series(False, labelled.index)
        out[title] = values.astype(object).map(truthy).values
    return out.sort_values(["Accession_Number", "ImageName"], kind="stable").reset_index(drop=True)


def write_instance_data(instances: pd.DataFrame, path: Path) -> None:
    instances[INSTANCE_DATA_COLUMNS].to_csv(path, index=False, lineterminator="\n")

"""Patient-level train / val / test splits that never move a patient once assigned.

**Hash mode (default).** A patient's split is a pure function of its ID and the configuration:
`u = SHA-256(salt, patient_id)` read as a number in [0, 1); `u < test_fraction` is test,
`u < test_fraction + val_fraction` is val, the rest train. No other patient, batch or export
enters the computation, so adding batches never moves anyone, and every patient's images land in
one split by construction. Fractions hold in expectation (binomial spread on small sets).

**Stratified mode (optional).** Balances malignant / benign patients across the splits while
keeping the stability property, through an append-only *ledger* of earlier assignments (one
file per split setting, under `<home>/exports/split_ledgers/`):

1. a patient already in the ledger keeps its recorded split, whatever happens later (a new batch
   that changes the patient's class does not move it either);
2. new patients are taken in order of their hash `u` (deterministic, independent of batch order
   within one export) and each goes to the split of its class that is furthest below its target
   count (`fraction x class size`), ties going to the split hash mode would choose;
3. the new assignments are appended to the ledger when the export is committed.

So two exports of the same data agree (the second finds every patient in the ledger), and per
class each split is within one patient of its target among the patients assigned together.
Deleting the ledger gives up stratified stability (hash mode needs no state at all).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from casbusi_assets.export.config import ExportConfig

SPLITS = ("train", "val", "test")
# CADBUSI-Training's `Valid` column: 0 train, 1 val; the original used 2 for its test rows.
VALID_CODES = {"train": 0, "val": 1, "test": 2}
PATIENT_CLASSES = ("malignant", "benign", "unknown")

LEDGER_COLUMNS = ["patient_id", "split", "patient_class", "split_u"]


def patient_unit(patient_id: str, salt: str) -> float:
    """The patient's position in [0, 1): the first 8 bytes of SHA-256(salt, NUL, patient_id)."""
    digest = hashlib.sha256(f"{salt}\x00{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(u: float, val_fraction: float, test_fraction: float) -> str:
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def ledger_name(config: ExportConfig) -> str:
    """File name of the stratified ledger for these split settings (another salt or fraction is
    another ledger, so changing a setting never mixes two assignment histories)."""
    key = json.dumps(config.split_settings(), sort_keys=True)
    return f"stratified-{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"


def patient_classes(bags: pd.DataFrame) -> pd.DataFrame:
    """One class per patient from its bags: malignant if any bag is, else benign if any is,
    else unknown. `bags` has patient_id, has_malignant, has_benign."""
    if bags.empty:
        return pd.DataFrame({"patient_id": pd.Series(dtype=str), "patient_class": []})
    grouped = bags.groupby("patient_id", sort=True).agg(
        m=("has_malignant", "any"), b=("has_benign", "any")
    )
    cls = grouped.apply(
        lambda r: "malignant" if r["m"] else ("benign" if r["b"] else "unknown"), axis=1
    )
    return pd.DataFrame({"patient_id": grouped.index.astype(str), "patient_class": cls.values})


def assign_splits(
    patients: pd.DataFrame, config: ExportConfig, ledger: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split every patient of `patients` (patient_id, patient_class).

    Returns (assignments, new_ledger_rows): assignments has patient_id, split, valid, split_u,
    split_source ('hash' | 'ledger' | 'stratified'), sorted by patient_id; new_ledger_rows are the
    stratified assignments made now (empty in hash mode).
    """
    ids = sorted(set(patients["patient_id"].astype(str)))
    labels = (
        patients["patient_class"]
        if "patient_class" in patients
        else pd.Series("unknown", index=patients.index)
    )
    classes = dict(zip(patients["patient_id"].astype(str), labels, strict=True))
    units = {p: patient_unit(p, config.salt) for p in ids}
    rows: dict[str, tuple[str, str]] = {}
    new_rows: list[dict[str, object]] = []
    if config.split_mode == "hash":
        for p in ids:
            rows[p] = (hash_split(units[p], config.val_fraction, config.test_fraction), "hash")
    else:
        fractions = {
            "train": 1.0 - config.val_fraction - config.test_fraction,
            "val": config.val_fraction,
            "test": config.test_fraction,
        }
        known = ledger if ledger is not None else pd.DataFrame(columns=LEDGER_COLUMNS)
        recorded = dict(zip(known["patient_id"].astype(str), known["split"], strict=True))
        tally: dict[str, dict[str, int]] = {c: dict.fromkeys(SPLITS, 0) for c in PATIENT_CLASSES}
        for cls, split in zip(known["patient_class"], known["split"], strict=True):
            tally.setdefault(str(cls), dict.fromkeys(SPLITS, 0))[str(split)] += 1
        for p in ids:
            if p in recorded:
                rows[p] = (str(recorded[p]), "ledger")
        for p in sorted((p for p in ids if p not in recorded), key=lambda q: (units[q], q)):
            cls = str(classes.get(p) or "unknown")
            counts = tally.setdefault(cls, dict.fromkeys(SPLITS, 0))
            total = sum(counts.values()) + 1
            preferred = hash_split(units[p], config.val_fraction, config.test_fraction)

            def deficit(split: str, counts=counts, total=total, preferred=preferred) -> tuple:
                return (fractions[split] * total - counts[split], split == preferred)

            chosen = max(SPLITS, key=deficit)
            counts[chosen] += 1
            rows[p] = (chosen, "stratified")
            new_rows.append(
                {"patient_id": p, "split": chosen, "patient_class": cls, "split_u": units[p]}
            )
    out = pd.DataFrame(
        {
            "patient_id": ids,
            "split": [rows[p][0] for p in ids],
            "split_u": [units[p] for p in ids],
            "split_source": [rows[p][1] for p in ids],
        }
    )
    out["valid"] = out["split"].map(VALID_CODES).astype("int64")
    return out, pd.DataFrame(new_rows, columns=LEDGER_COLUMNS)


def read_ledger(path: Path) -> pd.DataFrame:
    """The stratified assignments recorded so far (empty when there is no ledger yet)."""
    if not path.is_file():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    return pq.read_table(path).to_pandas()[LEDGER_COLUMNS]


def append_ledger(path: Path, new_rows: pd.DataFrame) -> None:
    """Add new assignments to the ledger (atomically); recorded patients are never rewritten."""
    if new_rows.empty:
        return
    old = read_ledger(path)
    fresh = new_rows[~new_rows["patient_id"].isin(set(old["patient_id"]))]
    if fresh.empty:
        return
    merged = (fresh if old.empty else pd.concat([old, fresh], ignore_index=True)).sort_values(
        "patient_id"
    )
    table = pa.Table.from_pandas(merged[LEDGER_COLUMNS], preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

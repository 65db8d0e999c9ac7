"""The labels archive: every retrieval of labels a new version, never overwritten.

The asset is partitioned by retrieval, not by batch: one export covers every batch the project
holds, and a version must stay exactly what was retrieved then. On disk the rows sit where every
table's rows sit, `<home>/warehouse/labels_archive/batch_id=<batch>/data.parquet` (the batch of
the labelled image; `_unmatched` for rows no image matches), each file holding every version of
its images' labels; the masks of a version are under `<home>/files/labels_archive/<version>/`,
projected back to the original image geometry. `latest_labels` picks, per image, the rows of the
newest version that holds it.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casbusi_assets.labelling.export_parsing import FLAG_COLUMNS, LineError, ParsedLabel
from casbusi_assets.labelling.masks import (
    MaskResolver,
    MaskUnavailable,
    project_to_original,
    write_mask_png,
)
from casbusi_assets.storage.file_staging import StagedBatchDir
from casbusi_assets.storage.schemas import TABLE_SCHEMAS
from casbusi_assets.storage.warehouse import (
    PARQUET_NAME,
    delete_batch,
    ensure_views,
    lock_path,
    read_all_batches,
    read_batch,
    write_batch,
)

TABLE = "labels_archive"
ARCHIVE_COLUMNS = TABLE_SCHEMAS[TABLE].names
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class ArchiveBuild:
    rows: pd.DataFrame
    line_errors: list[LineError] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)


def crop_index(crops: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Global key (case-folded, as Labelbox compares keys) → the crop it was labelled on. A key
    sent from two batches keeps the later batch's row (the last upsert wins upstream too)."""
    if crops.empty:
        return {}
    usable = crops[crops["crop_path"].notna()].sort_values(["batch_id", "sop_instance_uid"])
    return {str(r["global_key"]).casefold(): r for r in usable.to_dict("records")}


def _shift(points: Any, dx: int, dy: int) -> Any:
    if isinstance(points, dict) and "x" in points and "y" in points:
        return {**points, "x": points["x"] + dx, "y": points["y"] + dy}
    if isinstance(points, list):
        return [_shift(p, dx, dy) for p in points]
    return points


def project_object(obj: dict[str, Any], dx: int, dy: int) -> dict[str, Any]:
    """A box / polygon / line / point drawn on the crop, in original-image pixels."""
    out = dict(obj)
    box = obj.get("bounding_box")
    if isinstance(box, dict):
        out["bounding_box"] = {**box, "top": box["top"] + dy, "left": box["left"] + dx}
    for key in ("polygon", "line", "point"):
        if key in obj:
            out[key] = _shift(obj[key], dx, dy)
    return out


def _empty_flags() -> dict[str, bool]:
    return dict.fromkeys(FLAG_COLUMNS, False)


def build_archive(
    version: str,
    retrieved_at: datetime,
    labels: Sequence[ParsedLabel],
    line_errors: Sequence[LineError],
    crops: pd.DataFrame,
    resolver: MaskResolver,
    masks_out: StagedBatchDir,
) -> ArchiveBuild:
    """Archive rows for one retrieval; mask PNGs (original geometry) written into `masks_out`."""
    index = crop_index(crops)
    by_file = {Path(str(r["crop_path"])).name: r for r in index.values()}
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    for label in labels:
        crop = index.get(str(label.global_key or "").casefold())
        if crop is None and not label.global_key and label.external_id:
            crop = by_file.get(str(label.external_id))  # rows exported without a global key
        row: dict[str, Any] = {
            "archive_version": version,
            "retrieved_at": retrieved_at,
            "source_line": label.line,
            "status": "ok" if label.label_id else "unlabeled",
            "error": None,
            "global_key": label.global_key,
            "data_row_id": label.data_row_id,
            "project_id": label.project_id,
            "label_id": label.label_id,
            "labeler": label.labeler,
            "created_at": label.created_at,
            "updated_at": label.updated_at,
            "workflow_status": label.workflow_status,
            "classifications": json.dumps(label.classifications, sort_keys=True),
            **(label.flags or _empty_flags()),
        }
        if crop is None:
            unknown.append(str(label.global_key or label.external_id or label.data_row_id))
            row.update(
                status="unknown_global_key",
                error=f"global key {label.global_key!r} is not in labelbox_crops "
                "(not sent from this home, or its batch was deleted)",
            )
        else:
            row.update(
                batch_id=crop["batch_id"],
                sop_instance_uid=crop["sop_instance_uid"],
                global_key=crop["global_key"],
                patient_id=crop["patient_id"],
                accession_number=crop["accession_number"],
            )
        dx = int(crop["crop_x"]) if crop is not None else 0
        dy = int(crop["crop_y"]) if crop is not None else 0
        row["objects"] = json.dumps(
            [project_object(o, dx, dy) if crop is not None else o for o in label.objects],
            sort_keys=True,
        )
        row.update(_masks(label, crop, resolver, masks_out))
        rows.append(row)
    for err in line_errors:
        rows.append(
            {
                "archive_version": version,
                "retrieved_at": retrieved_at,
                "source_line": err.line,
                "status": "malformed",
                "error": str(err),
                "mask_status": "none",
                **_empty_flags(),
            }
        )
    df = pd.DataFrame(rows, columns=ARCHIVE_COLUMNS)
    if len(df):
        df = _discard_exams(df, crops, version, retrieved_at)
    return ArchiveBuild(df[ARCHIVE_COLUMNS], list(line_errors), sorted(set(unknown)))


def _masks(
    label: ParsedLabel,
    crop: dict[str, Any] | None,
    resolver: MaskResolver,
    masks_out: StagedBatchDir,
) -> dict[str, Any]:
    if not label.masks:
        return {"mask_status": "none", "mask_objects": "[]"}
    objects, problems = [], []
    union = None
    for ref in label.masks:
        entry = {
            "feature_id": ref.feature_id,
            "name": ref.name,
            "kind": ref.kind,
            "id": ref.mask_id,
        }
        try:
            if crop is None:
                raise MaskUnavailable("no crop geometry for this data row (unknown global key)")
            mask = resolver.resolve(ref)
            expected = (int(crop["crop_h"]), int(crop["crop_w"]))
            if mask.shape != expected:
                raise MaskUnavailable(
                    f"mask is {mask.shape[1]}x{mask.shape[0]} but the crop is "
                    f"{expected[1]}x{expected[0]}"
                )
            union = mask if union is None else (union | mask)
            entry.update(status="ok", pixels=int(mask.sum()))
        except MaskUnavailable as exc:
            entry.update(status="missing", reason=str(exc))
            problems.append(f"{ref.name or ref.feature_id}: {exc}")
        objects.append(entry)
    out: dict[str, Any] = {"mask_objects": json.dumps(objects, sort_keys=True)}
    if union is not None and crop is not None:
        full = project_to_original(
            union,
            int(crop["crop_x"]),
            int(crop["crop_y"]),
            int(crop["image_width"]),
            int(crop["image_height"]),
        )
        name = f"{_SAFE.sub('_', str(crop['sop_instance_uid']))}__{_SAFE.sub('_', str(label.label_id))}.png"
        staged = masks_out.staging / name
        write_mask_png(staged, full)
        out["mask_path"] = str(masks_out.final_path(staged))
    out["mask_status"] = "missing" if problems else "ok"
    out["mask_error"] = "; ".join(problems) or None
    return out


def _discard_exams(
    df: pd.DataFrame, crops: pd.DataFrame, version: str, retrieved_at: datetime
) -> pd.DataFrame:
    """'Discard Entire Exam' on any image rejects every image of that exam (patient, accession),
    including images of the exam that have no label in this retrieval."""
    hit = df[df["discard_entire_exam"].fillna(False).astype(bool) & df["accession_number"].notna()]
    exams = set(zip(hit["patient_id"], hit["accession_number"], strict=True))
    if not exams:
        return df
    in_exam = pd.Series(
        [(p, a) in exams for p, a in zip(df["patient_id"], df["accession_number"], strict=True)],
        index=df.index,
    )
    df.loc[in_exam, ["discard_entire_exam", "reject_image"]] = True
    present = {str(k).casefold() for k in df["global_key"].dropna()}
    extra = []
    for crop in crop_index(crops).values():
        if (crop["patient_id"], crop["accession_number"]) in exams and str(
            crop["global_key"]
        ).casefold() not in present:
            extra.append(
                {
                    "archive_version": version,
                    "retrieved_at": retrieved_at,
                    "status": "exam_discarded",
                    "batch_id": crop["batch_id"],
                    "global_key": crop["global_key"],
                    "sop_instance_uid": crop["sop_instance_uid"],
                    "patient_id": crop["patient_id"],
                    "accession_number": crop["accession_number"],
                    "mask_status": "none",
                    "classifications": "{}",
                    **_empty_flags(),
                    "discard_entire_exam": True,
                    "reject_image": True,
                }
            )
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True) if extra else df


# -- storage: the warehouse's per-batch files, each holding every version of its images' labels --


UNMATCHED = "_unmatched"  # folder for rows with no batch (unknown keys, malformed lines)


@contextmanager
def _table_lock(warehouse: Path) -> Iterator[None]:
    """Two imports at once must not lose each other's rows (each rewrites shared batch files)."""
    lock = lock_path(warehouse, TABLE)  # a local file, also when the warehouse is on s3://
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _batch_files(warehouse: Path) -> list[str]:
    root = warehouse / TABLE
    if not root.is_dir():
        return []
    return sorted(p.parent.name.split("=", 1)[1] for p in root.glob(f"batch_id=*/{PARQUET_NAME}"))


def write_version(warehouse: Path, version: str, df: pd.DataFrame) -> list[str]:
    """Store one version: its rows go into the batch file of their image's batch, next to the
    rows of earlier versions (which are kept); rows this version wrote before are replaced, so a
    re-run of the same version gives the same table. Returns the batch folders written."""
    df = df.assign(archive_version=version)
    targets = df["batch_id"].fillna(UNMATCHED) if len(df) else pd.Series([], dtype=object)
    written = []
    with _table_lock(warehouse):
        for batch in sorted(set(_batch_files(warehouse)) | set(targets)):
            old = (
                read_batch(warehouse, TABLE, batch)
                if batch in _batch_files(warehouse)
                else pd.DataFrame()
            )
            kept = old[old["archive_version"] != version] if len(old) else old
            new = df[targets == batch]
            if len(new) == 0 and len(kept) == len(old):
                continue
            merged = pd.concat([f for f in (kept, new) if len(f)], ignore_index=True)
            if len(merged):
                merged = merged.sort_values(["archive_version", "source_line"], kind="stable")
                write_batch(warehouse, TABLE, batch, merged)
            else:
                delete_batch(warehouse, TABLE, batch)
            written.append(batch)
    return written


def remove_batch_labels(warehouse: Path, batch: str) -> int:
    """Delete the archive rows of one batch's images, every version, with their mask files (the
    masks of a version sit in one folder for all batches, so deleting the batch's rows alone
    would leave them behind). Returns the number of mask files removed."""
    from casbusi_assets.storage.files import remove_file

    removed = 0
    with _table_lock(warehouse):
        if batch not in _batch_files(warehouse):
            return 0
        rows = read_batch(warehouse, TABLE, batch)
        for path in rows["mask_path"].dropna().unique() if len(rows) else ():
            removed += remove_file(path)
        delete_batch(warehouse, TABLE, batch)
    return removed


def read_versions(warehouse: Path, versions: Sequence[str] | None = None) -> pd.DataFrame:
    """The archive rows of the given versions (default: all), oldest version first."""
    df = read_all_batches(warehouse, TABLE)
    if versions is not None:
        df = df[df["archive_version"].isin(list(versions))]
    return df.sort_values(["archive_version", "source_line"], kind="stable").reset_index(drop=True)


def stored_versions(warehouse: Path) -> list[str]:
    df = read_all_batches(warehouse, TABLE)
    return sorted(df["archive_version"].dropna().unique()) if len(df) else []


def latest_labels(archive: pd.DataFrame) -> pd.DataFrame:
    """Per image (global key), the rows of the newest version that holds it."""
    known = archive[archive["sop_instance_uid"].notna()]
    if known.empty:
        return known
    newest = known.groupby("global_key")["archive_version"].transform("max")
    return known[known["archive_version"] == newest].reset_index(drop=True)


def ensure_view(catalog: Path, warehouse: Path) -> bool:
    """The `labels_archive` DuckDB view (the warehouse's own, over every batch file)."""
    return bool(ensure_views(catalog, warehouse, [TABLE]))


def mask_pixels(path: str) -> np.ndarray:
    """A stored archive mask as booleans (for checks and tests)."""
    import cv2

    from casbusi_assets.storage.files import read_image

    img = read_image(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(path)
    return img > 0

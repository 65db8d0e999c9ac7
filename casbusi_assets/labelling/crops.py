"""The files that go to the labelling tool: each included image cropped to its ultrasound field.

The crop is cut from the caliper-free copy when inpainting made one, else from the original
PNG; its box (in original pixels) is recorded so masks drawn on the crop can be put back.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from casbusi_assets.labelling.backend import DataRowSpec, UploadResult, global_key_for
from casbusi_assets.storage.file_staging import StagedBatchDir
from casbusi_assets.storage.files import read_image

CROP_COLUMNS = [
    "batch_id",
    "sop_instance_uid",
    "global_key",
    "patient_id",
    "accession_number",
    "laterality",
    "orientation",
    "label_cat",
    "source_path",
    "original_path",
    "crop_path",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "image_width",
    "image_height",
    "inpainted",
    "upload_status",
    "upload_error",
    "data_row_id",
    "labelling_batch",
]
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _int(value: Any) -> int | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else int(round(f))


def _str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text or None


def _truthy(value: Any) -> bool:
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def _cut(source: str | None, box: list[int], out: Path) -> dict[str, Any]:
    """Cut `box` out of the PNG at `source` into `out`; the row's fields (or why not)."""
    image = read_image(source, cv2.IMREAD_UNCHANGED) if source else None  # path or s3:// URL
    if image is None:
        return {"upload_status": "skipped", "upload_error": f"cannot read image {source}"}
    height, width = image.shape[:2]
    x, y, w, h = box
    # Clip to the image: a box that pokes out is cut at the border and recorded as used.
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    size = {"image_width": width, "image_height": height}
    if x1 <= x0 or y1 <= y0:
        return {
            **size,
            "upload_status": "skipped",
            "upload_error": f"crop box {box} outside the image",
        }
    if not cv2.imwrite(str(out), image[y0:y1, x0:x1]):
        return {**size, "upload_status": "skipped", "upload_error": f"could not write {out.name}"}
    return {
        **size,
        "crop_x": x0,
        "crop_y": y0,
        "crop_w": x1 - x0,
        "crop_h": y1 - y0,
        "crop_path": str(out),
    }


def build_crops(
    batch_id: str,
    cleaned: pd.DataFrame,
    inpainted: pd.DataFrame,
    ocr: pd.DataFrame | None,
    staged: StagedBatchDir,
    key_prefix: str,
    workers: int = 1,
) -> pd.DataFrame:
    """One row per included image; crop PNGs written into `staged.staging` (paths in the table
    are the final ones). Images that cannot be cropped get upload_status 'skipped' and why.
    `workers` threads cut and write the crops."""
    inpainted_by_sop = {}
    if len(inpainted):
        for rec in inpainted.to_dict("records"):
            if _str(rec.get("inpainted_path")):
                inpainted_by_sop[rec["sop_instance_uid"]] = rec["inpainted_path"]
    laterality = {}
    if ocr is not None and len(ocr) and "laterality" in ocr.columns:
        images = ocr[ocr["source"] == "image"] if "source" in ocr.columns else ocr
        laterality = dict(zip(images["sop_instance_uid"], images["laterality"], strict=True))
    included = cleaned[cleaned["include"].map(_truthy)] if len(cleaned) else cleaned
    rows = []
    jobs: list[tuple[dict[str, Any], str, list[int], Path]] = []
    for rec in included.sort_values("sop_instance_uid").to_dict("records"):
        sop = str(rec["sop_instance_uid"])
        original = _str(rec.get("image_path"))
        source = inpainted_by_sop.get(sop) or original
        lat = _str(rec.get("laterality")) or _str(laterality.get(sop))
        row: dict[str, Any] = {
            "batch_id": batch_id,
            "sop_instance_uid": sop,
            "global_key": global_key_for(sop, key_prefix),
            "patient_id": _str(rec.get("patient_id")),
            "accession_number": _str(rec.get("accession_number")),
            "laterality": lat,
            "orientation": _str(rec.get("orientation")),
            "label_cat": _str(rec.get("label_cat")),
            "source_path": source,
            "original_path": original,
            "inpainted": sop in inpainted_by_sop,
            "upload_status": "pending",
        }
        rows.append(row)
        box = [_int(rec.get(k)) for k in ("crop_x", "crop_y", "crop_w", "crop_h")]
        if any(v is None for v in box):
            row.update(upload_status="skipped", upload_error="no crop box")
            continue
        jobs.append((row, source, box, staged.staging / f"{_SAFE.sub('_', sop)}.png"))
    # Reading, cutting and PNG-encoding run in OpenCV with the GIL released, so threads use
    # every core without the start-up of worker processes; each thread holds one image.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for (row, *_), update in zip(jobs, pool.map(lambda j: _cut(*j[1:]), jobs), strict=True):
            row.update(update)
            if "crop_path" in update:
                row["crop_path"] = str(staged.final_path(Path(update["crop_path"])))
    return pd.DataFrame(rows, columns=CROP_COLUMNS)


def data_row_specs(crops: pd.DataFrame) -> list[DataRowSpec]:
    """What the labelling tool receives for each crop that was written."""
    specs = []
    for rec in crops[crops["upload_status"] == "pending"].to_dict("records"):
        specs.append(
            DataRowSpec(
                global_key=rec["global_key"],
                crop_path=rec["crop_path"],
                original_path=rec["original_path"] or rec["source_path"],
                external_id=Path(rec["crop_path"]).name,
                metadata={
                    "casbusi_batch": rec["batch_id"],
                    "casbusi_patient": rec["patient_id"] or "",
                    "casbusi_accession": rec["accession_number"] or "",
                    "casbusi_laterality": rec["laterality"] or "",
                    "casbusi_orientation": rec["orientation"] or "",
                    "casbusi_label_cat": rec["label_cat"] or "",
                },
            )
        )
    return specs


def apply_upload(crops: pd.DataFrame, result: UploadResult) -> pd.DataFrame:
    """The table with each row's upload outcome filled in."""
    out = crops.copy()
    for col in ("upload_status", "upload_error", "data_row_id", "labelling_batch"):
        out[col] = out[col].astype(object)
    for i, gk in out["global_key"].items():
        outcome = result.rows.get(gk)
        if outcome is None or out.at[i, "upload_status"] != "pending":
            continue
        out.at[i, "upload_status"] = outcome.status
        out.at[i, "upload_error"] = outcome.error
        out.at[i, "data_row_id"] = outcome.data_row_id
        out.at[i, "labelling_batch"] = result.labelling_batch
    return out

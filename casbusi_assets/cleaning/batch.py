"""Build `cleaned_images` and `cleaned_videos` for one batch from the earlier stages' tables.

Per image: load the PNG, hash its pixels, judge corruption (on the original colour pixels when
the PNG was stored grey), find the ultrasound field (crop.py), measure darkness in it, detect
caliper marks (calipers.py, OCR text boxes suppressed); per patient: twins; per batch: duplicates
against every earlier batch (duplicates.py, DuckDB over the warehouse); then the orientation model
where the text gave none, and the selection rules (decisions.py).

Images are processed per patient, in the step's worker processes (shared/parallel.py), a
bounded window of patients in flight, so memory does not grow with the batch. The crop, caliper
and orientation steps are passed in as callables: the defaults are the project's modules, and
tests can substitute their own. On the CPU the orientation model runs in the workers too, on the
images of the patient they measured (`orientation_in_workers`); on a GPU it runs in the step's
process, the one process that owns the GPU.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.cleaning import decisions, quality
from casbusi_assets.cleaning.duplicates import find_duplicates
from casbusi_assets.cleaning.rules import Thresholds
from casbusi_assets.cleaning.twins import TwinCandidate, find_twins
from casbusi_assets.shared.parallel import WorkerPool
from casbusi_assets.storage.files import list_files, read_image

Box = tuple[int, int, int, int]  # x, y, w, h
# (image, regions JSON) -> (x, y, w, h, source)
CropFn = Callable[[np.ndarray, str | None], tuple[int, int, int, int, str]]
# (image, field box, text boxes x0,y0,x1,y1) -> list of (x, y, w, h)
CaliperFn = Callable[[np.ndarray, Box | None, list[tuple[int, int, int, int]]], list[Box]]
# images -> [(orientation or None, confidence)]
OrientationFn = Callable[[list[np.ndarray]], list[tuple[str | None, float]]]


def default_crop(image: np.ndarray, regions: str | None) -> tuple[int, int, int, int, str]:
    from casbusi_assets.cleaning.crop import ultrasound_field

    b = ultrasound_field(image, regions)
    return (int(b.x), int(b.y), int(b.w), int(b.h), str(b.source))


def default_calipers(
    image: np.ndarray, field_box: Box | None, text_boxes: list[tuple[int, int, int, int]]
) -> list[Box]:
    from casbusi_assets.cleaning.calipers import detect_calipers

    marks = detect_calipers(image, field=field_box, text_boxes=tuple(text_boxes))
    return [(int(m.x), int(m.y), int(m.w), int(m.h)) for m in marks]


@dataclass
class StepTimer:
    """Wall time per step, summed over the batch (for the metadata and the benchmark)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, step: str, started: float, n: int = 1) -> None:
        self.seconds[step] += time.perf_counter() - started
        self.counts[step] += n

    def ms_per_item(self) -> dict[str, float]:
        return {k: round(1000 * self.seconds[k] / max(1, self.counts[k]), 2) for k in self.seconds}


def load_image(path: object) -> np.ndarray | None:
    """A PNG as grey HxW or RGB HxWx3 uint8; None when it cannot be read."""
    if not isinstance(path, str) or not path:
        return None
    image = read_image(path, cv2.IMREAD_UNCHANGED)  # a local path or an s3:// URL
    if image is None:
        return None
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    return image


def ocr_text_boxes(text_boxes_json: object) -> list[tuple[int, int, int, int]]:
    """The OCR table's kept text boxes as (x0, y0, x1, y1)."""
    if not isinstance(text_boxes_json, str) or not text_boxes_json:
        return []
    try:
        items = json.loads(text_boxes_json)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        box = item.get("box") if isinstance(item, dict) else None
        if isinstance(box, list | tuple) and len(box) == 4:
            out.append(tuple(int(v) for v in box))
    return out


def _inside(box: Box, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    x, y, bw, bh = box
    x0, y0 = min(max(0, x), w), min(max(0, y), h)
    x1, y1 = min(max(x0, x + bw), w), min(max(y0, y + bh), h)
    return (x0, y0, x1 - x0, y1 - y0)


def _lookup(df: pd.DataFrame | None, key: str = "sop_instance_uid") -> dict[str, dict[str, Any]]:
    if df is None or df.empty:
        return {}
    return {str(r[key]): r for r in df.to_dict("records")}


@dataclass
class _Measured:
    row: dict[str, Any]
    gray: np.ndarray | None = None
    image: np.ndarray | None = None


def _measure_image(
    img_row: dict[str, Any],
    cat: dict[str, Any],
    ocr: dict[str, Any],
    th: Thresholds,
    zip_path: Path | None,
    crop_fn: CropFn,
    caliper_fn: CaliperFn,
    timer: StepTimer,
) -> _Measured:
    sop = str(img_row["sop_instance_uid"])
    row: dict[str, Any] = {
        "sop_instance_uid": sop,
        "patient_id": img_row.get("patient_id"),
        "accession_number": img_row.get("accession_number"),
        "missing_links": img_row.get("missing_links", cat.get("missing_links")),
        "image_path": img_row.get("image_path"),
        "is_doppler": bool(img_row.get("is_doppler") or False),
        "region_count": img_row.get("region_count"),
        "raw_hash": cat.get("pixel_sha256"),
        "area": ocr.get("area"),
        "laterality": ocr.get("laterality"),
        "orientation": ocr.get("orientation"),
        "patient_sex": cat.get("patient_sex"),
        "study_description": cat.get("study_description"),
        "has_calipers": False,
        "caliper_boxes": "[]",
    }
    t = time.perf_counter()
    decode_error = None if img_row.get("status") == "ok" else (img_row.get("error") or "failed")
    image = load_image(img_row.get("image_path")) if decode_error is None else None
    timer.add("load_png", t)
    if image is None:
        verdict = quality.judge_corrupt(None, decode_error=decode_error)
        row.update(is_corrupt=True, corrupt_reason=verdict.reason)
        return _Measured(row)
    t = time.perf_counter()
    row["pixel_hash"] = quality.pixel_hash(image)
    timer.add("hash", t)

    t = time.perf_counter()
    original = None
    pi = str(img_row.get("original_photometric_interpretation") or "")
    if image.ndim == 2 and pi and not pi.startswith("MONOCHROME") and zip_path is not None:
        try:
            original = quality.decode_original_colour(zip_path, str(img_row["member_path"]))
        except Exception:  # noqa: BLE001 - the PNG decoded; judge it on what we have
            original = None
    verdict = quality.judge_corrupt(image, original_colour=original, green_margin=th.green_margin)
    row.update(is_corrupt=verdict.is_corrupt, corrupt_reason=verdict.reason)
    timer.add("corrupt", t)

    t = time.perf_counter()
    x, y, w, h, source = crop_fn(image, cat.get("us_regions"))
    box = _inside((x, y, w, h), image.shape)
    row.update(crop_x=box[0], crop_y=box[1], crop_w=box[2], crop_h=box[3], crop_source=source)
    timer.add("crop", t)

    t = time.perf_counter()
    row["darkness"] = quality.field_darkness(image, box, th.dark_pixel_level)
    timer.add("darkness", t)

    if not verdict.is_corrupt:
        t = time.perf_counter()
        marks = caliper_fn(image, box, ocr_text_boxes(ocr.get("text_boxes")))
        row["has_calipers"] = bool(marks)
        row["caliper_boxes"] = json.dumps([list(map(int, m)) for m in marks])
        timer.add("calipers", t)
    gray = quality.to_gray(image)
    return _Measured(row, gray=gray, image=image)


def orientation_in_workers(device: str) -> bool:
    """Whether the orientation model runs in the pool workers, given its resolved device.

    On the CPU, yes: in the step's process it ran with a torch thread per core on top of two
    busy workers, 164 ms an image against 21 ms alone (benchmarks/README.md, Whole graph), and
    each worker already holds the pixels. On a GPU, no: one process feeds the one GPU, and every
    worker loading its own CUDA context would cost more memory than the model saves.
    """
    return device == "cpu"


def _apply_orientation(
    rows: list[dict[str, Any]], ask: list[int], predictions: list[tuple[str | None, float]]
) -> None:
    """The model's answers into the rows it was asked about (the one rule, wherever it ran):
    the confidence always, the label only when there is one."""
    for i, (label, conf) in zip(ask, predictions, strict=True):
        rows[i]["orientation_confidence"] = round(float(conf), 4)
        if label is not None and label != "unknown":
            rows[i].update(orientation=label, orientation_source="model")


def _orientation_from_text(measured: list[_Measured]) -> list[int]:
    """OCR orientation where the text gives one; the positions the model may fill in.

    The rule: the model fills in only where the OCR value is missing or `unknown` (it never
    overrides text), only for single-region, non-corrupt captures (a split screen holds two
    views), and only when the orientation function returns a label (it returns None below its
    confidence threshold); otherwise the orientation stays `unknown` with source `none`.
    """
    ask = []
    for i, m in enumerate(measured):
        r = m.row
        ocr_value = decisions.text_or_none(r.get("orientation"))
        if ocr_value is not None and ocr_value.lower() != "unknown":
            r.update(orientation=ocr_value.lower(), orientation_source="ocr")
            continue
        r.update(orientation="unknown", orientation_source="none", orientation_confidence=None)
        single = not decisions.present(r.get("region_count")) or int(r["region_count"]) <= 1
        if m.image is not None and not r["is_corrupt"] and single:
            ask.append(i)
    return ask


IMAGE_COLUMNS = [
    "batch_id", "sop_instance_uid", "patient_id", "accession_number", "image_path", "is_doppler",
    "region_count", "pixel_hash", "raw_hash", "is_corrupt", "corrupt_reason", "duplicate_of",
    "duplicate_of_batch", "twin_of", "twin_distance", "twin_relative_distance", "darkness",
    "crop_x", "crop_y", "crop_w",
    "crop_h", "crop_source", "has_calipers", "caliper_boxes", "area", "laterality",
    "orientation", "orientation_source", "orientation_confidence", "include",
    "exclusion_reasons", "label_cat",
]  # fmt: skip


@dataclass
class _PatientJob:
    """Everything one patient's images need, picklable for a worker process."""

    patient: str
    images: list[dict[str, Any]]
    cat: list[dict[str, Any]]
    ocr: list[dict[str, Any]]
    th: Thresholds
    zip_path: Path | None
    crop_fn: CropFn
    caliper_fn: CaliperFn
    ask_orientation: bool
    # set: the worker runs the model itself; None with ask_orientation: the pixels go back
    orientation_fn: OrientationFn | None = None


@dataclass
class _PatientResult:
    rows: list[dict[str, Any]]
    twin_info: dict[str, dict[str, Any]]
    # the rows (by position) the orientation model is asked about, and their pixels
    ask: list[int]
    ask_images: list[np.ndarray]
    seconds: dict[str, float]
    counts: dict[str, int]


def _clean_patient(job: _PatientJob) -> _PatientResult:
    """One patient's images: measured, twins found, orientation filled from the text, and from
    the model when the job carries it.

    Runs in a worker process when the step has several. With the model in the job no pixels
    travel back; without it, only the images the model must see do, so the pixels of a patient
    never outlive its task.
    """
    timer = StepTimer()
    measured = [
        _measure_image(r, c, o, job.th, job.zip_path, job.crop_fn, job.caliper_fn, timer)
        for r, c, o in zip(job.images, job.cat, job.ocr, strict=True)
    ]
    t = time.perf_counter()
    candidates = [
        TwinCandidate(
            key=m.row["sop_instance_uid"],
            patient_id=job.patient or None,
            gray=m.gray,
            field=(m.row["crop_x"], m.row["crop_y"], m.row["crop_w"], m.row["crop_h"]),
            colour=m.image.ndim == 3,
            pixel_hash=m.row.get("pixel_hash"),
        )
        for m in measured
        if m.gray is not None and not m.row["is_corrupt"]
    ]
    twins = find_twins(candidates, job.th.twin_max_distance, job.th.twin_max_relative_distance)
    timer.add("twins", t, len(candidates))
    twin_info = {
        key: {
            "twin_of": tw["twin_of"],
            "twin_distance": tw["nearest_distance"],
            "twin_relative_distance": tw["nearest_relative_distance"],
        }
        for key, tw in twins.iterrows()
    }
    ask = _orientation_from_text(measured)
    if not job.ask_orientation:
        ask = []
    rows = [m.row for m in measured]
    if ask and job.orientation_fn is not None:
        t = time.perf_counter()
        _apply_orientation(rows, ask, job.orientation_fn([measured[i].image for i in ask]))
        timer.add("orientation_model", t, len(ask))
        ask = []
    return _PatientResult(
        rows=rows,
        twin_info=twin_info,
        ask=ask,
        ask_images=[measured[i].image for i in ask],
        seconds=dict(timer.seconds),
        counts=dict(timer.counts),
    )


def _picklable(*objects: object) -> bool:
    try:
        pickle.dumps(objects)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def clean_images(
    batch_id: str,
    image_table: pd.DataFrame,
    ocr_table: pd.DataFrame,
    catalog: pd.DataFrame,
    case_study: pd.DataFrame,
    th: Thresholds,
    *,
    warehouse: Path,
    batch_order: Sequence[str],
    zip_path: Path | None = None,
    crop_fn: CropFn = default_crop,
    caliper_fn: CaliperFn = default_calipers,
    orientation_fn: OrientationFn | None = None,
    timer: StepTimer | None = None,
    report: Callable[[str], None] | None = None,
    workers: int = 1,
    pool: WorkerPool | None = None,
    orientation_in_workers: bool = False,
) -> pd.DataFrame:
    """One `cleaned_images` row per row of `image_table`.

    Patients are measured in `pool` (or a pool of `workers` processes started here; 0 = one
    per core, 1 = in this process), a bounded window of patients in flight, so only those
    patients' pixels are in memory. `crop_fn` and `caliper_fn` then go to the workers and must
    be picklable (module-level functions or plain objects); if they are not, the images are
    measured in this process. With `orientation_in_workers` (see `orientation_in_workers()`)
    and a picklable `orientation_fn` (cleaning.orientation.OrientationStep) the workers also run
    the orientation model on the images they measured; otherwise it runs here, on the images of
    each patient it is asked about, while the workers measure the next patients. Same rows
    either way; in-process (one worker) nothing moves.
    """
    timer = timer or StepTimer()
    cat = _lookup(catalog[catalog["kind"] == "image"] if len(catalog) else catalog)
    ocr = _lookup(ocr_table[ocr_table["source"] == "image"] if len(ocr_table) else ocr_table)
    images = image_table.to_dict("records") if len(image_table) else []
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in images:
        by_patient[str(r.get("patient_id") or "")].append(r)

    def jobs():
        for patient in sorted(by_patient):
            rows_p = by_patient[patient]
            sops = [str(r["sop_instance_uid"]) for r in rows_p]
            yield _PatientJob(
                patient=patient,
                images=rows_p,
                cat=[cat.get(s, {}) for s in sops],
                ocr=[ocr.get(s, {}) for s in sops],
                th=th,
                zip_path=zip_path,
                crop_fn=crop_fn,
                caliper_fn=caliper_fn,
                ask_orientation=orientation_fn is not None,
                orientation_fn=orientation_fn if model_in_workers else None,
            )

    if not _picklable(crop_fn, caliper_fn):
        workers, pool = 1, None
    rows: list[dict[str, Any]] = []
    twin_info: dict[str, dict[str, Any]] = {}
    done = 0
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(WorkerPool(workers))
        model_in_workers = (
            orientation_in_workers
            and orientation_fn is not None
            and pool.parallel
            and _picklable(orientation_fn)
        )
        if report and orientation_fn is not None:
            where = f"the {pool.workers} pool workers" if model_in_workers else "the step process"
            report(f"cleaning {batch_id}: orientation model runs in {where}")
        for res in pool.map(_clean_patient, jobs()):
            for k, v in res.seconds.items():
                timer.seconds[k] += v
                timer.counts[k] += res.counts.get(k, 0)
            twin_info.update(res.twin_info)
            if res.ask and orientation_fn is not None:
                t = time.perf_counter()
                _apply_orientation(res.rows, res.ask, orientation_fn(res.ask_images))
                timer.add("orientation_model", t, len(res.ask))
            rows.extend(res.rows)
            done += len(res.rows)
            if report:
                report(f"cleaning {batch_id}: {done}/{len(images)} images measured")
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=IMAGE_COLUMNS)
    df.insert(0, "batch_id", batch_id)
    df["twin_of"] = [twin_info.get(s, {}).get("twin_of") for s in df["sop_instance_uid"]]
    for column in ("twin_distance", "twin_relative_distance"):
        df[column] = [twin_info.get(s, {}).get(column) for s in df["sop_instance_uid"]]
    if "pixel_hash" not in df:
        df["pixel_hash"] = None
    t = time.perf_counter()
    dups = find_duplicates(
        df[["batch_id", "sop_instance_uid", "raw_hash", "pixel_hash"]], warehouse, batch_order
    )
    df["duplicate_of"] = dups["duplicate_of"].to_numpy()
    df["duplicate_of_batch"] = dups["duplicate_of_batch"].to_numpy()
    timer.add("duplicates", t, len(df))
    t = time.perf_counter()
    df = decisions.decide(df, decisions.case_index(case_study), th)
    timer.add("rules", t, len(df))
    for col in IMAGE_COLUMNS:
        if col not in df:
            df[col] = None
    return df[IMAGE_COLUMNS].sort_values("sop_instance_uid", ignore_index=True)


VIDEO_COLUMNS = [
    "batch_id", "sop_instance_uid", "patient_id", "accession_number", "frames_dir",
    "first_frame_path", "is_doppler", "region_count", "is_corrupt", "corrupt_reason",
    "darkness", "crop_x", "crop_y", "crop_w", "crop_h", "crop_source", "area", "laterality",
    "orientation", "include", "exclusion_reasons", "label_cat",
]  # fmt: skip


def first_frame(frames_dir: object) -> str | None:
    if not isinstance(frames_dir, str) or not frames_dir:
        return None
    frames = list_files(frames_dir, "frame_*.png")  # a local folder or an s3:// URL
    return frames[0] if frames else None


def clean_videos(
    batch_id: str,
    video_table: pd.DataFrame,
    ocr_table: pd.DataFrame,
    catalog: pd.DataFrame,
    case_study: pd.DataFrame,
    th: Thresholds,
    *,
    crop_fn: CropFn = default_crop,
    timer: StepTimer | None = None,
) -> pd.DataFrame:
    """One `cleaned_videos` row per clip: its first saved frame stands for the clip (as in the
    original), with the crop, darkness, content, link and case rules of a still."""
    timer = timer or StepTimer()
    cat = _lookup(catalog[catalog["kind"] == "video"] if len(catalog) else catalog)
    ocr = _lookup(ocr_table[ocr_table["source"] == "video"] if len(ocr_table) else ocr_table)
    rows = []
    for v in video_table.to_dict("records") if len(video_table) else []:
        sop = str(v["sop_instance_uid"])
        c, o = cat.get(sop, {}), ocr.get(sop, {})
        path = first_frame(v.get("frames_dir")) if v.get("status") == "ok" else None
        row: dict[str, Any] = {
            "batch_id": batch_id,
            "sop_instance_uid": sop,
            "patient_id": v.get("patient_id"),
            "accession_number": v.get("accession_number"),
            "missing_links": v.get("missing_links", c.get("missing_links")),
            "frames_dir": v.get("frames_dir"),
            "first_frame_path": path,
            "is_doppler": bool(v.get("is_doppler") or False),
            "region_count": v.get("region_count"),
            "area": o.get("area"),
            "laterality": o.get("laterality"),
            "orientation": (decisions.text_or_none(o.get("orientation")) or "unknown").lower(),
            "patient_sex": c.get("patient_sex"),
            "study_description": c.get("study_description"),
            "duplicate_of": None,
        }
        t = time.perf_counter()
        image = load_image(path)
        decode_error = None if v.get("status") == "ok" else (v.get("error") or "failed")
        verdict = quality.judge_corrupt(
            image, decode_error=decode_error, green_margin=th.green_margin
        )
        row.update(is_corrupt=verdict.is_corrupt, corrupt_reason=verdict.reason)
        if image is not None:
            x, y, w, h, source = crop_fn(image, c.get("us_regions"))
            box = _inside((x, y, w, h), image.shape)
            row.update(
                crop_x=box[0], crop_y=box[1], crop_w=box[2], crop_h=box[3], crop_source=source
            )
            row["darkness"] = quality.field_darkness(image, box, th.dark_pixel_level)
        else:
            row["darkness"] = None
        timer.add("video_first_frame", t)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=VIDEO_COLUMNS)
    df = decisions.decide(df, decisions.case_index(case_study), th)
    for col in VIDEO_COLUMNS:
        if col not in df:
            df[col] = None
    return df[VIDEO_COLUMNS].sort_values("sop_instance_uid", ignore_index=True)


def crop_outside_image(cleaned: pd.DataFrame, image_table: pd.DataFrame) -> pd.DataFrame:
    """Included images whose crop box is missing, empty, or not inside the image (the check)."""
    cols = ["sop_instance_uid", "crop_x", "crop_y", "crop_w", "crop_h", "rows", "columns"]
    if cleaned.empty:
        return pd.DataFrame(columns=cols)
    sizes = image_table[["sop_instance_uid", "rows", "columns"]].drop_duplicates("sop_instance_uid")
    inc = cleaned[cleaned["include"].astype(bool)].merge(sizes, on="sop_instance_uid", how="left")
    box = inc[["crop_x", "crop_y", "crop_w", "crop_h", "rows", "columns"]].astype(float)
    ok = (
        box.notna().all(axis=1)
        & (box["crop_x"] >= 0)
        & (box["crop_y"] >= 0)
        & (box["crop_w"] > 0)
        & (box["crop_h"] > 0)
        & (box["crop_x"] + box["crop_w"] <= box["columns"])
        & (box["crop_y"] + box["crop_h"] <= box["rows"])
    )
    return inc.loc[~ok, cols].reset_index(drop=True)

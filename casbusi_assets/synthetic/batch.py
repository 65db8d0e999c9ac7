"""Orchestration: plan a batch, render and encode every member, write the zip and the truth.

Outputs per batch: `<out>/<batch_id>.zip` and `<out>/<batch_id>.truth.parquet`, both
byte-identical for the same (seed, batch index, patients, config).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from casbusi_assets.synthetic.case_csv import CASE_CSV_NAME, render_csv
from casbusi_assets.synthetic.config import EXPLICIT_LE, GeneratorConfig
from casbusi_assets.synthetic.dicom_writer import (
    BASIC_TEXT_SR_STORAGE,
    TRANSFER_SYNTAX_UIDS,
    US_IMAGE_STORAGE,
    US_MULTIFRAME_STORAGE,
    build_image_dataset,
    build_text_sr,
    encode,
    make_uid,
)
from casbusi_assets.synthetic.plan import (
    BatchPlan,
    ItemPlan,
    StudyPlan,
    batch_id_for,
    plan_batch,
    seed_int,
)
from casbusi_assets.synthetic.scanner_screen import CaptureSpec, Rendered, render_capture
from casbusi_assets.synthetic.truth import write_truth

# Fixed zip timestamp: wall-clock times would break byte-identical output.
ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)

Member = tuple[str, bytes, dict[str, Any]]


@dataclass(frozen=True)
class BatchFiles:
    """What one generated batch consists of."""

    batch_id: str
    zip_path: Path
    truth_path: Path
    n_members: int
    n_images: int
    n_videos: int


# Truth of a member whose pixels carry nothing to read (non-image DICOMs, non-DICOM files).
_NO_IMAGE_CONTENT = {
    "is_doppler": False,
    "has_calipers": False,
    "body_marker": False,
    "area": "unknown",
    "laterality": "unknown",
    "orientation": "unknown",
    "text_degradation": "none",
    "calipers": "[]",
}


def generate_batches(
    out_dir: Path,
    batches: int = 2,
    patients: int = 8,
    seed: int = 0,
    config: GeneratorConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BatchFiles]:
    """Generate `batches` consecutive batches (ids batch_001, batch_002, ...) into `out_dir`."""
    return [
        generate_batch(out_dir, i, patients=patients, seed=seed, config=config, progress=progress)
        for i in range(batches)
    ]


def generate_batch(
    out_dir: Path,
    batch_index: int = 0,
    patients: int = 8,
    seed: int = 0,
    config: GeneratorConfig | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> BatchFiles:
    """Generate batch number `batch_index` (0-based) of the series defined by `seed`.

    A batch with index > 0 re-sends one study of batch `batch_index - 1` (same bytes, same UIDs),
    which is re-planned here, so each batch can be generated on its own. `workers` > 1 renders
    studies in parallel processes (output is identical whatever the worker count).
    """
    cfg = config or GeneratorConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_batch(seed, batch_index, patients, cfg)
    studies = list(plan.studies)
    if batch_index > 0 and cfg.edge_cases:
        resent = _pick_resent(seed, batch_index, patients, cfg)
        if resent is not None:
            studies.append(resent)

    jobs = [(seed, plan.batch_id, st) for st in studies]
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    members: list[Member] = []
    if n_workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for k, res in enumerate(pool.map(_render_study_job, jobs)):
                members.extend(res)
                _say(progress, f"{plan.batch_id}: study {k + 1}/{len(jobs)}")
    else:
        for k, job in enumerate(jobs):
            members.extend(_render_study_job(job))
            _say(progress, f"{plan.batch_id}: study {k + 1}/{len(jobs)}")

    if cfg.edge_cases:
        members.extend(_edge_members(plan, members))
    csv_rows = [row for st in studies for row in st.csv_rows]
    members.append((CASE_CSV_NAME, render_csv(csv_rows), _non_dicom_row(role="case_csv")))

    members.sort(key=lambda m: m[0])
    zip_path = out_dir / f"{plan.batch_id}.zip"
    truth_path = out_dir / f"{plan.batch_id}.truth.parquet"
    rows = []
    for path, data, row in members:
        row = dict(row)
        row["batch_id"] = plan.batch_id
        row["member_path"] = path
        row["file_size"] = len(data)
        row["file_sha256"] = hashlib.sha256(data).hexdigest()
        rows.append(row)
    _write_zip(zip_path, members, cfg.zip_compresslevel)
    tmp = truth_path.with_suffix(".parquet.tmp")
    write_truth(rows, tmp)
    os.replace(tmp, truth_path)
    n_images = sum(1 for r in rows if r.get("member_kind") == "image")
    n_videos = sum(1 for r in rows if r.get("member_kind") == "video")
    _say(
        progress, f"{plan.batch_id}: {len(members)} members ({n_images} images, {n_videos} videos)"
    )
    return BatchFiles(plan.batch_id, zip_path, truth_path, len(members), n_images, n_videos)


def _say(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def _pick_resent(
    seed: int, batch_index: int, patients: int, cfg: GeneratorConfig
) -> StudyPlan | None:
    prev: BatchPlan = plan_batch(seed, batch_index - 1, patients, cfg)
    # A clean study: re-sending the truncated file too would blur what the edge case tests.
    candidates = [
        st for st in prev.studies if st.filter_case is None and not any(it.edge for it in st.items)
    ]
    if not candidates:
        return None
    rng = np.random.default_rng(seed_int("resend", seed, batch_index))
    st = candidates[int(rng.integers(len(candidates)))]
    st.resent_from = prev.batch_id
    return st


def _write_zip(path: Path, members: list[Member], level: int) -> None:
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, data, _ in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=level)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# Studies and items
# ------------------------------------------------------------------------------------------------


def _render_study_job(job: tuple[int, str, StudyPlan]) -> list[Member]:
    seed, batch_id, st = job
    out: list[Member] = []
    instance = 1
    for item in st.items:
        members = _render_item(seed, st, item, instance)
        instance += len(members)
        out.extend(members)
    if st.has_sr:
        uid = make_uid("sop", seed, st.key, "sr")
        series = make_uid("series", seed, st.key, "sr")
        text = (
            f"Breast ultrasound worksheet. Accession {st.header.accession_number}. "
            "Findings documented on images."
        )
        data = build_text_sr(
            st.header, sop_instance_uid=uid, series_uid=series, series_number=99, text=text
        )
        row = _study_row(st)
        row.update(
            sop_instance_uid=uid,
            series_instance_uid=series,
            sop_class_uid=BASIC_TEXT_SR_STORAGE,
            member_kind="no_pixels",
            capture="structured_report",
            transfer_syntax_uid=str(TRANSFER_SYNTAX_UIDS[EXPLICIT_LE]),
        )
        out.append((f"{st.folder}/{_sr_name(st)}", data, row))
    return out


def _sr_name(st: StudyPlan) -> str:
    return f"SR{seed_int('sr', st.key) % 1_000_000:06d}"


def _study_row(st: StudyPlan) -> dict[str, Any]:
    h = st.header
    return {
        "member_role": "dicom",
        "study_instance_uid": h.study_instance_uid,
        "patient_id": h.patient_id,
        "accession_number": h.accession_number,
        "expected_status": "ok",
        "quarantine_code": None,
        **_NO_IMAGE_CONTENT,
        "filter_case": st.filter_case,
        "resent_from_batch": st.resent_from,
        "study_description": h.study_description,
        "study_laterality": st.laterality,
        "patient_sex": h.patient_sex,
        "manufacturer": h.manufacturer,
        "model_name": h.model,
    }


def capture_spec(st: StudyPlan, item: ItemPlan) -> CaptureSpec:
    """What the renderer draws for one planned member of a study."""
    return CaptureSpec(
        capture=item.capture,
        width=item.width,
        height=item.height,
        profile=st.profile,
        probe=st.header.probe,
        study_date=st.header.study_date,
        study_time=st.header.study_time,
        annotation=item.annotation,
        text_font=item.text_font,
        text_degradation=item.text_degradation,
        text_position=item.text_position,
        calipers=item.calipers,
        body_marker=item.body_marker,
        n_frames=item.n_frames,
        style=item.style,
    )


def _render_item(seed: int, st: StudyPlan, item: ItemPlan, instance: int) -> list[Member]:
    rng = np.random.default_rng(seed_int("render", seed, item.key))
    r = render_capture(capture_spec(st, item), rng)
    sop = make_uid("sop", seed, item.key)
    out: list[Member] = []
    twin_uid = None
    if item.twin and r.clean is not None:
        twin_uid = make_uid("sop", seed, item.key, "twin")
        # Same view saved before measuring: no calipers, and a re-captured frame differs a little.
        twin = r.clean.astype(np.int16)
        for reg in r.regions:
            sl = (slice(reg.y0, reg.y1 + 1), slice(reg.x0, reg.x1 + 1))
            twin[sl] += rng.integers(-1, 2, size=twin[sl].shape, dtype=np.int16)
        twin_frames = np.clip(twin, 0, 255).astype(np.uint8)[None]
        data, row = _encode_member(
            seed, st, item, r, twin_frames, twin_uid, instance, with_cal=False
        )
        row["twin_source_sop_instance_uid"] = sop
        out.append((f"{st.folder}/{item.twin_file_name}", data, row))
        instance += 1
    data, row = _encode_member(seed, st, item, r, r.frames, sop, instance, with_cal=True)
    row["twin_sop_instance_uid"] = twin_uid
    out.append((f"{st.folder}/{item.file_name}", data, row))
    return out


def _field_box(r: Rendered) -> list[int]:
    """The true ultrasound field as [x, y, w, h]: the union of the regions (both views of a
    dual view), so the crop can be scored whether or not the DICOM carries the regions."""
    x0 = min(g.x0 for g in r.regions)
    y0 = min(g.y0 for g in r.regions)
    x1 = max(g.x1 for g in r.regions)
    y1 = max(g.y1 for g in r.regions)
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


def _encode_member(
    seed: int,
    st: StudyPlan,
    item: ItemPlan,
    r: Rendered,
    frames: np.ndarray,
    sop: str,
    instance: int,
    with_cal: bool,
) -> tuple[bytes, dict[str, Any]]:
    if item.photometric != "MONOCHROME2" and frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    t0 = int(st.header.study_time)
    secs = (t0 // 10000) * 3600 + (t0 // 100 % 100) * 60 + t0 % 100 + 17 * instance
    content_time = f"{secs // 3600 % 24:02d}{secs // 60 % 60:02d}{secs % 60:02d}"
    ds = build_image_dataset(
        st.header,
        sop_instance_uid=sop,
        series_uid=st.series_uid,
        series_number=1,
        instance_number=instance,
        content_time=content_time,
        frames=frames,
        photometric=item.photometric,
        regions=r.regions,
        frame_time_ms=r.frame_time_ms,
        series_description="Breast" if item.n_frames == 1 else "Breast Cine",
    )
    row = _study_row(st)
    if item.edge == "missing_identifier":
        # A readable image that cannot be linked to its case: catalogued ok, exported and read,
        # with the missing link named (the cleaning stage excludes it later, with a reason).
        del ds.PatientID
        row.update(patient_id=None, missing_links="patient_id")
    data = encode(ds, item.transfer_syntax)
    if item.edge == "truncated":
        # Cut inside the pixel data: the header parses, the pixels cannot be complete.
        pixel_bytes = frames.size
        data = data[: len(data) - int(pixel_bytes * 0.4)]
        row.update(expected_status="quarantined", quarantine_code="truncated")
    ann = item.annotation
    reg0 = r.regions[0]
    row.update(
        sop_instance_uid=sop,
        series_instance_uid=st.series_uid,
        sop_class_uid=US_MULTIFRAME_STORAGE if item.n_frames > 1 else US_IMAGE_STORAGE,
        member_kind="video" if item.n_frames > 1 else "image",
        capture=item.capture,
        is_doppler=item.capture == "doppler",
        doppler_kind=r.doppler_kind,
        photometric_interpretation=item.photometric,
        transfer_syntax_uid=str(TRANSFER_SYNTAX_UIDS[item.transfer_syntax]),
        rows=int(frames.shape[1]),
        columns=int(frames.shape[2]),
        number_of_frames=int(frames.shape[0]),
        frame_time_ms=r.frame_time_ms,
        region_count=len(r.regions),
        region_x0=reg0.x0,
        region_y0=reg0.y0,
        region_x1=reg0.x1,
        region_y1=reg0.y1,
        regions=json.dumps([[g.x0, g.y0, g.x1, g.y1] for g in r.regions]),
        field_box=json.dumps(_field_box(r)),
        field_look=r.sector.shape if r.sector is not None else "rectangle",
        field_echo_share=r.sector.echo_share if r.sector is not None else 1.0,
        physical_delta_cm=reg0.delta_x,
        body_marker=r.body_marker,
        probe_angle_deg=r.probe_angle_deg,
        text_font=item.text_font if ann is not None else None,
        screen_style=item.style,
        text_degradation=item.text_degradation if ann is not None else "none",
        text_box=json.dumps(list(r.text_box)) if r.text_box is not None else None,
    )
    if ann is not None:
        row.update(
            annotation_text=ann.text,
            area=ann.area,
            laterality=ann.laterality,
            orientation=ann.orientation,
            clock_pos=ann.clock_pos,
            nipple_dist_cm=ann.nipple_dist_cm,
        )
    if with_cal and r.calipers:
        assert r.clean is not None
        ok, png = cv2.imencode(".png", r.clean)
        row.update(
            has_calipers=True,
            calipers=json.dumps(r.calipers),
            caliper_legend_box=json.dumps(list(r.caliper_legend_box or ())),
            clean_png=png.tobytes() if ok else None,
        )
    return data, row


# ------------------------------------------------------------------------------------------------
# Batch-level edge cases
# ------------------------------------------------------------------------------------------------

_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _non_dicom_row(role: str) -> dict[str, Any]:
    # The DICOM catalog records every member: stray non-DICOM files ('junk') are quarantined
    # there as 'not_dicom'; the case CSV is an expected member of kind 'case_csv' (the
    # case_table asset reads its content).
    case_csv = role == "case_csv"
    return {
        "member_role": role,
        "member_kind": "case_csv" if case_csv else "non_dicom",
        "capture": "case_csv" if case_csv else "non_dicom",
        "expected_status": "ok" if case_csv else "quarantined",
        "quarantine_code": None if case_csv else "not_dicom",
        **_NO_IMAGE_CONTENT,
    }


def _edge_members(plan: BatchPlan, members: list[Member]) -> list[Member]:
    rng = np.random.default_rng(seed_int("edges", plan.seed, plan.batch_index))
    out: list[Member] = []
    # Exact duplicate: an ordinary image exported twice, under another folder.
    ok_images = [
        m
        for m in members
        if m[2].get("member_kind") == "image"
        and m[2].get("expected_status") == "ok"
        and m[2].get("resent_from_batch") is None
        and m[2].get("filter_case") is None
    ]
    if ok_images:
        src_path, data, row = ok_images[int(rng.integers(len(ok_images)))]
        folder, name = src_path.rsplit("/", 1)
        dup_row = dict(row)
        dup_row["exact_duplicate_of"] = src_path
        dup_row["clean_png"] = row.get("clean_png")
        out.append((f"{folder}_copy/{name}", data, dup_row))
    patient_folders = sorted({m[0].split("/", 1)[0] for m in members if "/" in m[0]})
    study_folders = sorted({m[0].rsplit("/", 1)[0] for m in members if "/" in m[0]})
    if patient_folders:
        pf = patient_folders[int(rng.integers(len(patient_folders)))]
        ds_store = b"\x00\x00\x00\x01Bud1" + bytes(rng.integers(0, 256, 2048, dtype=np.uint8))
        out.append((f"{pf}/.DS_Store", ds_store, _non_dicom_row("junk")))
    if study_folders:
        sf = study_folders[int(rng.integers(len(study_folders)))]
        thumbs = bytes.fromhex("D0CF11E0A1B11AE1") + bytes(3064)
        out.append((f"{sf}/Thumbs.db", thumbs, _non_dicom_row("junk")))
        sf2 = study_folders[int(rng.integers(len(study_folders)))]
        out.append((f"{sf2}/Breast_US_Report.pdf", _PDF, _non_dicom_row("junk")))
    return out


def batch_plan(
    seed: int, batch_index: int, patients: int, config: GeneratorConfig | None = None
) -> BatchPlan:
    """The plan of a batch without rendering it (for inspection and tests)."""
    return plan_batch(seed, batch_index, patients, config or GeneratorConfig())


__all__ = ["BatchFiles", "batch_id_for", "batch_plan", "generate_batch", "generate_batches"]

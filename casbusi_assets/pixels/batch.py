"""Decode a batch's stills and cine clips straight from its zip into PNG files.

Plain Python: the image_table / video_table assets call these with the catalog rows to export and
a staging folder; rows come back in the IMAGE_TABLE / VIDEO_TABLE column layout. One file that
fails to decode becomes a row with status 'failed' and the reason, never a failed batch.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from casbusi_assets.ingest import zip_members
from casbusi_assets.ingest.zip_members import ZipLimits
from casbusi_assets.pixels import decode as pixel_export
from casbusi_assets.shared.parallel import Progress, parallel_map
from casbusi_assets.storage.file_staging import StagedBatchDir

_REGION_KEYS = (
    ("region_x0", "RegionLocationMinX0"),
    ("region_y0", "RegionLocationMinY0"),
    ("region_x1", "RegionLocationMaxX1"),
    ("region_y1", "RegionLocationMaxY1"),
)


def first_region(us_regions_json: str | None) -> dict[str, int | None]:
    """The first SequenceOfUltrasoundRegions box as region_x0..region_y1 (None when absent)."""
    regions = json.loads(us_regions_json) if us_regions_json else []
    first = regions[0] if regions else {}
    return {col: first.get(tag) for col, tag in _REGION_KEYS}


def unique_instances(catalog: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Catalog rows of `kind` that are ok, one per SOP instance (first member path wins).

    The same instance can sit in a zip twice (an exact duplicate file); it is one image, exported
    once, and `n_members` says how many copies the zip held.
    """
    rows = catalog[(catalog["status"] == "ok") & (catalog["kind"] == kind)]
    rows = rows.sort_values("member_path", kind="stable")
    counts = rows.groupby("sop_instance_uid")["member_path"].transform("size")
    rows = rows.assign(n_members=counts)
    return rows.drop_duplicates("sop_instance_uid", keep="first").reset_index(drop=True)


@dataclass(frozen=True)
class _Job:
    zip_path: str
    member_path: str
    out: str  # PNG path for stills, frame folder for clips
    final: str  # where `out` will live once the staging folder is committed
    limits: ZipLimits
    policy: str = ""
    every_n: int = 0


_open_zips: dict[str, tuple[zipfile.ZipFile, dict[str, zip_members.ZipMember]]] = {}


def _read(job: _Job) -> bytes:
    # Each worker process keeps its own handle per zip: ZipFile objects are not shared safely.
    if job.zip_path not in _open_zips:
        zf = zip_members.open_batch_zip(job.zip_path, job.limits)
        _open_zips[job.zip_path] = (
            zf,
            {m.path: m for m in zip_members.list_members(zf, job.limits)},
        )
    zf, members = _open_zips[job.zip_path]
    return zip_members.read_member(zf, members[job.member_path], job.limits)


def _export_still(job: _Job) -> dict:
    try:
        info = pixel_export.export_still(_read(job), Path(job.out))
        return {**info, "image_path": job.final, "status": "ok", "error": None}
    except Exception as exc:  # one bad file must not fail the batch; the row records why
        return {"image_path": None, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def _export_video(job: _Job) -> dict:
    try:
        info = pixel_export.export_video(_read(job), Path(job.out), job.policy, job.every_n)
        return {
            **info,
            "frames_dir": job.final,
            "frame_policy": job.policy,
            "status": "ok",
            "error": None,
        }
    except Exception as exc:
        return {
            "frames_dir": None,
            "frame_policy": job.policy,
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
        }


_CARRIED = (
    "sop_instance_uid",
    "study_instance_uid",
    "patient_id",
    "accession_number",
    "missing_links",
    "member_path",
    "region_count",
)


def _run(
    instances: pd.DataFrame,
    jobs: list[_Job],
    fn: Callable[[_Job], dict],
    workers: int,
    progress: Progress | None,
) -> pd.DataFrame:
    results = []
    for result in parallel_map(fn, jobs, workers=workers, chunksize=4):
        results.append(result)
        if progress:
            progress.advance()
    rows = []
    for (_, inst), result in zip(instances.iterrows(), results, strict=True):
        row = {c: inst.get(c) for c in _CARRIED}
        row.update(first_region(inst.get("us_regions")))
        row.update(result)
        rows.append(row)
    return pd.DataFrame(rows)


def export_images(
    zip_path: Path,
    catalog: pd.DataFrame,
    staged: StagedBatchDir,
    limits: ZipLimits,
    workers: int = 1,
    report: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write `<sop>.png` for every ok still image of the catalog; one row per SOP instance."""
    instances = unique_instances(catalog, "image")
    jobs = []
    for inst in instances.itertuples():
        out = staged.staging / f"{pixel_export.safe_file_stem(inst.sop_instance_uid)}.png"
        jobs.append(
            _Job(str(zip_path), inst.member_path, str(out), str(staged.final_path(out)), limits)
        )
    progress = Progress(report, "image_table", len(jobs)) if report else None
    df = _run(instances, jobs, _export_still, workers, progress)
    if not df.empty:
        df["n_members"] = instances["n_members"].to_numpy()
    return df


def export_videos(
    zip_path: Path,
    catalog: pd.DataFrame,
    staged: StagedBatchDir,
    limits: ZipLimits,
    policy: str,
    every_n: int,
    workers: int = 1,
    report: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write the policy's frames of every ok cine clip to `<sop>/frame_NNNN.png`."""
    pixel_export.select_frames(2, policy, every_n)  # reject a bad policy before any work
    instances = unique_instances(catalog, "video")
    jobs = []
    for inst in instances.itertuples():
        out = staged.staging / pixel_export.safe_file_stem(inst.sop_instance_uid)
        jobs.append(
            _Job(
                str(zip_path),
                inst.member_path,
                str(out),
                str(staged.final_path(out)),
                limits,
                policy,
                every_n,
            )
        )
    progress = Progress(report, "video_table", len(jobs)) if report else None
    return _run(instances, jobs, _export_video, workers, progress)

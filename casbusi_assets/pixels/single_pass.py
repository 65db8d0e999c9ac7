"""One pass over a batch zip: every member read, inflated, hashed and parsed once, its catalog row
made and, when it is an ok still or clip, its pixels decoded and written as PNG from that parse.

Before, `dicom_catalog` read every member and the export read the stills and clips again
(inflate, parse, and the header work twice). Here a worker process takes one member at a time
from the zip and returns its catalog row plus a small export record; only a bounded window of
members is in flight (`WorkerPool`), so memory does not grow with the batch: the parent holds
catalog rows, never member bytes or decoded frames.

Duplicates: the same SOP instance can sit in a zip twice. Workers write each export under a
member-unique hidden name in the staging folder; at the end the first member (by path, the rule
of `batch.unique_instances`) is renamed to `<sop>.png` / `<sop>/` and the other copies removed,
so the tables and files match what the two-pass export produced.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from casbusi_assets.ingest import catalog as cat
from casbusi_assets.ingest.zip_members import (
    DEFAULT_LIMITS,
    MemberReadError,
    ZipLimits,
    ZipMember,
    list_members,
    open_batch_zip,
    read_member,
)
from casbusi_assets.pixels import decode
from casbusi_assets.pixels.batch import CARRIED, first_region, unique_instances
from casbusi_assets.shared.parallel import Progress, WorkerPool
from casbusi_assets.storage.file_staging import StagedBatchDir

_INDEX = "_member_index"


@dataclass(frozen=True)
class ExportPlan:
    """What the pass writes besides the catalog: staging folders (None = that kind not exported)."""

    images_dir: str | None = None
    videos_dir: str | None = None
    policy: str = "every_nth"
    every_n: int = 4


@dataclass(frozen=True)
class _Task:
    zip_path: str
    member: ZipMember
    limits: ZipLimits
    plan: ExportPlan


@dataclass(frozen=True)
class PassResult:
    catalog: pd.DataFrame  # DICOM_CATALOG layout
    images: pd.DataFrame | None  # IMAGE_TABLE rows (None when stills were not exported)
    videos: pd.DataFrame | None  # VIDEO_TABLE rows (None when clips were not exported)


def _temp_name(member: ZipMember, kind: str) -> str:
    # Hidden, member-unique: two copies of one SOP instance never write the same path.
    return (
        f".member-{member.info_index:07d}.png"
        if kind == "image"
        else f".member-{member.info_index:07d}"
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def ingest_member(
    zf: zipfile.ZipFile, member: ZipMember, limits: ZipLimits, plan: ExportPlan
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The catalog row of one member and, for an ok still / clip the plan exports, its export
    record (IMAGE_TABLE / VIDEO_TABLE fields plus `_out`, the written temp path). Never raises
    for a bad member: read problems quarantine it, decode problems make the record 'failed'."""
    try:
        data = read_member(zf, member, limits)
    except MemberReadError as exc:
        return cat.quarantine_row(member.path, exc.code, str(exc), member.size), None
    row, ds = cat.catalog_parsed(member.path, data)
    del data  # the parsed dataset holds the values it needs; free the member bytes now
    kind = row["kind"]
    target = plan.images_dir if kind == "image" else plan.videos_dir if kind == "video" else None
    if ds is None or row["status"] != "ok" or target is None:
        return row, None
    out = Path(target) / _temp_name(member, kind)
    try:
        if kind == "image":
            info = decode.export_still_dataset(ds, out)
        else:
            info = decode.export_video_dataset(ds, out, plan.policy, plan.every_n)
        record = {**info, "status": "ok", "error": None, "_out": str(out)}
    except Exception as exc:  # one bad file must not fail the batch; the row records why
        _remove(out)
        record = {"status": "failed", "error": _reason(exc), "_out": None}
        if kind == "video":
            record["frame_policy"] = plan.policy
    return row, record


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _reason(exc: Exception) -> str:
    # Decoder plugins put object addresses in their messages ("<BytesIO object at 0x7f..>");
    # drop them so a re-run records the same error text.
    return _ADDRESS.sub("", f"{type(exc).__name__}: {exc}")


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_memory() -> None:
    """Give freed heap memory back to the OS after a member.

    A member's bytes and decoded frames are tens of MB; glibc raises its mmap threshold after
    the first large free, so later members come from the heap and freed space stays resident:
    a worker crept from 154 to 202 MB over 400 members of a realistic batch, and stayed at
    147-150 MB with a trim after each member (measured serially; a trim costs well under 1 ms).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


_PROCESS_ZIPS: dict[str, zipfile.ZipFile] = {}


def _worker(task: _Task) -> tuple[dict[str, Any], dict[str, Any] | None]:
    # One ZipFile per worker process, opened on first use and kept while the pool lives (the
    # pool is per step, so handles go with it).
    zf = _PROCESS_ZIPS.get(task.zip_path)
    if zf is None:
        if not _PROCESS_ZIPS:
            # The pool already runs one worker per core: OpenCV's own thread pool on top only
            # adds hand-offs (its parallel connected components ran 4-5x slower than one thread).
            cv2.setNumThreads(1)
        zf = _PROCESS_ZIPS[task.zip_path] = zipfile.ZipFile(task.zip_path)
    try:
        return ingest_member(zf, task.member, task.limits, task.plan)
    finally:
        release_memory()


def _results(
    zip_path: str,
    todo: list[ZipMember],
    limits: ZipLimits,
    plan: ExportPlan,
    pool: WorkerPool,
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    if pool.parallel and len(todo) > 1:
        tasks = (_Task(zip_path, m, limits, plan) for m in todo)
        yield from pool.map(_worker, tasks)
        return
    with open_batch_zip(zip_path, limits) as zf:
        for m in todo:
            result = ingest_member(zf, m, limits, plan)
            release_memory()
            yield result


def ingest_zip(
    zip_path: str | os.PathLike[str],
    batch_id: str,
    limits: ZipLimits = DEFAULT_LIMITS,
    *,
    images: StagedBatchDir | None = None,
    videos: StagedBatchDir | None = None,
    policy: str = "every_nth",
    every_n: int = 4,
    pool: WorkerPool | None = None,
    report: Callable[[str], None] | None = None,
    case_csv_name: str = "total_cases_anon.csv",
) -> PassResult:
    """Catalogue every member of a batch zip and export its stills / clips in the same pass.

    `images` / `videos`: staging folders to write PNGs into (None skips that export and its
    table). Raises BatchArchiveError only when the archive as a whole is unusable; nothing is
    written to the staging folders then. `pool` is the step's workers (a one-worker pool runs
    in this process); `report` gets `ingest: done/total (pct%)` lines.
    """
    zip_path = os.fspath(zip_path)
    if videos is not None:
        decode.select_frames(2, policy, every_n)  # reject a bad policy before any work
    plan = ExportPlan(
        images_dir=str(images.staging) if images else None,
        videos_dir=str(videos.staging) if videos else None,
        policy=policy,
        every_n=every_n,
    )
    with open_batch_zip(zip_path, limits) as zf:
        members = list_members(zf, limits)
        rows: list[dict[str, Any]] = []
        todo: list[ZipMember] = []
        for m in members:
            if m.problem_code:
                row = cat.quarantine_row(
                    m.path, m.problem_code, m.problem or m.problem_code, m.size
                )
                rows.append({**row, _INDEX: m.info_index})
            elif cat.is_case_csv(m.path, case_csv_name):
                row = cat.case_csv_row(m.path, read_member(zf, m, limits))
                rows.append({**row, _INDEX: m.info_index})
            else:
                todo.append(m)
    progress = Progress(report, "ingest", len(members), every_pct=5.0) if report else None
    if progress:
        progress.advance(len(rows))
    exports: dict[str, dict[int, dict[str, Any]]] = {"image": {}, "video": {}}
    own_pool = pool is None
    pool = pool or WorkerPool(1)
    try:
        for m, (row, record) in zip(
            todo, _results(zip_path, todo, limits, plan, pool), strict=True
        ):
            rows.append({**row, _INDEX: m.info_index})
            if record is not None:
                exports[row["kind"]][m.info_index] = record
            if progress:
                progress.advance()
    finally:
        if own_pool:
            pool.close()

    catalog = pd.DataFrame(rows, columns=[*cat.CATALOG_COLUMNS, _INDEX])
    catalog.insert(0, "batch_id", batch_id)
    for col in cat.INT_COLUMNS:
        catalog[col] = catalog[col].astype("Int64")
    catalog = catalog.sort_values(["member_path", _INDEX], kind="stable").reset_index(drop=True)
    image_df = _finish(catalog, exports["image"], "image", images) if images else None
    video_df = _finish(catalog, exports["video"], "video", videos) if videos else None
    return PassResult(catalog.drop(columns=[_INDEX]), image_df, video_df)


def _finish(
    catalog: pd.DataFrame,
    exports: dict[int, dict[str, Any]],
    kind: str,
    staged: StagedBatchDir,
) -> pd.DataFrame:
    """One table row per SOP instance of `kind`; winners' files renamed into place, copies gone."""
    instances = unique_instances(catalog, kind)
    winners = set(instances[_INDEX].tolist())
    rows = []
    for inst in instances.to_dict("records"):
        record = dict(exports[inst[_INDEX]])
        temp = record.pop("_out")
        row = {c: inst.get(c) for c in CARRIED}
        row.update(first_region(inst.get("us_regions")))
        if record["status"] == "ok":
            try:
                stem = decode.safe_file_stem(inst["sop_instance_uid"])
            except ValueError as exc:
                _remove(Path(temp))
                record = {"status": "failed", "error": f"ValueError: {exc}"}
                temp = None
            if temp is not None:
                final = staged.staging / (f"{stem}.png" if kind == "image" else stem)
                os.replace(temp, final)
                record["image_path" if kind == "image" else "frames_dir"] = str(
                    staged.final_path(final)
                )
        row.update(record)
        row.setdefault("image_path" if kind == "image" else "frames_dir", None)
        row["n_members"] = inst["n_members"]
        rows.append(row)
    for index, record in exports.items():
        if index not in winners and record.get("_out"):
            _remove(Path(record["_out"]))  # an extra copy of an instance already exported
    df = pd.DataFrame(rows)
    if kind == "video" and not df.empty:
        df = df.drop(columns=["n_members"])
    return df

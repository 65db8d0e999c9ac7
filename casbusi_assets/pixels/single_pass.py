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

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from casbusi_assets.ingest import catalog as cat
from casbusi_assets.ingest.zip_members import (
    DEFAULT_LIMITS,
    ZipLimits,
    ZipMember,
    list_members,
    open_batch_zip,
    read_member,
)
from casbusi_assets.pixels import decode
from casbusi_assets.pixels.batch import CARRIED, first_region, unique_instances
from casbusi_assets.pixels.member import (
    ExportPlan,
    MemberTask,
    ingest_member,
    ingest_member_task,
    release_memory,
    remove_output,
)
from casbusi_assets.shared.parallel import Progress, WorkerPool
from casbusi_assets.storage.file_staging import StagedBatchDir

if TYPE_CHECKING:  # not imported here: the warehouse module brings DuckDB
    from casbusi_assets.storage.warehouse import BatchWriter

_INDEX = "_member_index"
CHUNK_ROWS = 512  # catalog rows handed to the writer at a time
PROGRESS_SECONDS = 5.0  # the least time between two progress lines (the last one always comes)


@dataclass(frozen=True)
class PassResult:
    catalog: pd.DataFrame  # DICOM_CATALOG layout
    images: pd.DataFrame | None  # IMAGE_TABLE rows (None when stills were not exported)
    videos: pd.DataFrame | None  # VIDEO_TABLE rows (None when clips were not exported)


def _results(
    zip_path: str,
    todo: list[ZipMember],
    limits: ZipLimits,
    plan: ExportPlan,
    pool: WorkerPool,
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    if pool.parallel and len(todo) > 1:
        tasks = (MemberTask(zip_path, m, limits, plan) for m in todo)
        yield from pool.map(ingest_member_task, tasks)
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
    catalog_writer: BatchWriter | None = None,
) -> PassResult:
    """Catalogue every member of a batch zip and export its stills / clips in the same pass.

    `images` / `videos`: staging folders to write PNGs into (None skips that export and its
    table). Raises BatchArchiveError only when the archive as a whole is unusable; nothing is
    written to the staging folders then. `pool` is the step's workers (a one-worker pool runs
    in this process); `report` gets `ingest: done/total (pct%)` lines. With `catalog_writer`
    the catalog rows are written to it as they come (committed by the caller) and the returned
    catalog has no `header` column; without one the catalog comes back whole.
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
        # In the catalog's order (member path, then position in the zip), so rows can be
        # written out as they come and the file is in the order it always had.
        members = sorted(list_members(zf, limits), key=lambda m: (m.path, m.info_index))
        known: dict[int, dict[str, Any]] = {}  # rows made without a worker, by info_index
        todo: list[ZipMember] = []
        for m in members:
            if m.problem_code:
                problem = m.problem or m.problem_code
                known[m.info_index] = cat.quarantine_row(m.path, m.problem_code, problem, m.size)
            elif cat.is_case_csv(m.path, case_csv_name):
                known[m.info_index] = cat.case_csv_row(m.path, read_member(zf, m, limits))
            else:
                todo.append(m)
    # Every 10%, at most one line per 5 s: each line is a Dagster event, stored in the run's
    # event log (~40 ms of wall on this VM's SQLite, b90: 78 events 3.1 s); 5% steps made a
    # fifth of a small run's events.
    progress = (
        Progress(report, "ingest", len(members), every_pct=10.0, min_seconds=PROGRESS_SECONDS)
        if report
        else None
    )
    if progress:
        progress.advance(len(known))
    exports: dict[str, dict[int, dict[str, Any]]] = {"image": {}, "video": {}}
    sink = _CatalogSink(batch_id, catalog_writer)
    own_pool = pool is None
    pool = pool or WorkerPool(1)
    try:
        results = _results(zip_path, todo, limits, plan, pool)
        for m in members:
            row = known.pop(m.info_index, None)
            if row is None:
                row, record = next(results)
                if record is not None:
                    exports[row["kind"]][m.info_index] = record
                if progress:
                    progress.advance()
            sink.add({**row, _INDEX: m.info_index})
        if next(results, None) is not None:
            raise AssertionError("more member results than members")
    finally:
        if own_pool:
            pool.close()
    catalog = sink.finish()
    image_df = _finish(catalog, exports["image"], "image", images) if images else None
    video_df = _finish(catalog, exports["video"], "video", videos) if videos else None
    return PassResult(catalog.drop(columns=[_INDEX]), image_df, video_df)


def _catalog_frame(rows: list[dict[str, Any]], batch_id: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*cat.CATALOG_COLUMNS, _INDEX])
    frame.insert(0, "batch_id", batch_id)
    for col in cat.INT_COLUMNS:
        frame[col] = frame[col].astype("Int64")
    return frame


class _CatalogSink:
    """Catalog rows, in order. With a writer, every CHUNK_ROWS rows go to the batch file and
    only the rows without their DICOM-JSON header stay here (what the step's metadata and the
    image / video tables need), so the step process does not grow with the batch's headers."""

    def __init__(self, batch_id: str, writer: BatchWriter | None) -> None:
        self.batch_id, self.writer = batch_id, writer
        self.kept: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self.kept.append(row)
            return
        self.pending.append(row)
        self.kept.append({k: v for k, v in row.items() if k != "header"})
        if len(self.pending) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.writer is not None and self.pending:
            frame = _catalog_frame(self.pending, self.batch_id).drop(columns=[_INDEX])
            self.writer.write(frame)
            self.pending = []

    def finish(self) -> pd.DataFrame:
        self._flush()
        frame = _catalog_frame(self.kept, self.batch_id)
        self.kept = []
        return frame.drop(columns=["header"]) if self.writer is not None else frame


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
                remove_output(Path(temp))
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
            remove_output(Path(record["_out"]))  # an extra copy of an instance already exported
    df = pd.DataFrame(rows)
    if kind == "video" and not df.empty:
        df = df.drop(columns=["n_members"])
    return df

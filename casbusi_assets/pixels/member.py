"""One zip member, start to finish, in a worker process: read, hash, parse, catalog row and,
for an ok still or clip, its PNG files from that one parse (pixels/single_pass.py drives it).

This module is what every ingest worker imports when it starts, so it stays light: no pandas
(pyarrow comes with the schemas); a spawned worker used to import pandas for nothing, ~0.45 s
of CPU per worker per run.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from casbusi_assets.ingest import catalog as cat
from casbusi_assets.ingest.zip_members import MemberReadError, ZipLimits, ZipMember, read_member
from casbusi_assets.pixels import decode


@dataclass(frozen=True)
class ExportPlan:
    """What the pass writes besides the catalog: staging folders (None = that kind not exported)."""

    images_dir: str | None = None
    videos_dir: str | None = None
    policy: str = "every_nth"
    every_n: int = 4


@dataclass(frozen=True)
class MemberTask:
    zip_path: str
    member: ZipMember
    limits: ZipLimits
    plan: ExportPlan


def _temp_name(member: ZipMember, kind: str) -> str:
    # Hidden, member-unique: two copies of one SOP instance never write the same path.
    return (
        f".member-{member.info_index:07d}.png"
        if kind == "image"
        else f".member-{member.info_index:07d}"
    )


def remove_output(path: Path) -> None:
    """Delete a written export (a PNG file or a clip's frame folder); missing is fine."""
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
        remove_output(out)
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


# Trim only once the process holds this much more than it did after its last trim.
TRIM_HEADROOM_BYTES = 64 * 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_trimmed_rss: list[int] = []  # resident bytes right after the last trim in this process


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


def release_memory() -> None:
    """Give freed heap memory back to the OS once a worker holds much more than it needs.

    A member's bytes and decoded frames are tens of MB; glibc raises its mmap threshold after
    the first large free, so later members come from the heap and freed space stays resident:
    a worker crept from 154 to 202 MB over 400 members of a realistic batch, and stayed at
    147-150 MB with a trim after each member (measured serially). But a trim after *every*
    member also hands back pages the next member faults in again: ~2.5-3.5 ms per member in a
    read-and-copy loop over 120 members of b200 (1.14-1.19 s without, 1.47-1.57 s with). So
    trim only when the resident size is TRIM_HEADROOM_BYTES above what it was after the last
    trim: the bound stays, the cost is paid rarely. Where /proc is missing, trim every time.
    """
    if _MALLOC_TRIM is None:
        return
    rss = _rss_bytes()
    if rss is not None and _trimmed_rss and rss <= _trimmed_rss[0] + TRIM_HEADROOM_BYTES:
        return
    _MALLOC_TRIM(0)
    after = _rss_bytes()
    if after is not None:
        _trimmed_rss[:] = [after]


_PROCESS_ZIPS: dict[str, zipfile.ZipFile] = {}


def ingest_member_task(task: MemberTask) -> tuple[dict[str, Any], dict[str, Any] | None]:
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

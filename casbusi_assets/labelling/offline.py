"""Offline mode: files instead of API calls, for teams without API access and for tests.

    <home>/labelbox/outbox/<batch>.json     what the SDK would send for a batch (no key, ever)
    <home>/labelbox/inbox/<name>.ndjson     drop a Labelbox export here (masks: <name>.masks/)
    <home>/labelbox/exports/<version>/      one retrieval, as archived: export.ndjson, masks/,
                                            source.json (where it came from, its hash)

A retrieval is snapshotted before anything reads it, so re-materialising a labels version reads
the same bytes even after the inbox file is replaced or a mask URL has expired.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casbusi_assets.labelling.backend import (
    DataRowSpec,
    LabellingError,
    LabellingSetupError,
    RowOutcome,
    UploadResult,
)

EXPORT_NAME = "export.ndjson"
MASKS_NAME = "masks"
SOURCE_NAME = "source.json"
OUTBOX_FORMAT = "casbusi-labelbox-outbox/1"


@dataclass(frozen=True)
class LabelboxPaths:
    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def snapshot(self, version: str) -> Path:
        return self.exports / version


def labelbox_paths(home_root: Path) -> LabelboxPaths:
    return LabelboxPaths(Path(home_root) / "labelbox")


def _write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class OfflineBackend:
    """Writes the payloads to the outbox; labels come back as export files."""

    mode = "offline"

    def __init__(self, paths: LabelboxPaths, project_id: str = "", dataset_id: str = "") -> None:
        self.paths = paths
        self.project_id = project_id
        self.dataset_id = dataset_id

    def upload(self, batch_id: str, rows: Sequence[DataRowSpec]) -> UploadResult:
        from casbusi_assets.labelling.labelbox_client import build_upsert_items, wire_specs

        # No server to ask which keys exist: every row is a create with its global key, exactly
        # what the online backend sends for a project that has never seen these images.
        items = build_upsert_items(rows)
        path = self.paths.outbox / f"{batch_id}.json"
        _write_json_atomic(
            path,
            {
                "format": OUTBOX_FORMAT,
                "batch_id": batch_id,
                "project_id": self.project_id,
                "dataset_id": self.dataset_id,
                "upsert_data_rows": wire_specs(self.dataset_id or "<dataset_id>", items),
                "create_batch": {
                    "name": batch_id,
                    "global_keys": sorted(r.global_key for r in rows),
                },
            },
        )
        return UploadResult(
            mode=self.mode,
            rows={r.global_key: RowOutcome("outbox") for r in rows},
            labelling_batch=batch_id,
            batch_action="outbox",
            outbox_path=str(path),
        )

    def export_labels(self, dest: Path) -> int:
        raise LabellingSetupError(
            "offline mode cannot pull labels: export from Labelbox (project → Export data, NDJSON) "
            "and run `casbusi labels import EXPORT.ndjson`, or drop it into "
            f"{self.paths.inbox}"
        )

    def fetch_mask(self, url: str) -> bytes:
        raise LabellingError("offline mode has no API key to fetch mask URLs; supply --masks DIR")


# -- retrievals: snapshots of an export (+ its masks folder) ------------------------------------


@dataclass(frozen=True)
class Snapshot:
    version: str
    folder: Path
    sha256: str
    reused: bool  # an identical retrieval was archived before: nothing new

    @property
    def export(self) -> Path:
        return self.folder / EXPORT_NAME

    @property
    def masks(self) -> Path:
        return self.folder / MASKS_NAME


def content_hash(export: Path, masks_dir: Path | None) -> str:
    h = hashlib.sha256()
    with export.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if masks_dir is not None and masks_dir.is_dir():
        for f in sorted(p for p in masks_dir.iterdir() if p.is_file()):
            h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def read_source(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / SOURCE_NAME).read_text())
    except (OSError, ValueError):
        return {}


def archived_versions(paths: LabelboxPaths) -> list[str]:
    """Every snapshotted retrieval, oldest first (version names sort by time)."""
    if not paths.exports.is_dir():
        return []
    return sorted(
        p.name for p in paths.exports.iterdir() if p.is_dir() and (p / SOURCE_NAME).is_file()
    )


def snapshot_export(
    paths: LabelboxPaths,
    export: Path,
    masks_dir: Path | None = None,
    origin: str = "file",
    now: datetime | None = None,
) -> Snapshot:
    """Copy an export (and its masks folder) into a new retrieval version; an export identical to
    an archived one (same bytes, same masks) returns that version with `reused=True`."""
    export = Path(export)
    if not export.is_file():
        raise FileNotFoundError(f"labels export {export} does not exist")
    if masks_dir is not None and not Path(masks_dir).is_dir():
        raise FileNotFoundError(f"masks folder {masks_dir} does not exist")
    sha = content_hash(export, masks_dir)
    for version in archived_versions(paths):
        if read_source(paths.snapshot(version)).get("sha256") == sha:
            return Snapshot(version, paths.snapshot(version), sha, reused=True)
    now = now or datetime.now(UTC)
    version = f"lv-{now.strftime('%Y%m%dT%H%M%S%fZ')}-{sha[:8]}"
    folder = paths.snapshot(version)
    staging = paths.exports / f".staging-{version}"
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(export, staging / EXPORT_NAME)
        (staging / MASKS_NAME).mkdir()
        if masks_dir is not None:
            for f in sorted(Path(masks_dir).iterdir()):
                if f.is_file():
                    shutil.copyfile(f, staging / MASKS_NAME / f.name)
        _write_json_atomic(
            staging / SOURCE_NAME,
            {
                "version": version,
                "retrieved_at": now.isoformat(),
                "origin": origin,
                "export_name": export.name,
                "masks_dir": str(masks_dir) if masks_dir else None,
                "sha256": sha,
            },
        )
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Snapshot(version, folder, sha, reused=False)


# -- the inbox: complete *.ndjson files the sensor has not imported yet --------------------------


@dataclass(frozen=True)
class InboxExport:
    path: Path
    masks_dir: Path | None
    token: str  # size:mtime: a changed file under the same name is a new retrieval


def masks_dir_for(export: Path) -> Path | None:
    """`<name>.masks/` beside `<name>.ndjson` holds the PNGs of its masks, if present."""
    candidate = export.with_suffix(".masks")
    return candidate if candidate.is_dir() else None


def scan_labels_inbox(
    inbox: Path, seen: dict[str, str], settle_seconds: float, now: float | None = None
) -> tuple[list[InboxExport], list[str]]:
    """(exports ready to import, names still being written). A file counts as complete when it
    has not changed for `settle_seconds` (upload as `name.ndjson.part` and rename to be sure)."""
    now = time.time() if now is None else now
    ready, waiting = [], []
    if not inbox.is_dir():
        return ready, waiting
    for path in sorted(inbox.glob("*.ndjson")):
        try:
            st = path.stat()
        except OSError:
            continue
        token = f"{st.st_size}:{st.st_mtime_ns}"
        if seen.get(path.name) == token:
            continue
        if now - st.st_mtime < settle_seconds:
            waiting.append(path.name)
            continue
        ready.append(InboxExport(path, masks_dir_for(path), token))
    return ready, waiting

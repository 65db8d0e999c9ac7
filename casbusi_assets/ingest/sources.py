"""Batch keys and where each batch's zip is: the inbox scan the sensor relies on, and the registry.

A batch key is the zip's stem, sanitised into a safe Dagster partition key and folder name. The
registry (`<home>/registry/<key>.json`) remembers zips ingested from outside the inbox (`casbusi
run-batch /some/where/x.zip`), so a later re-materialisation from the UI finds the same file.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from casbusi_assets.storage.home import HomeLayout

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
MAX_KEY_LENGTH = 100


class BatchSourceError(ValueError):
    """No zip can be found for a batch, or a zip name cannot become a batch key."""


def batch_key_for(zip_path: str | Path) -> str:
    """`Batch 10-23 (Mayo).zip` -> `batch_10-23_mayo`: lower-case, [a-z0-9_.-] only.

    Dagster rejects some characters in partition keys ("|" and "," are ambiguous in the UI), and
    the key is also a folder name, so anything else collapses to "_".
    """
    stem = Path(zip_path).name
    if stem.lower().endswith(".zip"):
        stem = stem[:-4]
    key = _UNSAFE.sub("_", stem.strip().lower()).strip("._-")
    key = re.sub(r"\.{2,}", ".", key)[:MAX_KEY_LENGTH].strip("._-")
    if not key:
        raise BatchSourceError(
            f"cannot derive a batch key from the file name {Path(zip_path).name!r}"
        )
    return key


@dataclass(frozen=True)
class ZipFingerprint:
    """What identifies one version of a zip: a changed file under the same name differs here."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> ZipFingerprint:
        st = path.stat()
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns)

    @property
    def token(self) -> str:
        return f"{self.size}-{self.mtime_ns}"


def register_zip(home: HomeLayout, key: str, zip_path: Path) -> Path:
    home.registry.mkdir(parents=True, exist_ok=True)
    entry = home.registry / f"{key}.json"
    entry.write_text(json.dumps({"zip_path": str(zip_path.resolve())}, indent=2))
    return entry


def find_zip(home: HomeLayout, key: str) -> Path:
    """The zip behind batch `key`: the registry first, then a matching zip in the inbox."""
    entry = home.registry / f"{key}.json"
    if entry.is_file():
        path = Path(json.loads(entry.read_text())["zip_path"])
        if path.is_file():
            return path
        raise BatchSourceError(
            f"batch '{key}' was registered from {path}, which no longer exists; "
            f"restore the file or run `casbusi run-batch <zip>` again"
        )
    if home.inbox.is_dir():
        for candidate in sorted(home.inbox.glob("*.zip")):
            if candidate.is_file() and batch_key_for(candidate) == key:
                return candidate
    raise BatchSourceError(
        f"no zip found for batch '{key}': not registered and no matching *.zip in {home.inbox}"
    )


@dataclass(frozen=True)
class InboxZip:
    key: str
    path: Path
    fingerprint: ZipFingerprint


@dataclass
class InboxScan:
    ready: list[InboxZip]  # complete and new (or changed) zips to ingest
    waiting: list[str]  # file names seen but not yet stable
    state: dict  # the next cursor
    conflicts: list[str] = field(default_factory=list)  # names that map to one batch key


def scan_inbox(
    inbox: Path, state: dict | None, settle_seconds: float, now: float | None = None
) -> InboxScan:
    """Decide which zips in the inbox are complete and not yet ingested in this version.

    A zip is complete when its size and mtime are unchanged since the previous scan, or when it
    has not been modified for `settle_seconds`; `*.part` and hidden files are uploads in progress.
    `state` holds {"done": {key: token}, "seen": {key: token}}; it stays one entry per batch.
    """
    now = time.time() if now is None else now
    state = state or {}
    done: dict[str, str] = dict(state.get("done", {}))
    previously_seen: dict[str, str] = state.get("seen", {})
    seen: dict[str, str] = {}
    ready: list[InboxZip] = []
    waiting: list[str] = []
    if not inbox.is_dir():
        return InboxScan(ready, waiting, {"done": done, "seen": seen})
    candidates = []
    for path in sorted(inbox.iterdir()):
        name = path.name
        if name.startswith(".") or not name.lower().endswith(".zip") or not path.is_file():
            continue
        try:
            candidates.append((path, batch_key_for(path)))
        except BatchSourceError:
            continue
    # Two zips whose names sanitise to one key ("A.zip", "a.zip") would overwrite each other's
    # batch: ingest neither until one is renamed.
    per_key = Counter(key for _, key in candidates)
    conflicts = [p.name for p, key in candidates if per_key[key] > 1]
    for path, key in candidates:
        if per_key[key] > 1:
            continue
        try:
            fp = ZipFingerprint.of(path)
        except FileNotFoundError:
            continue
        if done.get(key) == fp.token:
            continue
        settled = (now - fp.mtime_ns / 1e9) >= settle_seconds
        if previously_seen.get(key) == fp.token or settled:
            ready.append(InboxZip(key, path, fp))
            done[key] = fp.token
        else:
            seen[key] = fp.token
            waiting.append(path.name)
    return InboxScan(ready, waiting, {"done": done, "seen": seen}, conflicts)


def describe(zip_: InboxZip) -> dict:
    return {"key": zip_.key, "path": str(zip_.path), **asdict(zip_.fingerprint)}

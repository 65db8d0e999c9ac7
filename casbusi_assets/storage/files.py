"""Stored files by the path a table records: a local path or an fsspec URL (s3://, memory://).

With `CASBUSI_DATA_URL` set (storage/home.py) the warehouse and the files live on object storage,
and tables record URLs such as `s3://bucket/prefix/files/image_table/<batch>/<uid>.png`. Every
reader goes through these functions, so one code path serves both: local paths keep their plain
`pathlib`/OpenCV behaviour; URLs go through fsspec (s3fs for `s3://`).

Credentials and endpoint come only from the standard variables that s3fs/botocore read
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, AWS_PROFILE
...): nothing here takes, logs or records them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from upath import UPath

# Local paths are pathlib.Path (so local behaviour stays exactly as before); URLs are UPath.
DataPath = Path | UPath
PathLike = str | os.PathLike[str] | UPath

# Listings are not cached: another process (a Celery worker, another run) may have written or
# deleted objects since, and a stale listing would hide a batch from a glob.
_STORAGE_OPTIONS: dict[str, dict[str, Any]] = {"s3": {"use_listings_cache": False}}
# An upload holds at most this much of a staged folder in memory at once.
_UPLOAD_FILES, _UPLOAD_BYTES = 64, 64 * 1024 * 1024


def _protocol(value: str) -> str:
    return value.split("://", 1)[0].lower() if "://" in value else ""


def is_remote(path: PathLike) -> bool:
    """True for fsspec URLs other than file:// (s3://, memory://, gs:// ...)."""
    if isinstance(path, UPath) and not isinstance(path, Path):
        return True
    return _protocol(str(path)) not in ("", "file", "local")


def data_path(value: PathLike) -> DataPath:
    """A local path (file:// URLs included) as a pathlib.Path, anything else as a UPath."""
    if isinstance(value, UPath) and not isinstance(value, Path):
        return value
    text = os.fspath(value) if not isinstance(value, str) else value
    proto = _protocol(text)
    if proto in ("file", "local"):
        return Path(UPath(text).path)
    if not proto:
        return Path(text)
    return UPath(text.rstrip("/"), **_STORAGE_OPTIONS.get(proto, {}))


def filesystem(path: PathLike) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem behind a stored path (local paths: the local filesystem)."""
    p = data_path(path)
    return p.fs if isinstance(p, UPath) and not isinstance(p, Path) else fsspec.filesystem("file")


def _fs_and_key(path: PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    p = data_path(path)
    return p.fs, p.path


def read_bytes(path: PathLike) -> bytes:
    """The stored file's bytes; FileNotFoundError when it is missing."""
    if not is_remote(path):
        return Path(os.fspath(path) if not isinstance(path, str) else path).read_bytes()
    fs, key = _fs_and_key(path)
    return fs.cat_file(key)  # one GET, no HEAD first


def exists(path: PathLike | None) -> bool:
    """Whether a stored file is there (False for empty or missing paths)."""
    if path is None or (isinstance(path, str) and not path):
        return False
    if not is_remote(path):
        return Path(os.fspath(path) if not isinstance(path, str) else path).is_file()
    fs, key = _fs_and_key(path)
    try:
        return fs.isfile(key)
    except (FileNotFoundError, PermissionError):
        return False


def read_image(path: PathLike | None, flags: int | None = None) -> np.ndarray | None:
    """A stored image decoded by OpenCV (default IMREAD_UNCHANGED), or None when the path is
    empty, missing or not an image: the same contract as cv2.imread."""
    import cv2

    if flags is None:
        flags = cv2.IMREAD_UNCHANGED
    if path is None or (isinstance(path, str) and not path):
        return None
    if not is_remote(path):
        return cv2.imread(os.fspath(path) if not isinstance(path, str) else path, flags)
    try:
        data = read_bytes(path)
    except (FileNotFoundError, PermissionError):
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)


def list_files(folder: PathLike, pattern: str = "*") -> list[str]:
    """Files matching a glob pattern under a stored folder, sorted, as the strings tables record
    (URLs when remote)."""
    p = data_path(folder)
    if not is_remote(p):
        return sorted(str(f) for f in Path(p).glob(pattern) if f.is_file())
    fs, key = p.fs, p.path
    proto = p.protocol
    # detail=True: the listing says which entries are files (no HEAD per entry)
    found = fs.glob(f"{key.rstrip('/')}/{pattern}", detail=True)
    files = [f for f, info in found.items() if info.get("type") == "file"]
    return sorted(str(UPath(f"{proto}://{f.lstrip('/')}")) for f in files)


def remove_file(path: PathLike) -> bool:
    """Delete one stored file; False when it was not there."""
    p = data_path(path)
    if not is_remote(p):
        try:
            Path(p).unlink()
        except FileNotFoundError:
            return False
        return True
    if not p.fs.exists(p.path):
        return False
    p.fs.rm_file(p.path)
    return True


def remove_tree(folder: PathLike) -> None:
    """Delete a stored folder and everything under it; nothing there is no error."""
    import shutil

    p = data_path(folder)
    if not is_remote(p):
        shutil.rmtree(p, ignore_errors=True)
        return
    fs, key = p.fs, p.path
    objects = fs.find(key)
    if objects:
        fs.rm(objects)


def upload_tree(local_dir: Path, remote_dir: UPath, *, replace: bool = True) -> list[str]:
    """Copy every file under a local folder to a remote folder (same relative names) and, with
    `replace`, delete the remote folder's other objects, so the remote folder ends up holding
    exactly the local one. Returns the remote keys written.

    New objects are uploaded before old ones are deleted: a reader never sees the folder empty,
    and a failed upload leaves every old object whose name was not re-sent.
    """
    fs, key = remote_dir.fs, remote_dir.path.rstrip("/")
    local = [f for f in sorted(local_dir.rglob("*")) if f.is_file()]
    remote = [f"{key}/{f.relative_to(local_dir).as_posix()}" for f in local]
    old: Sequence[str] = fs.find(key) if replace else []
    # Concurrent PUTs in bounded chunks (pipe is one request per file, without put's per-file
    # directory checks; measured 1.6x faster than fs.put on moto).
    chunk: dict[str, bytes] = {}
    size = 0
    for f, r in zip(local, remote, strict=True):
        data = f.read_bytes()
        chunk[r] = data
        size += len(data)
        if len(chunk) >= _UPLOAD_FILES or size >= _UPLOAD_BYTES:
            fs.pipe(chunk)
            chunk, size = {}, 0
    if chunk:
        fs.pipe(chunk)
    stale = sorted(set(old) - set(remote))
    if stale:
        fs.rm(stale)
    return remote

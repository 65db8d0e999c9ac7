"""Replace one batch's output folder atomically, so a re-run leaves no orphans and a failed run
leaves the previous files untouched.

Files are written into a hidden staging folder beside the final one; on success the old folder is
moved aside and the staging folder renamed into place (both renames on the same filesystem).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StagedBatchDir:
    staging: Path  # write here
    final: Path  # where the files will be once committed: use it for paths in tables

    def final_path(self, staged_path: Path) -> Path:
        return self.final / staged_path.relative_to(self.staging)


def batch_files_dir(files_root: Path, asset: str, batch_id: str) -> Path:
    return files_root / asset / batch_id


@contextmanager
def staged_batch_dir(files_root: Path, asset: str, batch_id: str) -> Iterator[StagedBatchDir]:
    final = batch_files_dir(files_root, asset, batch_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = final.parent / f".staging-{batch_id}-{token}"
    staging.mkdir()
    try:
        yield StagedBatchDir(staging=staging, final=final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    trash = final.parent / f".trash-{batch_id}-{token}"
    if final.exists():
        final.rename(trash)
    staging.rename(final)
    shutil.rmtree(trash, ignore_errors=True)


def remove_batch_files(files_root: Path, asset: str, batch_id: str) -> None:
    shutil.rmtree(batch_files_dir(files_root, asset, batch_id), ignore_errors=True)

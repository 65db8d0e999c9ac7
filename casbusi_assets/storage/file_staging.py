"""Replace one batch's output folder atomically, so a re-run leaves no orphans and a failed run
leaves the previous files untouched.

Files are written into a hidden staging folder beside the final one; on success the old folder is
moved aside and the staging folder renamed into place (both renames on the same filesystem).

When the files root is on object storage (CASBUSI_DATA_URL, storage/home.py) the staging folder
is a local temporary folder; on success its files are uploaded to the batch's remote folder and
the folder's other (old) objects deleted, so the remote folder ends up holding exactly this run's
files. A failure before the upload leaves the old objects untouched; object stores have no
rename, so a failure during the upload can leave a mix, which the re-run replaces.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from casbusi_assets.storage.files import DataPath, data_path, is_remote, remove_tree, upload_tree


@dataclass(frozen=True)
class StagedBatchDir:
    staging: Path  # write here: always a local folder
    # Where the files will be once committed: a local Path or, on object storage, a UPath.
    # Record str(final_path(p)) in tables (a URL string when remote).
    final: DataPath

    def final_path(self, staged_path: Path) -> DataPath:
        return self.final / Path(staged_path).relative_to(self.staging).as_posix()


def batch_files_dir(files_root: DataPath, asset: str, batch_id: str) -> DataPath:
    return data_path(files_root) / asset / batch_id


@contextmanager
def staged_batch_dir(files_root: DataPath, asset: str, batch_id: str) -> Iterator[StagedBatchDir]:
    final = batch_files_dir(files_root, asset, batch_id)
    if is_remote(final):
        staging = Path(tempfile.mkdtemp(prefix=f"casbusi-staging-{asset}-{batch_id}-"))
        try:
            yield StagedBatchDir(staging=staging, final=final)
            upload_tree(staging, final, replace=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
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


def remove_batch_files(files_root: DataPath, asset: str, batch_id: str) -> None:
    remove_tree(batch_files_dir(files_root, asset, batch_id))

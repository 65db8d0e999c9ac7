"""Shared generated batches: generating is the slow part, so each is made once per session."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from casbusi_assets.synthetic import BatchFiles, generate_batches


@dataclass
class Generated:
    files: BatchFiles
    truth: pd.DataFrame
    members: dict[str, bytes]

    def dicom_rows(self) -> pd.DataFrame:
        return self.truth[self.truth["member_role"] == "dicom"]


def load(files: BatchFiles) -> Generated:
    with zipfile.ZipFile(files.zip_path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return Generated(files, pd.read_parquet(files.truth_path), members)


@pytest.fixture(scope="session")
def default_batches(tmp_path_factory: pytest.TempPathFactory) -> list[Generated]:
    """Two batches with the default arguments (patients=8, seed=0)."""
    out: Path = tmp_path_factory.mktemp("synthetic_default")
    return [load(f) for f in generate_batches(out, batches=2)]

"""Shared fixtures: a temporary home per test module, and zips built from shipped DICOM files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.storage.home import HomeLayout

# Real ultrasound screen captures that pydicom / pydicom-data ship (no network needed).
REAL_US_FILES = {
    "US1_J2KR.dcm": "image",  # GE LOGIQ, JPEG 2000 lossless, YBR_RCT
    "US1_UNCR.dcm": "image",  # same capture, uncompressed RGB (power Doppler)
    "OBXXXX1A.dcm": "image",  # Philips, palette colour, calipers
    "OBXXXX1A_rle.dcm": "image",  # RLE lossless
    "OBXXXX1A_rle_2frame.dcm": "video",  # RLE, 2 frames
    "color3d_jpeg_baseline.dcm": "video",  # 120-frame JPEG baseline cine
    "gdcm-US-ALOKA-16.dcm": "image",  # ALOKA dual view, 16-bit palette
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "image",  # JPEG lossless, MONOCHROME2
    "examples_palette.dcm": "image",
}


def with_identifiers(name: str, patient: str, accession: str) -> bytes:
    """The shipped file with PatientID / AccessionNumber set (pixels untouched): most test files
    lack an accession, which the catalog rightly quarantines as `missing_identifier`."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientID = patient
    ds.AccessionNumber = accession
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def home(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home").create()


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> HomeLayout:
    return HomeLayout(tmp_path_factory.mktemp("home")).create()

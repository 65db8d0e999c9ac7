"""Shared fixtures: a temporary home per test module, and zips built from shipped DICOM files."""

from __future__ import annotations

import io
import socket
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.storage.home import HomeLayout
from casbusi_assets.synthetic.scanner_screen import PROFILES, CaptureSpec

# Every real ultrasound screen capture that pydicom / pydicom-data ship (no network needed; see
# /work/shared/reference/offline-stack.md section 4), with the kind its header gives it.
REAL_US_FILES = {
    "US1_UNCR.dcm": "image",  # GE LOGIQ 700 power Doppler, uncompressed RGB
    "US1_UNCI.dcm": "image",  # the same, implicit VR
    "US1_J2KR.dcm": "image",  # the same, JPEG 2000 lossless (YBR_RCT)
    "US1_J2KI.dcm": "image",  # the same, lossy JPEG 2000 (YBR_ICT)
    "examples_jpeg2k.dcm": "image",  # the same again, as pydicom's example
    "examples_rgb_color.dcm": "image",  # a 240 x 320 copy of it
    "ExplVR_BigEnd.dcm": "image",  # 60 x 80 power-Doppler crop, explicit VR big endian
    "OBXXXX1A.dcm": "image",  # Philips OB, palette colour, calipers
    "OBXXXX1A_expb.dcm": "image",  # the same, explicit big endian
    "OBXXXX1A_rle.dcm": "image",  # the same, RLE lossless
    "examples_palette.dcm": "image",  # the same, cropped to 350 rows
    "OBXXXX1A_2frame.dcm": "video",  # US Image Storage with NumberOfFrames 2: a clip
    "OBXXXX1A_expb_2frame.dcm": "video",
    "OBXXXX1A_rle_2frame.dcm": "video",  # RLE, US Multi-frame
    "examples_ybr_color.dcm": "video",  # 30-frame JPEG baseline YBR_FULL_422
    "color3d_jpeg_baseline.dcm": "video",  # 120-frame JPEG baseline cine
    "color-pl.dcm": "image",  # colour flow (red and blue), planar configuration 1
    "color-px.dcm": "image",  # the same, pixel-interleaved
    "gdcm-US-ALOKA-16.dcm": "image",  # ALOKA dual view, 16-bit palette
    "gdcm-US-ALOKA-16_big.dcm": "image",  # the same, explicit big endian
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "image",  # Philips EPIQ, JPEG lossless, MONOCHROME2
}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def philips_capture_spec(**overrides: object) -> CaptureSpec:
    """A plain 800x600 Philips iU22 grey capture for rendering tests: no annotation, no body
    marker; any CaptureSpec field can be overridden."""
    profile = PROFILES[3]  # Philips iU22
    fields: dict[str, object] = {
        "capture": "grayscale",
        "width": 800,
        "height": 600,
        "profile": profile,
        "probe": profile.probes[0],
        "study_date": "20240115",
        "study_time": "101500",
        "annotation": None,
        "body_marker": False,
    }
    return CaptureSpec(**{**fields, **overrides})


def with_identifiers(name: str, patient: str, accession: str) -> bytes:
    """The shipped file with PatientID / AccessionNumber set (pixels untouched): most test files
    lack an accession, which the catalog records in `missing_links` (the file is still ok)."""
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

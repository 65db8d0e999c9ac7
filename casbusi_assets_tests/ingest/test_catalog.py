"""Catalog rows: kinds, identifiers, hashes, header JSON and every quarantine code."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from casbusi_assets.ingest.catalog import CATALOG_COLUMNS, catalog_member, catalog_zip
from casbusi_assets.ingest.zip_members import ArchiveLimitError, CorruptArchiveError, ZipLimits
from casbusi_assets.storage.schemas import DICOM_CATALOG, QUARANTINE_CODES

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
BASIC_SR = "1.2.840.10008.5.1.4.1.1.88.11"

# Real ultrasound files from pydicom / pydicom-data (offline; see offline-stack.md section 4).
REAL_FILES = {
    "US1_J2KR.dcm": "image",
    "US1_UNCR.dcm": "image",
    "OBXXXX1A.dcm": "image",
    "OBXXXX1A_rle.dcm": "image",
    "OBXXXX1A_rle_2frame.dcm": "video",
    "examples_ybr_color.dcm": "video",
    "gdcm-US-ALOKA-16.dcm": "image",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "image",
    "color-pl.dcm": "image",
}


def real(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def make_dicom(
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    *,
    patient_id: str | None = "P001",
    accession: str | None = "A001",
    sop_uid: str | None = None,
    frames: int | None = None,
    sop_class: str = US_IMAGE,
    regions: int = 1,
    preamble: bool = True,
    **extra: object,
) -> bytes:
    """A small valid DICOM file; pixels HxW, HxWx3 or FxHxW(x3) uint8/uint16."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    if sop_uid != "":
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.Modality = "US"
    ds.Manufacturer = "Acme"
    ds.StudyDate = "20240131"
    ds.PatientSex = "F"
    if patient_id is not None:
        ds.PatientID = patient_id
    if accession is not None:
        ds.AccessionNumber = accession
    if regions:
        items = []
        for i in range(regions):
            item = Dataset()
            item.RegionSpatialFormat = 1
            item.RegionDataType = 1
            item.RegionFlags = 0
            item.RegionLocationMinX0, item.RegionLocationMinY0 = 10 + i, 20
            item.RegionLocationMaxX1, item.RegionLocationMaxY1 = 100, 80
            item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3
            item.PhysicalDeltaX = item.PhysicalDeltaY = 0.01
            items.append(item)
        ds.SequenceOfUltrasoundRegions = Sequence(items)
    if pixels is not None:
        multi = frames is not None
        shape = pixels.shape[1:] if multi else pixels.shape
        ds.Rows, ds.Columns = shape[0], shape[1]
        ds.SamplesPerPixel = 3 if len(shape) == 3 else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        bits = pixels.dtype.itemsize * 8
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        if multi:
            ds.NumberOfFrames = frames
        ds.PixelData = pixels.tobytes()
    for key, value in extra.items():
        setattr(ds, key, value)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    return data if preamble else data[132:]


def gray(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w), dtype=np.uint8)


# --------------------------------------------------------------------------- catalog_member


def test_row_has_every_catalog_column_and_typed_values() -> None:
    row = catalog_member("a/x.dcm", make_dicom(gray(), regions=2))
    assert list(row) == CATALOG_COLUMNS
    assert set(row) | {"batch_id"} == set(DICOM_CATALOG.names)
    assert row["status"] == "ok" and row["error_code"] is None and row["error"] is None
    assert row["kind"] == "image" and row["number_of_frames"] == 1
    assert (row["rows"], row["columns"], row["bits_allocated"]) == (48, 64, 8)
    assert row["patient_id"] == "P001" and row["accession_number"] == "A001"
    assert row["modality"] == "US" and row["study_date"] == "20240131"
    assert row["transfer_syntax_uid"] == ExplicitVRLittleEndian
    assert row["region_count"] == 2
    regions = json.loads(row["us_regions"])
    assert regions[1]["RegionLocationMinX0"] == 11 and regions[0]["PhysicalDeltaX"] == 0.01


def test_hashes_cover_file_and_raw_pixels() -> None:
    px = gray()
    data = make_dicom(px)
    row = catalog_member("x.dcm", data)
    assert row["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert row["pixel_sha256"] == hashlib.sha256(px.tobytes()).hexdigest()
    # Same pixels, different header: same pixel hash, different file hash.
    other = catalog_member("y.dcm", make_dicom(px, patient_id="P002"))
    assert other["pixel_sha256"] == row["pixel_sha256"]
    assert other["file_sha256"] != row["file_sha256"]


def test_header_is_compact_dicom_json_with_meta_and_sequences_but_no_pixels() -> None:
    row = catalog_member("x.dcm", make_dicom(gray(), regions=1))
    header = json.loads(row["header"])
    assert header["00020010"]["Value"] == [ExplicitVRLittleEndian]  # file meta included
    assert header["00100020"] == {"vr": "LO", "Value": ["P001"]}
    seq = header["00186011"]["Value"]  # SequenceOfUltrasoundRegions, full items
    assert seq[0]["00186018"]["Value"] == [10]
    assert "7FE00010" not in header
    assert ": " not in row["header"]  # compact separators


def test_large_binary_values_become_bulk_data_uris() -> None:
    data = make_dicom(gray(), RedPaletteColorLookupTableData=bytes(4096))
    header = json.loads(catalog_member("a b.dcm", data)["header"])
    assert header["00281201"]["BulkDataURI"].startswith("zip-member:a%20b.dcm#")


def test_kind_comes_from_frames_not_file_name() -> None:
    frames = np.stack([gray(seed=i) for i in range(3)])
    video = catalog_member("image_0001.dcm", make_dicom(frames, frames=3, sop_class=US_MULTIFRAME))
    assert video["kind"] == "video" and video["number_of_frames"] == 3
    still = catalog_member("video_0001.dcm", make_dicom(gray()))
    assert still["kind"] == "image"


def test_sr_without_pixels_is_no_pixels_and_ok() -> None:
    row = catalog_member("sr.dcm", make_dicom(None, sop_class=BASIC_SR, regions=0))
    assert row["kind"] == "no_pixels" and row["status"] == "ok"
    assert row["pixel_sha256"] is None and row["number_of_frames"] is None
    assert row["region_count"] == 0 and row["us_regions"] == "[]"


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({"patient_id": None}, "patient_id"),
        ({"accession": "  "}, "accession_number"),
        ({"patient_id": "", "accession": None}, "patient_id,accession_number"),
    ],
)
def test_missing_case_links_are_catalogued_ok_with_the_link_named(
    kwargs: dict, missing: str
) -> None:
    # A readable image that cannot be linked to a case is data: ok, kind set, every column
    # filled; `missing_links` says which link is absent (the cleaning stage excludes it later).
    row = catalog_member("x.dcm", make_dicom(gray(), **kwargs))
    assert row["status"] == "ok" and row["error_code"] is None and row["error"] is None
    assert row["missing_links"] == missing
    assert row["kind"] == "image" and row["rows"] == 48 and row["header"]


def test_linked_file_has_no_missing_links() -> None:
    assert catalog_member("x.dcm", make_dicom(gray()))["missing_links"] is None


def test_missing_sop_instance_uid_is_quarantined() -> None:
    row = catalog_member("x.dcm", make_dicom(gray(), sop_uid=""))
    assert row["status"] == "quarantined" and row["error_code"] == "missing_sop_instance_uid"
    assert "SOPInstanceUID" in row["error"]
    assert row["kind"] == "image" and row["rows"] == 48 and row["header"]


def _cut_before_pixel_data(data: bytes) -> bytes:
    """`data` cut exactly where the PixelData element (7FE0,0010) starts."""
    at = data.rfind(b"\xe0\x7f\x10\x00")
    assert at > 0
    return data[:at]


@pytest.mark.parametrize("sop_class", [US_IMAGE, US_MULTIFRAME])
def test_image_class_cut_on_an_element_boundary_before_pixels_is_truncated(
    sop_class: str,
) -> None:
    # The header parses completely (the cut falls between two elements), but an image SOP class
    # must carry pixel data: the file is incomplete, not a pixel-less object.
    frames = 2 if sop_class == US_MULTIFRAME else None
    px = np.stack([gray()] * 2) if frames else gray()
    data = make_dicom(px, frames=frames, sop_class=sop_class)
    row = catalog_member("cut.dcm", _cut_before_pixel_data(data))
    assert row["status"] == "quarantined" and row["error_code"] == "truncated"
    assert "no PixelData" in row["error"] and "Ultrasound" in row["error"]
    assert row["patient_id"] == "P001" and row["rows"] == 48  # header columns still filled
    real_cut = _cut_before_pixel_data(real("US1_UNCR.dcm"))
    row = catalog_member("us1.dcm", real_cut)
    assert (row["status"], row["error_code"]) == ("quarantined", "truncated")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty file"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj" + b" " * 300, "PDF"),
        (b"\x00\x00\x00\x01Bud1" + bytes(2000), "no 'DICM' prefix"),  # .DS_Store
        (b"hello, I am a text file\n" * 20, "no 'DICM' prefix"),
    ],
)
def test_not_dicom(data: bytes, needle: str) -> None:
    row = catalog_member("junk", data)
    assert row["status"] == "quarantined" and row["error_code"] == "not_dicom"
    assert needle in row["error"]
    assert row["kind"] is None and row["file_size"] == len(data)


def test_dicom_without_preamble_is_read() -> None:
    row = catalog_member("raw.dcm", make_dicom(gray(), preamble=False))
    assert row["status"] == "ok" and row["kind"] == "image" and row["patient_id"] == "P001"
    # Real files too: cut the preamble and prefix off US1_UNCR.
    row = catalog_member("us1.dcm", real("US1_UNCR.dcm")[132:])
    assert row["kind"] == "image" and row["rows"] == 480 and row["error_code"] != "not_dicom"


def test_truncated_native_pixels() -> None:
    data = make_dicom(gray(100, 100))
    row = catalog_member("cut.dcm", data[: len(data) - 3000])
    assert row["error_code"] == "truncated"
    assert "7FE0,0010" in row["error"]
    assert row["patient_id"] == "P001"  # header columns still filled


def test_native_pixels_shorter_than_declared_geometry() -> None:
    # A complete file whose PixelData element is simply too short for Rows x Columns.
    data = make_dicom(gray(10, 10), Rows=20)
    row = catalog_member("short.dcm", data)
    assert row["error_code"] == "truncated"
    assert "expected 200 (20 rows x 10 columns" in row["error"]


@pytest.mark.parametrize("name", ["US1_J2KR.dcm", "OBXXXX1A_rle_2frame.dcm", "US1_UNCR.dcm"])
def test_truncated_real_files(name: str) -> None:
    data = real(name)
    row = catalog_member(name, data[: len(data) // 2])
    assert row["status"] == "quarantined" and row["error_code"] == "truncated"


def test_encapsulated_frame_without_end_marker_is_truncated() -> None:
    # Keep the item structure valid but cut the last JPEG frame's codestream short.
    ds = pydicom.dcmread(BytesIO(real("examples_ybr_color.dcm")))
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=30))
    frames[-1] = frames[-1][: len(frames[-1]) // 2]
    ds.PixelData = pydicom.encaps.encapsulate(frames)
    buf = BytesIO()
    ds.save_as(buf)
    row = catalog_member("cut.dcm", buf.getvalue())
    assert row["error_code"] == "truncated"
    assert "frame 29" in row["error"] and "FFD9" in row["error"]


def test_encapsulated_frame_count_mismatch() -> None:
    ds = pydicom.dcmread(BytesIO(real("examples_ybr_color.dcm")))
    ds.NumberOfFrames = 40
    buf = BytesIO()
    ds.save_as(buf)
    row = catalog_member("short.dcm", buf.getvalue())
    assert row["error_code"] == "truncated"
    assert "30 frame(s), NumberOfFrames says 40" in row["error"]


def test_bad_rle_header_is_undecodable() -> None:
    ds = pydicom.dcmread(BytesIO(real("OBXXXX1A_rle.dcm")))
    frame = bytearray(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))
    frame[0:4] = (9).to_bytes(4, "little")  # 9 segments for 8-bit grey: impossible
    ds.PixelData = pydicom.encaps.encapsulate([bytes(frame)])
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    buf = BytesIO()
    ds.save_as(buf)
    row = catalog_member("rle.dcm", buf.getvalue())
    assert row["error_code"] == "undecodable_pixels" and "RLE header" in row["error"]


def test_transfer_syntax_without_decoder_is_undecodable() -> None:
    ds = pydicom.dcmread(BytesIO(real("US1_J2KR.dcm")))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC: no decoder
    buf = BytesIO()
    ds.save_as(buf)
    row = catalog_member("mpeg.dcm", buf.getvalue())
    assert row["error_code"] == "undecodable_pixels" and "MPEG-4" in row["error"]


@pytest.mark.parametrize(("name", "kind"), sorted(REAL_FILES.items()))
def test_real_files_kind_and_no_structural_problem(name: str, kind: str) -> None:
    row = catalog_member(name, real(name))
    assert row["kind"] == kind
    # Most of these public files lack an accession number, some the patient id too: still ok.
    assert row["status"] == "ok" and row["error_code"] is None, row["error"]
    both = {"color-pl.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"}
    expected = {"gdcm-US-ALOKA-16.dcm": None}.get(
        name, "patient_id,accession_number" if name in both else "accession_number"
    )
    assert row["missing_links"] == expected
    assert row["rows"] > 0 and row["pixel_sha256"] and json.loads(row["header"])


def test_all_quarantine_codes_are_known() -> None:
    rows = [
        catalog_member("a", b""),
        catalog_member("b", make_dicom(gray(), sop_uid="")),
        catalog_member("c", make_dicom(gray(), Rows=200)),
    ]
    assert {r["error_code"] for r in rows} <= set(QUARANTINE_CODES)


# --------------------------------------------------------------------------- catalog_zip


@pytest.fixture(scope="module")
def batch_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zips") / "batch.zip"
    native = make_dicom(gray(200, 200))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in REAL_FILES:
            zf.write(get_testdata_file(name), f"batch/{name}")
        zf.writestr("batch/good.dcm", make_dicom(gray()))
        zf.writestr("batch/cine.dcm", make_dicom(np.stack([gray()] * 4), frames=4))
        zf.writestr("batch/sr.dcm", make_dicom(None, sop_class=BASIC_SR))
        zf.writestr("batch/nopid.dcm", make_dicom(gray(), patient_id=None))
        zf.writestr("batch/cut.dcm", native[: len(native) // 2])
        zf.writestr("batch/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(500))
        zf.writestr("batch/report.pdf", b"%PDF-1.7\n" + bytes(500))
        zf.writestr("batch/empty.dcm", b"")
        zf.writestr("batch/sub/", b"")
        zf.writestr("../evil.dcm", make_dicom(gray()))
        zf.writestr("/abs/path.dcm", make_dicom(gray()))
        zf.writestr("total_cases_anon.csv", b"PatientID\n1\n")
        # A decompression bomb: 300 MB of zeros deflate to ~300 KB. Streamed, never in memory.
        with zf.open("batch/bomb.dcm", "w", force_zip64=True) as fh:
            chunk = bytes(16 * 1024 * 1024)
            for _ in range(300 // 16):
                fh.write(chunk)
    return path


EXPECTED = {
    "batch/good.dcm": ("ok", None, "image"),
    "batch/cine.dcm": ("ok", None, "video"),
    "batch/sr.dcm": ("ok", None, "no_pixels"),
    "batch/nopid.dcm": ("ok", None, "image"),  # no PatientID: readable, so catalogued
    "batch/cut.dcm": ("quarantined", "truncated", "image"),
    "batch/.DS_Store": ("quarantined", "not_dicom", None),
    "batch/report.pdf": ("quarantined", "not_dicom", None),
    "batch/empty.dcm": ("quarantined", "not_dicom", None),
    "../evil.dcm": ("quarantined", "unsafe_path", None),
    "/abs/path.dcm": ("quarantined", "unsafe_path", None),
    "batch/bomb.dcm": ("quarantined", "too_large", None),
    "total_cases_anon.csv": ("ok", None, "case_csv"),  # an expected member, not junk
}


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
def test_catalog_zip_every_member_one_row(batch_zip: Path, executor: str) -> None:
    calls: list[tuple[int, int]] = []
    limits = ZipLimits(max_member_bytes=64 * 1024 * 1024)
    df = catalog_zip(
        batch_zip, "b1", limits, workers=2, progress=lambda d, t: calls.append((d, t)),
        executor=executor,
    )  # fmt: skip
    assert list(df.columns) == DICOM_CATALOG.names
    assert (df["batch_id"] == "b1").all()
    assert df["member_path"].tolist() == sorted(df["member_path"])
    rows = df.set_index("member_path")
    assert len(df) == len(EXPECTED) + len(REAL_FILES)
    for path, (status, code, kind) in EXPECTED.items():
        got = rows.loc[path]
        assert (got["status"], got["error_code"], got["kind"]) == (status, code, kind), path
        assert got["error"] or status == "ok"
    for name, kind in REAL_FILES.items():
        assert rows.loc[f"batch/{name}", "kind"] == kind
    assert "over max_member_bytes" in rows.loc["batch/bomb.dcm", "error"]
    assert calls[-1] == (len(df), len(df))
    assert str(df["rows"].dtype) == "Int64"


def test_catalog_zip_refuses_corrupt_or_oversized_batches(tmp_path: Path, batch_zip: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"\x13\x37" * 4000)
    with pytest.raises(CorruptArchiveError):
        catalog_zip(junk, "b")
    with pytest.raises(ArchiveLimitError, match="max_total_bytes"):
        catalog_zip(batch_zip, "b", ZipLimits(max_total_bytes=100 * 1024 * 1024))


def test_catalog_zip_progress_is_throttled(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    blob = make_dicom(gray(8, 8))
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(300):
            zf.writestr(f"{i:04d}.dcm", blob)
    calls: list[int] = []
    df = catalog_zip(path, "m", executor="thread", workers=2, progress=lambda d, t: calls.append(d))
    assert len(df) == 300 and (df["status"] == "ok").all()
    assert 40 <= len(calls) <= 60 and calls[-1] == 300


# --------------------------------------------------------------------------- header JSON


def _headers(name: str, data: bytes, fast: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    from casbusi_assets.ingest import catalog as cat

    if not fast:  # pydicom's own Dataset.to_json_dict for every element
        monkeypatch.setattr(cat, "_fast_path_usable", lambda: False)
    try:
        return catalog_member(name, data)["header"]
    finally:
        monkeypatch.undo()


def _real_and_generated_members(tmp_path: Path) -> list[tuple[str, bytes]]:
    from casbusi_assets.synthetic import generate_batch
    from casbusi_assets_tests.conftest import REAL_US_FILES

    members = [(n, Path(get_testdata_file(n)).read_bytes()) for n in sorted(REAL_US_FILES)]
    # pydicom's own test files: implicit VR, big endian, odd charsets, private tags, bad values
    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    members += [
        (p.name, p.read_bytes())
        for p in sorted(test_files.rglob("*.dcm"))
        if p.stat().st_size < 8_000_000
    ]
    made = generate_batch(tmp_path, 0, patients=3, seed=4141)  # a seed nothing was tuned on
    with zipfile.ZipFile(made.zip_path) as zf:
        members += [(i.filename, zf.read(i)) for i in zf.infolist() if i.filename.endswith(".dcm")]
    return members


def test_header_json_is_byte_for_byte_what_pydicom_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast serialiser writes simple raw elements itself; it must never change a header.
    members = _real_and_generated_members(tmp_path)
    compared = 0
    for name, data in members:
        with pytest.MonkeyPatch.context() as mp, _quiet():
            theirs = _headers(name, data, fast=False, monkeypatch=mp)
            ours = _headers(name, data, fast=True, monkeypatch=mp)
        assert ours == theirs, name
        compared += theirs is not None
    assert compared > 100  # real captures, pydicom's test files and generated members


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # pydicom warns about the bad values some test files carry; both paths see the same ones
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_header_json_drops_what_pydicom_drops_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Values pydicom rejects under strict reading (a 70-character SH, a UID with letters, a DS
    # that is not a number) are dropped from the header as to_json_dict(suppress_invalid_tags)
    # drops them; numbers, multi-values and empty values come out as pydicom writes them.
    with _quiet():
        data = _header_test_file()
    with _quiet():
        theirs = _headers("m.dcm", data, fast=False, monkeypatch=monkeypatch)
        ours = _headers("m.dcm", data, fast=True, monkeypatch=monkeypatch)
    assert ours == theirs
    header = json.loads(ours)
    assert "00081010" not in header and "00200052" not in header and "00180088" not in header
    assert header["00081090"] == {"vr": "LO", "Value": ["ok model", "second"]}
    assert header["00200013"] == {"vr": "IS", "Value": [7]}
    assert header["00280002"] == {"vr": "US", "Value": [3]}
    assert header["00181063"] == {"vr": "DS"}
    assert header["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", ""]}
    assert header["00186031"] == {"vr": "CS", "Value": ["LINEAR"]}


def _header_test_file() -> bytes:
    ds = Dataset()
    ds.SOPClassUID = US_IMAGE
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientID = "P001"
    ds.add_new(0x00081090, "LO", "ok model\\second ")  # multi-valued text
    ds.add_new(0x00081010, "SH", "x" * 70)  # too long for SH
    ds.add_new(0x00200052, "UI", "1.2.abc")  # not a UID
    ds.add_new(0x00280030, "DS", "0.25\\1.5e-1")  # exponent: pydicom's path
    ds.add_new(0x00180088, "DS", "9.99")  # made "abcd" (not a number) in the bytes below
    ds.add_new(0x00200013, "IS", "007")
    ds.add_new(0x00280002, "US", 3)
    ds.add_new(0x00181063, "DS", "")
    ds.add_new(0x00080008, "CS", ["ORIGINAL", "PRIMARY", ""])
    ds.add_new(0x00186031, "CS", "LINEAR ")
    buf = BytesIO()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = US_IMAGE
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue().replace(b"9.99", b"abcd")


def test_a_pydicom_without_the_private_lut_tags_falls_back_to_pydicoms_own_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casbusi_assets.ingest import catalog as cat

    data = real("OBXXXX1A.dcm")
    expected = _headers("OBXXXX1A.dcm", data, False, monkeypatch)
    monkeypatch.setattr(cat, "_LUT_DESCRIPTOR_TAGS", None)  # as if pydicom moved it
    assert not cat._fast_path_usable()
    assert catalog_member("OBXXXX1A.dcm", data)["header"] == expected

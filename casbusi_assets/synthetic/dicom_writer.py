"""DICOM encoding of synthetic captures: headers that look like anonymised US captures.

pydicom can encode RLE Lossless (pylibjpeg-rle) and JPEG 2000 Lossless (pylibjpeg-openjpeg) but
has no JPEG Baseline encoder, so those two plus Explicit VR Little Endian are the mix written.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from casbusi_assets.synthetic.config import EXPLICIT_LE, J2K, RLE
from casbusi_assets.synthetic.scanner_screen import Region

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"
TRANSFER_SYNTAX_UIDS: dict[str, UID] = {
    EXPLICIT_LE: ExplicitVRLittleEndian,
    RLE: RLELossless,
    J2K: JPEG2000Lossless,
}


def make_uid(*parts: object) -> str:
    """Deterministic '2.25.<int>' UID from the parts (a hash, so no RNG state is consumed)."""
    key = "/".join(str(p) for p in parts).encode()
    return "2.25." + str(int(hashlib.sha256(key).hexdigest()[:30], 16))


@dataclass(frozen=True)
class StudyHeader:
    """Header fields shared by every instance of a study."""

    patient_id: str
    accession_number: str
    study_instance_uid: str
    study_date: str
    study_time: str
    study_description: str
    patient_sex: str
    patient_age: int
    patient_size_m: float | None
    patient_weight_kg: float | None
    manufacturer: str
    model: str
    software: str
    probe: str
    study_id: str


def _common(ds: Dataset, st: StudyHeader, series_uid: str, series_number: int) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = st.study_date
    ds.SeriesDate = st.study_date
    ds.ContentDate = st.study_date
    ds.StudyTime = st.study_time
    ds.AccessionNumber = st.accession_number
    ds.Manufacturer = st.manufacturer
    ds.InstitutionName = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = st.study_description
    ds.ManufacturerModelName = st.model
    ds.PatientName = f"ANON^{st.patient_id}"
    ds.PatientID = st.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = st.patient_sex
    ds.PatientAge = f"{st.patient_age:03d}Y"
    if st.patient_size_m is not None:
        ds.PatientSize = f"{st.patient_size_m:.2f}"
    if st.patient_weight_kg is not None:
        ds.PatientWeight = f"{st.patient_weight_kg:.1f}"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "CADBUSI-Anonymize"
    ds.SoftwareVersions = st.software
    ds.StudyInstanceUID = st.study_instance_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = st.study_id
    ds.SeriesNumber = series_number


def _new_dataset(sop_class: str, sop_instance_uid: str) -> Dataset:
    """An empty dataset with its file meta and SOP identity (explicit VR little endian)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid
    return ds


def build_image_dataset(
    st: StudyHeader,
    *,
    sop_instance_uid: str,
    series_uid: str,
    series_number: int,
    instance_number: int,
    content_time: str,
    frames: np.ndarray,
    photometric: str,
    regions: list[Region],
    frame_time_ms: float | None,
    series_description: str,
) -> Dataset:
    """Header and native pixel data of an US (multi-frame) image; `frames` is (n, H, W[, 3])."""
    n = frames.shape[0]
    rgb = frames.ndim == 4
    sop_class = US_MULTIFRAME_STORAGE if n > 1 else US_IMAGE_STORAGE
    ds = _new_dataset(sop_class, sop_instance_uid)
    _common(ds, st, series_uid, series_number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    ds.ContentTime = content_time
    ds.Modality = "US"
    ds.SeriesDescription = series_description
    ds.BodyPartExamined = "BREAST"
    ds.TransducerData = [st.probe, "", ""]
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "00"
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    if rgb:
        ds.PlanarConfiguration = 0
    if n > 1:
        ds.NumberOfFrames = n
        ds.FrameTime = f"{frame_time_ms or 33.333:.3f}"
        ds.FrameIncrementPointer = 0x00181063  # FrameTime
        ds.CineRate = int(round(1000.0 / (frame_time_ms or 33.333)))
        ds.RecommendedDisplayFrameRate = ds.CineRate
    ds.Rows = int(frames.shape[1])
    ds.Columns = int(frames.shape[2])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SequenceOfUltrasoundRegions = Sequence([_region_item(r) for r in regions])
    pixels = frames
    if rgb and photometric == "YBR_FULL":
        # Stored YBR_FULL is a lossy colour transform; readers convert back to RGB.
        pixels = convert_color_space(frames, "RGB", "YBR_FULL")
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def _region_item(r: Region) -> Dataset:
    it = Dataset()
    it.RegionSpatialFormat = 1  # 2D
    it.RegionDataType = r.data_type
    it.RegionFlags = 0
    it.RegionLocationMinX0 = r.x0
    it.RegionLocationMinY0 = r.y0
    it.RegionLocationMaxX1 = r.x1
    it.RegionLocationMaxY1 = r.y1
    it.ReferencePixelX0 = (r.x1 - r.x0) // 2
    it.ReferencePixelY0 = 0
    it.PhysicalUnitsXDirection = 3  # cm
    it.PhysicalUnitsYDirection = 3
    it.ReferencePixelPhysicalValueX = 0.0
    it.ReferencePixelPhysicalValueY = 0.0
    it.PhysicalDeltaX = round(r.delta_x, 8)
    it.PhysicalDeltaY = round(r.delta_y, 8)
    return it


def encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """Compress (if asked) and serialise `ds` as a Part 10 file."""
    uid = TRANSFER_SYNTAX_UIDS[transfer_syntax]
    if uid != ExplicitVRLittleEndian:
        # pydicom 3 would otherwise mint a random SOP Instance UID (breaks determinism and truth).
        ds.compress(uid, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def build_text_sr(
    st: StudyHeader,
    *,
    sop_instance_uid: str,
    series_uid: str,
    series_number: int,
    text: str,
) -> bytes:
    """A Basic Text SR (no pixel data), as scanners send with worksheets / reports."""
    ds = _new_dataset(BASIC_TEXT_SR_STORAGE, sop_instance_uid)
    _common(ds, st, series_uid, series_number)
    ds.Modality = "SR"
    ds.SeriesDescription = "US Breast Worksheet"
    ds.InstanceNumber = 1
    ds.ContentDate = st.study_date
    ds.ContentTime = st.study_time
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    item.TextValue = text
    ds.ContentSequence = Sequence([item])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c

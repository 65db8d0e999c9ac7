"""Decode DICOM frames to 8-bit arrays and write them as PNG files.

Stills: Doppler images (colour flow of one or both hues, or power Doppler; see pixels.doppler)
keep their colour; everything else becomes single-channel grey after its yellow annotation
pixels are whitened (the original tool's rule, made tolerant to JPEG noise).
Cines: selected frames per a policy, grey unless the first frame is Doppler.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, get_decoder
from pydicom.uid import UID, ImplicitVRLittleEndian

from casbusi_assets.pixels.doppler import detect_doppler, regions_from_dataset
from casbusi_assets.shared.png import encode_png

FRAME_POLICIES = ("every_nth", "first_middle", "all")

# Yellow annotation text/markers: the original only matched exact (255, 255, 0), which lossy
# compression rarely leaves intact (US1_J2KI, a lossy JPEG 2000 copy of US1, turns its yellow into
# (252..255, 253..255, 0..3) and JPEG 4:2:2 shifts edges further). Grey tissue has R~=G~=B, so
# "R and G high, close to each other, B low" cannot be anatomy. R~=G matters: power-Doppler
# colour maps run through orange (255, 150..230, 0), which must not count as yellow; measured on
# US1, a 16-level R-G tolerance keeps all orange flow pixels out.
YELLOW_MIN_RG = 220
YELLOW_MAX_B = 60
YELLOW_MAX_R_G_DIFF = 16


@dataclass(frozen=True)
class PreparedImage:
    array: np.ndarray  # uint8, HxW (gray) or HxWx3 (RGB)
    is_doppler: bool
    stored_as: str  # 'gray' | 'rgb'
    yellow_pixels_whitened: int
    doppler_kind: str | None = None  # 'color' | 'power' | None (see pixels.doppler)


class PixelDecodeError(Exception):
    """Pixel data could not be decoded; the message says which file/frame and why."""


# --------------------------------------------------------------------------- decoding


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    tsuid = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsuid is None:
        # A force-read file without file meta is implicit VR little endian by definition.
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        tsuid = ImplicitVRLittleEndian
    return UID(str(tsuid))


def _to_uint8(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if bits <= 8 and arr.min() >= 0:
        return np.clip(arr, 0, 255).astype(np.uint8)
    top = float(2**bits - 1)
    return np.clip(np.rint(arr.astype(np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)


def _window_gray(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Map a >8-bit grey frame to 8 bits: the file's window when it has one, else min..max.

    The window is the device's own choice of what to show; without one, the frame's real
    min..max uses the whole 8-bit range (a fixed 16-bit scale would leave a 12-bit image dark).
    """
    data = apply_modality_lut(arr, ds).astype(np.float32)
    lo = hi = None
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        c, w = float(_first(center)), float(_first(width))
        if w > 1:
            lo, hi = c - w / 2, c + w / 2
    if lo is None or hi is None:
        lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        return np.zeros(data.shape, dtype=np.uint8)
    return np.clip(np.rint((data - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _first(value: Any) -> Any:
    # Window Center/Width may be multi-valued (several presets); the first is the default view.
    return value[0] if isinstance(value, MultiValue | list | tuple) else value


def decode_frame(ds: Dataset, index: int = 0) -> np.ndarray:
    """Frame `index` of `ds` as uint8 HxW (grey) or HxWx3 (RGB), decoding only that frame.

    Handles MONOCHROME1/2, RGB, YBR_* (converted to RGB), PALETTE COLOR (LUT applied), planar
    configuration, and >8-bit data (windowed or min-max scaled to 8 bits).
    Raises PixelDecodeError when the frame cannot be decoded.
    """
    tsuid = _transfer_syntax(ds)
    try:
        decoder = get_decoder(tsuid)
        arr, props = decoder.as_array(ds, index=index)
    except NotImplementedError as exc:
        raise PixelDecodeError(f"no pixel decoder for transfer syntax {tsuid.name}") from exc
    except Exception as exc:  # noqa: BLE001 - plugin errors come in many types
        raise PixelDecodeError(
            f"cannot decode frame {index} ({tsuid.name}): {type(exc).__name__}: {exc}"
        ) from exc

    pi = str(
        getattr(props.get("photometric_interpretation"), "value", None)
        or props.get("photometric_interpretation")
        or ""
    )
    bits = int(props.get("bits_stored") or props.get("bits_allocated") or 8)
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        # LUT entries are 8 or 16 bits wide (descriptor), independent of the stored bits.
        lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        out = _to_uint8(rgb, 16 if rgb.dtype != np.uint8 and lut_bits > 8 else 8)
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        if pi.startswith("YBR"):
            # Decoders convert YBR_FULL(_422) and J2K RCT/ICT to RGB themselves; anything still
            # YBR here is native YBR data that as_rgb did not cover.
            arr = convert_color_space(arr, "YBR_FULL", "RGB")
        out = _to_uint8(arr, bits)
    elif arr.ndim == 2:
        out = arr if arr.dtype == np.uint8 and bits <= 8 else _window_gray(arr, ds)
        if pi == "MONOCHROME1":
            out = 255 - out  # MONOCHROME1: 0 is white
    else:
        raise PixelDecodeError(f"unexpected decoded frame shape {arr.shape} ({pi})")
    return _contiguous(out)


def _contiguous(arr: np.ndarray) -> np.ndarray:
    """`arr` as a C-contiguous array (what OpenCV and the PNG writer want).

    RLE and planar-configuration colour data decode to a (rows, cols, 3) *view* of three
    separate planes; numpy's element-by-element gather of that view cost ~40 ms per
    1280x960 frame, OpenCV's merge of the three (contiguous) planes ~2 ms, same bytes.
    """
    if arr.flags.c_contiguous:
        return arr
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8:
        return cv2.merge([np.ascontiguousarray(arr[..., c]) for c in range(arr.shape[-1])])
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- colour rules


def is_doppler(rgb: np.ndarray, regions: list[dict[str, Any]] | None = None) -> bool:
    """True when the frame shows colour flow (one or both hues) or power Doppler in its field."""
    return detect_doppler(rgb, regions).is_doppler


def yellow_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are yellow annotation (see the YELLOW_* thresholds for the reasoning)."""
    # OpenCV's inRange does the three channel bounds in one vectorised pass (numpy's int16
    # channel copies and four boolean arrays took ~16 ms on an 800x600 frame); the R~=G test then
    # only looks at the few pixels inside the box.
    rgb = np.ascontiguousarray(rgb)
    box = cv2.inRange(rgb, (YELLOW_MIN_RG, YELLOW_MIN_RG, 0), (255, 255, YELLOW_MAX_B))
    mask = box.astype(bool)
    if cv2.countNonZero(box):
        ys, xs = np.nonzero(mask)
        px = rgb[ys, xs].astype(np.int16)
        far = np.abs(px[:, 0] - px[:, 1]) > YELLOW_MAX_R_G_DIFF
        mask[ys[far], xs[far]] = False
    return mask


def _to_gray(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """Whiten yellow pixels, then convert to grey; returns (gray, whitened count)."""
    mask = yellow_mask(rgb)
    count = int(np.count_nonzero(mask))
    # RGB -> grey is per pixel and white maps to 255, so whitening after the conversion gives
    # the same image without copying the colour frame.
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if count:
        gray[mask] = 255
    return gray, count


def prepare_still(
    pixels: np.ndarray,
    photometric: str | None = None,
    keep_colour: bool | None = None,
    regions: list[dict[str, Any]] | None = None,
    doppler_kind: str | None = None,
) -> PreparedImage:
    """Decide how a decoded frame is stored: colour for Doppler, single-channel grey otherwise.

    `photometric` is the file's original interpretation (MONOCHROME* means grey whatever the
    array shape). `regions` (SequenceOfUltrasoundRegions items) tell the Doppler test where the
    field is. `keep_colour` / `doppler_kind` override the test (cine frames follow the first).
    A Doppler frame is stored as is: no yellow whitening, since power Doppler's top-of-scale
    yellow (255, 255, 0) is flow, not annotation.
    """
    if pixels.ndim == 2 or (photometric or "").startswith("MONOCHROME"):
        gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        return PreparedImage(gray, False, "gray", 0, None)
    if keep_colour is None:
        finding = detect_doppler(pixels, regions)
        keep_colour, doppler_kind = finding.is_doppler, finding.kind
    if keep_colour:
        return PreparedImage(pixels, True, "rgb", 0, doppler_kind)
    gray, whitened = _to_gray(pixels)
    return PreparedImage(gray, False, "gray", whitened, None)


# --------------------------------------------------------------------------- writing


def write_png(
    path: str | os.PathLike[str], array: np.ndarray, compression: int | None = None
) -> int:
    """Write `array` (HxW grey or HxWx3 RGB) as PNG atomically; returns the bytes written.

    `compression=None` encodes with `shared.png.encode_png` (OpenCV's default filter, deflated
    by ISA-L: 2.4 vs 5.8 ms a grey ingest frame, about the same size); a zlib level 0-9 goes
    through OpenCV with that level (on 800x600 speckled frames an explicit level 1 took 25 ms
    and level 3 23 ms, so it is for callers that want smaller files, not speed).
    The temp file lives in the target folder so os.replace is an atomic rename: a reader never
    sees a half-written PNG, and a crash leaves at most a stray *.tmp file, never a bad PNG.
    """
    path = Path(path)
    if compression is None:
        buf: bytes | memoryview = encode_png(array)
    else:
        img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        ok, encoded = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
        if not ok:
            raise OSError(f"PNG encoding failed for {path}")
        buf = encoded.data  # the encoder's buffer as is, no bytes copy
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(buf) if isinstance(buf, bytes) else buf.nbytes


def select_frames(n_frames: int, policy: str, every_n: int = 4) -> list[int]:
    """0-based frame indices to save: 'every_nth' (0, n, 2n, ...), 'first_middle', 'all'."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if policy == "every_nth":
        if every_n < 1:
            raise ValueError(f"every_n must be >= 1, got {every_n}")
        return list(range(0, n_frames, every_n))
    if policy == "first_middle":
        return sorted({0, n_frames // 2}) if n_frames else []
    if policy == "all":
        return list(range(n_frames))
    raise ValueError(f"unknown frame policy {policy!r}; expected one of {FRAME_POLICIES}")


_UNSAFE_RUN = re.compile(r"[^0-9A-Za-z._-]+")
_MAX_STEM = 100


def safe_file_stem(uid: str) -> str:
    """A file-name stem from an untrusted SOPInstanceUID that cannot escape or collide.

    Keeps [0-9A-Za-z._-], collapses other runs to '_', stops leading dots (hidden files), caps
    the length. Whenever the result differs from the input, or has upper-case letters (which
    collide with lower-case on macOS/Windows file systems), an 80-bit hash of the original is
    appended, so two different UIDs never share a name. Real UIDs (digits and dots) pass through.
    Raises ValueError for '', '.', '..'.
    """
    if uid is None or uid.strip() in ("", ".", ".."):
        raise ValueError(f"refusing unusable file name stem {uid!r}")
    stem = _UNSAFE_RUN.sub("_", uid)
    stem = re.sub(r"^\.+", "_", stem)[:_MAX_STEM]
    if stem != uid or stem.lower() != stem or re.search(r"--h[0-9a-f]{20}$", stem):
        stem = f"{stem}--h{hashlib.sha256(uid.encode('utf-8', 'surrogatepass')).hexdigest()[:20]}"
    return stem


# --------------------------------------------------------------------------- exports


def _read(data: bytes) -> Dataset:
    force = False
    if data[:4] == b"DICM":
        data = bytes(128) + data  # prefix without preamble: restore the preamble
    elif data[128:132] != b"DICM":
        force = True  # raw dataset without preamble; the catalog already vetted the file
    try:
        return pydicom.dcmread(BytesIO(data), force=force)
    except Exception as exc:  # noqa: BLE001
        raise PixelDecodeError(f"cannot parse DICOM: {type(exc).__name__}: {exc}") from exc


def _photometric(ds: Dataset) -> str | None:
    value = ds.get("PhotometricInterpretation")
    return str(value).strip() if value else None


def _index_frames(ds: Dataset, n_frames: int) -> None:
    """Add an Extended Offset Table when frames are one fragment each and no offsets exist.

    Without offsets, pydicom re-scans every fragment from the start for each frame it fetches,
    which is quadratic in the frame count for long cines; with them each lookup is O(1).
    """
    tsuid = _transfer_syntax(ds)
    if not tsuid.is_encapsulated or n_frames < 2 or "ExtendedOffsetTable" in ds:
        return
    data = ds.PixelData
    if len(data) < 8 or struct.unpack_from("<I", data, 4)[0] != 0:
        return  # a Basic Offset Table is present: pydicom already seeks directly
    pos, offsets, lengths = 8, [], []
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if (group, elem) != (0xFFFE, 0xE000):
            break
        offsets.append(pos - 8)
        lengths.append(length)
        pos += 8 + length
    if len(offsets) == n_frames:
        ds.ExtendedOffsetTable = struct.pack(f"<{n_frames}Q", *offsets)
        ds.ExtendedOffsetTableLengths = struct.pack(f"<{n_frames}Q", *lengths)


def export_still(
    data: bytes, out_path: str | os.PathLike[str], compression: int | None = None
) -> dict:
    """Decode frame 0 of a still, prepare it and write one PNG; returns IMAGE_TABLE fields."""
    return export_still_dataset(_read(data), out_path, compression)


def export_still_dataset(
    ds: Dataset, out_path: str | os.PathLike[str], compression: int | None = None
) -> dict:
    """`export_still` for an already parsed dataset (the catalogue's parse of the member)."""
    photometric = _photometric(ds)
    prepared = prepare_still(decode_frame(ds, 0), photometric, regions=regions_from_dataset(ds))
    png_bytes = write_png(out_path, prepared.array, compression)
    return {
        "is_doppler": prepared.is_doppler,
        "doppler_kind": prepared.doppler_kind,
        "original_photometric_interpretation": photometric,
        "stored_as": prepared.stored_as,
        "yellow_pixels_whitened": prepared.yellow_pixels_whitened,
        "rows": int(prepared.array.shape[0]),
        "columns": int(prepared.array.shape[1]),
        "png_bytes": png_bytes,
    }


def export_video(
    data: bytes,
    out_dir: str | os.PathLike[str],
    policy: str = "every_nth",
    every_n: int = 4,
    compression: int | None = None,
) -> dict[str, Any]:
    """Write the policy's frames as out_dir/frame_{i:04d}.png; returns VIDEO_TABLE fields.

    Frames are grey unless the first frame is Doppler (then all keep colour, so a loop never
    switches between colour and grey). Frame files from an earlier run that the current policy
    no longer selects are removed, so a re-run leaves exactly this run's frames.
    """
    return export_video_dataset(_read(data), out_dir, policy, every_n, compression)


def export_video_dataset(
    ds: Dataset,
    out_dir: str | os.PathLike[str],
    policy: str = "every_nth",
    every_n: int = 4,
    compression: int | None = None,
) -> dict[str, Any]:
    """`export_video` for an already parsed dataset (the catalogue's parse of the member)."""
    photometric = _photometric(ds)
    try:
        n_frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        n_frames = 1
    indices = select_frames(n_frames, policy, every_n)
    _index_frames(ds, n_frames)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep_colour: bool | None = None
    kind: str | None = None
    regions = regions_from_dataset(ds)
    written: set[str] = set()
    rows = cols = None
    for i in indices:
        prepared = prepare_still(decode_frame(ds, i), photometric, keep_colour, regions, kind)
        if keep_colour is None:
            keep_colour, kind = prepared.is_doppler, prepared.doppler_kind
        rows, cols = prepared.array.shape[:2]
        name = f"frame_{i:04d}.png"
        write_png(out / name, prepared.array, compression)
        written.add(name)
    for stale in out.glob("frame_*.png"):
        if stale.name not in written:
            stale.unlink()
    return {
        "frames_dir": str(out),
        "n_frames": n_frames,
        "saved_frames": len(indices),
        "saved_frame_indices": json.dumps(indices),
        "frame_policy": policy,
        "is_doppler": bool(keep_colour),
        "doppler_kind": kind if keep_colour else None,
        "original_photometric_interpretation": photometric,
        "rows": int(rows) if rows is not None else _int_or_none(ds.get("Rows")),
        "columns": int(cols) if cols is not None else _int_or_none(ds.get("Columns")),
    }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

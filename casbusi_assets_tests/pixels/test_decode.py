"""Frame decoding, Doppler / yellow rules, PNG writing, frame policies, safe file names."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.pixels.decode import (
    PixelDecodeError,
    decode_frame,
    export_still,
    export_video,
    is_doppler,
    prepare_still,
    safe_file_stem,
    select_frames,
    write_png,
)
from casbusi_assets_tests.ingest.test_catalog import US_MULTIFRAME, gray, make_dicom
from casbusi_assets_tests.pixels.test_doppler import screen, with_flow


def load(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file(name))


def read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


# --------------------------------------------------------------------------- decode_frame


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("US1_J2KR.dcm", (480, 640, 3)),  # JPEG 2000 lossless, YBR_RCT -> RGB
        ("US1_UNCR.dcm", (480, 640, 3)),
        ("OBXXXX1A.dcm", (600, 800, 3)),  # PALETTE COLOR -> RGB through the LUT
        ("OBXXXX1A_rle.dcm", (600, 800, 3)),
        ("examples_ybr_color.dcm", (240, 320, 3)),  # JPEG baseline YBR_FULL_422
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", (768, 1024)),  # MONOCHROME2 stays grey
        ("color-pl.dcm", (120, 256, 3)),  # planar configuration 1
    ],
)
def test_decode_shapes(name: str, shape: tuple[int, ...]) -> None:
    arr = decode_frame(load(name), 0)
    assert arr.shape == shape and arr.dtype == np.uint8
    assert arr.flags.c_contiguous


def test_j2k_and_uncompressed_us1_decode_identically() -> None:
    # Same image stored lossless two ways: the YBR_RCT path must land on the same RGB.
    assert np.array_equal(decode_frame(load("US1_J2KR.dcm")), decode_frame(load("US1_UNCR.dcm")))


def test_planar_configuration_handled() -> None:
    # color-pl (planar) and color-px (interleaved) hold the same picture.
    assert np.array_equal(decode_frame(load("color-pl.dcm")), decode_frame(load("color-px.dcm")))


def test_rle_colour_planes_decode_like_interleaved_native() -> None:
    # RLE stores colour as three planes; the decoder hands back a strided view of them, which
    # decode_frame makes contiguous (OpenCV's merge, not numpy's gather). Same picture, every
    # frame, and an array OpenCV and the PNG writer can take as is.
    for rle, native in (
        ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
        ("SC_rgb_rle_2frame.dcm", "SC_rgb_2frame.dcm"),
    ):
        a, b = load(rle), load(native)
        for index in range(int(a.get("NumberOfFrames") or 1)):
            got = decode_frame(a, index)
            assert got.flags.c_contiguous and got.dtype == np.uint8
            assert np.array_equal(got, decode_frame(b, index))


def test_palette_rle_matches_palette_native_and_frames_are_distinct() -> None:
    native = decode_frame(load("OBXXXX1A.dcm"))
    ds = load("OBXXXX1A_rle_2frame.dcm")
    f0, f1 = decode_frame(ds, 0), decode_frame(ds, 1)
    assert np.array_equal(native, f0)
    assert f1.shape == f0.shape
    # A palette image is not grey: its LUT maps to real colours.
    assert np.any(native[..., 0] != native[..., 2])


def test_16bit_palette_maps_to_8bit() -> None:
    arr = decode_frame(load("gdcm-US-ALOKA-16.dcm"))
    assert arr.shape == (480, 640, 3) and arr.dtype == np.uint8
    assert arr.max() > 200  # 16-bit LUT entries scaled down, not clipped to 255 or left dark


def test_16bit_gray_uses_full_8bit_range() -> None:
    px = np.linspace(1000, 3000, 40 * 50, dtype=np.uint16).reshape(40, 50)
    arr = decode_frame(pydicom.dcmread(BytesIO(make_dicom(px))))
    assert arr.dtype == np.uint8 and (arr.min(), arr.max()) == (0, 255)
    # Monotonic: brighter input stays brighter.
    assert arr[0, 0] < arr[20, 25] < arr[-1, -1]


def test_16bit_gray_window_is_honoured() -> None:
    px = np.full((10, 10), 2000, dtype=np.uint16)
    px[0, 0] = 0
    ds = pydicom.dcmread(BytesIO(make_dicom(px, WindowCenter=2000, WindowWidth=400)))
    arr = decode_frame(ds)
    assert arr[5, 5] == 128 and arr[0, 0] == 0


def test_monochrome1_is_inverted() -> None:
    px = gray(8, 8)
    arr = decode_frame(pydicom.dcmread(BytesIO(make_dicom(px, "MONOCHROME1"))))
    assert np.array_equal(arr, 255 - px)


def test_native_ybr_full_converted_to_rgb() -> None:
    ybr = np.zeros((4, 4, 3), dtype=np.uint8)
    ybr[...] = (76, 85, 255)  # pure red in YCbCr (BT.601 full range)
    arr = decode_frame(pydicom.dcmread(BytesIO(make_dicom(ybr, "YBR_FULL"))))
    assert np.all(np.abs(arr[0, 0].astype(int) - (254, 0, 0)) <= 2)


def test_decode_failure_is_a_clear_error() -> None:
    ds = load("US1_J2KR.dcm")
    ds.PixelData = ds.PixelData[:2000]
    with pytest.raises(PixelDecodeError, match="frame 0"):
        decode_frame(ds, 0)


# --------------------------------------------------------------------------- colour rules


def colour_image(flow: bool = True, hues: str = "both") -> np.ndarray:
    """A screen with grey speckle in its field and, when `flow`, colour flow painted into it."""
    img = screen()
    return with_flow(img, hues) if flow else img


def test_doppler_needs_filled_flow_of_any_hue() -> None:
    assert is_doppler(colour_image(hues="both"))
    assert is_doppler(colour_image(hues="red"))  # single-hue colour flow
    assert is_doppler(colour_image(hues="power"))
    assert not is_doppler(colour_image(flow=False))
    stray = colour_image(flow=False)
    stray[100, 100:110] = (230, 40, 30)  # stray coloured pixels do not make a Doppler image
    stray[200, 100:110] = (20, 60, 240)
    assert not is_doppler(stray)
    assert not is_doppler(gray())


def test_us1_power_doppler_is_stored_in_colour() -> None:
    # US1 is a GE power-Doppler image: red/orange/yellow only, no blue. The original "red and
    # blue" rule called it non-Doppler and stored it grey with its top-of-scale yellow whitened.
    rgb = decode_frame(load("US1_UNCR.dcm"))
    assert is_doppler(rgb)
    prepared = prepare_still(rgb, "RGB")
    assert prepared.stored_as == "rgb" and prepared.doppler_kind == "power"
    assert prepared.yellow_pixels_whitened == 0 and np.array_equal(prepared.array, rgb)


def test_prepare_still_whitens_yellow_and_goes_gray() -> None:
    img = np.full((20, 20, 3), 100, dtype=np.uint8)
    img[0, :5] = (255, 255, 0)
    img[1, :5] = (246, 240, 30)  # JPEG-shifted yellow text
    img[2, :5] = (255, 160, 0)  # orange: not annotation
    img[3, :5] = (240, 240, 240)  # near-white grey
    prepared = prepare_still(img, "RGB")
    assert prepared.stored_as == "gray" and not prepared.is_doppler
    assert prepared.yellow_pixels_whitened == 10
    assert (prepared.array[0, :5] == 255).all() and (prepared.array[1, :5] == 255).all()
    assert (prepared.array[2, :5] < 255).all()


def _colour_grid() -> np.ndarray:
    # Every colour near the yellow box (R, G >= 180, any B) plus a coarse grid of the whole cube.
    near = np.stack(
        np.meshgrid(np.arange(180, 256), np.arange(180, 256), np.arange(256), indexing="ij"), -1
    ).reshape(-1, 3)
    step = np.arange(0, 256, 5)
    coarse = np.stack(np.meshgrid(step, step, step, indexing="ij"), -1).reshape(-1, 3)
    grid = np.concatenate([near, coarse]).astype(np.uint8)
    return grid.reshape(1, -1, 3)


def test_yellow_whitening_follows_its_rule_for_every_colour() -> None:
    # The rule as documented (R, G >= YELLOW_MIN_RG, B <= YELLOW_MAX_B, |R - G| <= 16), pixel by
    # pixel, against what prepare_still does: whitened count and grey image.
    img = _colour_grid()
    r, g, b = (img[..., i].astype(int) for i in range(3))
    rule = (r >= 220) & (g >= 220) & (b <= 60) & (np.abs(r - g) <= 16)
    whitened = img.copy()
    whitened[rule] = 255
    prepared = prepare_still(img, "RGB", keep_colour=False)
    assert prepared.yellow_pixels_whitened == int(rule.sum()) > 0
    assert np.array_equal(prepared.array, cv2.cvtColor(whitened, cv2.COLOR_RGB2GRAY))


def test_prepare_still_keeps_doppler_colour() -> None:
    img = colour_image()
    prepared = prepare_still(img, "RGB")
    assert prepared.is_doppler and prepared.stored_as == "rgb" and prepared.doppler_kind == "color"
    assert prepared.array.shape == img.shape and prepared.yellow_pixels_whitened == 0


def test_prepare_still_gray_input() -> None:
    prepared = prepare_still(gray(), "MONOCHROME2")
    assert prepared.stored_as == "gray" and prepared.array.ndim == 2


# --------------------------------------------------------------------------- writing


def test_write_png_roundtrip_atomic_and_rgb_order(tmp_path: Path) -> None:
    img = np.zeros((10, 12, 3), dtype=np.uint8)
    img[..., 0] = 200  # red
    target = tmp_path / "sub" / "x.png"
    size = write_png(target, img)
    assert size == target.stat().st_size > 0
    back = read_png(target)
    assert np.array_equal(back, img)  # RGB in, RGB out: no BGR swap leaked into the file
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]  # no temp leftovers
    write_png(target, gray(10, 12))  # overwrite in place
    assert read_png(target).ndim == 2


@pytest.mark.parametrize(
    ("n", "policy", "every_n", "expected"),
    [
        (10, "every_nth", 4, [0, 4, 8]),
        (1, "every_nth", 4, [0]),
        (0, "every_nth", 4, []),
        (10, "first_middle", 4, [0, 5]),
        (1, "first_middle", 4, [0]),
        (2, "first_middle", 4, [0, 1]),
        (3, "all", 4, [0, 1, 2]),
    ],
)
def test_select_frames(n: int, policy: str, every_n: int, expected: list[int]) -> None:
    assert select_frames(n, policy, every_n) == expected


def test_select_frames_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown frame policy"):
        select_frames(5, "random")
    with pytest.raises(ValueError):
        select_frames(5, "every_nth", 0)


def test_export_still_real_and_synthetic(tmp_path: Path) -> None:
    data = Path(get_testdata_file("OBXXXX1A.dcm")).read_bytes()
    out = export_still(data, tmp_path / "ob.png")
    assert out["original_photometric_interpretation"] == "PALETTE COLOR"
    assert out["stored_as"] == "gray" and not out["is_doppler"]
    assert (out["rows"], out["columns"]) == (600, 800)
    assert out["png_bytes"] == (tmp_path / "ob.png").stat().st_size
    assert read_png(tmp_path / "ob.png").shape == (600, 800)

    assert out["doppler_kind"] is None

    doppler = colour_image(hues="blue")
    out = export_still(make_dicom(doppler, "RGB"), tmp_path / "d.png")
    assert out["is_doppler"] and out["stored_as"] == "rgb" and out["doppler_kind"] == "color"
    assert np.array_equal(read_png(tmp_path / "d.png"), doppler)


def test_export_still_raises_on_undecodable(tmp_path: Path) -> None:
    ds = load("US1_J2KR.dcm")
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + bytes(100)])
    buf = BytesIO()
    ds.save_as(buf)
    with pytest.raises(PixelDecodeError):
        export_still(buf.getvalue(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_export_video_jpeg_cine_every_nth_then_rerun_first_middle(tmp_path: Path) -> None:
    # The one long decode of the suite: 120-frame JPEG baseline cine, 30 frames decoded.
    data = Path(get_testdata_file("color3d_jpeg_baseline.dcm")).read_bytes()
    out = export_video(data, tmp_path / "cine", "every_nth", 4)
    assert out["n_frames"] == 120 and out["saved_frames"] == 30
    assert json.loads(out["saved_frame_indices"]) == list(range(0, 120, 4))
    assert out["original_photometric_interpretation"] == "YBR_FULL_422"
    assert (out["rows"], out["columns"]) == (480, 640)
    files = sorted(p.name for p in (tmp_path / "cine").iterdir())
    assert files[0] == "frame_0000.png" and files[-1] == "frame_0116.png" and len(files) == 30
    # Re-run with another policy: exactly the new frames remain, no orphans.
    out = export_video(data, tmp_path / "cine", "first_middle")
    assert sorted(p.name for p in (tmp_path / "cine").iterdir()) == [
        "frame_0000.png",
        "frame_0060.png",
    ]
    assert out["saved_frames"] == 2


def test_export_video_frames_match_single_frame_decode(tmp_path: Path) -> None:
    data = Path(get_testdata_file("examples_ybr_color.dcm")).read_bytes()
    export_video(data, tmp_path / "v", "all")
    ds = pydicom.dcmread(BytesIO(data))
    expected = prepare_still(decode_frame(ds, 17), "YBR_FULL_422").array
    assert np.array_equal(read_png(tmp_path / "v" / "frame_0017.png"), expected)


def test_export_video_doppler_decided_on_first_frame(tmp_path: Path) -> None:
    flow, plain = colour_image(hues="power"), colour_image(flow=False)
    frames = np.stack([flow, plain, plain])
    out = export_video(
        make_dicom(frames, "RGB", frames=3, sop_class=US_MULTIFRAME), tmp_path / "d", "all"
    )
    assert out["is_doppler"] and out["doppler_kind"] == "power"
    assert all(read_png(p).ndim == 3 for p in (tmp_path / "d").iterdir())
    frames = np.stack([plain, flow])
    out = export_video(make_dicom(frames, "RGB", frames=2), tmp_path / "g", "all")
    assert not out["is_doppler"] and out["doppler_kind"] is None
    assert all(read_png(p).ndim == 2 for p in (tmp_path / "g").iterdir())


def test_export_video_palette_rle_two_frames(tmp_path: Path) -> None:
    data = Path(get_testdata_file("OBXXXX1A_rle_2frame.dcm")).read_bytes()
    out = export_video(data, tmp_path / "p", "every_nth", 4)
    assert out["saved_frame_indices"] == "[0]" and out["n_frames"] == 2


# --------------------------------------------------------------------------- file names


def test_safe_file_stem_passes_real_uids_through() -> None:
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    assert safe_file_stem(uid) == uid


@pytest.mark.parametrize("bad", ["", ".", "..", "  "])
def test_safe_file_stem_refuses_empty_and_dots(bad: str) -> None:
    with pytest.raises(ValueError):
        safe_file_stem(bad)


def test_safe_file_stem_never_escapes_or_collides(tmp_path: Path) -> None:
    nasty = [
        "../../etc/passwd",
        "/abs",
        "a/b",
        "a\\b",
        "a b",
        "a_b",
        "...",
        ".hidden",
        "A.1",
        "a.1",
    ]
    nasty += ["x" * 300, "x" * 301, "C:evil", "nul\x00byte", "é.1"]
    stems = [safe_file_stem(u) for u in nasty]
    assert len(set(stems)) == len(stems)
    assert len({s.lower() for s in stems}) == len(stems)  # case-insensitive file systems too
    for stem in stems:
        assert stem and not stem.startswith(".") and len(stem) <= 130
        assert set(stem) <= set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._-")
        target = (tmp_path / f"{stem}.png").resolve()
        assert target.parent == tmp_path.resolve()
    assert safe_file_stem("a_b") == "a_b"  # already safe: unchanged
    assert safe_file_stem("a b").startswith("a_b--h")  # changed: hashed

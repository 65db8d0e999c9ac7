"""Doppler detection on arrays: colour flow of one or both hues, power Doppler, and the
coloured things that are not flow (yellow text, colour bars, calipers, coloured chrome)."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.pixels.decode import decode_frame, prepare_still
from casbusi_assets.pixels.doppler import (
    FLOW_MIN_CHROMA,
    FLOW_MIN_VALUE,
    detect_doppler,
    estimate_field,
    flow_colour_masks,
    region_fields,
    regions_from_dataset,
)

H, W = 420, 560
FIELD = (90, 50, 470, 370)  # x0, y0, x1, y1 (exclusive) of the test screens' ultrasound field


def screen(field: tuple[int, int, int, int] = FIELD, seed: int = 0) -> np.ndarray:
    """A black screen with grey speckle in `field` and some white chrome text around it."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = field
    speckle = rng.gamma(2.0, 40.0, (y1 - y0, x1 - x0)).clip(0, 255).astype(np.uint8)
    img[y0:y1, x0:x1] = speckle[..., None]
    cv2.putText(img, "MAYO CLINIC 12/01/2026", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220,) * 3)
    cv2.putText(img, "MI 0.9 TIS 0.3", (W - 140, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220,) * 3)
    return img


def region(box: tuple[int, int, int, int] = FIELD) -> list[dict[str, int]]:
    x0, y0, x1, y1 = box
    return [
        {
            "RegionSpatialFormat": 1,
            "RegionDataType": 1,
            "RegionLocationMinX0": x0,
            "RegionLocationMinY0": y0,
            "RegionLocationMaxX1": x1 - 1,
            "RegionLocationMaxY1": y1 - 1,
        }
    ]


def flow_strength(shape: tuple[int, int], seed: int = 1, vessels: int = 3) -> np.ndarray:
    """0..1 flow strength of a few winding vessels, shaded like a scanner's flow map."""
    rng = np.random.default_rng(seed)
    h, w = shape
    out = np.zeros((h, w), dtype=np.float32)
    for _ in range(vessels):
        pts, x, y, heading = [], rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 6.3)
        for _ in range(10):
            pts.append((x, y))
            heading += rng.normal(0, 0.4)
            x, y = x + 10 * np.cos(heading), y + 10 * np.sin(heading)
        tmp = np.zeros_like(out)
        cv2.polylines(tmp, [np.array(pts, dtype=np.int32)], False, 1.0, int(rng.integers(6, 11)))
        out = np.maximum(out, cv2.GaussianBlur(tmp, (0, 0), 2.0))
    return out / max(float(out.max()), 1e-6)


def colour_flow(p: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Velocity map: towards (direction > 0) red to yellow-ish, away blue to cyan."""
    r = np.where(direction > 0, 110 + 145 * p, 10 * p)
    g = np.where(
        direction > 0, 120 * np.clip(p - 0.8, 0, 1) / 0.2, 160 * np.clip(p - 0.8, 0, 1) / 0.2
    )
    b = np.where(direction > 0, 0, 110 + 145 * p)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


def power_map(p: np.ndarray) -> np.ndarray:
    """GE-like power map: dark red -> orange -> yellow (255, 255, 0) at the top of the scale."""
    xs = [0.0, 0.35, 0.6, 0.8]  # the strongest fifth saturates at pure yellow
    stops = [(110, 0, 0), (220, 40, 0), (255, 150, 0), (255, 255, 0)]
    return np.stack([np.interp(p, xs, [s[c] for s in stops]) for c in range(3)], -1).astype(
        np.uint8
    )


def with_flow(
    img: np.ndarray,
    hues: str = "both",
    box: tuple[int, int, int, int] = (180, 110, 380, 290),
    seed: int = 1,
    vessels: int = 3,
) -> np.ndarray:
    """`img` with flow painted into `box`: hues 'both' | 'red' | 'blue' | 'power'."""
    img = img.copy()
    x0, y0, x1, y1 = box
    p = flow_strength((y1 - y0, x1 - x0), seed, vessels)
    if hues == "power":
        col = power_map(p)
    else:
        half = np.ones_like(p)
        if hues == "blue":
            half = -half
        elif hues == "both":
            half[:, : (x1 - x0) // 2] = -1
        col = colour_flow(p, half)
    on = p > 0.15
    img[y0:y1, x0:x1][on] = col[on]
    return img


def with_bar(img: np.ndarray, kind: str = "color", x: int = 60, y: int = 80) -> np.ndarray:
    """A colour-scale bar (two-sided velocity or one-sided power) left of the field."""
    img = img.copy()
    hgt, wid = 110, 12
    ramp = np.linspace(1, -1, hgt)[:, None].repeat(wid, axis=1)
    if kind == "power":
        bar = power_map((ramp + 1) / 2)
    else:
        bar = colour_flow(np.abs(ramp), ramp)
        bar[np.abs(ramp) < 0.1] = 0
    img[y : y + hgt, x : x + wid] = bar
    return img


# --------------------------------------------------------------------------- flow is Doppler


@pytest.mark.parametrize("hues", ["red", "blue", "both"])
def test_colour_flow_in_one_or_both_hues_is_doppler(hues: str) -> None:
    img = with_flow(screen(), hues)
    for regions in (region(), None):  # from the header's regions and from the pixels alone
        f = detect_doppler(img, regions)
        assert f.is_doppler and f.kind == "color", (hues, regions is None, f)
    assert detect_doppler(img, region()).field_source == "regions"


def test_power_doppler_is_doppler_of_kind_power_and_keeps_its_yellow() -> None:
    img = with_flow(screen(), "power")
    f = detect_doppler(img, region())
    assert f.is_doppler and f.kind == "power"
    top_yellow = np.all(img == (255, 255, 0), axis=-1)
    assert top_yellow.sum() > 50  # the map does reach pure yellow
    prepared = prepare_still(img, "RGB", regions=region())
    # Stored in colour as is: the yellow-whitening rule for annotation must not touch flow.
    assert prepared.stored_as == "rgb" and prepared.doppler_kind == "power"
    assert prepared.yellow_pixels_whitened == 0 and np.array_equal(prepared.array, img)


def test_the_scale_bar_decides_the_kind_when_present() -> None:
    # Red-only flow looks like a dark power map; a two-sided velocity scale says colour flow.
    f = detect_doppler(with_bar(with_flow(screen(), "red"), "color"), region())
    assert f.is_doppler and f.kind == "color" and f.colour_bar == "color"
    f = detect_doppler(with_bar(with_flow(screen(), "power"), "power"), region())
    assert f.is_doppler and f.kind == "power" and f.colour_bar == "power"


def test_a_colour_bar_is_supporting_evidence_for_little_flow() -> None:
    small = with_flow(screen(), "red", box=(250, 180, 290, 215), vessels=1, seed=3)
    assert not detect_doppler(small, region()).is_doppler
    assert detect_doppler(with_bar(small), region()).is_doppler


def test_flow_anywhere_in_the_field_counts_no_fixed_band() -> None:
    # The field itself moves around the screen, and the flow box with it; no regions given.
    for field in ((10, 10, 300, 250), (240, 150, 550, 410), (90, 50, 470, 370)):
        x0, y0, x1, y1 = field
        for fy in (y0 + 5, (y0 + y1) // 2 - 40, y1 - 85):
            img = with_flow(screen(field), "blue", box=(x0 + 20, fy, x0 + 140, fy + 80))
            f = detect_doppler(img)
            assert f.is_doppler, (field, fy, f)


# --------------------------------------------------------------------------- colour that is not flow


@pytest.mark.parametrize("colour", [(255, 255, 0), (0, 255, 255)])
def test_bold_annotation_text_is_not_doppler(colour: tuple[int, int, int]) -> None:
    # Big anti-aliased text at thickness 3 over speckle: fragments survive the opening, but
    # they keep the one hue of the text.
    for scale, thick in ((1.2, 3), (1.4, 3), (2.5, 5)):
        img = screen()
        cv2.putText(img, "RT BREAST 10:00", (100, 200), 0, scale, colour, thick, cv2.LINE_AA)
        cv2.putText(img, "RADIAL", (100, 300), 0, scale, colour, thick, cv2.LINE_AA)
        for regions in (region(), None):
            assert not detect_doppler(img, regions).is_doppler, (scale, thick)


def test_yellow_annotation_text_and_marker_are_not_doppler() -> None:
    img = screen()
    for i, (scale, thick) in enumerate(((0.5, 1), (0.8, 2), (1.2, 2))):
        y = 90 + 70 * i
        cv2.putText(img, "LT BREAST 2:00 3CM FN", (100, y), 0, scale, (255, 255, 0), thick, 16)
    # A yellow body marker: outline, filled nipple dot, a 4 px probe bar.
    cv2.circle(img, (420, 320), 28, (255, 255, 0), 1, cv2.LINE_AA)
    cv2.circle(img, (420, 320), 5, (255, 255, 0), -1, cv2.LINE_AA)
    cv2.line(img, (400, 300), (425, 290), (255, 255, 0), 4, cv2.LINE_AA)
    for regions in (region(), None):
        assert not detect_doppler(img, regions).is_doppler
    prepared = prepare_still(img, "RGB", regions=region())
    assert prepared.stored_as == "gray" and prepared.yellow_pixels_whitened > 300


@pytest.mark.parametrize("kind", ["color", "power"])
def test_a_colour_bar_alone_is_not_doppler(kind: str) -> None:
    for x in (60, 476):  # left of the field, and right of it
        img = with_bar(screen(), kind, x=x)
        for regions in (region(), None):
            f = detect_doppler(img, regions)
            assert not f.is_doppler and f.colour_bar == kind, (x, regions is None, f)


@pytest.mark.parametrize("colour", [(255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 120, 0)])
def test_calipers_are_not_doppler(colour: tuple[int, int, int]) -> None:
    img = screen()
    for x, y in ((200, 150), (320, 230), (150, 300)):
        cv2.line(img, (x - 6, y), (x + 6, y), colour, 1)
        cv2.line(img, (x, y - 6), (x, y + 6), colour, 1)
    for t in range(0, 120, 5):  # a dotted measurement line between two of them
        img[150 + t * 80 // 120, 200 + t] = colour
    cv2.putText(img, "D1 1.23 cm", (100, 70), 0, 0.5, colour, 1, cv2.LINE_AA)
    for regions in (region(), None):
        assert not detect_doppler(img, regions).is_doppler


def test_coloured_chrome_outside_the_field_is_not_doppler() -> None:
    img = screen()
    img[0:30, :] = (37, 62, 94)  # a Philips-like blue-grey header band
    cv2.putText(img, "PHILIPS", (8, 20), 0, 0.6, (90, 204, 254), 2, cv2.LINE_AA)
    cv2.circle(img, (300, 40), 9, (40, 90, 220), -1)  # a flat logo disc
    # A shaded, filled colour patch in the chrome (a vendor logo): outside the field.
    logo = with_flow(np.zeros((H, W, 3), np.uint8), "power", box=(480, 380, 556, 418), vessels=2)
    img[380:418, 480:556] = logo[380:418, 480:556]
    assert not detect_doppler(img, region()).is_doppler
    assert not detect_doppler(img, None).is_doppler


def test_grey_frames_are_never_doppler() -> None:
    img = screen()
    assert not detect_doppler(img[..., 0]).is_doppler
    assert not detect_doppler(img).is_doppler


# --------------------------------------------------------------------------- the field


def test_regions_are_used_only_when_sane() -> None:
    shape = (H, W, 3)
    assert region_fields(region(), shape) == FIELD
    assert region_fields(region((0, 0, 900, 700)), shape) is None  # reaches outside the image
    assert region_fields(region((10, 10, 30, 30)), shape) is None  # too small to be a field
    colour_bar = [{**region()[0], "RegionDataType": 13}]  # DICOM "color bar" region
    assert region_fields(colour_bar, shape) is None
    assert region_fields([{"RegionDataType": 1}], shape) is None  # no bounds at all
    # MaxX1 written as the exclusive bound on the last column (OBXXXX1A does): accepted.
    assert region_fields(region((0, 0, W + 1, H + 1)), shape) == (0, 0, W, H)


def test_field_estimate_finds_the_speckle_not_the_chrome() -> None:
    for field in ((90, 50, 470, 370), (10, 100, 300, 410)):
        got = estimate_field(screen(field))
        assert got is not None
        assert all(abs(a - b) <= 6 for a, b in zip(got, field, strict=True)), (got, field)


# --------------------------------------------------------------------------- real captures


def _real(name: str) -> tuple[np.ndarray, list[dict]]:
    ds = pydicom.dcmread(get_testdata_file(name))
    return decode_frame(ds, 0), regions_from_dataset(ds)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("US1_UNCR.dcm", "power"),  # GE LOGIQ power Doppler, no regions in the header
        ("US1_J2KI.dcm", "power"),  # the same, lossy JPEG 2000
        ("examples_rgb_color.dcm", "power"),  # a downscaled copy of it
        ("ExplVR_BigEnd.dcm", "power"),  # a 60 x 80 crop almost all top-of-scale yellow
        ("color-pl.dcm", "color"),  # red and blue colour flow
        ("OBXXXX1A.dcm", None),  # Philips B-mode: blue header, blue ticks, calipers
        ("examples_ybr_color.dcm", None),  # regions larger than the image: pixels decide
        ("gdcm-US-ALOKA-16.dcm", None),  # ALOKA dual view with green markers
    ],
)
def test_real_captures(name: str, kind: str | None) -> None:
    rgb, regions = _real(name)
    f = detect_doppler(rgb, regions)
    assert f.is_doppler == (kind is not None) and f.kind == kind, f


def test_flow_colour_masks_follow_the_documented_hue_and_chroma_rule() -> None:
    # The rule in the module docstring, written out with numpy on OpenCV's HSV of every colour
    # on a 3-step grid: saturated (chroma = S * V / 255 rounded, >= FLOW_MIN_CHROMA; value >=
    # FLOW_MIN_VALUE), warm hue (red..yellow), cool hue (cyan..blue), orange..yellow subset.
    step = np.arange(0, 256, 3)
    img = np.stack(np.meshgrid(step, step, step, indexing="ij"), -1).reshape(1, -1, 3)
    img = img.astype(np.uint8)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(int)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    saturated = ((sat * val + 127) // 255 >= FLOW_MIN_CHROMA) & (val >= FLOW_MIN_VALUE)
    warm = saturated & ((hue < 34) | (hue >= 170))
    cool = saturated & (hue >= 85) & (hue < 131)
    orange = saturated & (hue >= 11) & (hue < 34)
    got = flow_colour_masks(img)
    for mine, rule in zip(got, (warm, cool, orange), strict=True):
        assert mine.dtype == bool and np.array_equal(mine, rule)
    assert warm.any() and cool.any() and orange.any() and not (warm & cool).any()

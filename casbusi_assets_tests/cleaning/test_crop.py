"""The crop box: region sequence when sane, else a heuristic that assumes no screen layout."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.cleaning.crop import (
    CropBox,
    box_iou,
    crop_from_regions,
    find_ultrasound_field,
    ultrasound_field,
)
from casbusi_assets.pixels.decode import decode_frame, prepare_still
from casbusi_assets.synthetic import GeneratorConfig, generate_batch


def _region(x0, y0, x1, y1, kind=1):
    return {
        "RegionSpatialFormat": 1,
        "RegionDataType": kind,
        "RegionLocationMinX0": x0,
        "RegionLocationMinY0": y0,
        "RegionLocationMaxX1": x1,
        "RegionLocationMaxY1": y1,
    }


def _speckle(rng, h, w, gain=1.0):
    n = rng.standard_normal((2, h, w)).astype(np.float32)
    a = cv2.GaussianBlur(n[0], (0, 0), 1.7, sigmaY=0.8)
    b = cv2.GaussianBlur(n[1], (0, 0), 1.7, sigmaY=0.8)
    ray = np.sqrt(a * a + b * b)
    ray /= ray.mean()
    echo = 0.4 + 0.5 * cv2.resize(rng.random((6, 6)).astype(np.float32), (w, h))
    return np.clip(echo * ray * 120 * gain, 0, 255).astype(np.uint8)


def _screen(field, size=(600, 800), chrome=("top", "bottom", "left", "right"), gain=1.0, seed=0):
    """A black screen with a speckle field at `field` (x, y, w, h) and chrome on given sides:
    header text, a flat grey band, a depth ruler, a grey-scale bar, a tool bar, labels."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w), np.uint8)
    x, y, fw, fh = field
    font = cv2.FONT_HERSHEY_SIMPLEX
    if "top" in chrome and y > 30:
        img[: max(2, y - 26)] = 58  # flat grey header band (Philips style)
        cv2.putText(img, "PHILIPS  MAYO  05/25/2011 14:28", (10, y - 8), font, 0.5, 220, 1)
    if "bottom" in chrome and h - (y + fh) > 20:
        yb = y + fh + 4
        for i, label in enumerate(("Gen", "Sector", "THI", "Page 1/3")):
            cv2.rectangle(img, (x + 70 * i, yb), (x + 70 * i + 60, yb + 14), 150, 1)
            cv2.putText(img, label, (x + 70 * i + 4, yb + 11), font, 0.35, 210, 1)
    if "left" in chrome and x > 40:
        for k in range(0, fh, 40):
            cv2.line(img, (x - 4, y + k), (x - 12, y + k), 220, 1)
            cv2.putText(img, str(k // 40), (x - 28, y + k + 4), font, 0.35, 200, 1)
        cv2.line(img, (x - 4, y), (x - 4, y + fh), 200, 1)
        for i in range(8):
            cv2.putText(img, f"Gn {40 + i}", (2, y + 20 + 22 * i), font, 0.35, 200, 1)
    if "right" in chrome and w - (x + fw) > 20:
        ramp = np.linspace(255, 0, fh // 3).astype(np.uint8)[:, None]
        img[y + 10 : y + 10 + len(ramp), x + fw + 3 : x + fw + 15] = ramp  # bar 3 px away
    img[y : y + fh, x : x + fw] = _speckle(rng, fh, fw, gain)
    return img


POSITIONS = {
    "left": (0, 80, 480, 440),
    "right": (318, 60, 482, 470),
    "top": (150, 0, 520, 380),
    "bottom": (140, 230, 520, 370),
    "centre": (160, 90, 480, 420),
}


@pytest.mark.parametrize("where", sorted(POSITIONS))
def test_heuristic_finds_the_field_wherever_it_sits_with_chrome_on_every_side(where):
    field = POSITIONS[where]
    box = find_ultrasound_field(_screen(field))
    assert box.source == "heuristic"
    assert box_iou(box.as_tuple(), field) >= 0.95, (box, field)


def test_heuristic_ignores_a_flat_grey_header_band_bigger_than_the_field_is_tall():
    # The band is a large lit area, but flat: it is chrome, not echo.
    img = _screen((200, 300, 400, 200), chrome=("top",))
    img[:260] = np.maximum(img[:260], 70)
    box = find_ultrasound_field(img)
    assert box_iou(box.as_tuple(), (200, 300, 400, 200)) >= 0.95


def test_heuristic_on_a_dark_capture_and_on_rgb_doppler():
    field = (120, 70, 520, 430)
    dark = _screen(field, gain=0.16)
    assert dark[70:500, 120:640].mean() < 15
    assert box_iou(find_ultrasound_field(dark).as_tuple(), field) >= 0.93
    rgb = np.repeat(_screen(field)[..., None], 3, axis=-1)
    rgb[150:300, 250:420] = (200, 30, 20)  # colour flow inside the field
    rgb[120:240, 40:52] = np.linspace([255, 0, 0], [0, 0, 255], 120)[:, None].astype(np.uint8)
    assert box_iou(find_ultrasound_field(rgb).as_tuple(), field) >= 0.95


def test_heuristic_returns_the_union_of_a_dual_view():
    img = _screen((60, 80, 330, 420), chrome=())
    img[80:500, 398:728] = _speckle(np.random.default_rng(3), 420, 330)
    box = find_ultrasound_field(img)
    assert box_iou(box.as_tuple(), (60, 80, 668, 420)) >= 0.95


def test_heuristic_on_an_empty_screen_keeps_the_whole_frame():
    box = find_ultrasound_field(np.zeros((100, 120), np.uint8))
    assert box == CropBox(0, 0, 120, 100, "heuristic")


def test_regions_give_the_crop_and_the_union_of_several():
    regions = [_region(20, 30, 319, 429), _region(330, 30, 629, 429), _region(40, 40, 60, 90, 13)]
    box = crop_from_regions(json.dumps(regions), 640, 480)
    # The grey-bar region (data type 13) is not part of the field.
    assert box == CropBox(20, 30, 610, 400, "regions")
    assert crop_from_regions(regions, 640, 480) == box


def test_a_one_pixel_overshoot_is_clipped_as_real_scanners_write_it():
    # OBXXXX1A declares MaxX1 = 800 on an 800-column image.
    box = crop_from_regions([_region(120, 60, 800, 518)], 800, 600)
    assert box == CropBox(120, 60, 680, 459, "regions")


@pytest.mark.parametrize(
    "regions",
    [
        None,
        "",
        "[]",
        "not json",
        [_region(120, 60, 800, 518)] * 1 + [_region(10, 400, 700, 700)],  # one outside
        [_region(120, 60, 1600, 518)],  # outside the image
        [_region(100, 100, 100, 300)],  # zero width
        [_region(300, 100, 200, 300)],  # inverted
        [_region(10, 10, 30, 30)],  # tiny
        [_region(176, 522, 743, 576, 10)],  # only an ECG trace region
        [{"RegionLocationMinX0": 1, "RegionLocationMinY0": 2}],  # incomplete
    ],
)
def test_absent_or_insane_regions_are_not_used(regions):
    assert crop_from_regions(regions, 800, 600) is None


def test_ultrasound_field_falls_back_to_the_heuristic_when_regions_are_insane():
    field = POSITIONS["right"]
    img = _screen(field)
    for bad in (None, [_region(0, 0, 2000, 2000)], [_region(50, 50, 50, 50)]):
        box = ultrasound_field(img, bad)
        assert box.source == "heuristic"
        assert box_iou(box.as_tuple(), field) >= 0.95
    good = ultrasound_field(img, [_region(318, 60, 799, 529)])
    assert good == CropBox(318, 60, 482, 470, "regions")


def _real(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    regions = [
        {k: int(getattr(r, k)) for k in _region(0, 0, 0, 0) if k in r}
        for r in ds.get("SequenceOfUltrasoundRegions", [])
    ]
    return prepare_still(decode_frame(ds, 0), ds.PhotometricInterpretation).array, regions


def test_real_captures_regions_and_heuristic():
    # ALOKA dual view: with the region sequence removed the heuristic finds both views.
    img, regions = _real("gdcm-US-ALOKA-16.dcm")
    declared = crop_from_regions(regions, img.shape[1], img.shape[0])
    assert declared is not None and declared.as_tuple() == (32, 24, 608, 392)
    assert box_iou(find_ultrasound_field(img).as_tuple(), declared.as_tuple()) >= 0.95
    # examples_palette is OBXXXX1A cut to 350 rows with the 600-row regions kept: not trusted.
    img, regions = _real("examples_palette.dcm")
    assert ultrasound_field(img, regions).source == "heuristic"


def test_heuristic_matches_the_true_field_on_generated_captures(tmp_path):
    cfg = GeneratorConfig(stills_per_study=(2, 3), cine_per_study=(0, 0), varied_style_share=0.7)
    files = generate_batch(tmp_path, 0, patients=3, seed=5151, config=cfg)
    truth = pd.read_parquet(files.truth_path)
    stills = truth[(truth["member_kind"] == "image") & (truth["expected_status"] == "ok")]
    assert len(stills) >= 10 and set(stills["screen_style"]) == {"classic", "varied"}
    ious = []
    with zipfile.ZipFile(files.zip_path) as zf:
        for row in stills.itertuples():
            ds = pydicom.dcmread(io.BytesIO(zf.read(row.member_path)))
            img = prepare_still(decode_frame(ds, 0), ds.PhotometricInterpretation).array
            field = tuple(json.loads(row.field_box))
            ious.append(box_iou(find_ultrasound_field(img).as_tuple(), field))
    assert min(ious) >= 0.9, ious


def _fan_screen(
    field=(140, 60, 520, 460),
    echo_share=0.25,
    fan_level=0,
    ruler="right",
    size=(600, 800),
    spread=1.1,
    seed=1,
):
    """A sector scan as phased / curvilinear probes show it: the declared field `field`
    (x, y, w, h) holds a fan whose apex sits above its top centre and whose straight edges open
    to `spread` times the field width at full depth (clipped at the field's sides). Only the
    top `echo_share` of the depth holds echo; the rest of the fan is `fan_level` (0: the
    screen's black). A depth scale with ticks every half centimetre runs the field's full
    depth, 6 px off the `ruler` side; parameter text on the left, a header on top."""
    rng = np.random.default_rng(seed)
    h, w = size
    x, y, fw, fh = field
    img = np.zeros((h, w), np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "MAYO CLINIC  L12-5  BREAST", (10, 20), font, 0.5, 220, 1)
    for i, t in enumerate(("Gn 52", "D 8.0", "DR 66", "FR 24")):
        cv2.putText(img, t, (4, y + 30 + 24 * i), font, 0.4, 200, 1)
    r0 = 0.05 * fh
    r1 = r0 + fh
    half = np.arcsin(min(0.999, spread * fw / (2 * r1)))
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    dx, dy = xx - (fw - 1) / 2, yy + r0
    rad, ang = np.hypot(dx, dy), np.abs(np.arctan2(dx, dy))
    fan = (rad >= r0) & (rad <= r1) & (ang <= half)
    px = _speckle(rng, fh, fw) * (rad <= r0 + echo_share * fh)
    px = np.where(fan, np.maximum(px, fan_level), 0).astype(np.uint8)
    img[y : y + fh, x : x + fw] = px
    if ruler:
        rx = x + fw + 6 if ruler == "right" else x - 7
        sgn = 1 if ruler == "right" else -1
        for k in range(17):  # 8 cm, a tick every half centimetre
            yk = int(round(y + k * fh / 16))
            cv2.line(img, (rx, yk), (rx + sgn * (8 if k % 2 == 0 else 4), yk), 220, 1)
            if k % 2 == 0 and k:
                cv2.putText(
                    img, str(k // 2), (rx + sgn * 12 - 6 * (sgn < 0), yk + 4), font, 0.35, 200, 1
                )
    return img


@pytest.mark.parametrize("ruler", ["right", "left"])
def test_a_mostly_black_deep_sector_gets_its_full_declared_field(ruler):
    # The echo fills only the top quarter of an 8 cm fan; below it the fan is as black as the
    # screen. The depth scale says how deep the field goes, the fan's centre line where its
    # other side is.
    field = (140, 60, 520, 460)
    img = _fan_screen(field, echo_share=0.25, ruler=ruler)
    echo_only = (140 + 520 // 2 - 150, 60, 300, 115)
    assert box_iou(echo_only, field) < 0.2  # what the echo alone would give
    box = find_ultrasound_field(img)
    assert box_iou(box.as_tuple(), field) >= 0.9, (box, field)


def test_a_sector_whose_empty_part_is_dim_grey_is_found_without_a_ruler():
    # Philips draws the fan's empty part one grey level above the screen's black.
    field = (100, 40, 600, 500)
    img = _fan_screen(field, echo_share=0.2, fan_level=1, ruler=None, spread=1.15)
    box = find_ultrasound_field(img)
    assert box_iou(box.as_tuple(), field) >= 0.9, (box, field)


def test_a_field_darker_than_the_chrome_around_it_is_found():
    # color3d-style: the screen around the field is grey level 1, the field's empty part 0
    # (here a fan narrower than its field, with echo in its upper part only).
    field = (120, 50, 540, 440)
    img = _fan_screen(field, echo_share=0.6, ruler=None, spread=0.8)
    img[img == 0] = 1
    x, y, fw, fh = field
    inner = img[y : y + fh, x : x + fw]
    inner[inner == 1] = 0
    box = find_ultrasound_field(img)
    assert box_iou(box.as_tuple(), field) >= 0.9, (box, field)


def test_text_legends_inside_the_field_do_not_shrink_it():
    # A measurement legend and an annotation on black backdrops inside the field, at its top
    # and bottom edges (where the trim looks for gaps), and inside a black deep sector.
    field = (160, 90, 480, 420)
    img = _screen(field)
    font = cv2.FONT_HERSHEY_SIMPLEX
    x, y, fw, fh = field
    img[y : y + 26, x : x + 190] = 0
    cv2.putText(img, "+ Dist 1.06 cm", (x + 6, y + 18), font, 0.5, 255, 1)
    img[y + fh - 40 : y + fh, x + fw - 220 : x + fw] = 0
    cv2.putText(img, "RT BREAST 10:00", (x + fw - 210, y + fh - 12), font, 0.55, 255, 1)
    assert box_iou(find_ultrasound_field(img).as_tuple(), field) >= 0.95
    field = (140, 60, 520, 460)
    fan = _fan_screen(field, echo_share=0.3)
    cv2.putText(fan, "+ Cyst 2.1 cm", (160, 90), font, 0.5, 255, 1)
    cv2.putText(fan, "LT BREAST 2:00 4CM FN", (300, 440), font, 0.5, 255, 1)
    assert box_iou(find_ultrasound_field(fan).as_tuple(), field) >= 0.9


def test_a_scale_that_does_not_start_at_the_echo_top_is_not_the_fields():
    # A regular column of marks lower down on the far side (say a list of equally spaced
    # icons): the field is the rectangle of echo, not stretched to it.
    field = (160, 60, 420, 300)
    img = _screen(field, chrome=("top",))
    for k in range(9):
        cv2.circle(img, (700, 300 + 30 * k), 1, 220, -1)
    assert box_iou(find_ultrasound_field(img).as_tuple(), field) >= 0.95


def test_real_philips_sector_with_its_region_sequence_removed():
    # OBXXXX1A: an 11 cm fan of which only the top 2 cm hold echo; its empty part is grey
    # level 1 on a 0 screen. The echo alone gives IoU 0.07 against the declared region.
    img, regions = _real("OBXXXX1A.dcm")
    declared = crop_from_regions(regions, img.shape[1], img.shape[0])
    assert declared is not None
    assert box_iou(find_ultrasound_field(img).as_tuple(), declared.as_tuple()) >= 0.9

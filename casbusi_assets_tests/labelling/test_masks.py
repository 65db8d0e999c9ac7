"""Mask references to pixels: composite colour selection, single-instance non-zero, the masks
folder naming, and placement back into the original geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from casbusi_assets.labelling.masks import (
    MaskRef,
    MaskResolver,
    MaskUnavailable,
    project_to_original,
    select_pixels,
)

COMPOSITE = MaskRef(
    "composite", "https://api.labelbox.com/api/v1/tasks/t1/masks/cm5/index/1", (200, 10, 30), "f4"
)
INSTANCE = MaskRef(
    "instance", "https://api.labelbox.com/api/v1/projects/p/annotations/f9/index/1/mask", None, "f9"
)


def test_mask_ids_follow_the_export_urls():
    assert COMPOSITE.mask_id == "cm5"
    assert INSTANCE.mask_id == "f9"


def test_composite_selects_exactly_its_colour():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1, 2] = (200, 10, 30)
    rgb[2, 3] = (30, 10, 200)  # another instance, channels swapped: must not match
    got = select_pixels(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), COMPOSITE)
    assert got.sum() == 1 and got[1, 2]


def test_instance_png_non_zero_pixels_are_the_mask(tmp_path):
    gray = np.zeros((4, 5), np.uint8)
    gray[0, 0] = 1
    gray[3, 4] = 255
    cv2.imwrite(str(tmp_path / "f9.png"), gray)
    got = MaskResolver(tmp_path).resolve(INSTANCE)
    assert got.sum() == 2 and got[0, 0] and got[3, 4]


def test_folder_then_fetch_and_the_fetched_png_is_kept(tmp_path):
    png = cv2.imencode(".png", np.full((2, 2), 255, np.uint8))[1].tobytes()
    fetched = []
    resolver = MaskResolver(tmp_path / "masks", fetch=lambda url: fetched.append(url) or png)
    assert resolver.resolve(INSTANCE).all()
    assert (tmp_path / "masks" / "f9.png").read_bytes() == png
    assert MaskResolver(tmp_path / "masks").resolve(INSTANCE).all()  # now offline
    assert fetched == [INSTANCE.url]


def test_unresolvable_masks_say_why(tmp_path):
    with pytest.raises(MaskUnavailable, match="cm5.png not in"):
        MaskResolver(tmp_path).resolve(COMPOSITE)

    def refuse(url):
        raise RuntimeError("HTTP 401")

    with pytest.raises(MaskUnavailable, match="HTTP 401"):
        MaskResolver(tmp_path, fetch=refuse).resolve(COMPOSITE)
    (tmp_path / "cm5.png").write_bytes(b"not a png")
    with pytest.raises(MaskUnavailable, match="not a readable PNG"):
        MaskResolver(tmp_path).resolve(COMPOSITE)


def test_projection_places_the_crop_mask_at_its_offset():
    crop = np.zeros((3, 4), bool)
    crop[0, 0] = crop[2, 3] = True
    full = project_to_original(crop, crop_x=5, crop_y=7, width=20, height=12)
    assert full.shape == (12, 20)
    assert list(zip(*np.nonzero(full), strict=True)) == [(7, 5), (9, 8)]
    with pytest.raises(MaskUnavailable, match="does not fit"):
        project_to_original(crop, crop_x=18, crop_y=0, width=20, height=12)

"""The generator's legibility guarantee: every captured label stays readable by a person."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pydicom

from casbusi_assets.synthetic.scanner_screen import _backdrop_factor

# Stroke-to-surround contrast (grey levels) below which a 1-px label is hard to read by eye.
# Measured on the rendered captures before the guarantee: blurred labels on the bright near-field
# band scored 37-40, legible ones from about 60 up.
MIN_MEASURED_CONTRAST = 50.0


def stroke_contrast(arr: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Median of the text strokes minus the median of the pixels right around them.

    Strokes are the brightest pixels of the text box (within 80 % of its 97th percentile); the
    surround is the one-pixel ring outside them. Measured on the final pixels only, so it sees
    whatever degradation, backdrop or speckle the label ended up on.
    """
    grey = arr.max(axis=-1) if arr.ndim == 3 else arr
    x0, y0, x1, y1 = box
    crop = grey[y0:y1, x0:x1].astype(np.float32)
    ink = crop >= 0.8 * np.percentile(crop, 97)
    ring = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~ink
    if not ring.any():
        return 255.0
    return float(np.median(crop[ink]) - np.median(crop[ring]))


def test_every_captured_label_is_legible(default_batches):
    seen = set()
    for g in default_batches:
        t = g.truth
        rows = t[(t["member_kind"] == "image") & (t["expected_status"] == "ok")]
        rows = rows[rows["text_box"].notna() & (rows["capture"] != "green_corrupt")]
        assert len(rows) >= 20
        for r in rows.itertuples():
            ds = pydicom.dcmread(io.BytesIO(g.members[r.member_path]))
            arr = ds.pixel_array
            if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
                arr = arr[0]
            c = stroke_contrast(arr, tuple(json.loads(r.text_box)))
            assert c >= MIN_MEASURED_CONTRAST, (r.member_path, r.text_degradation, c)
            seen.add(r.text_degradation)
    assert {"none", "blur", "jpeg", "low_contrast"} <= seen


def test_backdrop_is_dimmed_only_when_text_would_be_lost():
    dark = np.full((20, 60), 30, dtype=np.uint8)
    bright = np.full((20, 60), 200, dtype=np.uint8)
    box = (0, 0, 60, 20)
    assert _backdrop_factor(dark, box, 240) == 1.0
    f = _backdrop_factor(bright, box, 240)
    assert f < 1.0
    # after dimming, white text clears the required margin over the backdrop
    assert 240 - 200 * f >= 0.6 * 240 - 1e-6
    # dim (low-contrast) text needs a darker backdrop than white text
    assert _backdrop_factor(bright, box, 130) < f

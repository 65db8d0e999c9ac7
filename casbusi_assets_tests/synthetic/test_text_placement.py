"""The varied style's text: anywhere on the screen, more fonts and colours, truth kept right."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest

from casbusi_assets.synthetic import generate_batches
from casbusi_assets.synthetic.config import GeneratorConfig
from casbusi_assets.synthetic.scanner_screen import FONTS, VARIED_FONTS
from casbusi_assets_tests.synthetic.conftest import Generated, load


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("varied_text")
    cfg = GeneratorConfig(varied_style_share=1.0, caliper_share=0.0, doppler_share=0.3)
    return load(generate_batches(out, batches=1, patients=10, seed=4242, config=cfg)[0])


def _stills(g: Generated):
    t = g.truth
    rows = t[(t["member_kind"] == "image") & (t["expected_status"] == "ok")]
    return rows[rows["text_box"].notna()]


def test_text_lands_outside_the_field_and_inside_it_at_any_height(varied: Generated) -> None:
    outside = inside = 0
    heights = []
    for r in _stills(varied).itertuples():
        x0, y0, x1, y1 = json.loads(r.text_box)
        fields = json.loads(r.regions)
        assert 0 <= x0 < x1 <= r.columns and 0 <= y0 < y1 <= r.rows
        if not any(f[0] <= x0 and x1 <= f[2] + 1 and f[1] <= y0 and y1 <= f[3] + 1 for f in fields):
            outside += 1
        else:
            f = fields[0]
            heights.append(((y0 + y1) / 2 - f[1]) / max(1, f[3] - f[1]))
            inside += 1
    assert outside >= 5 and inside >= 5
    # inside the field the label is not only in the top or bottom band of the classic style
    assert max(heights) - min(heights) > 0.4
    assert any(0.15 < v < 0.85 for v in heights)


def test_more_fonts_and_colours_and_the_text_box_holds_the_ink(varied: Generated) -> None:
    rows = _stills(varied)
    assert set(rows["text_font"]) - set(FONTS), "no new Hershey family was drawn"
    assert set(rows["text_font"]) <= set(VARIED_FONTS)
    hues = set()
    for r in rows.itertuples():
        ds = pydicom.dcmread(io.BytesIO(varied.members[r.member_path]))
        arr = ds.pixel_array
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            arr = arr[0]
        x0, y0, x1, y1 = json.loads(r.text_box)
        crop = arr[y0:y1, x0:x1]
        assert crop.size and int(crop.max()) >= 120  # the drawn strokes are inside the box
        if crop.ndim == 3 and r.capture == "doppler":
            ink = crop[crop.max(axis=-1) >= 0.8 * crop.max()].astype(int)
            r_, g_, b_ = np.median(ink, axis=0)
            if r_ > 150 and g_ > 150 and b_ < 90:
                hues.add("yellow")
            elif g_ > 150 and b_ > 150 and r_ < 90:
                hues.add("cyan")
            elif abs(r_ - b_) < 30 and abs(g_ - b_) < 30:
                hues.add("white" if r_ >= 215 else "grey")
    assert len(hues) >= 2, hues


def test_multi_line_labels_and_the_wide_words_reach_the_screen(varied: Generated) -> None:
    texts = list(_stills(varied)["annotation_text"])
    assert any(t.count("\n") >= 2 for t in texts)
    words = " ".join(texts)
    assert any(w in words for w in ("SAG", "TRV", "ARAD", "OBL", "OCLOCK", "CMFN", " 00"))

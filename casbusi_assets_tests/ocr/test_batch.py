import json

import cv2
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.ocr.batch import field_recovery, read_batch_annotations, region_union
from casbusi_assets.ocr.engines import make_engine


def _region(x0, y0, x1, y1):
    return {
        "RegionLocationMinX0": x0,
        "RegionLocationMinY0": y0,
        "RegionLocationMaxX1": x1,
        "RegionLocationMaxY1": y1,
    }


def test_region_union_spans_every_view():
    dual = json.dumps([_region(10, 40, 300, 400), _region(320, 42, 610, 398)])
    assert region_union(dual) == (10, 40, 610, 400)
    assert region_union(json.dumps([_region(5, 6, 7, 8)])) == (5, 6, 7, 8)
    assert region_union(None) is None and region_union("[]") is None
    assert region_union("not json") is None
    assert region_union(json.dumps([{"RegionLocationMinX0": 1}])) is None


@pytest.fixture(scope="module")
def engine():
    return make_engine("rapidocr", device="cpu")


def _capture(path, text_lines):
    img = np.full((480, 640), 12, np.uint8)
    rng = np.random.default_rng(0)
    img[60:420, 80:560] = rng.integers(30, 90, (360, 480), dtype=np.uint8)
    for i, line in enumerate(text_lines):
        cv2.putText(img, line, (100, 360 + 26 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    cv2.imwrite(str(path), img)
    return str(path)


def test_batch_rows_for_images_clips_and_failures(engine, tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    _capture(frames / "frame_0000.png", ["RT BREAST 10:30", "4-5 CM FN TRANS"])
    images = pd.DataFrame(
        [
            {
                "sop_instance_uid": "1.1",
                "status": "ok",
                "image_path": _capture(tmp_path / "a.png", ["LT BREAST 2:00 3CM FN", "RADIAL"]),
            },
            {"sop_instance_uid": "1.2", "status": "failed", "image_path": None, "error": "boom"},
        ]
    )
    videos = pd.DataFrame([{"sop_instance_uid": "2.1", "status": "ok", "frames_dir": str(frames)}])
    region = json.dumps([_region(80, 60, 559, 419)])
    df = read_batch_annotations(images, videos, engine, {"1.1": region, "2.1": region})
    rows = df.set_index("sop_instance_uid")
    assert rows.loc[
        "1.1", ["laterality", "orientation", "clock_pos", "nipple_dist_cm"]
    ].tolist() == ["left", "radial", "2:00", 3.0]
    assert rows.loc["2.1", "source"] == "video"
    assert rows.loc[
        "2.1", ["laterality", "orientation", "clock_pos", "nipple_dist_cm"]
    ].tolist() == ["right", "trans", "10:30", 4.5]
    assert rows.loc["1.2", "status"] == "failed" and "boom" in rows.loc["1.2", "error"]
    assert set(df["ocr_engine"]) == {"rapidocr"} and set(df["ocr_device"]) == {"cpu"}
    shares = field_recovery(df)
    assert shares["laterality"] == 1.0 and shares["area"] == 1.0


def test_worker_processes_give_the_rows_one_process_gives(engine, tmp_path):
    """Two worker processes, each building its own engine from the spec, read the same text in
    the same row order as the step's own engine; an unreadable file is still its own row."""
    from casbusi_assets.ocr.batch import EngineSpec

    texts = [["LT BREAST 2:00 3CM FN", "RADIAL"], ["RT 10:30", "TRANS"], ["L 4:00", "LONG"]]
    rows = [
        {
            "sop_instance_uid": f"1.{i}",
            "status": "ok",
            "image_path": _capture(tmp_path / f"{i}.png", t),
        }
        for i, t in enumerate(texts)
    ]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    rows.append(
        {"sop_instance_uid": "1.9", "status": "ok", "image_path": str(tmp_path / "bad.png")}
    )
    images, videos = pd.DataFrame(rows), pd.DataFrame(columns=["sop_instance_uid", "status"])
    columns = ["sop_instance_uid", "status", "laterality", "orientation", "clock_pos"]
    serial = read_batch_annotations(images, videos, engine)
    pooled = read_batch_annotations(images, videos, EngineSpec("rapidocr", "cpu"), workers=2)
    pd.testing.assert_frame_equal(serial[columns], pooled[columns])
    assert pooled["laterality"].tolist()[:3] == ["left", "right", "left"]
    assert pooled.loc[3, "status"] == "failed" and "cannot read" in pooled.loc[3, "error"]


def test_pooled_spec_spreads_only_rapidocr_on_cpu():
    from casbusi_assets.ocr.batch import EngineSpec, pooled_spec

    assert pooled_spec(EngineSpec("rapidocr", "cpu"), 1) is None
    assert pooled_spec(EngineSpec("rapidocr", "cuda"), 2) is None
    assert pooled_spec(EngineSpec("easyocr", "cpu"), 2) is None
    spec = pooled_spec(EngineSpec("rapidocr", "cpu"), 2)
    assert spec is not None and dict(spec.opts)["threads"] >= 1

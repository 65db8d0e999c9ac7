"""OCR engines: factory, devices, RapidOCR end to end on a rendered label, optional EasyOCR."""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from casbusi_assets.ocr.engines import (
    EASYOCR_MODEL_DIR_ENV,
    EASYOCR_MODEL_FILES,
    DeviceUnavailableError,
    OcrEngine,
    OcrEngineError,
    RapidOcrEngine,
    TextBox,
    make_engine,
    resolve_device,
)
from casbusi_assets.shared.device import cuda_available


@functools.lru_cache(maxsize=1)
def shared_rapidocr() -> RapidOcrEngine:
    """One RapidOCR engine per test process (model load ~0.5-1 s); the reader tests reuse it."""
    engine = make_engine("rapidocr", device="cpu")
    assert isinstance(engine, RapidOcrEngine)
    return engine


@pytest.fixture(scope="session")
def rapid() -> RapidOcrEngine:
    return shared_rapidocr()


def render_label(
    lines: list[str], size: tuple[int, int] = (640, 480), rgb: bool = False
) -> np.ndarray:
    """Dark speckled screen with white label lines near the bottom left, like a scanner."""
    w, h = size
    rng = np.random.default_rng(7)
    img = rng.normal(40, 12, (h, w)).clip(0, 255).astype(np.uint8)
    y = h - 30 * len(lines) - 20
    for line in lines:
        cv2.putText(img, line, (40, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
        y += 32
    return np.repeat(img[:, :, None], 3, axis=2) if rgb else img


# --------------------------------------------------------------------------------------------
# factory and devices


def test_unknown_engine_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown OCR engine 'tesseract'.*rapidocr, easyocr"):
        make_engine("tesseract")


def test_cuda_requested_without_cuda_is_a_clear_error() -> None:
    if cuda_available("rapidocr"):
        pytest.skip("this machine has CUDA for onnxruntime")
    with pytest.raises(DeviceUnavailableError, match="onnxruntime-gpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError):
        make_engine("rapidocr", device="cuda")


def test_missing_model_files_name_the_files(tmp_path: Path) -> None:
    with pytest.raises(OcrEngineError, match="PP-OCRv6_det_small.onnx"):
        make_engine("rapidocr", device="cpu", model_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# RapidOCR


def test_rapidocr_uses_the_bundled_models_and_never_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the OCR engine tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    engine = make_engine("rapidocr", device="cpu", warmup=False)
    assert isinstance(engine, OcrEngine)
    assert engine.device == "cpu"
    bundled = Path(importlib.util.find_spec("rapidocr").origin).parent / "models"  # type: ignore[union-attr]
    assert Path(engine.model_dir) == bundled
    cfg = engine._ocr.cfg
    assert Path(cfg.Det.model_path).parent == bundled
    assert Path(cfg.Rec.model_path).parent == bundled
    assert engine.read(render_label(["LT BREAST"]))  # models really load and run offline


def test_rapidocr_reads_a_rendered_label(rapid: RapidOcrEngine) -> None:
    img = render_label(["LT BREAST 2:00 3CM FN", "RADIAL"])
    boxes = rapid.read(img)
    assert all(isinstance(b, TextBox) for b in boxes)
    texts = [b.text for b in sorted(boxes, key=lambda b: b.box[1])]
    assert texts == ["LT BREAST 2:00 3CM FN", "RADIAL"]
    first = min(boxes, key=lambda b: b.box[1])
    x0, y0, x1, y1 = first.box
    # the box is in image coordinates, around where the text was drawn (x=40, baseline y=396)
    (tw, th), _ = cv2.getTextSize("LT BREAST 2:00 3CM FN", cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
    assert abs(x0 - 40) <= 8 and abs(x1 - (40 + tw)) <= 10
    assert abs(y0 - (396 - th)) <= 10 and abs(y1 - 396) <= 12
    assert first.score > 0.9


def test_rapidocr_accepts_grey_rgb_and_wide_integer_images(rapid: RapidOcrEngine) -> None:
    grey = render_label(["RT AXILLA"])
    rgb = render_label(["RT AXILLA"], rgb=True)
    wide = grey.astype(np.uint16) * 257  # a 16-bit capture (ALOKA style)
    for img in (grey, rgb, wide):
        assert [b.text for b in rapid.read(img)] == ["RT AXILLA"]


def test_rapidocr_on_a_blank_image_reads_nothing(rapid: RapidOcrEngine) -> None:
    assert rapid.read(np.zeros((200, 300), np.uint8)) == []
    assert rapid.read(np.zeros((4, 4), np.uint8)) == []


def test_bad_image_shape_is_rejected(rapid: RapidOcrEngine) -> None:
    with pytest.raises(ValueError, match="expected an H x W"):
        rapid.read(np.zeros((10, 10, 5), np.uint8))


def test_text_box_serialises() -> None:
    assert TextBox("LT", 0.987654, (1, 2, 3, 4)).as_dict() == {
        "text": "LT",
        "score": 0.9877,
        "box": [1, 2, 3, 4],
    }


# --------------------------------------------------------------------------------------------
# EasyOCR (optional extra)


def test_easyocr_without_package_or_weights_names_what_is_missing(tmp_path: Path) -> None:
    if importlib.util.find_spec("easyocr") is not None and all(
        (tmp_path / f).is_file() for f in EASYOCR_MODEL_FILES
    ):
        pytest.skip("easyocr and its weights are present")
    with pytest.raises(OcrEngineError) as err:
        make_engine("easyocr", device="cpu", model_dir=tmp_path)
    msg = str(err.value)
    for fname in EASYOCR_MODEL_FILES:
        assert str(tmp_path / fname) in msg
    assert "pip install 'casbusi-assets[easyocr]'" in msg


def test_easyocr_without_model_dir_says_how_to_configure_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EASYOCR_MODEL_DIR_ENV, raising=False)
    with pytest.raises(OcrEngineError, match=EASYOCR_MODEL_DIR_ENV):
        make_engine("easyocr", device="cpu", model_dir=None)


_EASYOCR_DIR = os.environ.get(EASYOCR_MODEL_DIR_ENV)


def _easyocr_skip_reason() -> str | None:
    if importlib.util.find_spec("easyocr") is None:
        return "easyocr is not installed (optional: pip install 'casbusi-assets[easyocr]')"
    if not _EASYOCR_DIR or not all((Path(_EASYOCR_DIR) / f).is_file() for f in EASYOCR_MODEL_FILES):
        return (
            f"EasyOCR weights not found: set {EASYOCR_MODEL_DIR_ENV} to a folder holding "
            + ", ".join(EASYOCR_MODEL_FILES)
        )
    return None


@pytest.mark.easyocr
@pytest.mark.skipif(_easyocr_skip_reason() is not None, reason=str(_easyocr_skip_reason()))
def test_easyocr_reads_a_rendered_label() -> None:  # pragma: no cover - optional extra
    engine = make_engine("easyocr", device="cpu", model_dir=_EASYOCR_DIR)
    texts = " ".join(b.text for b in engine.read(render_label(["LT BREAST", "RADIAL"])))
    assert "BREAST" in texts.upper() and "RADIAL" in texts.upper()

"""PNG files written by every stage: same pixels, standard files, sizes like OpenCV's."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from casbusi_assets.shared import png
from casbusi_assets.shared.png import encode_png


def _ultrasound_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.integers(0, 256, shape[:2], dtype=np.uint8), (5, 5), 0)
    field[:, : shape[1] // 5] = 0  # black screen around the field
    if len(shape) == 2:
        return field
    out = np.repeat(field[..., None], shape[2], axis=2)
    out[40:80, 60:120] = (255, 140, 0, 255)[: shape[2]]  # a colour-flow patch
    return out


def _read_opencv(data: bytes, channels: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    conv = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}.get(channels)
    return cv2.cvtColor(img, conv) if conv is not None else img


@pytest.mark.parametrize(
    "shape", [(600, 800), (961, 1279), (1, 1), (3, 2), (480, 640, 3), (5, 7, 4), (2, 1, 3)]
)
def test_pixels_come_back_exactly_through_libpng_and_pillow(shape: tuple[int, ...]) -> None:
    image = (
        _ultrasound_like(shape)
        if min(shape[:2]) > 100
        else np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    )
    data = encode_png(image)
    assert data.startswith(png.SIGNATURE)
    channels = 1 if image.ndim == 2 else image.shape[2]
    assert np.array_equal(_read_opencv(data, channels), image)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)


def test_non_contiguous_views_are_encoded_as_their_pixels() -> None:
    image = _ultrasound_like((300, 400, 3))
    view = image[10:200:2, 30:350, ::-1]  # strided rows, reversed channels
    assert np.array_equal(_read_opencv(encode_png(view), 3), view)


def test_files_stay_the_size_of_opencvs_default_png() -> None:
    image = _ultrasound_like((768, 1024))
    ours = len(encode_png(image))
    opencv = len(cv2.imencode(".png", image)[1])
    assert ours <= 1.05 * opencv


def test_sixteen_bit_and_opencv_fallback_keep_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    deep = (np.arange(12 * 10, dtype=np.uint16) * 500).reshape(12, 10)
    assert np.array_equal(_read_opencv(encode_png(deep), 1), deep)
    monkeypatch.setattr(png, "_isal", None)  # a machine without isal: OpenCV encodes
    rgb = _ultrasound_like((120, 160, 3))
    assert np.array_equal(_read_opencv(encode_png(rgb), 3), rgb)


def test_empty_image_is_refused() -> None:
    with pytest.raises((ValueError, cv2.error)):
        encode_png(np.zeros((0, 5), np.uint8))

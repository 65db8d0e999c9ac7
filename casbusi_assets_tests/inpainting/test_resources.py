"""InpaintSettings: the method comes from CASBUSI_INPAINT_*, the learned one loads once."""

from __future__ import annotations

import pytest

from casbusi_assets.definitions import build_resources
from casbusi_assets.inpainting.methods import DEFAULT_METHOD, LearnedInpainter, OpenCVInpainter
from casbusi_assets.inpainting.resources import DEFAULT_MODEL_PATH, InpaintSettings


def test_defaults_are_the_measured_best_method_and_the_shipped_weights(monkeypatch):
    for name in ("CASBUSI_INPAINT_METHOD", "CASBUSI_INPAINT_RADIUS", "CASBUSI_INPAINT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    settings = build_resources()["inpaint_settings"]
    assert settings.method == DEFAULT_METHOD == "learned"
    assert settings.model_path == DEFAULT_MODEL_PATH and settings.uses_model
    inpainter = settings.create("cpu")
    assert isinstance(inpainter, LearnedInpainter) and inpainter.device == "cpu"


def test_environment_chooses_the_method(monkeypatch, tmp_path):
    monkeypatch.setenv("CASBUSI_INPAINT_METHOD", "telea")
    monkeypatch.setenv("CASBUSI_INPAINT_RADIUS", "5")
    settings = build_resources()["inpaint_settings"]
    inpainter = settings.create()
    assert isinstance(inpainter, OpenCVInpainter)
    assert (inpainter.name, inpainter.radius, settings.uses_model) == ("telea", 5.0, False)
    monkeypatch.setenv("CASBUSI_INPAINT_METHOD", "learned")
    monkeypatch.setenv("CASBUSI_INPAINT_MODEL", str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_resources()["inpaint_settings"].create()


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="inpainting method must be one of"):
        InpaintSettings(method="lama").create()

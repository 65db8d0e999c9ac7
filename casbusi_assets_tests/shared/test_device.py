"""Device resolution shared by every inference stage: cpu, cuda, auto."""

from __future__ import annotations

import pytest

from casbusi_assets.shared import device
from casbusi_assets.shared.device import resolve_device


def test_bad_device_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, auto"):
        resolve_device("gpu")


def test_auto_resolves_to_cpu_without_cuda() -> None:
    if device.cuda_available("rapidocr"):
        pytest.skip("this machine has CUDA for onnxruntime")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_auto_picks_cuda_when_the_runtime_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_onnxruntime_has_cuda", lambda: True)
    monkeypatch.setattr(device, "_torch_has_cuda", lambda: False)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda") == "cuda"
    # EasyOCR runs on torch, so onnxruntime's CUDA says nothing about it
    assert resolve_device("auto", engine="easyocr") == "cpu"


def test_torch_runtime_follows_torch_cuda_not_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    # the project's own torch models (orientation) ask for engine="torch"
    monkeypatch.setattr(device, "_onnxruntime_has_cuda", lambda: True)
    monkeypatch.setattr(device, "_torch_has_cuda", lambda: False)
    assert resolve_device("auto", engine="torch") == "cpu"
    with pytest.raises(device.DeviceUnavailableError, match=r"torch\.cuda.*CUDA build of torch"):
        resolve_device("cuda", engine="torch")
    monkeypatch.setattr(device, "_torch_has_cuda", lambda: True)
    assert resolve_device("auto", engine="torch") == "cuda"
    assert resolve_device("cuda", engine="torch") == "cuda"

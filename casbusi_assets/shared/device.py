"""Which device an inference runtime runs on: ``cpu``, ``cuda`` or ``auto`` (CUDA when the runtime
can use it). Shared by every inference stage; knows nothing of Dagster.

Asking for ``cuda`` where there is none raises :class:`DeviceUnavailableError` instead of silently
running on the CPU, so a GPU job that lost its GPU fails loudly rather than running 10x slower.
"""

from __future__ import annotations

import importlib.util

DEVICES = ("cpu", "cuda", "auto")
# Engines whose runtime is torch (EasyOCR, and the project's own torch models such as the
# orientation model); every other engine name means onnxruntime.
TORCH_ENGINES = ("torch", "easyocr")


class DeviceUnavailableError(RuntimeError):
    """CUDA was requested explicitly but the engine's runtime cannot use it here."""


def _onnxruntime_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    # both: the CPU wheel never lists CUDA, and the GPU wheel lists it even without a driver
    return "CUDAExecutionProvider" in ort.get_available_providers() and ort.get_device() == "GPU"


def _torch_has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def cuda_available(engine: str = "rapidocr") -> bool:
    """Whether ``engine``'s runtime can use CUDA: torch for ``torch`` / ``easyocr``, onnxruntime
    for RapidOCR (and any other engine name)."""
    return _torch_has_cuda() if engine in TORCH_ENGINES else _onnxruntime_has_cuda()


def resolve_device(requested: str, engine: str = "rapidocr") -> str:
    """Map ``'cpu' | 'cuda' | 'auto'`` to the device the engine will run on: 'cpu' or 'cuda'.

    ``auto`` picks CUDA when available. ``cuda`` without CUDA raises DeviceUnavailableError.
    """
    req = (requested or "auto").strip().lower()
    if req not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {requested!r}")
    if req == "cpu":
        return "cpu"
    has_cuda = cuda_available(engine)
    if req == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        on_torch = engine in TORCH_ENGINES
        runtime = "torch.cuda" if on_torch else "onnxruntime's CUDAExecutionProvider"
        hint = (
            "install a CUDA build of torch"
            if on_torch
            else "replace onnxruntime with onnxruntime-gpu matching the CUDA/cuDNN on this machine"
        )
        raise DeviceUnavailableError(
            f"Device 'cuda' was requested for {engine}, but {runtime} is not available "
            f"here; {hint}, or use device='cpu' / 'auto'."
        )
    return "cuda"

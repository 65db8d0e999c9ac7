"""Inpainting methods behind one small interface: `name` and `inpaint(image, mask) -> image`.

- `OpenCVInpainter`: `cv2.inpaint` with Telea's fast marching method or Navier-Stokes.
- `LearnedInpainter`: the plain-torch gated U-Net of `model.py`, loaded once and kept for a
  whole run, on the device the device resource resolved (CPU or CUDA).

Every method returns an image that equals its input outside the mask, pixel for pixel (the
result is composited with the original), grey or colour alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from casbusi_assets.shared.model_files import shipped_model

METHODS = ("telea", "ns", "learned")
# Measured on the same held-out images (benchmarks/README.md, "Caliper inpainting": a new-seed
# generated batch with the detector's boxes, and fresh renders in six mark colours): the learned
# network beat Navier-Stokes, which beat Telea, so it is the default; `ns` is the fallback
# without torch weights.
DEFAULT_METHOD = "learned"
# The shipped weights (models/ in a checkout, the installed data files otherwise).
DEFAULT_MODEL_PATH = str(shipped_model("inpainting", "inpainter.pt"))


@runtime_checkable
class Inpainter(Protocol):
    """Fills the masked pixels of an image (H x W grey or H x W x 3 colour, uint8)."""

    name: str

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def _check(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or colour image, got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
    return (mask > 0).astype(np.uint8) * 255


def composite(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`filled` inside the mask, `original` everywhere else (exactly)."""
    out = original.copy()
    sel = mask > 0
    out[sel] = filled[sel]
    return out


class OpenCVInpainter:
    """`cv2.inpaint`: 'telea' (fast marching) or 'ns' (Navier-Stokes), with a pixel radius."""

    def __init__(self, method: str = DEFAULT_METHOD, radius: float = 3.0) -> None:
        flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
        if method not in flags:
            raise ValueError(f"OpenCV inpainting method must be 'telea' or 'ns'; got {method!r}")
        if radius <= 0:
            raise ValueError(f"inpainting radius must be positive; got {radius}")
        self.name = method
        self.radius = float(radius)
        self._flag = flags[method]

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        m = _check(image, mask)
        if not m.any():
            return image.copy()
        return composite(image, cv2.inpaint(image, m, self.radius, self._flag), m)


def _hole_boxes(mask: np.ndarray, margin: int, align: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) round the mask's pieces with `margin` context, their origin on
    the network's `align` grid, overlapping boxes merged."""
    h, w = mask.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = []
    for i in range(1, n):
        x, y, bw, bh = stats[i, :4]
        x0 = max(0, (x - margin) // align * align)
        y0 = max(0, (y - margin) // align * align)
        boxes.append([x0, y0, min(w, x + bw + margin), min(h, y + bh + margin)])
    merged = True
    while merged:  # merge until no two boxes overlap
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return [tuple(b) for b in boxes]  # type: ignore[misc]


class LearnedInpainter:
    """The trained gated U-Net (`model.py`), loaded once, run on `device` ('cpu' | 'cuda').

    Each channel is inpainted as a grey image, so grey and colour captures take the same
    weights. `whole_image=True` runs the network over the whole image in one pass; the default
    runs it over boxes round each hole with a margin wider than the network's receptive field,
    aligned to its stride grid, which gives the masked pixels the same values (a test checks
    it) at a fraction of the cost, right up to the image edges.
    """

    name = "learned"

    def __init__(self, weights: str | Path, device: str = "cpu", whole_image: bool = False) -> None:
        import torch

        from casbusi_assets.inpainting.model import load_model

        self._torch = torch
        self.device = device
        self.weights = Path(weights)
        self.model = load_model(self.weights, device)
        self.whole_image = whole_image
        self.fill = OpenCVInpainter("ns", 3.0)

    def _run(self, channels: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
        """channels, fill (C, h, w) uint8, mask (h, w) -> (C, h, w) uint8."""
        from casbusi_assets.inpainting.model import pad_to_multiple

        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(channels).float().div(127.5).sub(1.0)[:, None]
            f = torch.from_numpy(fill).float().div(127.5).sub(1.0)[:, None]
            m = torch.from_numpy((mask > 0).astype(np.float32))[None, None].expand_as(x)
            h, w = x.shape[-2:]
            x, f, m = (pad_to_multiple(t)[0] for t in (x, f, m.contiguous()))
            x, f, m = x.to(self.device), f.to(self.device), m.to(self.device)
            y = self.model(x, m, f)[..., :h, :w]
            y = y.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
            return y[:, 0].cpu().numpy()

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from casbusi_assets.inpainting.model import PAD_MULTIPLE, RECEPTIVE_RADIUS

        m = _check(image, mask)
        if not m.any():
            return image.copy()
        fill = self.fill.inpaint(image, m)
        chans = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
        fchans = fill[None] if fill.ndim == 2 else np.moveaxis(fill, 2, 0)
        out = chans.copy()
        h, w = m.shape
        boxes = (
            [(0, 0, w, h)] if self.whole_image else _hole_boxes(m, RECEPTIVE_RADIUS, PAD_MULTIPLE)
        )
        for x0, y0, x1, y1 in boxes:
            sub = self._run(
                np.ascontiguousarray(chans[:, y0:y1, x0:x1]),
                m[y0:y1, x0:x1],
                np.ascontiguousarray(fchans[:, y0:y1, x0:x1]),
            )
            out[:, y0:y1, x0:x1] = sub
        result = out[0] if image.ndim == 2 else np.moveaxis(out, 0, 2)
        return composite(image, np.ascontiguousarray(result), m)


def make_inpainter(
    method: str,
    radius: float = 3.0,
    weights: str | Path | None = DEFAULT_MODEL_PATH,
    device: str = "cpu",
) -> Inpainter:
    """The inpainter a run uses (built once per run: the learned one loads its weights here)."""
    method = (method or DEFAULT_METHOD).strip().lower()
    if method in ("telea", "ns"):
        return OpenCVInpainter(method, radius)
    if method == "learned":
        if not weights:
            raise ValueError("the learned inpainter needs a weights file (CASBUSI_INPAINT_MODEL)")
        return LearnedInpainter(weights, device)
    raise ValueError(f"inpainting method must be one of {', '.join(METHODS)}; got {method!r}")

"""Probe orientation read from the body-marker pictogram, for images whose text states none.

The pictogram (a breast outline, or the axilla's torso-and-arm outline, with a bar for the
probe) can sit anywhere on the screen, so the model works in two learned steps inside one torch
graph (exported to ONNX as one file):

1. a class-agnostic **locator**: a small fully-convolutional net over the whole screen at 128 x
   96 that outputs a "marker centre" heat map, with the marker's size and a sub-cell offset at
   each cell (CenterNet-style); the peak is the marker, its probability says whether there is one;
2. a **classifier** on a 48 x 48 crop cut at full resolution around the peak (bilinear sampling
   of a 96 px crop, averaged down, so thin 1 px outlines survive): long, trans, radial,
   anti-radial, oblique, or "none" (no marker there, or a bar that encodes nothing).

Where the locator finds a marker, the confidence of an orientation is P(orientation | crop).
Below MIN_CONFIDENCE the model returns None and the orientation stays unknown; see models/orientation/MODEL_CARD.md for
how the threshold was chosen and when the model may fill in the OCR value. torch is imported
lazily (this module is imported by the cleaning stage on machines that may not load it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from casbusi_assets.shared.device import resolve_device

# The OCR orientation vocabulary (ocr/parsing.py ORIENTATIONS without "unknown").
ORIENTATION_CLASSES: tuple[str, ...] = ("long", "trans", "radial", "anti-radial", "oblique")
# What the classifier outputs: the orientations plus "none" (no readable marker in the crop).
MODEL_CLASSES: tuple[str, ...] = (*ORIENTATION_CLASSES, "none")
# Below it predict() returns None. Chosen on the validation seed by models/orientation/train.py
# with choose_min_confidence (the highest coverage whose covered accuracy is at least 95% by its
# lower one-standard-error bound) and stored with the weights; the tests check the two agree.
MIN_CONFIDENCE: float = 0.83
# The locator's peak below this means "no marker on this screen": confidence 0, orientation None.
MARKER_GATE: float = 0.3
DEFAULT_MODEL_PATH: Path = (
    Path(__file__).resolve().parents[2] / "models" / "orientation" / "orientation_v2.pt"
)

# Every screen is letterboxed into this canvas (4:3, as ultrasound screens are) without
# distorting it: a distorted picture changes the probe angle.
CANVAS_W, CANVAS_H = 768, 576
LOC_POOL = 6  # canvas -> locator input (128 x 96)
LOC_STRIDE = 4  # locator input -> heat map cell (one cell = 24 canvas px)
CROP_SCALE = 1.6  # crop side / marker size: the outline, its tail, and room for error
CROP_SAMPLE = 96
CROP_PX = 48


class OrientationModelError(RuntimeError):
    """The weights file is missing or does not match this code."""


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) from grey or RGB; colour markers (yellow, cyan, green) take the brightest
    channel so they stay bright."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img.max(axis=-1)
    if img.ndim != 2:
        raise ValueError(f"expected an H x W or H x W x 3 image; got shape {image.shape}")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def letterbox(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The screen in a CANVAS_H x CANVAS_W uint8 canvas (top-left aligned), and the scale used."""
    g = to_gray(image)
    h, w = g.shape
    scale = min(CANVAS_W / w, CANVAS_H / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((CANVAS_H, CANVAS_W), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(g, (nw, nh), interpolation=interp)
    return canvas, scale


@lru_cache(maxsize=1)
def _torch_classes() -> dict[str, Any]:
    """The torch modules, built on first use so importing this module does not load torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class Locator(nn.Module):
        """Screen (1 x 96 x 128) -> 4 x 24 x 32: heat logit, log size, x / y offset in cells."""

        def __init__(self) -> None:
            super().__init__()
            # Dilated convolutions give a ~50 px receptive field (the largest marker) cheaply.
            self.body = nn.Sequential(
                block(1, 8, 2),
                block(8, 16, 2),
                block(16, 24),
                block(24, 24, dilation=2),
                block(24, 24, dilation=4),
            )
            self.head = nn.Conv2d(24, 4, 1)
            with torch.no_grad():  # start at P(marker) = 0.1 everywhere (CenterNet's prior)
                self.head.bias[0] = -2.19

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    class Classifier(nn.Module):
        """Marker crop (1 x 48 x 48) -> logits over MODEL_CLASSES. Flattened, not pooled: where
        the bar sits relative to the nipple is what separates radial from anti-radial."""

        def __init__(self) -> None:
            super().__init__()
            # CoordConv: two coordinate channels tell every filter where it is in the crop.
            ramp = torch.linspace(-1.0, 1.0, CROP_PX)
            coords = torch.stack(
                (ramp[None, :].expand(CROP_PX, CROP_PX), ramp[:, None].expand(CROP_PX, CROP_PX))
            )
            self.register_buffer("coords", coords[None].clone(), persistent=False)
            self.body = nn.Sequential(
                block(3, 16),
                block(16, 24, 2),
                block(24, 32),
                nn.MaxPool2d(2),
                block(32, 48),
                block(48, 48),
                nn.MaxPool2d(2),
                block(48, 64),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(0.2),
                nn.Linear(64 * 3 * 3, 128),
                nn.ReLU(inplace=True),
                nn.Linear(128, len(MODEL_CLASSES)),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            xy = self.coords.expand(x.shape[0], -1, -1, -1)
            return self.head(self.body(torch.cat((x, xy), dim=1)))

    def crop(canvas: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, side: torch.Tensor):
        """(N, 1, CROP_PX, CROP_PX) crops of side `side` canvas px centred at (cx, cy), each
        normalised by its own maximum (marker brightness and colour vary)."""
        n = canvas.shape[0]
        base = (torch.arange(CROP_SAMPLE, dtype=canvas.dtype) + 0.5) / CROP_SAMPLE - 0.5
        gx = ((cx[:, None] + base[None, :] * side[:, None]) * (2.0 / CANVAS_W)) - 1.0
        gy = ((cy[:, None] + base[None, :] * side[:, None]) * (2.0 / CANVAS_H)) - 1.0
        grid = torch.stack(
            (
                gx[:, None, :].expand(n, CROP_SAMPLE, CROP_SAMPLE),
                gy[:, :, None].expand(n, CROP_SAMPLE, CROP_SAMPLE),
            ),
            dim=-1,
        )
        out = F.grid_sample(
            canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        out = F.avg_pool2d(out, CROP_SAMPLE // CROP_PX)
        peak = out.flatten(1).max(dim=1).values
        return out / (peak[:, None, None, None] + 0.05)

    class OrientationNet(nn.Module):
        """Canvas (N, 1, 576, 768) in [0, 1] -> (class probabilities (N, 6), P(marker) (N,),
        marker centre x, y and size in canvas px (N, 3))."""

        def __init__(self) -> None:
            super().__init__()
            self.locator = Locator()
            self.classifier = Classifier()

        def locate(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            small = F.avg_pool2d(canvas, LOC_POOL)
            out = self.locator(small)
            n, _, gh, gw = out.shape
            heat = out[:, 0].reshape(n, gh * gw)
            idx = heat.argmax(dim=1, keepdim=True)
            p_marker = torch.sigmoid(heat.gather(1, idx))[:, 0]
            rest = out[:, 1:].reshape(n, 3, gh * gw)
            at = rest.gather(2, idx[:, None, :].expand(n, 3, 1))[:, :, 0]
            iy = torch.div(idx[:, 0], gw, rounding_mode="floor").to(canvas.dtype)
            ix = (idx[:, 0] - torch.div(idx[:, 0], gw, rounding_mode="floor") * gw).to(canvas.dtype)
            cell = float(LOC_POOL * LOC_STRIDE)
            cx = (ix + 0.5 + at[:, 1]) * cell
            cy = (iy + 0.5 + at[:, 2]) * cell
            size = torch.exp(at[:, 0].clamp(-2.0, 6.0)) * cell
            return p_marker, torch.stack((cx, cy, size), dim=1)

        def forward(self, canvas: torch.Tensor):
            p_marker, box = self.locate(canvas)
            crops = crop(canvas, box[:, 0], box[:, 1], box[:, 2] * CROP_SCALE)
            probs = torch.softmax(self.classifier(crops), dim=1)
            return probs, p_marker, box

    return {
        "OrientationNet": OrientationNet,
        "Locator": Locator,
        "Classifier": Classifier,
        "crop": crop,
    }


def build_net() -> Any:
    """A freshly initialised OrientationNet (for training)."""
    return _torch_classes()["OrientationNet"]()


def crop_markers(canvas: Any, cx: Any, cy: Any, side: Any) -> Any:
    """The classifier's crops, exactly as the model cuts them (for training on jittered boxes)."""
    return _torch_classes()["crop"](canvas, cx, cy, side)


def combine(
    probs: np.ndarray, p_marker: np.ndarray, min_confidence: float
) -> list[tuple[str | None, float]]:
    """(label or None, confidence) per row: confidence = P(orientation | crop) of the most likely
    orientation where the locator found a marker (peak >= MARKER_GATE), else 0; the label is
    None when the confidence is below `min_confidence`. The classifier's "none" class takes the
    rest of the probability when the crop shows no marker or a bar that encodes nothing."""
    out: list[tuple[str | None, float]] = []
    for pr, pm in zip(probs, p_marker, strict=True):
        scores = pr[: len(ORIENTATION_CLASSES)] * float(pm >= MARKER_GATE)
        k = int(np.argmax(scores))
        conf = float(scores[k])
        out.append((ORIENTATION_CLASSES[k] if conf >= min_confidence else None, conf))
    return out


def threshold_table(
    probs: np.ndarray, p_marker: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Per threshold, on images whose marker shows an orientation (`labels` are indices into
    MODEL_CLASSES; "none" = nothing to read): coverage (share given a label), covered accuracy
    (right / labelled) with its lower one-standard-error bound, the best-guess accuracy, and
    how often an image with nothing to read gets a label anyway."""
    labels = np.asarray(labels)
    has = labels < len(ORIENTATION_CLASSES)
    forced = float((probs[has, : len(ORIENTATION_CLASSES)].argmax(1) == labels[has]).mean())
    rows = []
    for t in thresholds:
        res = combine(probs, p_marker, float(t))
        pred = np.array([ORIENTATION_CLASSES.index(lab) if lab else -1 for lab, _ in res])
        covered = has & (pred >= 0)
        n_cov = int(covered.sum())
        acc = float((pred[covered] == labels[covered]).sum() / max(1, n_cov))
        rows.append(
            {
                "threshold": round(float(t), 3),
                "coverage": float(n_cov / max(1, int(has.sum()))),
                "covered": n_cov,
                "covered_accuracy": acc,
                "covered_accuracy_lower": acc - float(np.sqrt(acc * (1 - acc) / max(1, n_cov))),
                "forced_accuracy": forced,
                "none_filled": float((pred[~has] >= 0).sum() / max(1, int((~has).sum()))),
            }
        )
    return rows


def choose_min_confidence(
    table: list[dict[str, float]], target: float = 0.95, min_covered: int = 30
) -> tuple[dict[str, float], bool]:
    """The threshold rule: of the thresholds that label at least `min_covered` validation images
    and whose covered accuracy minus one standard error is at least `target`, the one with the
    highest coverage (ties: the lower threshold). The margin of one standard error (about one
    point on a few hundred validation images) keeps the threshold from being picked on
    sampling luck. When none qualifies: the strictest threshold, and False."""
    ok = [r for r in table if r["covered"] >= min_covered and r["covered_accuracy_lower"] >= target]
    if not ok:
        return max(table, key=lambda r: r["threshold"]), False
    return max(ok, key=lambda r: (r["coverage"], -r["threshold"])), True


class OrientationModel:
    """The shipped orientation model on a resolved device ("cpu" or "cuda")."""

    def __init__(self, net: Any, device: str, meta: dict[str, Any], path: Path) -> None:
        self.net = net
        self.device = device
        self.meta = meta
        self.path = path
        self.min_confidence = float(meta.get("min_confidence", MIN_CONFIDENCE))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> OrientationModel:
        """Load the weights once per run. `device` is cpu | cuda | auto (the device resource's
        setting); "cuda" without torch.cuda raises DeviceUnavailableError."""
        import torch

        resolved = resolve_device(device, engine="torch")
        p = Path(path) if path is not None else DEFAULT_MODEL_PATH
        if not p.is_file():
            raise OrientationModelError(
                f"orientation weights not found at {p}; retrain with "
                "`python models/orientation/train.py` or pass the weights path"
            )
        blob = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "state_dict" not in blob or "meta" not in blob:
            raise OrientationModelError(f"{p} is not an orientation weights file")
        meta = json.loads(blob["meta"])
        if tuple(meta.get("classes", ())) != MODEL_CLASSES:
            raise OrientationModelError(
                f"{p} was trained for classes {meta.get('classes')}, this code has {MODEL_CLASSES}"
            )
        net = build_net()
        net.load_state_dict(blob["state_dict"])
        net.eval().to(resolved)
        return cls(net, resolved, meta, p)

    def raw(self, images: Sequence[np.ndarray], batch_size: int = 16) -> dict[str, np.ndarray]:
        """Class probabilities, P(marker) and the marker box (x, y, size in the original image's
        pixels) for each image."""
        import torch

        probs, pm, boxes = [], [], []
        for i in range(0, len(images), batch_size):
            chunk = [letterbox(im) for im in images[i : i + batch_size]]
            x = np.stack([c for c, _ in chunk])[:, None].astype(np.float32) / 255.0
            with torch.inference_mode():
                pr, p, b = self.net(torch.from_numpy(x).to(self.device))
            probs.append(pr.cpu().numpy())
            pm.append(p.cpu().numpy())
            scales = np.array([s for _, s in chunk], dtype=np.float32)[:, None]
            boxes.append(b.cpu().numpy() / scales)
        if not probs:
            return {
                "probs": np.zeros((0, len(MODEL_CLASSES)), np.float32),
                "p_marker": np.zeros(0, np.float32),
                "box": np.zeros((0, 3), np.float32),
            }
        return {
            "probs": np.concatenate(probs),
            "p_marker": np.concatenate(pm),
            "box": np.concatenate(boxes),
        }

    def predict(
        self, images: Sequence[np.ndarray], batch_size: int = 16
    ) -> list[tuple[str | None, float]]:
        """(orientation or None, confidence) per image; None below the model's MIN_CONFIDENCE."""
        r = self.raw(images, batch_size=batch_size)
        return combine(r["probs"], r["p_marker"], self.min_confidence)

    def export_onnx(self, path: str | Path) -> Path:
        """Write the whole model (locator, crop, classifier) as one ONNX graph. Input "canvas":
        (N, 1, 576, 768) float in [0, 1] (see letterbox); outputs "probs", "p_marker", "box"."""
        import torch

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        net = self.net.to("cpu").eval()
        dummy = torch.zeros(2, 1, CANVAS_H, CANVAS_W)
        torch.onnx.export(
            net,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=17,
            input_names=["canvas"],
            output_names=["probs", "p_marker", "box"],
            dynamic_axes={
                "canvas": {0: "n"},
                "probs": {0: "n"},
                "p_marker": {0: "n"},
                "box": {0: "n"},
            },
        )
        self.net.to(self.device)
        return out

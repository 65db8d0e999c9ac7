"""Probe orientation read from the body-marker pictogram, for images whose text states none.

The pictogram (a breast outline, or the axilla's torso-and-arm outline, with a bar for the
probe) can sit anywhere on the screen, so the model works in two learned steps inside one torch
graph (exported to ONNX as one file):

1. a class-agnostic **locator**: a small fully-convolutional net over the whole screen (192 x 144
   since v4; 128 x 96 before) that outputs a "marker centre" heat map, with the marker's size and
   a sub-cell offset at each cell (CenterNet-style); the peak is the marker, its probability says
   whether there is one;
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
from casbusi_assets.shared.model_files import shipped_model

# The OCR orientation vocabulary (ocr/parsing.py ORIENTATIONS without "unknown").
ORIENTATION_CLASSES: tuple[str, ...] = ("long", "trans", "radial", "anti-radial", "oblique")
# What the classifier outputs: the orientations plus "none" (no readable marker in the crop).
MODEL_CLASSES: tuple[str, ...] = (*ORIENTATION_CLASSES, "none")
# Below it predict() returns None. Chosen on the validation seed by models/orientation/train.py
# with choose_min_confidence (the highest coverage whose covered accuracy is at least 95% by its
# lower one-standard-error bound) and stored with the weights; the tests check the two agree.
MIN_CONFIDENCE: float = 0.67
# The locator's peak below this means "no marker on this screen": confidence 0, orientation None.
MARKER_GATE: float = 0.3
DEFAULT_MODEL_PATH: Path = shipped_model("orientation", "orientation_v4.pt")

# Every screen is letterboxed into this canvas (4:3, as ultrasound screens are) without
# distorting it: a distorted picture changes the probe angle.
CANVAS_W, CANVAS_H = 768, 576
LOC_POOL = 6  # canvas -> locator input (128 x 96; v1-v3)
LOC_STRIDE = 4  # locator input -> heat map cell (one cell = LOC_POOL x 4 canvas px)
LOC_CHANNELS: tuple[int, ...] = (8, 16, 24)  # locator widths (v1-v3)
# v4's locator reads the canvas at 192 x 144 (pool 4: a 1 px outline on tissue keeps a quarter
# of its brightness instead of a sixth) and is wider; its heat map has 16 px cells (48 x 36).
V4_LOC_POOL = 4
V4_LOC_CHANNELS: tuple[int, ...] = (8, 16, 32)
CROP_SCALE = 1.6  # crop side / marker size: the outline, its tail, and room for error
CROP_SAMPLE = 96
CROP_PX = 48
# v3 crops the marker at two scales, stacked as channels of one 48 x 48 input: the wide one
# (1.6 x size) holds the outline and the nipple, the tight one (1.1 x size) the bar at 1.45 x the
# resolution (at 1.6 the bar is only 7-10 px long whatever the marker size, and 15 degrees, the
# step between a clock-hour radial bar and an oblique one, is 2 px at its end).
V3_CROP_SCALES: tuple[float, ...] = (1.6, 1.1)
V3_CANDIDATES = 3  # heat-map peaks the classifier looks at; the most marker-like is the marker

# Architecture of weights without an "arch" entry in their meta (v1, v2).
LEGACY_ARCH: dict[str, Any] = {
    "crop_scales": [CROP_SCALE],
    "candidates": 1,
    "mirror_tta": False,
    "loc_pool": LOC_POOL,
    "loc_channels": list(LOC_CHANNELS),
}


# --------------------------------------------------------------------------------------------
# Which labels draw the same pictogram. A body marker shows a bar at an angle at a place on the
# clock face; the label is what the sonographer meant. trans is horizontal, long vertical,
# oblique 45 or 135 degrees wherever the probe sits; radial lies along the clock radius (points
# at the nipple) and anti-radial across it, so their angle depends on the clock hour: radial at
# 3:00 / 9:00 IS a horizontal bar (trans), at 12:00 / 6:00 a vertical one (long), at the half
# hours 1:30, 4:30, 7:30, 10:30 a 45 / 135 degree one (oblique), and anti-radial the other of
# each pair. Only the text tells those apart, so on such pictures "plane-correct" (the predicted
# label draws the same picture at that place) is the fair measure, beside the strict one.


def _axis_diff(a: float, b: float) -> float:
    """Difference of two bar angles in degrees, as undirected lines (mod 180)."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def radial_angle(hour: float) -> float:
    """Angle (degrees counter-clockwise from horizontal, mod 180) of a bar along the clock
    radius at `hour` (12:00 up, 3:00 to the viewer's right), as the generator draws it."""
    return (90.0 - 30.0 * float(hour)) % 180.0


def label_angles(label: str, hour: float | None) -> tuple[float, ...]:
    """The bar angles `label` draws with the probe at clock `hour` (None: not on the clock face,
    e.g. the axilla, where radial / anti-radial draw no defined angle)."""
    if label == "trans":
        return (0.0,)
    if label == "long":
        return (90.0,)
    if label == "oblique":
        return (45.0, 135.0)
    if label in ("radial", "anti-radial") and hour is not None:
        r = radial_angle(hour)
        return (r,) if label == "radial" else ((r + 90.0) % 180.0,)
    return ()


def same_picture_labels(
    angle_deg: float, hour: float | None, tolerance_deg: float = 1.0
) -> frozenset[str]:
    """Every orientation label that draws a bar at `angle_deg` with the probe at clock `hour`:
    the labels a reader of the pictogram alone cannot tell apart. One label for most pictures;
    two where a radial / anti-radial bar coincides with trans, long or oblique. `tolerance_deg`
    (1 degree) only absorbs rounding: the same picture, not a similar one (the generator's
    nearest distinct angles are 7.5 degrees apart)."""
    return frozenset(
        lab
        for lab in ORIENTATION_CLASSES
        if any(_axis_diff(angle_deg, a) <= tolerance_deg for a in label_angles(lab, hour))
    )


def is_ambiguous(angle_deg: float | None, hour: float | None) -> bool:
    """Whether the picture (bar angle, clock hour) is drawn the same by two labels."""
    return angle_deg is not None and len(same_picture_labels(angle_deg, hour)) > 1


def plane_correct(predicted: str | None, truth: str, angle_deg: float, hour: float | None) -> bool:
    """Whether `predicted` is the truth or draws the same picture as the truth where it was
    drawn (trans for a radial bar at 3:00). None (no label) is never plane-correct."""
    if predicted is None:
        return False
    if predicted == truth:
        return True
    return predicted in same_picture_labels(angle_deg, hour) and truth in same_picture_labels(
        angle_deg, hour
    )


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
        """Screen (1 x H x W, the canvas averaged down) -> 4 x H/4 x W/4: heat logit, log size,
        x / y offset in cells. `channels`: widths of the two strided blocks and of the rest."""

        def __init__(self, channels: Sequence[int] = LOC_CHANNELS) -> None:
            super().__init__()
            a, b, c = (int(v) for v in channels)
            # Dilated convolutions give a ~50 px receptive field (the largest marker) cheaply.
            self.body = nn.Sequential(
                block(1, a, 2),
                block(a, b, 2),
                block(b, c),
                block(c, c, dilation=2),
                block(c, c, dilation=4),
            )
            self.head = nn.Conv2d(c, 4, 1)
            with torch.no_grad():  # start at P(marker) = 0.1 everywhere (CenterNet's prior)
                self.head.bias[0] = -2.19

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    class Classifier(nn.Module):
        """Marker crop (channels x 48 x 48, one channel per crop scale) -> logits over
        MODEL_CLASSES. Flattened, not pooled: where the bar sits relative to the nipple is what
        separates radial from anti-radial."""

        def __init__(self, channels: int = 1) -> None:
            super().__init__()
            # CoordConv: two coordinate channels tell every filter where it is in the crop.
            ramp = torch.linspace(-1.0, 1.0, CROP_PX)
            coords = torch.stack(
                (ramp[None, :].expand(CROP_PX, CROP_PX), ramp[:, None].expand(CROP_PX, CROP_PX))
            )
            self.register_buffer("coords", coords[None].clone(), persistent=False)
            self.body = nn.Sequential(
                block(channels + 2, 16),
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

    def multi_crop(canvas, cx, cy, size, scales: Sequence[float]):
        """(N, len(scales), CROP_PX, CROP_PX): the marker cut at each scale x its size."""
        return torch.cat([crop(canvas, cx, cy, size * s) for s in scales], dim=1)

    class OrientationNet(nn.Module):
        """Canvas (N, 1, 576, 768) in [0, 1] -> (class probabilities (N, 6), P(marker) (N,),
        marker centre x, y and size in canvas px (N, 3)).

        `candidates` > 1: the classifier reads the crops around the strongest heat-map peaks
        (local maxima) and the marker is the candidate with the highest P(peak) x (1 - P(none)),
        so a bright text blob that outscores the marker on the heat map does not hide it.
        `mirror_tta`: class probabilities averaged over the crop and its three mirror images
        (every label survives a mirror: a radial bar stays radial, oblique 45 becomes 135)."""

        def __init__(
            self,
            crop_scales: Sequence[float] = (CROP_SCALE,),
            candidates: int = 1,
            mirror_tta: bool = False,
            loc_pool: int = LOC_POOL,
            loc_channels: Sequence[int] = LOC_CHANNELS,
        ) -> None:
            super().__init__()
            self.crop_scales = tuple(float(s) for s in crop_scales)
            self.candidates = int(candidates)
            self.mirror_tta = bool(mirror_tta)
            self.loc_pool = int(loc_pool)
            self.locator = Locator(loc_channels)
            self.classifier = Classifier(len(self.crop_scales))

        def locate(self, canvas: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
            """P(marker) (N, k) and boxes (N, k, 3) of the k strongest heat-map peaks."""
            small = F.avg_pool2d(canvas, self.loc_pool)
            out = self.locator(small)
            n, _, gh, gw = out.shape
            logit = out[:, 0:1]
            if k > 1:  # local maxima only, so the k candidates are k different places
                peak = F.max_pool2d(logit, 3, stride=1, padding=1)
                logit = torch.where(logit >= peak, logit, logit - 1e4)
            heat = logit.reshape(n, gh * gw)
            _, idx = heat.topk(k, dim=1)
            p_marker = torch.sigmoid(out[:, 0].reshape(n, gh * gw).gather(1, idx))
            rest = out[:, 1:].reshape(n, 3, gh * gw)
            at = rest.gather(2, idx[:, None, :].expand(n, 3, k))  # (n, 3, k)
            iy = torch.div(idx, gw, rounding_mode="floor")
            ix = (idx - iy * gw).to(canvas.dtype)
            iy = iy.to(canvas.dtype)
            cell = float(self.loc_pool * LOC_STRIDE)
            cx = (ix + 0.5 + at[:, 1]) * cell
            cy = (iy + 0.5 + at[:, 2]) * cell
            size = torch.exp(at[:, 0].clamp(-2.0, 6.0)) * cell
            return p_marker, torch.stack((cx, cy, size), dim=2)

        def classify(self, crops: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(self.classifier(crops), dim=1)
            if self.mirror_tta:
                for dims in ((3,), (2,), (2, 3)):
                    probs = probs + torch.softmax(self.classifier(crops.flip(dims)), dim=1)
                probs = probs / 4.0
            return probs

        def forward(self, canvas: torch.Tensor):
            k = self.candidates
            p_marker, box = self.locate(canvas, k)
            n = canvas.shape[0]
            flat = box.reshape(n * k, 3)
            src = canvas[:, None].expand(n, k, *canvas.shape[1:]).reshape(n * k, *canvas.shape[1:])
            crops = multi_crop(src, flat[:, 0], flat[:, 1], flat[:, 2], self.crop_scales)
            probs = self.classify(crops).reshape(n, k, len(MODEL_CLASSES))
            if k == 1:
                return probs[:, 0], p_marker[:, 0], box[:, 0]
            score = p_marker * (1.0 - probs[:, :, len(ORIENTATION_CLASSES)])
            best = score.argmax(dim=1)
            rows = torch.arange(n)
            return probs[rows, best], p_marker[rows, best], box[rows, best]

    return {
        "OrientationNet": OrientationNet,
        "Locator": Locator,
        "Classifier": Classifier,
        "multi_crop": multi_crop,
    }


def build_net(arch: dict[str, Any] | None = None) -> Any:
    """A freshly initialised OrientationNet of `arch` (crop_scales, candidates, mirror_tta,
    loc_pool, loc_channels; missing keys: the v1 / v2 architecture)."""
    a = {**LEGACY_ARCH, **(arch or {})}
    return _torch_classes()["OrientationNet"](
        crop_scales=tuple(a["crop_scales"]),
        candidates=int(a["candidates"]),
        mirror_tta=bool(a["mirror_tta"]),
        loc_pool=int(a["loc_pool"]),
        loc_channels=tuple(a["loc_channels"]),
    )


def marker_crops(canvas: Any, cx: Any, cy: Any, size: Any, scales: Sequence[float]) -> Any:
    """(N, len(scales), CROP_PX, CROP_PX) crops at each scale x the marker `size`, exactly as the
    model cuts them."""
    return _torch_classes()["multi_crop"](canvas, cx, cy, size, tuple(scales))


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
        net = build_net(meta.get("arch"))
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


# Loaded models of this process, by (weights path, requested device): a pool worker loads the
# weights once, on the first patient it is asked about, and keeps them for the whole step.
_LOADED: dict[tuple[str, str], OrientationModel] = {}


class OrientationStep:
    """The orientation step of `cleaning.batch.clean_images` (``OrientationFn``), picklable.

    Only the weights path, device, threshold and batch size travel to a worker process (not the
    net); each process loads the weights once (`_LOADED`). ``min_confidence`` None = the
    model's own. Predictions are `combine` of `OrientationModel.raw`, the same wherever it runs.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str = "cpu",
        min_confidence: float | None = None,
        batch_size: int = 16,
    ) -> None:
        self.path = str(path) if path else str(DEFAULT_MODEL_PATH)
        self.device = device
        self.min_confidence = min_confidence
        self.batch_size = int(batch_size)

    def load(self) -> OrientationModel:
        key = (self.path, self.device)
        model = _LOADED.get(key)
        if model is None:
            model = _LOADED[key] = OrientationModel.load(self.path, device=self.device)
        return model

    @property
    def threshold(self) -> float:
        return self.load().min_confidence if self.min_confidence is None else self.min_confidence

    def __call__(self, images: Sequence[np.ndarray]) -> list[tuple[str | None, float]]:
        raw = self.load().raw(images, batch_size=self.batch_size)
        return combine(raw["probs"], raw["p_marker"], self.threshold)

"""OCR engines behind one small interface, chosen by configuration (name + device).

- ``rapidocr`` (default): RapidOCR 3.10 with the PP-OCRv6 ONNX models that ship inside its wheel.
  The model files are passed to RapidOCR by explicit path, so its download code (which runs when
  only a model *directory* is configured) is never reached; nothing is fetched at run time.
- ``easyocr`` (optional extra): EasyOCR with weights from a local folder and downloads disabled.
  It needs torch + torchvision (a multi-GB CUDA build), so it is imported only when asked for.

Devices: ``cpu``, ``cuda`` or ``auto`` (CUDA when the engine's runtime can use it). Asking for
``cuda`` where there is none raises :class:`DeviceUnavailableError` instead of silently running on
the CPU, so a GPU job that lost its GPU fails loudly rather than running 10x slower.

Knows nothing of Dagster; the OCR asset builds one engine per run and calls :meth:`read`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from casbusi_assets.shared.device import DeviceUnavailableError, resolve_device

log = logging.getLogger(__name__)

ENGINES = ("rapidocr", "easyocr")

# Bundled with rapidocr==3.10.0 (pinned in pyproject): detection, recognition, orientation.
RAPIDOCR_MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
# Narrowest input of the recogniser (px at its 48-px height); RapidOCR's own is 320.
DEFAULT_REC_MIN_WIDTH = 96
EASYOCR_MODEL_FILES = ("craft_mlt_25k.pth", "english_g2.pth")
EASYOCR_MODEL_DIR_ENV = "CASBUSI_EASYOCR_MODEL_DIR"


@dataclass(frozen=True)
class TextBox:
    """One piece of text an engine read: its text, confidence and box (x0, y0, x1, y1) in pixels."""

    text: str
    score: float
    box: tuple[int, int, int, int]

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": round(self.score, 4), "box": list(self.box)}


@runtime_checkable
class OcrEngine(Protocol):
    """What the OCR step needs from an engine."""

    name: str
    device: str

    def read(self, image: np.ndarray) -> list[TextBox]:
        """Text boxes in ``image`` (H x W grey or H x W x 3 RGB, uint8), in image coordinates."""
        ...


class OcrEngineError(RuntimeError):
    """An engine cannot be built as configured (missing package, weights, bad option)."""


# --------------------------------------------------------------------------------------------
# helpers


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey or RGB uint8; wider integer or float captures are rescaled, not clipped."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected an H x W or H x W x 3 image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    return ((img.astype(np.float32) - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)


def _quad_to_box(points: Any, width: int, height: int) -> tuple[int, int, int, int]:
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return (
        int(np.clip(x0, 0, width)),
        int(np.clip(y0, 0, height)),
        int(np.clip(x1, 0, width)),
        int(np.clip(y1, 0, height)),
    )


def _warmup_image() -> np.ndarray:
    import cv2

    img = np.zeros((48, 160, 3), np.uint8)
    cv2.putText(img, "LT 2:00", (6, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    return img


# --------------------------------------------------------------------------------------------
# RapidOCR


def rapidocr_bundled_model_dir() -> Path:
    """The ``models`` folder inside the installed rapidocr wheel."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise OcrEngineError(
            "rapidocr is not installed: pip install 'rapidocr==3.10.0' onnxruntime"
        )
    return Path(spec.origin).parent / "models"


class RapidOcrEngine:
    """RapidOCR 3.x with explicit local model files; models load once, in the constructor.

    ``read`` runs RapidOCR's detector and recogniser itself rather than ``RapidOCR.__call__``
    so that detection can run on a reduced copy (``det_scale``) while each detected line is
    recognised from the full-resolution pixels: detection cost grows with the pixel area,
    recognition only with the number of lines, and small text keeps its detail. The
    180-degree classifier is never used: scanner text is never upside down, and it costs time
    and can flip good text.

    Options: ``min_score`` (boxes returned at all; the reader applies its own stricter
    threshold so that dropped boxes can still be reported), ``det_scale`` (detector input
    scale, 1.0 = full resolution), ``det_limit_side_len`` (longest detector side; larger inputs
    are shrunk for detection only. 640 measured: same accuracy as 1280 on the synthetic
    batches, half the detection time on 1024- and 1280-wide screens; 448 and 384 lose lines),
    ``det_box_thresh`` / ``det_unclip_ratio`` (DB post-processing), ``rec_min_width`` (the
    width every recognition batch is padded to at least), ``threads``
    (onnxruntime intra-op threads; -1 = all cores).
    """

    name = "rapidocr"

    def __init__(
        self,
        device: str = "auto",
        model_dir: str | os.PathLike[str] | None = None,
        *,
        min_score: float = 0.1,
        det_scale: float = 1.0,
        det_limit_side_len: int = 640,
        det_box_thresh: float = 0.5,
        det_unclip_ratio: float = 1.6,
        rec_min_width: int = DEFAULT_REC_MIN_WIDTH,
        threads: int = -1,
        warmup: bool = True,
    ) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            # rapidocr 3.x does not depend on onnxruntime in its metadata; say so plainly
            raise OcrEngineError("onnxruntime is not installed: pip install onnxruntime")
        if not 0.1 <= det_scale <= 2.0:
            raise ValueError(f"det_scale must be within [0.1, 2.0]; got {det_scale}")
        self.device = resolve_device(device, "rapidocr")
        folder = Path(model_dir) if model_dir is not None else rapidocr_bundled_model_dir()
        paths = {task: folder / fname for task, fname in RAPIDOCR_MODEL_FILES.items()}
        missing = [str(p) for task, p in paths.items() if task != "Cls" and not p.is_file()]
        if missing:
            raise OcrEngineError(
                "RapidOCR model files not found: "
                + ", ".join(missing)
                + ". They ship inside the rapidocr==3.10.0 wheel (reinstall it), or pass "
                "model_dir= a folder holding these files."
            )
        self.model_dir = str(folder)
        self.min_score = float(min_score)
        self.det_scale = float(det_scale)

        from rapidocr import RapidOCR

        use_cuda = self.device == "cuda"
        params: dict[str, Any] = {
            "Global.log_level": "warning",
            "Global.use_cls": False,
            "Det.limit_side_len": int(det_limit_side_len),
            "Det.limit_type": "max",
            "Det.box_thresh": float(det_box_thresh),
            "Det.unclip_ratio": float(det_unclip_ratio),
            "EngineConfig.onnxruntime.use_cuda": use_cuda,
            "EngineConfig.onnxruntime.intra_op_num_threads": int(threads),
        }
        for task, path in paths.items():
            # an explicit model_path bypasses RapidOCR's model_root_dir + download branch
            params[f"{task}.model_path"] = str(path)
        self._ocr = RapidOCR(params=params)
        try:
            # private in RapidOCR 3.10 (pinned): the lazily-built detector and recogniser
            self._det = self._ocr._load_det_model()
            self._rec = self._ocr._load_rec_model()
        except AttributeError as exc:  # pragma: no cover - only on an unpinned rapidocr
            raise OcrEngineError(
                "this rapidocr version is not supported; install rapidocr==3.10.0"
            ) from exc
        # The recogniser pads every batch to at least this width (RapidOCR: 320 px at height
        # 48), and its cost grows with the padded width; scanner lines are mostly short
        # ("Gn 53", "LT"), so a lower floor reads the same text in a third less time
        # (benchmarks/README.md, "OCR anywhere on the screen").
        shape = list(self._rec.rec_image_shape)
        self._rec.rec_image_shape = [shape[0], shape[1], int(rec_min_width)]
        if use_cuda:
            self._check_cuda_session()
        if warmup:
            # the first inference of a session is slow (graph set-up): pay it here, once
            self.read(_warmup_image())

    def _check_cuda_session(self) -> None:
        session = getattr(getattr(self._det, "session", None), "session", None)
        providers = session.get_providers() if session is not None else []
        if not providers or providers[0] != "CUDAExecutionProvider":
            raise DeviceUnavailableError(
                "OCR device 'cuda' was requested but onnxruntime fell back to "
                f"{providers[:1] or 'an unknown provider'} (CUDA/cuDNN libraries not loadable?); "
                "use device='cpu' or fix the CUDA installation."
            )

    def read(self, image: np.ndarray) -> list[TextBox]:
        quads = self.detect(image)
        return self.recognize(image, quads)

    @staticmethod
    def _bgr(image: np.ndarray) -> np.ndarray:
        import cv2

        img = _to_uint8(image)
        # RapidOCR's models expect BGR; DICOM pixel data is RGB
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        """Text-line quadrilaterals (n x 4 x 2, image pixels) found by the detector alone.

        Split from :meth:`recognize` so that a caller can decide from the geometry which lines
        are worth recognising (recognition costs per line, detection per pixel).
        ``limit_side_len`` overrides the engine's ``det_limit_side_len`` for this call (a whole
        screen needs a larger detector input than a crop of it).
        """
        import cv2

        bgr = self._bgr(image)
        h, w = bgr.shape[:2]
        if h < 8 or w < 8:
            return np.zeros((0, 4, 2), np.float32)
        scale = self.det_scale
        det_in = bgr
        if scale != 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            det_in = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        default = self._det.limit_side_len
        try:
            if limit_side_len is not None:
                self._det.limit_side_len = int(limit_side_len)
            det = self._det(det_in)
        finally:
            self._det.limit_side_len = default
        if det.boxes is None or len(det.boxes) == 0:
            return np.zeros((0, 4, 2), np.float32)
        quads = np.asarray(det.boxes, dtype=np.float32).reshape(-1, 4, 2) / scale
        quads[..., 0] = quads[..., 0].clip(0, w - 1)
        quads[..., 1] = quads[..., 1].clip(0, h - 1)
        return quads

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[TextBox]:
        """Text of each quadrilateral from :meth:`detect` (same image), unsure ones left out."""
        from rapidocr.ch_ppocr_rec import TextRecInput
        from rapidocr.utils.process_img import get_rotate_crop_image

        quads = np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2)
        if len(quads) == 0:
            return []
        bgr = self._bgr(image)
        h, w = bgr.shape[:2]
        crops = [get_rotate_crop_image(bgr, q.copy()) for q in quads]
        rec = self._rec(TextRecInput(img=crops))
        if rec.txts is None:
            return []
        boxes: list[TextBox] = []
        for quad, text, score in zip(quads, rec.txts, rec.scores, strict=True):
            if text.strip() and float(score) >= self.min_score:
                boxes.append(TextBox(str(text), float(score), _quad_to_box(quad, w, h)))
        return boxes

    def __repr__(self) -> str:
        return (
            f"RapidOcrEngine(device={self.device!r}, det_scale={self.det_scale}, "
            f"model_dir={self.model_dir!r})"
        )


# --------------------------------------------------------------------------------------------
# EasyOCR (optional)

EASYOCR_INSTALL_HINT = (
    "EasyOCR is optional: pip install 'casbusi-assets[easyocr]' (pulls torch + torchvision, a "
    "multi-GB CUDA build), then put "
    + " and ".join(EASYOCR_MODEL_FILES)
    + " (EasyOCR's English detector and recogniser weights) in a folder and pass it as "
    f"model_dir= or set {EASYOCR_MODEL_DIR_ENV}. Downloads are disabled at run time."
)


def easyocr_missing(model_dir: str | os.PathLike[str] | None) -> list[str]:
    """What is missing to run EasyOCR offline (package, folder, weight files); empty if ready."""
    missing: list[str] = []
    if importlib.util.find_spec("easyocr") is None:
        missing.append("the easyocr package")
    if model_dir is None:
        missing.append(
            f"model_dir (or ${EASYOCR_MODEL_DIR_ENV}) holding " + ", ".join(EASYOCR_MODEL_FILES)
        )
    else:
        folder = Path(model_dir)
        missing += [str(folder / f) for f in EASYOCR_MODEL_FILES if not (folder / f).is_file()]
    return missing


class EasyOcrEngine:
    """EasyOCR ('en') from local weights, ``download_enabled=False``, GPU when device is cuda."""

    name = "easyocr"

    def __init__(
        self,
        device: str = "auto",
        model_dir: str | os.PathLike[str] | None = None,
        *,
        paragraph: bool = False,
    ) -> None:
        model_dir = model_dir if model_dir is not None else os.environ.get(EASYOCR_MODEL_DIR_ENV)
        missing = easyocr_missing(model_dir)
        if missing:
            raise OcrEngineError(
                "cannot build the easyocr engine; missing: "
                + "; ".join(missing)
                + ". "
                + EASYOCR_INSTALL_HINT
            )
        self.device = resolve_device(device, "easyocr")
        self.model_dir = str(model_dir)
        # paragraph=False keeps one box per line so the reader can drop chrome box by box
        self.paragraph = paragraph
        import easyocr

        self._reader = easyocr.Reader(
            ["en"],
            gpu=self.device == "cuda",
            model_storage_directory=self.model_dir,
            user_network_directory=self.model_dir,
            download_enabled=False,
            verbose=False,
        )

    def read(self, image: np.ndarray) -> list[TextBox]:
        img = _to_uint8(image)
        h, w = img.shape[:2]
        results = self._reader.readtext(img, paragraph=self.paragraph)
        boxes: list[TextBox] = []
        for item in results:
            quad, text = item[0], item[1]
            score = float(item[2]) if len(item) > 2 else 1.0
            boxes.append(TextBox(str(text), score, _quad_to_box(quad, w, h)))
        return boxes

    def __repr__(self) -> str:
        return f"EasyOcrEngine(device={self.device!r}, model_dir={self.model_dir!r})"


# --------------------------------------------------------------------------------------------
# factory


def make_engine(
    name: str = "rapidocr",
    device: str = "auto",
    model_dir: str | os.PathLike[str] | None = None,
    **opts: Any,
) -> OcrEngine:
    """Build the OCR engine ``name`` on ``device``; ``opts`` go to the engine's constructor."""
    key = (name or "").strip().lower()
    if key == "rapidocr":
        return RapidOcrEngine(device=device, model_dir=model_dir, **opts)
    if key == "easyocr":
        return EasyOcrEngine(device=device, model_dir=model_dir, **opts)
    raise ValueError(f"unknown OCR engine {name!r}; choose one of: {', '.join(ENGINES)}")

"""Mask references from an export, resolved to pixels, projected back to the original image.

An export carries masks as URLs, never as pixels: `mask.url` (one instance: its non-zero pixels
are the mask) or `composite_mask.url` + `color_rgb` (one PNG for every instance of the label:
this object's pixels are the ones equal to the colour). One interface resolves either:
- a masks folder holds `<feature_id>.png` (single instance) or `<composite mask id>.png` (the
  URL's last ID segment: `.../masks/<id>/index/1`);
- online, the URL is fetched with the API key (and the PNG kept in the retrieval's folder, so a
  re-run never needs the network or an unexpired URL).
A mask that cannot be resolved raises `MaskUnavailable` with the reason; the archive records it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

_SKIP_SEGMENTS = {"index", "mask", "masks", ""}


class MaskUnavailable(Exception):
    """The mask's pixels could not be obtained or read; str() is the reason."""


@dataclass(frozen=True)
class MaskRef:
    kind: str  # instance | composite
    url: str
    color_rgb: tuple[int, int, int] | None
    feature_id: str
    name: str = ""

    @property
    def mask_id(self) -> str:
        """The file stem a masks folder uses: the feature_id for a single instance, the composite
        mask's ID (the URL's last ID segment) for a composite."""
        if self.kind == "instance":
            return self.feature_id
        parts = urlparse(self.url).path.split("/")
        if "masks" in parts and parts.index("masks") + 1 < len(parts):
            return parts[parts.index("masks") + 1]
        for part in reversed(parts):
            if part not in _SKIP_SEGMENTS and not part.isdigit():
                return part
        return self.feature_id


def decode_png(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MaskUnavailable("not a readable PNG")
    return arr


def select_pixels(image: np.ndarray, ref: MaskRef) -> np.ndarray:
    """The boolean mask of this object in a decoded mask image (OpenCV channel order)."""
    if ref.kind == "composite":
        if image.ndim != 3 or image.shape[2] < 3:
            raise MaskUnavailable("composite mask PNG is not an RGB image")
        r, g, b = ref.color_rgb or (0, 0, 0)
        bgr = image[..., :3]
        return (bgr[..., 0] == b) & (bgr[..., 1] == g) & (bgr[..., 2] == r)
    if image.ndim == 2:
        return image > 0
    # An RGBA instance mask with a transparent background: the alpha says where the mask is.
    if image.shape[2] == 4 and image[..., 3].min() == 0:
        return image[..., 3] > 0
    return np.any(image[..., :3] > 0, axis=-1)


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class MaskResolver:
    """Masks folder first, then (online) the URL; fetched PNGs are saved into the folder."""

    def __init__(
        self, folder: Path | None, fetch: Callable[[str], bytes] | None = None, save: bool = True
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.fetch = fetch
        self.save = save

    def _file(self, ref: MaskRef) -> Path | None:
        if self.folder is None or not ref.mask_id:
            return None
        return self.folder / f"{_SAFE.sub('_', ref.mask_id)}.png"

    def png(self, ref: MaskRef) -> bytes:
        path = self._file(ref)
        if path is not None and path.is_file():
            return path.read_bytes()
        if self.fetch is None:
            where = f"{path.name} not in {self.folder}" if path else "no masks folder"
            raise MaskUnavailable(f"{ref.kind} mask {ref.mask_id or ref.url}: {where}")
        try:
            data = self.fetch(ref.url)
        except Exception as exc:  # the reason goes into the archive row
            raise MaskUnavailable(f"{ref.kind} mask {ref.mask_id}: {exc}") from None
        decode_png(data)  # never cache something unreadable
        if path is not None and self.save:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return data

    def resolve(self, ref: MaskRef) -> np.ndarray:
        """The object's boolean mask in the coordinates of the labelled image (the crop)."""
        return select_pixels(decode_png(self.png(ref)), ref)


def project_to_original(
    mask: np.ndarray, crop_x: int, crop_y: int, width: int, height: int
) -> np.ndarray:
    """A mask drawn on the crop, placed at the crop's offset in an original-sized canvas."""
    mh, mw = mask.shape[:2]
    if crop_x < 0 or crop_y < 0 or crop_x + mw > width or crop_y + mh > height:
        raise MaskUnavailable(
            f"mask {mw}x{mh} at ({crop_x},{crop_y}) does not fit the {width}x{height} original"
        )
    full = np.zeros((height, width), dtype=bool)
    full[crop_y : crop_y + mh, crop_x : crop_x + mw] = mask
    return full


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """0 / 255 single-channel PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"could not write {path}")

"""Rendering of synthetic breast-ultrasound screen captures (pixels only, no DICOM).

A capture is drawn the way a scanner composes its screen: black background, header and parameter
panel text, grey bar, depth ruler, the ultrasound field (speckle over a layered breast-tissue echo
map with a lesion), then the sonographer's overlays (annotation text, body marker, calipers).
Every random choice comes from the `numpy.random.Generator` passed in, so a seed fixes the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from casbusi_assets.synthetic.annotations import Annotation, probe_angle

CAPTURES = (
    "grayscale",
    "doppler",
    "yellow_overlay",
    "dual_view",
    "dark",
    "green_corrupt",
    "cine",
)
FONTS = ("hershey_simplex", "hershey_duplex", "hershey_plain", "hershey_complex", "pil_ttf")
DEGRADATIONS = ("none", "blur", "jpeg", "low_contrast")
YELLOW = (255, 255, 0)
# Legibility guarantee of annotation labels: the text must exceed the brightest local background
# (90th percentile under its box) by this fraction of its own brightness, and by at least
# MIN_TEXT_CONTRAST grey levels. Scanners keep labels readable over bright tissue (a dark
# backdrop or outline under the text, and sonographers place labels in dark areas); a label
# drawn where that fails gets its backdrop dimmed until it holds.
MIN_TEXT_CONTRAST = 70
TEXT_CONTRAST_FRACTION = 0.6
# Cap height (px) at and above which a blurred label gets the full blur strength.
MAX_BLUR_CAP_PX = 12.0

# The varied style adds the other legible OpenCV Hershey families (the script faces are left
# out: no scanner writes labels in a handwriting face) and italic variants.
VARIED_FONTS = (
    *FONTS,
    "hershey_triplex",
    "hershey_complex_small",
    "hershey_simplex_italic",
    "hershey_duplex_italic",
)
# Where the varied style puts the label: the classic three, anywhere in the field, beside the
# body marker, and each corner of the screen (outside the field, clear of the chrome).
VARIED_TEXT_POSITIONS = (
    "bottom_left",
    "bottom_centre",
    "top_left",
    "field_any",
    "beside_marker",
    "screen_bl",
    "screen_br",
    "screen_tl",
    "screen_tr",
)
# Varied text colours (RGB captures; a grey capture gets the white / grey ones).
_VARIED_COLOURS = (("white", 4.0), ("grey", 2.0), ("yellow", 2.0), ("cyan", 1.5))

_CV_FONTS = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_plain": cv2.FONT_HERSHEY_PLAIN,
    "hershey_complex": cv2.FONT_HERSHEY_COMPLEX,
    "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey_complex_small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
    "hershey_simplex_italic": cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    "hershey_duplex_italic": cv2.FONT_HERSHEY_DUPLEX | cv2.FONT_ITALIC,
}
# Scale giving roughly a 10 px cap height per font (PLAIN is drawn about half as tall).
_CV_UNIT_SCALE = {
    "hershey_simplex": 0.45,
    "hershey_duplex": 0.45,
    "hershey_plain": 0.85,
    "hershey_complex": 0.45,
    "hershey_triplex": 0.45,
    "hershey_complex_small": 0.55,
    "hershey_simplex_italic": 0.45,
    "hershey_duplex_italic": 0.45,
}


@dataclass(frozen=True)
class ScannerProfile:
    """A scanner model: its header style, probes and screen sizes (width, height)."""

    manufacturer: str
    model: str
    probes: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    style: str  # ge | philips | siemens | toshiba
    software: str


PROFILES: tuple[ScannerProfile, ...] = (
    ScannerProfile(
        "GE Healthcare",
        "LOGIQ E9",
        ("ML6-15-D", "9L-D"),
        ((1024, 768), (960, 720)),
        "ge",
        "R6.1.5",
    ),
    ScannerProfile(
        "GE Healthcare", "LOGIQ E10", ("ML6-15-D", "L2-9-D"), ((1280, 960), (1024, 768)), "ge", "R2"
    ),
    ScannerProfile(
        "Philips", "EPIQ 7G", ("L12-5", "eL18-4"), ((1024, 768), (800, 600)), "philips", "5.0.2"
    ),
    ScannerProfile(
        "Philips", "iU22", ("L12-5", "L17-5"), ((800, 600), (640, 480)), "philips", "6.3"
    ),
    ScannerProfile(
        "SIEMENS", "ACUSON S2000", ("18L6 HD", "14L5"), ((1024, 768), (800, 600)), "siemens", "VB30"
    ),
    ScannerProfile(
        "TOSHIBA_MEC",
        "TUS-A500",
        ("PLT-1204BT", "PLT-805AT"),
        ((1280, 960), (640, 480)),
        "toshiba",
        "V6.0",
    ),
)


@dataclass(frozen=True)
class Region:
    """One SequenceOfUltrasoundRegions item (pixel bounds inclusive, deltas in cm per pixel)."""

    x0: int
    y0: int
    x1: int
    y1: int
    delta_x: float
    delta_y: float
    data_type: int = 1  # 1 tissue, 2 colour flow


@dataclass(frozen=True)
class CaptureSpec:
    """What to draw; the generator samples these, the renderer just follows them."""

    capture: str
    width: int
    height: int
    profile: ScannerProfile
    probe: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    annotation: Annotation | None
    text_font: str = "hershey_simplex"
    text_degradation: str = "none"
    text_position: str = "bottom_left"  # bottom_left | bottom_centre | top_left
    calipers: bool = False
    body_marker: bool = True
    n_frames: int = 1
    # "classic" renders exactly the first generator's screen; "varied" enables the variety each
    # renderer adds. Varied draws use their own generator (varied_rng) so classic stays fixed.
    style: str = "classic"


def varied_rng(spec: CaptureSpec, rng: np.random.Generator, part: str) -> np.random.Generator:
    """A random stream for one part of the varied style (text, doppler, field, marker, calipers),
    derived from the item's render stream without consuming it (so classic output is unchanged)."""
    state = rng.bit_generator.state["state"]["state"]
    key = int.from_bytes(part.encode(), "little") % (2**63)
    return np.random.default_rng([int(state) % (2**63), key, spec.width, spec.height])


@dataclass
class Rendered:
    """Pixels and everything the ground truth needs to know about them."""

    frames: np.ndarray  # (n, H, W) uint8 grey or (n, H, W, 3) uint8 RGB
    regions: list[Region]
    text_box: tuple[int, int, int, int] | None = None
    calipers: list[dict[str, object]] = field(default_factory=list)
    caliper_legend_box: tuple[int, int, int, int] | None = None
    clean: np.ndarray | None = None  # caliper-free pixels of frame 0 (caliper images only)
    body_marker: bool = False
    probe_angle_deg: float | None = None
    # clock hour (0-12) at which the probe is drawn on the breast outline: the annotation's
    # marker hour, or the random place drawn when it has none (None: axilla, no marker)
    probe_hour: float | None = None
    # x0, y0, x1, y1 (exclusive) of the body-marker pictogram with its tail (None: no marker)
    marker_box: tuple[int, int, int, int] | None = None
    frame_time_ms: float | None = None
    doppler_kind: str | None = None  # 'color' | 'power' for Doppler captures, else None
    sector: SectorLook | None = None  # the fan inside the declared field (None: filled)

    @property
    def is_rgb(self) -> bool:
        return self.frames.ndim == 4


# --------------------------------------------------------------------------------------------
# Tissue and speckle
# --------------------------------------------------------------------------------------------


@dataclass
class _Tissue:
    echo: np.ndarray  # float32 (h, w) mean echogenicity
    lesion: tuple[float, float, float, float, float] | None  # cx, cy, a, b, angle (px, rad)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    small = rng.random((max(2, h // cell + 2), max(2, w // cell + 2)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _boundary(rng: np.random.Generator, w: int, base: float, amp: float) -> np.ndarray:
    x = np.arange(w, dtype=np.float32) / max(w, 1)
    out = np.full(w, base, dtype=np.float32)
    for k in (1, 2, 3):
        out += (amp / k) * np.sin(2 * np.pi * (k * x * rng.uniform(0.5, 1.5) + rng.random()))
    return out


def _sigmoid(x: np.ndarray, width: float) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(np.clip(-x / width, -60, 60)))).astype(np.float32)


def _tissue(rng: np.random.Generator, h: int, w: int, delta: float, lesion: bool) -> _Tissue:
    """Layered breast echo map: skin, fat lobules with Cooper ligaments, glandular tissue,
    retromammary fat, pectoral muscle, chest wall (rib + shadow), and one lesion."""
    z = (np.arange(h, dtype=np.float32) * delta)[:, None]  # depth in cm
    skin = rng.uniform(0.12, 0.2)
    fat_end = _boundary(rng, w, rng.uniform(0.5, 1.1), 0.18)[None, :]
    gland_end = fat_end + _boundary(rng, w, rng.uniform(0.9, 1.8), 0.35)[None, :]
    muscle0 = gland_end + rng.uniform(0.15, 0.35)
    muscle1 = muscle0 + _boundary(rng, w, rng.uniform(0.5, 0.8), 0.08)[None, :]
    soft = 0.06  # cm: boundaries blend over about a millimetre

    lowf = _smooth_noise(rng, h, w, 28)
    lob = _smooth_noise(rng, h, w, int(max(6, 0.25 / delta)))
    # Fat: dark lobules separated by brighter septa.
    septa = np.exp(-(((lob - 0.5) / 0.07) ** 2)).astype(np.float32)
    fat = 0.2 + 0.08 * lob + 0.35 * septa
    # Glandular tissue: bright, heterogeneous, with fat islands.
    islands = np.clip((lowf - 0.62) * 5, 0, 1)
    gland = (0.75 + 0.35 * _smooth_noise(rng, h, w, 9)) * (1 - 0.65 * islands)
    stripes = 0.5 + 0.5 * np.sin(z * rng.uniform(26, 36) + 0.06 * np.arange(w)[None, :] * delta)
    muscle = 0.3 + 0.22 * stripes
    deep = 0.16 + 0.08 * lowf

    w_gland = _sigmoid(z - fat_end, soft) * (1 - _sigmoid(z - gland_end, soft * 2))
    w_muscle = _sigmoid(z - muscle0, soft) * (1 - _sigmoid(z - muscle1, soft))
    w_deep = _sigmoid(z - muscle1, soft)
    w_fat = np.clip(1 - w_gland - w_muscle - w_deep, 0, 1)
    echo = fat * w_fat + gland * w_gland + muscle * w_muscle + deep * w_deep
    skin_w = 1 - _sigmoid(z - skin, 0.02)
    echo = echo * (1 - skin_w) + 1.2 * skin_w
    echo = echo.astype(np.float32)

    # Cooper's ligaments: thin bright arcs climbing through the fat to the skin.
    lig = np.zeros((h, w), dtype=np.float32)
    for _ in range(int(rng.integers(3, 8))):
        x0 = rng.uniform(0, w)
        bend = rng.uniform(-0.25, 0.25) * w
        pts = []
        for t in np.linspace(0, 1, 10):
            xx = x0 + bend * t * t
            zz = skin + t * float(fat_end[0, int(np.clip(xx, 0, w - 1))])
            pts.append((xx, zz / delta))
        cv2.polylines(lig, [np.array(pts, dtype=np.int32)], False, 1.0, 1, cv2.LINE_AA)
    echo += 0.6 * cv2.GaussianBlur(lig, (0, 0), 0.7) * w_fat

    # Rib: bright anterior cortex, dark acoustic shadow fading at its sides.
    if h * delta > float(muscle1.max()) + 0.5 and rng.random() < 0.6:
        rx = rng.uniform(0.2, 0.8) * w
        ry = (float(muscle1.mean()) + rng.uniform(0.15, 0.35)) / delta
        rw = rng.uniform(0.5, 0.9) / delta
        rh = rng.uniform(0.25, 0.4) / delta
        xs = (np.arange(w, dtype=np.float32) - rx) / rw
        col = np.clip(1 - xs * xs, 0, 1)[None, :]
        top = ry - rh * np.sqrt(col)
        yy = np.arange(h, dtype=np.float32)[:, None]
        cortex = np.exp(-(((yy - top) / 2.5) ** 2)) * (col > 0)
        shadow = _sigmoid(yy - top, 3.0) * np.clip(col * 3, 0, 1)
        echo = echo * (1 - 0.85 * shadow) + 1.1 * cortex
        echo = echo.astype(np.float32)

    les = None
    if lesion:
        gz = float(np.mean((fat_end + gland_end) / 2))
        cy = np.clip(gz / delta + rng.normal(0, 0.1 / delta), 0.25 * h, 0.7 * h)
        cx = rng.uniform(0.3, 0.7) * w
        # Keep the lesion (and calipers on it) well inside the field.
        a = min(rng.uniform(0.35, 1.1) / delta, 0.18 * w, 0.18 * h)
        b = a * rng.uniform(0.45, 0.85)
        ang = rng.uniform(-0.3, 0.3)
        kind = rng.choice(["solid", "cyst", "oval"], p=[0.5, 0.25, 0.25])
        # Work in a window around the lesion and its posterior column only (speed).
        wy0 = int(max(0, cy - 1.6 * a))
        wx0, wx1 = int(max(0, cx - 1.6 * a)), int(min(w, cx + 1.6 * a + 1))
        sub = echo[wy0:, wx0:wx1]
        yy, xx = np.mgrid[wy0:h, wx0:wx1].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / a
        v = (-dx * np.sin(ang) + dy * np.cos(ang)) / b
        theta = np.arctan2(v, u)
        radius = np.ones_like(theta)
        # Margins: microlobulated / angular for solid masses, smooth for cysts and ovals.
        harmonics = (2, 3, 5, 7, 11) if kind == "solid" else (2, 3)
        amp = 0.07 if kind == "solid" else 0.03
        for k in harmonics:
            radius += amp * rng.uniform(0.3, 1.0) * np.sin(k * theta + rng.uniform(0, 6.3))
        r = np.sqrt(u * u + v * v) / radius
        edge = 0.12 if kind == "solid" else 0.05
        inside = np.clip((1.0 - r) / edge + 0.5, 0, 1).astype(np.float32)
        # Posterior features: shadow (solid) or enhancement (cyst), widest right behind.
        lateral = np.exp(-((dx / (0.75 * a)) ** 4))
        behind = lateral * _sigmoid(dy, 0.2 * b) * (r > 0.95)
        if kind == "cyst":
            wall = np.exp(-(((r - 1.0) / 0.05) ** 2)).astype(np.float32)
            sub = sub * (1 - inside) + 0.015 * inside + 0.25 * wall * (dy > 0)
            sub = sub * (1 + 0.6 * behind)
        else:
            level = 0.07 if kind == "solid" else 0.16
            inner = level * (0.8 + 0.4 * _smooth_noise(rng, *sub.shape, 6))
            sub = sub * (1 - inside) + inner * inside
            post = -0.6 if kind == "solid" else 0.3
            sub = sub * (1 + post * behind)
        echo[wy0:, wx0:wx1] = sub
        les = (float(cx), float(cy), float(a), float(b), float(ang))
    return _Tissue(echo=echo.astype(np.float32), lesion=les)


def _speckle_noise(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    n = rng.standard_normal((2, h, w), dtype=np.float32)
    # Speckle grains are elongated laterally (the lateral resolution is worse than the axial).
    return (
        cv2.GaussianBlur(n[0], (0, 0), sigmaX=1.7, sigmaY=0.8),
        cv2.GaussianBlur(n[1], (0, 0), sigmaX=1.7, sigmaY=0.8),
    )


def _compose_field(
    echo: np.ndarray, n1: np.ndarray, n2: np.ndarray, delta: float, gain: float, dr: float
) -> np.ndarray:
    """Rayleigh speckle times echo, depth attenuation, power-law compression to 8 bits.

    `dr` (the scanner's dynamic range setting, dB) sets the compression exponent: a wider range
    flattens the contrast, as on a real scanner.
    """
    ray = np.sqrt(n1 * n1 + n2 * n2)
    ray *= 1.0 / (float(ray.mean()) + 1e-6)
    z = (np.arange(echo.shape[0], dtype=np.float32) * delta)[:, None]
    att = np.exp(-0.18 * z).astype(np.float32)  # what the TGC leaves of the attenuation
    amp = echo * ray * att
    gamma = dr / 80.0
    out = np.power(np.clip(amp / 2.6, 0, 1), gamma) * (255.0 * gain)
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def _font_scale(font: str, cap_px: float) -> float:
    return _CV_UNIT_SCALE[font] * cap_px / 10.0


def text_size(lines: list[str], font: str, cap_px: float) -> tuple[int, int, int]:
    """(width, height, line_step) of a text block."""
    if font == "pil_ttf":
        f = ImageFont.load_default(size=max(8, int(round(cap_px * 1.4))))
        widths = [int(f.getbbox(s)[2]) for s in lines]
        step = int(round(cap_px * 1.7))
    else:
        scale = _font_scale(font, cap_px)
        widths = [cv2.getTextSize(s, _CV_FONTS[font], scale, 1)[0][0] for s in lines]
        step = int(round(cap_px * 1.75))
    height = step * (len(lines) - 1) + int(round(cap_px)) + 3
    return max(widths), height, step


def draw_text(
    img: np.ndarray,
    lines: list[str],
    x: int,
    y: int,
    font: str,
    cap_px: float,
    color: tuple[int, ...] | int,
    thickness: int = 1,
) -> tuple[int, int, int, int]:
    """Draw `lines` with their top-left at (x, y); return the tight ink box [x0, y0, x1, y1)."""
    # Only the neighbourhood of the block can change: diff there to find the ink box cheaply.
    tw, th, _ = text_size(lines, font, cap_px)
    ry0, ry1 = max(0, y - 12), min(img.shape[0], y + th + 24)
    rx0, rx1 = max(0, x - 12), min(img.shape[1], x + tw + 24)
    before = img[ry0:ry1, rx0:rx1].copy()
    if font == "pil_ttf":
        size = max(8, int(round(cap_px * 1.4)))
        f = ImageFont.load_default(size=size)
        step = int(round(cap_px * 1.7))
        _, top, _, _ = f.getbbox("H")
        pil = Image.fromarray(np.ascontiguousarray(img[ry0:ry1, rx0:rx1]))
        d = ImageDraw.Draw(pil)
        fill: int | tuple[int, ...] = (
            int(color if isinstance(color, int) else color[0]) if img.ndim == 2 else tuple(color)
        )
        for i, s in enumerate(lines):
            d.text((x - rx0, y - ry0 + i * step - top), s, font=f, fill=fill)
        img[ry0:ry1, rx0:rx1] = np.asarray(pil)
    else:
        scale = _font_scale(font, cap_px)
        step = int(round(cap_px * 1.75))
        col = color if isinstance(color, tuple) else (int(color),)
        for i, s in enumerate(lines):
            base = y + i * step + int(round(cap_px))
            cv2.putText(img, s, (x, base), _CV_FONTS[font], scale, col, thickness, cv2.LINE_AA)
    after = img[ry0:ry1, rx0:rx1]
    diff = np.any(after != before, axis=-1) if img.ndim == 3 else after != before
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return (x, y, x, y)
    return (
        int(xs.min()) + rx0,
        int(ys.min()) + ry0,
        int(xs.max()) + 1 + rx0,
        int(ys.max()) + 1 + ry0,
    )


def _chrome_text(img: np.ndarray, s: str, x: int, y: int, cap: float, color: int = 210) -> None:
    cv2.putText(
        img,
        s,
        (x, y),
        cv2.FONT_HERSHEY_SIMPLEX,
        _font_scale("hershey_simplex", cap),
        color,
        1,
        cv2.LINE_AA,
    )


# --------------------------------------------------------------------------------------------
# Screen layout and chrome
# --------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    fields: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive) per field
    panel_x: int
    cap: float  # chrome text cap height
    depth_cm: float
    convex: bool
    # Varied style only (classic keeps the defaults): which side of the field the depth ruler
    # is on, its gap, and the extra chrome drawn around the field (see _draw_chrome).
    varied: bool = False
    ruler_side: str = "right"  # right | left
    ruler_gap: int = 5
    chrome_seed: int = 0
    # Varied style only: a sector / curvilinear fan inside the declared field (None: the echo
    # fills the whole declared rectangle, as before). See sample_sector_look.
    sector: SectorLook | None = None


def _layout(rng: np.random.Generator, spec: CaptureSpec) -> _Layout:
    w, h = spec.width, spec.height
    cap = max(7.0, h / 75.0)
    top = int(h * rng.uniform(0.09, 0.12))
    fh = int(h * rng.uniform(0.7, 0.76))
    panel_left = spec.profile.style in ("ge", "toshiba")
    if spec.capture == "dual_view":
        fw = int(w * rng.uniform(0.38, 0.41))
        gap = int(rng.integers(4, 12))
        x0 = int((w - 2 * fw - gap) / 2 + (0.04 * w if panel_left else -0.04 * w))
        fields = [(x0, top, x0 + fw, top + fh), (x0 + fw + gap, top, x0 + 2 * fw + gap, top + fh)]
    else:
        fw = int(w * rng.uniform(0.56, 0.66))
        x0 = int((w - fw) / 2 + (0.07 * w if panel_left else -0.07 * w))
        fields = [(x0, top, x0 + fw, top + fh)]
    panel_x = int(0.015 * w) if panel_left else int(fields[-1][2] + 0.06 * w)
    depth = float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0, 6.0], p=[0.15, 0.2, 0.3, 0.15, 0.15, 0.05]))
    convex = spec.profile.style == "toshiba" and rng.random() < 0.4
    lay = _Layout(fields=fields, panel_x=panel_x, cap=cap, depth_cm=depth, convex=convex)
    if spec.style == "varied":
        _vary_layout(lay, varied_rng(spec, rng, "field"), spec)
        # Its own stream, so every other varied choice stays as it was.
        if spec.capture not in ("dual_view", "doppler", "green_corrupt"):
            lay.sector = sample_sector_look(varied_rng(spec, rng, "sector"))
    return lay


def _vary_layout(lay: _Layout, vr: np.random.Generator, spec: CaptureSpec) -> None:
    """Varied style: the field anywhere on the screen (touching an edge or not), of any
    reasonable size, the depth ruler on either side, the parameter panel wherever there is
    room (or none), and extra chrome around the field (_draw_chrome)."""
    w, h, cap = spec.width, spec.height, lay.cap
    dual = spec.capture == "dual_view"
    fw = int(w * (vr.uniform(0.3, 0.46) if dual else vr.uniform(0.42, 0.84)))
    fh = int(h * vr.uniform(0.5, 0.86))
    gap = int(vr.integers(2, 16)) if dual else 0
    total = 2 * fw + gap if dual else fw
    lay.ruler_side = str(vr.choice(["left", "right"]))
    lay.ruler_gap = int(vr.integers(2, 12))
    room = lay.ruler_gap + int(cap * 2.6)  # ruler ticks and depth digits
    lo = room if lay.ruler_side == "left" else 0
    hi = w - total - (room if lay.ruler_side == "right" else 0)
    anchor = str(vr.choice(["low", "high", "any", "any"]))
    if hi <= lo:
        x0 = max(0, (w - total) // 2)
    elif anchor == "low":
        x0 = lo + int(vr.integers(0, max(1, min(12, hi - lo))))
    elif anchor == "high":
        x0 = hi - int(vr.integers(0, max(1, min(12, hi - lo))))
    else:
        x0 = int(vr.integers(lo, hi + 1))
    v_anchor = str(vr.choice(["top", "bottom", "any", "any"]))
    y_hi = h - fh
    if v_anchor == "top":
        y0 = int(vr.integers(0, max(1, min(int(cap * 2), y_hi))))
    elif v_anchor == "bottom":
        y0 = y_hi - int(vr.integers(0, max(1, min(int(cap * 3), y_hi))))
    else:
        y0 = int(vr.integers(0, max(1, y_hi)))
    if dual:
        lay.fields = [(x0, y0, x0 + fw, y0 + fh), (x0 + fw + gap, y0, x0 + total, y0 + fh)]
    else:
        lay.fields = [(x0, y0, x0 + fw, y0 + fh)]
    # The parameter panel goes on the side with more room; with too little room the screen has
    # none (drawn off-screen, which OpenCV clips).
    left_room = x0 - (room if lay.ruler_side == "left" else 0)
    right_room = w - (x0 + total) - (room if lay.ruler_side == "right" else 0)
    if max(left_room, right_room) < 6 * cap:
        lay.panel_x = w + 10
    elif left_room >= right_room:
        lay.panel_x = int(vr.integers(2, max(3, int(left_room - 5.5 * cap))))
    else:
        lay.panel_x = w - right_room + int(vr.integers(3, max(4, int(right_room - 5.5 * cap))))
    lay.varied = True
    lay.chrome_seed = int(vr.integers(2**32))


def _draw_header(
    img: np.ndarray, rng: np.random.Generator, spec: CaptureSpec, lay: _Layout, doppler: bool
) -> None:
    w = spec.width
    cap = lay.cap
    d = spec.study_date
    t = spec.study_time
    date_us = f"{d[4:6]}/{d[6:8]}/{d[0:4]}"
    clock = f"{t[0:2]}:{t[2:4]}:{t[4:6]}"
    inst = str(
        rng.choice(["MAYO CLINIC", "MAYO CLINIC ROCHESTER", "MAYO BREAST CLINIC", "MCR RAD"])
    )
    preset = str(rng.choice(["BREAST", "Breast", "BREAST", "SMALL PARTS", "Br Gen"]))
    mi = f"MI {rng.uniform(0.6, 1.3):.1f}"
    tis = f"TIS {rng.uniform(0.1, 0.6):.1f}"
    fr = int(rng.integers(12, 45))
    y1 = int(cap * 1.9)
    y2 = int(cap * 3.8)
    style = spec.profile.style
    if style == "ge":
        _chrome_text(img, inst, int(0.015 * w), y1, cap)
        _chrome_text(img, f"{date_us} {clock}", int(0.42 * w), y1, cap)
        _chrome_text(img, f"{spec.probe} / {preset}", int(0.015 * w), y2, cap)
        _chrome_text(img, f"{mi}  {tis}", int(0.75 * w), y1, cap)
    elif style == "philips":
        _chrome_text(img, "PHILIPS", int(0.015 * w), y1, cap * 1.1, 235)
        _chrome_text(img, f"{inst}   {d[0:4]}/{d[4:6]}/{d[6:8]} {clock}", int(0.2 * w), y1, cap)
        _chrome_text(img, f"{tis} {mi}", int(0.78 * w), y1, cap)
        _chrome_text(img, f"{spec.probe}/{preset}", int(0.2 * w), y2, cap)
    else:
        _chrome_text(img, f"{inst}", int(0.015 * w), y1, cap)
        _chrome_text(img, f"{spec.profile.model}  {spec.probe}  {preset}", int(0.3 * w), y1, cap)
        _chrome_text(img, f"{date_us}  {clock}", int(0.72 * w), y1, cap)
        _chrome_text(img, f"{mi} {tis}", int(0.72 * w), y2, cap)

    # Parameter panel.
    params = [
        f"Frq {rng.choice([10.0, 11.0, 12.0, 13.0, 14.0]):.1f}",
        f"Gn {int(rng.integers(30, 70))}",
        f"D {lay.depth_cm:.1f}",
        f"DR {int(rng.integers(54, 84))}",
        f"FR {fr}",
        f"AO {int(rng.choice([80, 90, 100]))}%",
        f"Map {rng.choice(['A', 'B', 'D', 'E', 'G'])}",
        f"E/A {int(rng.integers(1, 4))}/{int(rng.integers(1, 3))}",
    ]
    if doppler:
        params += [
            "CF",
            f"Frq {rng.choice([5.0, 6.2, 7.3]):.1f}",
            f"Gn {int(rng.integers(20, 50))}",
            f"PRF {rng.uniform(0.6, 2.5):.1f}k",
            f"WF {int(rng.integers(40, 120))}",
            f"S/P {int(rng.integers(2, 9))}/{int(rng.integers(1, 6))}",
        ]
    y = int(lay.fields[0][1] + cap * 2)
    for p in params:
        _chrome_text(img, p, lay.panel_x, y, cap * 0.95, 200)
        y += int(cap * 2.1)

    # Grey bar.
    gx = lay.panel_x + int(cap * 0.5) if spec.profile.style in ("ge", "toshiba") else lay.panel_x
    gy = y + int(cap)
    gh = min(int(spec.height * 0.15), spec.height - gy - 10)
    if gh > 20:
        ramp = np.linspace(255, 0, gh).astype(np.uint8)[:, None]
        img[gy : gy + gh, gx : gx + int(cap)] = ramp if img.ndim == 2 else ramp[..., None]


def _draw_ruler(img: np.ndarray, rng: np.random.Generator, lay: _Layout, fx: tuple) -> None:
    x0, y0, x1, y1 = fx
    per_cm = (y1 - y0) / lay.depth_cm
    # Classic: right of the field, 5 px away. Varied: either side, any small gap; ticks and
    # digits point away from the field.
    left = lay.ruler_side == "left"
    sgn = -1 if left else 1
    rx = x0 - 1 - lay.ruler_gap if left else x1 + lay.ruler_gap
    dots = rng.random() < 0.5
    digit_scale = _font_scale("hershey_simplex", lay.cap * 0.9)
    for k in range(int(lay.depth_cm * 2) + 1):
        yy = int(round(y0 + k * per_cm / 2))
        if yy >= img.shape[0]:
            break
        major = k % 2 == 0
        if dots:
            cv2.circle(img, (rx + sgn * 2, yy), 2 if major else 1, 220, -1)
        else:
            cv2.line(img, (rx, yy), (rx + sgn * (8 if major else 4), yy), 220, 1)
        if major and k > 0:
            tx = rx + 11
            if left:
                tw = cv2.getTextSize(str(k // 2), cv2.FONT_HERSHEY_SIMPLEX, digit_scale, 1)[0][0]
                tx = rx - 11 - tw
            _chrome_text(img, str(k // 2), tx, yy + int(lay.cap / 2), lay.cap * 0.9, 200)
    if not dots:
        cv2.line(img, (rx, y0), (rx, y1), 200, 1)
    # Focal zone marker.
    fz = int(y0 + rng.uniform(0.3, 0.6) * (y1 - y0))
    tri = np.array([[rx - sgn, fz], [rx + sgn * 7, fz - 5], [rx + sgn * 7, fz + 5]], dtype=np.int32)
    cv2.fillPoly(img, [tri], 230)
    if lay.varied and fx == lay.fields[0]:
        _draw_chrome(img, lay)


_TOOLBAR_LABELS = ("Gen", "Sector", "THI", "On", "MB Off", "Page 1/3", "Freeze", "2D", "Res")
_STATUS_WORDS = ("9123", "5.0", "R15", "G66", "C6", "A2", "DVA: 94%", "P 1/2", "3:BREAST", "HR")


def _draw_chrome(img: np.ndarray, lay: _Layout) -> None:
    """Varied style: scanner chrome around the field on any side (grey-scale bar, tool bar of
    boxed labels, status text line, horizontal scale bar, icons), never inside it.

    Drawn on the background before the field is pasted, with its own random stream."""
    rng = np.random.default_rng(lay.chrome_seed)
    h, w = img.shape[:2]
    cap = lay.cap
    fx0 = min(f[0] for f in lay.fields)
    fy0 = min(f[1] for f in lay.fields)
    fx1 = max(f[2] for f in lay.fields)
    fy1 = max(f[3] for f in lay.fields)
    ruler = lay.ruler_gap + int(cap * 2.6)
    room = {
        "left": fx0 - (ruler if lay.ruler_side == "left" else 0),
        "right": w - fx1 - (ruler if lay.ruler_side == "right" else 0),
        "top": fy0,
        "bottom": h - fy1,
    }

    def side_gap(side: str) -> int:
        return (ruler if side == lay.ruler_side else 0) + int(rng.integers(2, 16))

    # Grey-scale bar beside the field.
    bw = int(cap * rng.uniform(0.9, 1.7))
    sides = [s for s in ("left", "right") if room[s] >= bw + 20]
    if sides and rng.random() < 0.7:
        side = str(rng.choice(sides))
        g = side_gap(side)
        bh = int((fy1 - fy0) * rng.uniform(0.15, 0.4))
        by = int(rng.integers(max(0, fy0), max(fy0 + 1, fy1 - bh)))
        bx = fx0 - g - bw if side == "left" else fx1 + g
        if bx >= 0 and bx + bw <= w:
            ramp = np.linspace(255, 0, bh).astype(np.uint8)[:, None]
            img[by : by + bh, bx : bx + bw] = ramp
            cv2.rectangle(img, (bx - 1, by - 1), (bx + bw, by + bh), 160, 1)
    # Tool bar of boxed labels, or a status text line, above or below the field.
    band = int(cap * 2.4)
    sides = [s for s in ("top", "bottom") if room[s] >= band + 4]
    if sides and rng.random() < 0.6:
        side = str(rng.choice(sides))
        g = int(rng.integers(2, 14))
        yb = fy1 + g if side == "bottom" else fy0 - g - band
        x = fx0 + int(rng.integers(0, max(1, (fx1 - fx0) // 6)))
        if rng.random() < 0.5:
            for label in rng.permutation(_TOOLBAR_LABELS)[: int(rng.integers(3, 7))]:
                tw = cv2.getTextSize(
                    str(label), cv2.FONT_HERSHEY_SIMPLEX, _font_scale("hershey_simplex", cap), 1
                )[0][0]
                if x + tw + 12 > min(w, fx1 + 40):
                    break
                cv2.rectangle(img, (x, yb), (x + tw + 10, yb + band - 1), 150, 1)
                _chrome_text(img, str(label), x + 5, yb + int(band * 0.7), cap, 200)
                x += tw + 10 + int(rng.integers(3, 12))
        else:
            words = rng.permutation(_STATUS_WORDS)[: int(rng.integers(3, 7))]
            _chrome_text(img, "  ".join(str(s) for s in words), x, yb + int(band * 0.7), cap, 210)
    # Horizontal scale bar with end ticks, above or below the field.
    sides = [s for s in ("top", "bottom") if room[s] >= 14]
    if sides and rng.random() < 0.35:
        side = str(rng.choice(sides))
        g = int(rng.integers(3, max(4, min(room[side] - 8, 40))))
        yy = fy1 + g if side == "bottom" else fy0 - g
        xa = fx0 + int(rng.integers(0, max(1, (fx1 - fx0) // 3)))
        xb = xa + int((fx1 - fx0) * rng.uniform(0.2, 0.4))
        cv2.line(img, (xa, yy), (xb, yy), 220, 1)
        for xe in (xa, xb):
            cv2.line(img, (xe, yy - 5), (xe, yy), 220, 1)
    # Small icons (outlined squares and circles) in a side column.
    sides = [s for s in ("left", "right") if room[s] >= int(cap * 2) + 6]
    if sides and rng.random() < 0.4:
        side = str(rng.choice(sides))
        g = side_gap(side)
        size = int(cap * 1.3)
        ix = fx0 - g - size if side == "left" else fx1 + g
        iy = int(rng.integers(max(0, fy0), max(fy0 + 1, fy1 - 4 * size)))
        for k in range(int(rng.integers(1, 4))):
            y = iy + k * (size + 6)
            if rng.random() < 0.5:
                cv2.rectangle(img, (ix, y), (ix + size, y + size), 190, 1)
            else:
                cv2.circle(img, (ix + size // 2, y + size // 2), size // 2, 190, 1, cv2.LINE_AA)


def _convex_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    inset = int(w * 0.12)
    pts = np.array([[inset, 0], [w - 1 - inset, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.int32)
    cv2.fillPoly(mask, [pts], 1)
    return mask


@dataclass(frozen=True)
class SectorLook:
    """A fan-shaped image inside the declared field, as phased-array (sector) and curvilinear
    probes draw it: the scanner declares the rectangle around the fan (its region), but the
    echo is only inside the fan, and often only in its upper part (a deep setting over shallow
    tissue leaves the rest black, as on the Philips OBXXXX1A). The declared region is the
    truth: the field box stays the rectangle."""

    shape: str = "sector"  # sector (near-point apex) | convex (curved transducer face)
    apex_share: float = 0.05  # apex-to-face distance / field depth (small: a point apex)
    spread: float = 1.0  # fan width at full depth / field width (>1: clipped at the sides)
    echo_share: float = 1.0  # share of the depth that holds echo; black below
    fan_level: int = 0  # grey level of the fan's empty part (0: screen black; 1-3: dim grey)
    screen_level: int = 0  # screen background outside the field (>0: field darker than chrome)


def sample_sector_look(rng: np.random.Generator) -> SectorLook | None:
    """A fan on 40% of eligible varied screens; None keeps the filled rectangle."""
    if rng.random() >= 0.4:
        return None
    convex = rng.random() < 0.5
    deep_black = rng.random() < 0.55
    return SectorLook(
        shape="convex" if convex else "sector",
        apex_share=float(rng.uniform(0.3, 1.2) if convex else rng.uniform(0.02, 0.12)),
        spread=float(rng.uniform(0.9, 1.2)),
        echo_share=float(rng.uniform(0.15, 0.6)) if deep_black else 1.0,
        fan_level=int(rng.choice([0, 0, 1, 2, 3])),
        screen_level=int(rng.choice([1, 2])) if rng.random() < 0.25 else 0,
    )


def _sector_masks(fh: int, fw: int, look: SectorLook) -> tuple[np.ndarray, np.ndarray]:
    """(fan mask uint8, echo fade float32) over the fh x fw field. The fan's apex sits above
    the field's top centre; its face touches the top edge and its arc reaches the bottom edge
    at the centre; its straight edges open to `spread` times the field width at full depth."""
    r0 = max(1.0, look.apex_share * fh)
    r1 = r0 + fh
    half = float(np.arcsin(min(0.999, look.spread * fw / (2.0 * r1))))
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    dx = xx - (fw - 1) / 2.0
    dy = yy + r0
    rad = np.sqrt(dx * dx + dy * dy)
    ang = np.abs(np.arctan2(dx, dy))
    fan = ((rad >= r0) & (rad <= r1) & (ang <= half)).astype(np.uint8)
    # Echo along each beam down to echo_share of the depth, then a short fall to black.
    edge = r0 + look.echo_share * fh
    fade = np.clip(1.0 - (rad - edge) / max(4.0, 0.03 * fh), 0.0, 1.0).astype(np.float32)
    return fan, fade


def _apply_sector(px: np.ndarray, fan: np.ndarray, fade: np.ndarray, level: int) -> np.ndarray:
    out = (px.astype(np.float32) * fade).astype(np.uint8) * fan
    if level > 0:
        out = np.where(fan > 0, np.maximum(out, level), out).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Overlays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkerLook:
    """How a body-marker pictogram is drawn. ``MarkerLook()`` is the classic look; the varied
    style samples one per capture (sample_marker_look), as scanner vendors draw it differently."""

    outline: str = "circle"  # circle | ellipse (a slightly flattened breast)
    line_px: int = 1
    nipple: bool = True
    tail: bool = True  # the axillary tail
    probe_px: int | None = None  # bar thickness; None: max(2, size // 18)
    probe_len: float = 0.55  # bar length as a fraction of the radius
    probe_box: bool = False  # probe drawn as a hollow rectangle instead of a bar
    flatten: float = 1.0  # vertical radius / horizontal radius for the ellipse outline
    backdrop: str = "dim4"  # dim4 | dim2 | none | black | framed
    color: tuple[int, int, int] = (230, 230, 230)


_MARKER_COLOURS = (
    ((230, 230, 230), 4.0),
    ((200, 200, 200), 1.5),
    ((255, 255, 0), 1.5),
    ((0, 255, 255), 1.0),
    ((150, 240, 150), 1.0),
    ((255, 200, 120), 0.7),
)


def sample_marker_look(rng: np.random.Generator, rgb: bool, yellow: bool) -> MarkerLook:
    """A vendor-like variation of the pictogram: outline, strokes, probe, backdrop, colour."""
    if yellow:
        color = (255, 255, 0)
    elif rgb:
        w = np.array([c[1] for c in _MARKER_COLOURS])
        color = _MARKER_COLOURS[int(rng.choice(len(w), p=w / w.sum()))][0]
    else:
        v = int(rng.integers(170, 256))
        color = (v, v, v)
    return MarkerLook(
        outline="ellipse" if rng.random() < 0.4 else "circle",
        line_px=1 if rng.random() < 0.7 else 2,
        nipple=bool(rng.random() < 0.8),
        tail=bool(rng.random() < 0.7),
        probe_px=int(rng.integers(2, 5)),
        probe_len=float(rng.uniform(0.45, 0.7)),
        probe_box=bool(rng.random() < 0.2),
        flatten=float(rng.uniform(0.8, 0.95)),
        backdrop=str(
            rng.choice(["dim4", "dim2", "none", "black", "framed"], p=[0.35, 0.2, 0.2, 0.15, 0.1])
        ),
        color=color,
    )


def place_body_marker(
    rng: np.random.Generator,
    width: int,
    height: int,
    fields: list[tuple[int, int, int, int]],
    size: int,
    avoid: list[tuple[int, int, int, int]],
) -> tuple[int, int]:
    """Centre of a body marker of `size` px: a corner of the field, beside it (left, right,
    below) or a corner of the screen, clear of the `avoid` boxes (x0, y0, x1, y1) and inside the
    screen. Falls back to the classic bottom-right corner of the last field."""
    hs = int(np.ceil(size / 2 * 1.35)) + 6  # half the pictogram with its tail and backdrop
    fx0, fy0 = fields[0][0], fields[0][1]
    fx1, fy1 = fields[-1][2], fields[-1][3]
    m = int(rng.integers(6, 20))
    cands = [
        (fx0 + m + hs, fy0 + m + hs),  # field corners
        (fx1 - m - hs, fy0 + m + hs),
        (fx0 + m + hs, fy1 - m - hs),
        (fx1 - m - hs, fy1 - m - hs),
        (fx0 - m - hs, int(rng.uniform(fy0 + hs, fy1 - hs))),  # beside the field
        (fx1 + 40 + hs, int(rng.uniform(fy0 + hs, fy1 - hs))),  # right, past the depth ruler
        (int(rng.uniform(fx0 + hs, fx1 - hs)), fy1 + m + hs),  # below the field
        (m + hs, height - m - hs),  # screen corners (the top ones sit under the header)
        (width - m - hs, height - m - hs),
        (m + hs, int(0.12 * height) + hs),
        (width - m - hs, int(0.12 * height) + hs),
    ]
    order = rng.permutation(len(cands))
    for i in order:
        cx, cy = cands[int(i)]
        box = (cx - hs, cy - hs, cx + hs, cy + hs)
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            continue
        if any(
            box[0] < a[2] + 4 and a[0] - 4 < box[2] and box[1] < a[3] + 4 and a[1] - 4 < box[3]
            for a in avoid
        ):
            continue
        return int(cx), int(cy)
    return fx1 - size // 2 - 10, fy1 - size // 2 - 10


def _marker_backdrop(img: np.ndarray, cx: int, cy: int, size: int, look: MarkerLook) -> None:
    """Darken the area under the pictogram so it reads against bright speckle."""
    hs = size // 2 + 6
    h, w = img.shape[:2]
    y0, y1, x0, x1 = max(0, cy - hs), min(h, cy + hs), max(0, cx - hs), min(w, cx + hs)
    if look.backdrop == "dim4":
        img[y0:y1, x0:x1] //= 4
    elif look.backdrop == "dim2":
        img[y0:y1, x0:x1] //= 2
    elif look.backdrop in ("black", "framed"):
        img[y0:y1, x0:x1] = 0
        if look.backdrop == "framed":
            c = (80, 80, 80) if img.ndim == 3 else (80,)
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), c, 1)


def _marker_box(cx: int, cy: int, size: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Bounds of a pictogram centred at (cx, cy): the outline plus the axillary tail's reach."""
    r = size // 2
    reach = int(np.ceil(r * 1.35)) + 2
    return (max(0, cx - reach), max(0, cy - reach), min(w, cx + reach + 1), min(h, cy + r + 3))


def _draw_body_marker(
    img: np.ndarray,
    rng: np.random.Generator,
    cx: int,
    cy: int,
    size: int,
    ann: Annotation | None,
    angle: float,
    color: tuple[int, ...],
    look: MarkerLook | None = None,
) -> float | None:
    """Draw the pictogram; returns the clock hour the probe is drawn at (None on the axilla)."""
    # look None is the classic pictogram, drawn exactly as the first generator did.
    lk = look or MarkerLook()
    lw = lk.line_px
    r = size // 2
    lat = ann.laterality if ann is not None else "left"
    area = ann.area if ann is not None else "breast"
    probe_len = int(r * lk.probe_len)
    if area == "axilla":
        # Torso edge and raised arm outline; the probe sits in the armpit.
        side = 1 if lat == "left" else -1
        pts = np.array(
            [
                [cx - side * r, cy + r],
                [cx - side * r // 3, cy],
                [cx + side * r // 3, cy - r // 2],
                [cx + side * r, cy - r],
            ],
            dtype=np.int32,
        )
        cv2.polylines(img, [pts], False, color, lw, cv2.LINE_AA)
        cv2.line(
            img, (cx - side * r, cy + r // 3), (cx - side * r // 3, cy), color, lw, cv2.LINE_AA
        )
        px, py = cx, cy - r // 6
        hour = None
    else:
        if lk.outline == "ellipse":
            axes = (r, int(round(r * lk.flatten)))
            cv2.ellipse(img, (cx, cy), axes, 0, 0, 360, color, lw, cv2.LINE_AA)
        else:
            cv2.circle(img, (cx, cy), r, color, lw, cv2.LINE_AA)
        if lk.nipple:
            cv2.circle(img, (cx, cy), max(2, r // 8), color, -1, cv2.LINE_AA)
        if lk.tail:
            # Axillary tail towards the patient's axilla (viewer's right for the left breast).
            tail = 1 if lat == "left" else -1
            a0 = np.deg2rad(45)
            ry = r * (lk.flatten if lk.outline == "ellipse" else 1.0)
            p0 = (int(cx + tail * r * np.cos(a0)), int(cy - ry * np.sin(a0)))
            p1 = (int(cx + tail * r * 1.35), int(cy - ry * 1.05))
            cv2.line(img, p0, p1, color, lw, cv2.LINE_AA)
        hour = ann.marker_hour if ann is not None else None
        if hour is None:
            hour = float(rng.uniform(0, 12))
        th = np.deg2rad(90.0 - 30.0 * hour)
        # Along the true clock direction, so a radial bar points at the nipple on any outline.
        rad = r * rng.uniform(0.45, 0.7)
        px, py = int(cx + rad * np.cos(th)), int(cy - rad * np.sin(th))
    a = np.deg2rad(angle)
    dx, dy = probe_len * np.cos(a) / 2, -probe_len * np.sin(a) / 2
    thick = lk.probe_px if lk.probe_px is not None else max(2, size // 18)
    # A real probe icon is clearly longer than wide (a linear footprint, ~3:1 or more): a small
    # varied marker could otherwise get a 4 px bar 8 px long, or an 8 x 8 px "box", whose
    # orientation nobody can read. The classic look (thick <= size // 18) never hits the cap.
    thick = max(1, min(thick, probe_len // 3))
    if lk.probe_box:
        # A hollow probe footprint: a thin rectangle along the bar.
        half_w = max(1, min(thick, probe_len // 6))
        nx, ny = -np.sin(a) * half_w, -np.cos(a) * half_w
        quad = np.array(
            [
                [px - dx + nx, py - dy + ny],
                [px + dx + nx, py + dy + ny],
                [px + dx - nx, py + dy - ny],
                [px - dx - nx, py - dy - ny],
            ]
        )
        cv2.polylines(img, [np.round(quad).astype(np.int32)], True, color, 1, cv2.LINE_AA)
    else:
        cv2.line(
            img,
            (int(px - dx), int(py - dy)),
            (int(px + dx), int(py + dy)),
            color,
            thick,
            cv2.LINE_AA,
        )
    return hour


# Caliper mark shapes: classic draws "+" and "x"; the varied style's first ("legacy") look adds
# small crosses, dotted endpoints (a filled dot) and the outlined "+" some vendors draw (a light
# cross with a dark rim); its "wide" look adds every family below (issue 9: a detector must not
# learn one vendor's glyphs): crosses tilted at any angle, stars (8 arms) and asterisks (6),
# diamonds (open, filled), open circles, points of 2-5 px, square brackets "[ ]", arrowheads.
LEGACY_CALIPER_SHAPES = ("+", "x", "small_cross", "dot", "outlined_plus")
WIDE_CALIPER_SHAPES = (
    "tilted_cross",
    "star",
    "asterisk",
    "diamond",
    "filled_diamond",
    "circle",
    "point",
    "bracket",
    "arrowhead",
    "open_arrowhead",
)
CALIPER_SHAPES = LEGACY_CALIPER_SHAPES + WIDE_CALIPER_SHAPES
CALIPER_COLOURS = {
    "white": (245, 245, 245),
    "yellow": YELLOW,
    "green": (40, 230, 60),
    "grey": (190, 190, 190),
    "cyan": (0, 255, 255),
}
_LEGACY_COLOURS = ("white", "yellow", "green")


def _rot(c: int, pts: list[tuple[float, float]], angle: float) -> np.ndarray:
    """Points (dx, dy) about the patch centre rotated by `angle` degrees, in cv2 fixed point
    (shift 4: sixteenths of a pixel), so tilted strokes land where the geometry says."""
    a = np.deg2rad(angle)
    ca, sa = np.cos(a), np.sin(a)
    out = [(c + dx * ca - dy * sa, c + dx * sa + dy * ca) for dx, dy in pts]
    return np.round(np.array(out) * 16).astype(np.int32)


def _mark_mask(
    shape: str, s: int, thick: int = 1, angle: float = 0.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Footprint of a mark centred in a (2r+1)^2 patch: (stroke mask, dark rim mask or None).

    `s` is the half size (arm length; a point's diameter), `angle` (degrees) turns the tilted
    and wide shapes (an arrowhead points along it)."""
    r = s + thick + 2
    m = np.zeros((2 * r + 1, 2 * r + 1), dtype=np.uint8)
    c = r

    def seg(p0: tuple[float, float], p1: tuple[float, float]) -> None:
        q = _rot(c, [p0, p1], angle)
        cv2.line(m, tuple(map(int, q[0])), tuple(map(int, q[1])), 1, thick, cv2.LINE_8, 4)

    if shape in ("+", "small_cross", "outlined_plus"):
        cv2.line(m, (c - s, c), (c + s, c), 1, thick)
        cv2.line(m, (c, c - s), (c, c + s), 1, thick)
    elif shape == "x":
        cv2.line(m, (c - s, c - s), (c + s, c + s), 1, thick)
        cv2.line(m, (c - s, c + s), (c + s, c - s), 1, thick)
    elif shape == "dot":
        cv2.circle(m, (c, c), s, 1, -1)
    elif shape in ("tilted_cross", "star", "asterisk"):
        step = {"tilted_cross": 90.0, "star": 45.0, "asterisk": 60.0}[shape]
        for k in range(int(round(180 / step))):
            t = np.deg2rad(k * step)
            seg((-s * np.cos(t), -s * np.sin(t)), (s * np.cos(t), s * np.sin(t)))
    elif shape in ("diamond", "filled_diamond"):
        q = _rot(c, [(s, 0), (0, s), (-s, 0), (0, -s)], angle)
        if shape == "diamond":
            cv2.polylines(m, [q], True, 1, thick, cv2.LINE_8, 4)
        else:
            cv2.fillConvexPoly(m, q, 1, cv2.LINE_8, 4)
    elif shape == "circle":
        cv2.circle(m, (c, c), s, 1, thick)
    elif shape == "point":
        d = max(2, s)  # a dotted endpoint: a square point of d px, corners cut from 4 px
        o = c - (d - 1) // 2
        m[o : o + d, o : o + d] = 1
        if d >= 4:
            m[o, o] = m[o, o + d - 1] = m[o + d - 1, o] = m[o + d - 1, o + d - 1] = 0
    elif shape == "bracket":
        serif = max(2.0, s / 2)
        for sign in (-1, 1):  # "[" on the left, "]" on the right, both facing the centre
            seg((sign * s, -s), (sign * s, s))
            seg((sign * s, -s), (sign * (s - serif), -s))
            seg((sign * s, s), (sign * (s - serif), s))
    elif shape in ("arrowhead", "open_arrowhead"):
        # Tip half a size ahead of the centre, barbs half a size behind: the mark is centred
        # on the measured point, pointing along `angle`.
        tip, back, half = (s / 2, 0.0), (-s / 2, -s * 0.6), (-s / 2, s * 0.6)
        if shape == "arrowhead":
            cv2.fillConvexPoly(m, _rot(c, [tip, back, half], angle), 1, cv2.LINE_8, 4)
        else:
            seg(tip, back)
            seg(tip, half)
    else:
        raise ValueError(f"unknown caliper shape {shape!r}")
    rim = None
    if shape == "outlined_plus":
        rim = cv2.dilate(m, np.ones((3, 3), np.uint8)) & (m == 0)
    return m.astype(bool), None if rim is None else rim.astype(bool)


def _draw_mark(
    img: np.ndarray,
    x: int,
    y: int,
    shape: str,
    s: int,
    color: tuple[int, ...],
    thick: int = 1,
    angle: float = 0.0,
) -> tuple[int, int, int, int]:
    """Draw one caliper mark centred on (x, y); return its box (x, y, w, h) in image pixels,
    rim included, clipped to the image."""
    mask, rim = _mark_mask(shape, s, thick, angle)
    r = mask.shape[0] // 2
    h, w = img.shape[:2]
    x0, y0 = max(0, x - r), max(0, y - r)
    x1, y1 = min(w, x + r + 1), min(h, y + r + 1)
    sub = (slice(y0 - (y - r), y1 - (y - r)), slice(x0 - (x - r), x1 - (x - r)))
    roi = img[y0:y1, x0:x1]
    col = color if img.ndim == 3 else color[0]
    if rim is not None:
        roi[rim[sub]] = 0 if img.ndim == 2 else (0, 0, 0)
    roi[mask[sub]] = col
    ink = mask[sub] if rim is None else mask[sub] | rim[sub]
    ys, xs = np.nonzero(ink)
    return (int(xs.min()) + x0, int(ys.min()) + y0, int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)


def _grey_level(color: tuple[int, ...]) -> int:
    """What a colour mark looks like on a grey capture (the scanner's luminance)."""
    if len(color) == 1:
        return int(color[0])
    r, g, b = color[:3]
    return int(round(0.299 * r + 0.587 * g + 0.114 * b))


def _draw_calipers(
    img: np.ndarray,
    rng: np.random.Generator,
    lesion: tuple[float, float, float, float, float],
    fx: tuple[int, int, int, int],
    delta: float,
    avoid: tuple[int, int, int, int] | None,
    color: tuple[int, ...],
    vr: np.random.Generator | None = None,
) -> tuple[list[dict[str, object]], tuple[int, int, int, int] | None]:
    """Caliper pairs on the lesion axes with a dotted line between each pair, and the
    measurement legend at a field corner. Returns one dict per mark (centre, shape, box
    [x, y, w, h], colour, size, look: classic | legacy | wide) and the legend box.

    `vr` (the varied style's stream) varies shape, size, thickness, colour, dot spacing, adds a
    pair on other tissue and puts the shape's glyph in front of each legend line; None is the
    classic screen, unchanged."""
    cx, cy, a, b, ang = lesion
    ox, oy = fx[0], fx[1]
    n_pairs = int(rng.choice([1, 2, 3], p=[0.3, 0.6, 0.1]))
    axes = [(a, ang), (b, ang + np.pi / 2), (0.8 * (a + b) / 2, ang + rng.uniform(0.5, 1.0))]
    marks: list[dict[str, object]] = []
    legend: list[str] = []
    s = int(rng.integers(5, 8))
    fmt = str(rng.choice(["D{i} {v:.2f} cm", "D{i}  {v:.2f} cm", "{i} Dist {v:.2f} cm"]))
    colour_name = "yellow" if len(color) == 3 and color[2] == 0 and color[0] > 200 else "white"
    pairs: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for i in range(n_pairs):
        half, th = axes[i]
        dx, dy = half * np.cos(th), half * np.sin(th)
        p = (int(round(ox + cx - dx)), int(round(oy + cy - dy)))
        q = (int(round(ox + cx + dx)), int(round(oy + cy + dy)))
        pairs.append((p, q))
    shapes = ["+" if i % 2 == 0 else "x" for i in range(n_pairs)]
    sizes, thick, spacing, dot_r = [s] * n_pairs, 1, 5.0, 0
    glyphs = False
    wide = False
    line, dash = "dotted", 1
    if vr is not None:
        # The "wide" look (issue 9) most of the time; the first varied look stays as it was.
        wide = vr.random() >= 0.25
        names = list(CALIPER_COLOURS) if wide else list(_LEGACY_COLOURS)
        weights = [0.35, 0.2, 0.15, 0.15, 0.15] if wide else [0.5, 0.3, 0.2]
        colour_name = str(vr.choice(names, p=weights))
        c = CALIPER_COLOURS[colour_name]
        color = c if img.ndim == 3 else (_grey_level(c),)
        if vr.random() < 0.35:
            # A second measurement elsewhere in the field (often over bright tissue).
            fw, fh = fx[2] - fx[0], fx[3] - fx[1]
            px_ = (int(ox + vr.uniform(0.12, 0.88) * fw), int(oy + vr.uniform(0.12, 0.88) * fh))
            th = vr.uniform(0, np.pi)
            ln = vr.uniform(0.08, 0.25) * min(fw, fh)
            qx_ = int(np.clip(px_[0] + ln * np.cos(th), ox + 14, fx[2] - 15))
            qy_ = int(np.clip(px_[1] + ln * np.sin(th), oy + 14, fx[3] - 15))
            pairs.append((px_, (qx_, qy_)))
        one_shape = vr.random() < 0.6  # most screens use one shape for every pair
        family = CALIPER_SHAPES if wide else LEGACY_CALIPER_SHAPES
        first = str(vr.choice(family))
        shapes = [first if one_shape else str(vr.choice(family)) for _ in pairs]
        thick = 2 if vr.random() < 0.2 else 1
        sizes = []
        for sh in shapes:
            if not wide:
                sizes.append(
                    int(vr.integers(2, 4) if sh in ("small_cross", "dot") else vr.integers(3, 10))
                )
            elif sh == "point":
                sizes.append(int(vr.integers(2, 6)))  # a 2-5 px dotted endpoint
            elif sh in ("small_cross", "dot", "circle"):
                sizes.append(int(vr.integers(2, 6)))
            else:
                sizes.append(int(vr.integers(2, 13)))  # marks of 5-25 px
        spacing = float(vr.uniform(3.0, 6.5))
        dot_r = int(vr.random() < 0.25)
        glyphs = vr.random() < 0.6
        if wide:
            # Strokes of 1-3 px (never more than a third of the mark), any tilt, and pairs with
            # a dotted, a dashed or no line at all.
            thick = int(vr.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            angles = [float(vr.uniform(0.0, 180.0)) for _ in pairs]
            line = str(vr.choice(["dotted", "dashed", "none"], p=[0.6, 0.15, 0.25]))
            dash = int(vr.integers(2, 5))
            spacing = (
                float(vr.uniform(3.0, 8.0)) if line == "dotted" else float(dash + vr.uniform(2, 5))
            )
    if not wide:
        angles = [0.0] * len(pairs)
    look = "classic" if vr is None else ("wide" if wide else "legacy")
    placed: list[tuple[int, int]] = []
    h_img, w_img = img.shape[:2]
    ink = color if img.ndim == 3 else color[0]
    for i, (p, q) in enumerate(pairs):
        shape, si = shapes[i], sizes[i]
        th_i = min(thick, max(1, (2 * si + 1) // 3)) if wide else thick
        # Marks too close to an earlier mark would merge into one: skip the pair.
        if any(np.hypot(x - u, y - v) < 3 * max(si, 3) + 6 for x, y in (p, q) for u, v in placed):
            continue
        length = np.hypot(q[0] - p[0], q[1] - p[1])
        if wide and length < 4 * si + 2 * th_i + 10:
            # The two marks of a short measurement would touch: smaller marks, or no pair.
            si = int((length - 2 * th_i - 10) // 4)
            if si < 2:
                continue
        start = si + 4 if not wide else si + th_i + 3
        if line != "none":
            for t in np.arange(start, length - start + 1, spacing):
                for u in np.arange(
                    t, min(t + (dash if line == "dashed" else 1), length - start + 1)
                ):
                    xx = int(round(p[0] + (q[0] - p[0]) * u / length))
                    yy = int(round(p[1] + (q[1] - p[1]) * u / length))
                    if dot_r and line == "dotted":
                        img[yy : yy + 2, xx : xx + 2] = ink
                    else:
                        img[yy, xx] = ink
        for k, (x, y) in enumerate((p, q)):
            if not (0 <= x < w_img and 0 <= y < h_img):
                continue
            angle = angles[i]
            if shape in ("arrowhead", "open_arrowhead"):
                # Along the measurement, pointing out of it (or, on some screens, into it).
                o = q if k == 0 else p
                angle = float(np.degrees(np.arctan2(y - o[1], x - o[0])))
                angle += 180.0 if angles[i] > 120.0 else 0.0
            box = _draw_mark(img, x, y, shape, si, color, th_i, angle)
            marks.append(
                {
                    "x": x,
                    "y": y,
                    "shape": shape,
                    "box": list(box),
                    "size": si,
                    "colour": colour_name,
                    "look": look,
                }
            )
            placed.append((x, y))
        legend.append(fmt.format(i=len(legend) + 1, v=length * delta))
    if not legend:
        return marks, None  # every pair skipped: no measurement on this screen
    # Measurement legend in a black box, at a field corner away from the annotation text.
    cap = 9.0 if img.shape[0] < 700 else 11.0
    tw, th_, step = text_size(legend, "hershey_simplex", cap)
    glyph_w = int(cap * 1.6) if glyphs else 0
    top_left_free = avoid is None or avoid[1] > fx[1] + th_ + 30
    lx = fx[0] + 8 if top_left_free else fx[2] - tw - glyph_w - 14
    ly = fx[1] + 8
    cv2.rectangle(
        img, (lx - 4, ly - 4), (lx + tw + glyph_w + 4, ly + th_ + 4), (0,) * len(color), -1
    )
    if glyphs:
        # The mark's glyph before each line, as scanners print it: not a caliper mark.
        for k in range(len(legend)):
            gy = ly + k * step + int(round(cap / 2))
            _draw_mark(img, lx + int(cap * 0.5), gy, shapes[min(k, len(shapes) - 1)], 3, color)
    draw_text(img, legend, lx + glyph_w, ly, "hershey_simplex", cap, color)
    return marks, (lx - 4, ly - 4, lx + tw + glyph_w + 5, ly + th_ + 5)


def _degrade(
    img: np.ndarray, box: tuple[int, int, int, int], kind: str, rng, cap: float = 12.0
) -> None:
    """Blur or JPEG-compress the text box, capped so that a person can still read the label.

    The caps were set by eye on the smallest labels (7-9 px caps): a stronger blur or a lower
    JPEG quality merged the strokes of 1-px Hershey text into unreadable smudges.
    """
    x0, y0, x1, y1 = box
    pad = 6
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(img.shape[1], x1 + pad), min(img.shape[0], y1 + pad)
    roi = img[y0:y1, x0:x1]
    if kind == "blur":
        # Blur scales with the glyph size: sigma 0.9 keeps a 12 px cap legible, not an 8 px one.
        sigma = float(rng.uniform(0.6, 0.9)) * min(1.0, cap / MAX_BLUR_CAP_PX)
        img[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (0, 0), sigma)
    elif kind == "jpeg":
        q = int(rng.integers(20, 33))
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(roi), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            img[y0:y1, x0:x1] = dec.reshape(roi.shape)


# --------------------------------------------------------------------------------------------
# Doppler
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DopplerLook:
    """How a Doppler capture shows flow. ``DopplerLook()`` is the classic look (colour flow in
    both hues, red/blue scale); the varied style samples one per capture (sample_doppler_look)."""

    kind: str = "color"  # color | power
    hues: str = "both"  # colour flow: both | red | blue (the direction(s) flow is shown in)
    power_map: str = "hot"  # power Doppler: hot | gold | orange (see _POWER_MAPS)


# Power-Doppler colour maps, low to high power: (position 0..1, RGB) stops, linear in between.
# GE / Philips / Siemens style dark-red -> orange -> yellow maps; US1 (a real GE power Doppler
# capture) runs (106, 0, 0) -> (255, 111, 0) -> (255, 202, 0) -> (255, 255, 0).
_POWER_MAPS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "hot": ((0.0, (110, 0, 0)), (0.4, (220, 40, 0)), (0.7, (255, 150, 0)), (1.0, (255, 255, 0))),
    "gold": ((0.0, (150, 60, 0)), (0.5, (255, 170, 0)), (1.0, (255, 255, 90))),
    "orange": ((0.0, (120, 20, 10)), (0.5, (230, 90, 0)), (1.0, (255, 200, 40))),
}


def sample_doppler_look(rng: np.random.Generator) -> DopplerLook:
    """A varied-style Doppler look: colour flow in one or both hues, or a power-Doppler map."""
    pick = float(rng.random())
    if pick < 0.35:
        return DopplerLook("color", "both")
    if pick < 0.55:
        return DopplerLook("color", "red")
    if pick < 0.7:
        return DopplerLook("color", "blue")
    return DopplerLook("power", "both", str(rng.choice(list(_POWER_MAPS))))


def _power_colours(p: np.ndarray, name: str) -> np.ndarray:
    stops = _POWER_MAPS[name]
    xs = [s[0] for s in stops]
    channels = [np.interp(p, xs, [s[1][c] for s in stops]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)


def _draw_doppler(
    rgb: np.ndarray,
    rng: np.random.Generator,
    fx: tuple[int, int, int, int],
    lesion: tuple[float, float, float, float, float] | None,
    cap: float,
    look: DopplerLook | None = None,
) -> None:
    look = look or DopplerLook()
    x0, y0, x1, y1 = fx
    fw, fh = x1 - x0, y1 - y0
    bw, bh = int(fw * rng.uniform(0.4, 0.6)), int(fh * rng.uniform(0.35, 0.55))
    if lesion is not None:
        cx, cy = x0 + lesion[0], y0 + lesion[1]
    else:
        cx, cy = x0 + fw / 2, y0 + fh / 2
    bx0 = int(np.clip(cx - bw / 2, x0 + 2, x1 - bw - 2))
    by0 = int(np.clip(cy - bh / 2, y0 + 2, y1 - bh - 2))
    vel = np.zeros((bh, bw), dtype=np.float32)
    # A single-hue capture shows every vessel in one direction (towards: red, away: blue).
    forced = {"red": 1.0, "blue": -1.0}.get(look.hues) if look.kind == "color" else None
    for _ in range(int(rng.integers(2, 6))):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if forced is not None:
            sign = forced
        pts = []
        px, py = rng.uniform(0, bw), rng.uniform(0, bh)
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(12):
            pts.append((px, py))
            heading += rng.normal(0, 0.35)
            px += 12 * np.cos(heading)
            py += 12 * np.sin(heading)
        thick = int(rng.integers(3, 10))
        tmp = np.zeros_like(vel)
        cv2.polylines(tmp, [np.array(pts, dtype=np.int32)], False, 1.0, thick, cv2.LINE_AA)
        tmp = cv2.GaussianBlur(tmp, (0, 0), max(1.0, thick / 3))
        vel += sign * tmp / max(float(tmp.max()), 1e-6) * rng.uniform(0.7, 1.0)
    # Scattered flow flashes (small vessels around the lesion).
    flash = _smooth_noise(rng, bh, bw, 6)
    flash = cv2.GaussianBlur(np.where(flash > 0.965, 1.0, 0.0).astype(np.float32), (0, 0), 1.5)
    flash_sign = np.where(_smooth_noise(rng, bh, bw, 10) > 0.5, 1.0, -1.0)
    if forced is not None:
        flash_sign = np.full_like(flash_sign, forced)
    if look.kind == "power":
        # Power has no direction: every vessel adds up (the map only shows its strength).
        vel, flash_sign = np.abs(vel), np.ones_like(flash_sign)
    vel += flash * flash_sign
    vel = np.clip(vel, -1, 1)
    mag = np.abs(vel)
    if look.kind == "power":
        col = _power_colours(mag, look.power_map).clip(0, 255).astype(np.uint8)
    else:
        pos = vel > 0
        r = np.where(pos, 110 + 145 * mag, 10 * mag)
        g = np.where(
            pos, 230 * np.clip(mag - 0.8, 0, 1) / 0.2 * 0.5, 160 * np.clip(mag - 0.8, 0, 1) / 0.2
        )
        b = np.where(pos, 0, 110 + 145 * mag)
        col = np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)
    box = rgb[by0 : by0 + bh, bx0 : bx0 + bw]
    on = mag > 0.12
    box[on] = col[on]
    cv2.rectangle(rgb, (bx0, by0), (bx0 + bw, by0 + bh), (170, 170, 170), 1)
    # Colour bar with velocity scale, left of the field.
    cbx = max(2, x0 - int(cap * 3.5))
    cbh = int(fh * 0.28)
    cby = y0 + int(cap * 2)
    ramp = np.linspace(1, -1, cbh)[:, None]
    bar = np.zeros((cbh, int(cap), 3), dtype=np.uint8)
    if look.kind == "power":
        # One-sided power scale: brightest at the top, fading to black at the bottom.
        level = np.repeat(np.linspace(1, 0, cbh)[:, None], int(cap), axis=1)
        shade = _power_colours(level, look.power_map) * np.clip(level * 4, 0, 1)[..., None]
        bar[:] = shade.clip(0, 255).astype(np.uint8)
    else:
        # The velocity scale is two-sided even when the flow shows one direction only.
        bar[..., 0] = np.where(ramp > 0, 60 + 195 * ramp, 0)
        bar[..., 2] = np.where(ramp < 0, 60 + 195 * -ramp, 0)
        bar[..., 1] = np.where(np.abs(ramp) > 0.85, 200 * (np.abs(ramp) - 0.85) / 0.15, 0)
    rgb[cby : cby + cbh, cbx : cbx + int(cap)] = bar
    v = f"{rng.uniform(4, 20):.1f}"
    cv2.putText(rgb, v, (cbx - 2, cby - 4), cv2.FONT_HERSHEY_SIMPLEX, cap / 24, (220,) * 3, 1)
    cv2.putText(
        rgb,
        f"-{v}",
        (cbx - 6, cby + cbh + int(cap * 1.3)),
        cv2.FONT_HERSHEY_SIMPLEX,
        cap / 24,
        (220,) * 3,
        1,
    )


# --------------------------------------------------------------------------------------------
# The capture
# --------------------------------------------------------------------------------------------


def render_capture(spec: CaptureSpec, rng: np.random.Generator) -> Rendered:
    """Render one capture (a still, or every frame of a cine clip) following `spec`."""
    lay = _layout(rng, spec)
    h, w = spec.height, spec.width
    doppler = spec.capture == "doppler"
    gain = {"dark": 0.16}.get(spec.capture, float(rng.uniform(0.92, 1.05)))
    dr = float(rng.uniform(48, 60))

    base = np.zeros((h, w), dtype=np.uint8)
    _draw_header(base, rng, spec, lay, doppler)
    regions: list[Region] = []
    tissues: list[_Tissue] = []
    field_imgs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
    extra: list[tuple[np.ndarray, np.ndarray]] = []
    sector_masks: list[tuple[np.ndarray, np.ndarray]] = []
    n = spec.n_frames
    margin = 6 if n > 1 else 0
    for fx in lay.fields:
        x0, y0, x1, y1 = fx
        fh, fw = y1 - y0, x1 - x0
        delta = lay.depth_cm / fh
        tis = _tissue(rng, fh + 2 * margin, fw + 2 * margin, delta, lesion=True)
        n1, n2 = _speckle_noise(rng, fh + 2 * margin, fw + 2 * margin)
        if n > 1:
            # A second noise field, shifted differently per frame, decorrelates the speckle
            # from frame to frame without drawing new noise for every frame.
            m1, m2 = _speckle_noise(rng, fh + 4 * margin, fw + 4 * margin)
            extra.append((m1, m2))
        mask = _convex_mask(fh, fw) if lay.convex else None
        tissues.append(tis)
        field_imgs.append((tis.echo, n1, n2, mask))
        if lay.sector is not None:
            sector_masks.append(_sector_masks(fh, fw, lay.sector))
        regions.append(Region(x0, y0, x1 - 1, y1 - 1, delta, delta, 2 if doppler else 1))
        _draw_ruler(base, rng, lay, fx)
        # Orientation mark at the top-left corner of each field.
        cv2.circle(base, (x0 + 6, y0 - 7), 4, 220, -1, cv2.LINE_AA)

    if lay.sector is not None and lay.sector.screen_level > 0:
        # The screen around the field a grey level or two above the field's black (color3d).
        outside = np.ones((h, w), dtype=bool)
        for x0, y0, x1, y1 in lay.fields:
            outside[y0:y1, x0:x1] = False
        base[outside] = np.maximum(base[outside], lay.sector.screen_level)

    # Per-frame field content; cine frames move a little (breathing / hand motion).
    frames = []
    phase = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(1.5, float(margin)) if n > 1 else 0.0
    for i in range(n):
        frame = base.copy()
        for k, fx in enumerate(lay.fields):
            x0, y0, x1, y1 = fx
            fh, fw = y1 - y0, x1 - x0
            echo, n1, n2, mask = field_imgs[k]
            if n > 1:
                ox = int(round(margin + amp * np.sin(phase + i * 0.35)))
                oy = int(round(margin + 0.5 * amp * np.sin(phase * 1.3 + i * 0.27)))
                e = echo[oy : oy + fh, ox : ox + fw]
                m1, m2 = extra[k]
                qy = int((i * 5) % (2 * margin + 1))
                qx = int((i * 7) % (2 * margin + 1))
                # Partial decorrelation of the speckle from frame to frame.
                a1 = n1[oy : oy + fh, ox : ox + fw] * 0.85 + m1[qy : qy + fh, qx : qx + fw] * 0.53
                a2 = n2[oy : oy + fh, ox : ox + fw] * 0.85 + m2[qy : qy + fh, qx : qx + fw] * 0.53
            else:
                e, a1, a2 = echo, n1, n2
            px = _compose_field(e, a1, a2, lay.depth_cm / fh, gain, dr)
            if mask is not None:
                px *= mask
            if lay.sector is not None:
                fan, fade = sector_masks[k]
                px = _apply_sector(px, fan, fade, lay.sector.fan_level)
            frame[y0:y1, x0:x1] = px
        frames.append(frame)
    stack = np.stack(frames)

    rgb_capture = spec.capture in ("doppler", "yellow_overlay", "green_corrupt")
    if rgb_capture:
        stack = np.repeat(stack[..., None], 3, axis=-1)
    look = None
    if doppler:
        # Classic keeps the first generator's two-hue colour flow; varied samples a look on its
        # own stream (the render stream is not consumed, so classic stays byte-identical).
        look = (
            sample_doppler_look(varied_rng(spec, rng, "doppler"))
            if spec.style == "varied"
            else DopplerLook()
        )
        for k in range(n):
            sub = np.random.default_rng(int(rng.integers(2**32)))
            _draw_doppler(stack[k], sub, lay.fields[0], tissues[0].lesion, lay.cap, look)

    out = Rendered(
        frames=stack, regions=regions, doppler_kind=look.kind if look else None, sector=lay.sector
    )
    if n > 1:
        out.frame_time_ms = float(round(1000.0 / rng.integers(15, 35), 3))

    # Annotation text, identical on every frame.
    ann = spec.annotation
    yellow = spec.capture == "yellow_overlay"
    text_color: tuple[int, ...] = YELLOW if yellow else (int(rng.integers(225, 256)),) * 3
    if spec.text_degradation == "low_contrast":
        v = int(rng.integers(120, 150))
        text_color = (v, v, 0) if yellow else (v, v, v)
    fx0 = lay.fields[0]
    field_w = (lay.fields[-1][2] - fx0[0]) if spec.capture == "dual_view" else fx0[2] - fx0[0]
    marker_size = int(np.clip(0.09 * h, 44, 90))
    text_box = None
    text_cap = 12.0
    if ann is not None:
        lines = list(ann.lines)
        cap = float(np.clip(h / rng.uniform(48, 62), 8, 20))
        if spec.text_font == "hershey_plain":
            cap *= 1.15
        max_w = field_w - marker_size - 36
        tw, th, _ = text_size(lines, spec.text_font, cap)
        while tw > max_w and cap > 7:
            cap *= 0.9
            tw, th, _ = text_size(lines, spec.text_font, cap)
        text_cap = cap
        pos = spec.text_position
        if pos == "top_left":
            tx, ty = fx0[0] + int(rng.integers(10, 24)), fx0[1] + int(rng.integers(10, 30))
        elif pos == "bottom_centre":
            tx = fx0[0] + (field_w - marker_size - tw) // 2
            ty = fx0[3] - th - int(rng.integers(8, 24))
        else:
            tx = fx0[0] + int(rng.integers(8, 24))
            ty = fx0[3] - th - int(rng.integers(8, 24))
        thick = 2 if spec.text_font == "hershey_simplex" and cap > 15 and rng.random() < 0.5 else 1
        if spec.style == "varied":
            # Every varied choice from its own stream: the main one was drawn as for classic.
            vrng = varied_rng(spec, rng, "text")
            text_color = _varied_text_color(vrng, stack.ndim == 4, yellow, spec.text_degradation)
            placed = _place_varied_text(
                vrng, spec, lay.fields, stack[0], lines, cap, marker_size, 8.0
            )
            if placed is not None:
                tx, ty, cap, tw, th = placed
                text_cap = cap
        backdrop = _backdrop_box(stack[0], tx, ty, tw, th)
        factor = _backdrop_factor(stack[0], backdrop, max(text_color))
        for k in range(n):
            f = stack[k]
            if factor < 1.0:
                bx0, by0, bx1, by1 = backdrop
                roi = f[by0:by1, bx0:bx1]
                f[by0:by1, bx0:bx1] = (roi.astype(np.float32) * factor).astype(np.uint8)
            box = draw_text(f, lines, tx, ty, spec.text_font, cap, _fit(text_color, f), thick)
            text_box = box if text_box is None else _union(text_box, box)
        out.text_box = text_box

    # Body marker: classic in the bottom-right corner of the (last) field; varied anywhere (a
    # field corner, beside the field, a screen corner) with its own size and look.
    if spec.body_marker:
        lf = lay.fields[-1]
        mcx = lf[2] - marker_size // 2 - 10
        mcy = lf[3] - marker_size // 2 - 10
        look: MarkerLook | None = None
        if spec.style == "varied":
            mrng = varied_rng(spec, rng, "marker")
            marker_size = int(np.clip(mrng.uniform(0.06, 0.14) * h, 36, 120))
            look = sample_marker_look(mrng, stack.ndim == 4, yellow)
            avoid = [text_box] if text_box is not None else []
            mcx, mcy = place_body_marker(mrng, w, h, lay.fields, marker_size, avoid)
        orient = ann.orientation if ann is not None else "unknown"
        hour = ann.marker_hour if ann is not None else None
        angle = probe_angle(orient, hour, rng)
        mcol: tuple[int, ...] = YELLOW if yellow else (230, 230, 230)
        if look is not None:
            mcol = look.color
        sub_seed = int(rng.integers(2**32))
        for k in range(n):
            f = stack[k]
            if look is None:
                # Clear a dark backdrop so the pictogram reads against bright speckle.
                hs = marker_size // 2 + 6
                f[mcy - hs : mcy + hs, mcx - hs : mcx + hs] //= 4
            else:
                _marker_backdrop(f, mcx, mcy, marker_size, look)
            out.probe_hour = _draw_body_marker(
                f,
                np.random.default_rng(sub_seed),
                mcx,
                mcy,
                marker_size,
                ann,
                angle,
                _fit(mcol, f),
                look,
            )
        out.body_marker = True
        out.probe_angle_deg = float(round(angle, 1))
        out.marker_box = _marker_box(mcx, mcy, marker_size, w, h)

    if text_box is not None and spec.text_degradation in ("blur", "jpeg"):
        sub_seed = int(rng.integers(2**32))
        for k in range(n):
            _degrade(
                stack[k],
                text_box,
                spec.text_degradation,
                np.random.default_rng(sub_seed),
                text_cap,
            )

    if spec.calipers and tissues[0].lesion is not None:
        clean = stack[0].copy()
        ccol: tuple[int, ...] = YELLOW if yellow else (int(rng.integers(235, 256)),) * 3
        marks, legend = _draw_calipers(
            stack[0],
            rng,
            tissues[0].lesion,
            fx0,
            regions[0].delta_x,
            text_box,
            _fit(ccol, stack[0]),
            vr=varied_rng(spec, rng, "calipers") if spec.style == "varied" else None,
        )
        out.calipers = marks
        out.caliper_legend_box = legend
        out.clean = clean

    if spec.capture == "green_corrupt":
        # A broken capture card: green channel dominant, red / blue attenuated, stripes.
        f = stack.astype(np.float32)
        f[..., 0] *= rng.uniform(0.15, 0.35)
        f[..., 2] *= rng.uniform(0.15, 0.35)
        f[..., 1] = f[..., 1] * 0.9 + rng.uniform(25, 45)
        rows = rng.random(h) < 0.04
        f[:, rows, :, 1] = 180
        stack = np.clip(f, 0, 255).astype(np.uint8)
        out.frames = stack
    return out


def _varied_text_color(
    rng: np.random.Generator, rgb: bool, yellow: bool, degradation: str
) -> tuple[int, ...]:
    """White, grey, yellow or cyan (colours only on RGB captures; yellow_overlay stays yellow)."""
    names = [n for n, _ in _VARIED_COLOURS if rgb or n in ("white", "grey")]
    w = np.array([dict(_VARIED_COLOURS)[n] for n in names])
    name = "yellow" if yellow else names[int(rng.choice(len(names), p=w / w.sum()))]
    if degradation == "low_contrast":
        v = int(rng.integers(120, 150))
    elif name == "grey":
        v = int(rng.integers(165, 205))
    else:
        v = int(rng.integers(225, 256))
    return {"yellow": (v, v, 0), "cyan": (0, v, v)}.get(name, (v, v, v))


def _free(img: np.ndarray, box: tuple[int, int, int, int], pad: int = 5) -> bool:
    """True when `box` (x0, y0, x1, y1) lies on the screen over black (no chrome under it)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    if x0 < 2 or y0 < 2 or x1 > w - 2 or y1 > h - 2:
        return False
    roi = img[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    return roi.size > 0 and int(roi.max()) < 40


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 4) -> bool:
    return a[0] < b[2] + gap and b[0] - gap < a[2] and a[1] < b[3] + gap and b[1] - gap < a[3]


def _place_varied_text(
    rng: np.random.Generator,
    spec: CaptureSpec,
    fields: list[tuple[int, int, int, int]],
    img: np.ndarray,
    lines: list[str],
    cap: float,
    marker_size: int,
    min_cap: float,
) -> tuple[int, int, float, int, int] | None:
    """(x, y, cap, width, height) of the label for a varied placement, or None (classic spot).

    Field placements stay inside the field and off the classic body-marker corner; screen
    corners stay outside every field on black, clear of the chrome already drawn (header,
    parameter panel, depth ruler, colour bar), shrinking the text down to `min_cap` to fit.
    """
    pos = spec.text_position
    font = spec.text_font
    fx0, fy0 = fields[0][0], fields[0][1]
    fx1, fy1 = fields[-1][2], fields[-1][3]
    marker = (
        fx1 - marker_size - 16,
        fy1 - marker_size - 16,
        fx1,
        fy1,
    )
    m = int(rng.integers(6, 22))
    for _ in range(12):
        tw, th, _ = text_size(lines, font, cap)
        if pos == "field_any":
            hi_x, hi_y = fx1 - tw - 8, fy1 - th - 8
            if hi_x > fx0 + 8 and hi_y > fy0 + 8:
                for _ in range(8):
                    tx = int(rng.integers(fx0 + 8, hi_x + 1))
                    ty = int(rng.integers(fy0 + 8, hi_y + 1))
                    if not _overlaps((tx, ty, tx + tw, ty + th), marker):
                        return tx, ty, cap, tw, th
        elif pos == "beside_marker":
            tx = marker[0] - m - tw
            ty = int(np.clip(fy1 - marker_size // 2 - 10 - th // 2, fy0 + 8, fy1 - th - 8))
            if tx > fx0 + 8:
                return tx, ty, cap, tw, th
        elif pos.startswith("screen_"):
            right, top = pos.endswith("r"), pos[-2] == "t"
            w, h = img.shape[1], img.shape[0]
            xs = [w - m - tw] if right else [m]
            # top: beside the field top, or just under the header; bottom: the screen's foot
            ys = [fy0, int(0.05 * h) + m] if top else [h - m - th]
            for tx in xs:
                for ty in ys:
                    box = (tx, ty, tx + tw, ty + th)
                    if any(_overlaps(box, f, 6) for f in fields):
                        continue
                    if _free(img, box):
                        return tx, ty, cap, tw, th
        else:
            return None
        if cap * 0.9 < min_cap:
            break
        cap *= 0.9
    return None


def _fit(color: tuple[int, ...], img: np.ndarray) -> tuple[int, ...]:
    return color if img.ndim == 3 else (int(color[0]),)


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _backdrop_box(
    img: np.ndarray, tx: int, ty: int, tw: int, th: int, pad: int = 4
) -> tuple[int, int, int, int]:
    """The area under a text block whose background decides its legibility (clipped)."""
    h, w = img.shape[:2]
    return (max(0, tx - pad), max(0, ty - pad), min(w, tx + tw + pad), min(h, ty + th + pad))


def _backdrop_factor(img: np.ndarray, box: tuple[int, int, int, int], text_level: int) -> float:
    """Factor (<= 1) to dim the backdrop by so that text of brightness `text_level` stays legible.

    The background level is the 90th percentile under the box, so bright speckle grains count
    (they are what a thin stroke gets lost in) but a single glint does not.
    """
    x0, y0, x1, y1 = box
    roi = img[y0:y1, x0:x1]
    if roi.size == 0:
        return 1.0
    grey = roi.max(axis=-1) if roi.ndim == 3 else roi
    bg = float(np.percentile(grey, 90))
    need = max(float(MIN_TEXT_CONTRAST), TEXT_CONTRAST_FRACTION * text_level)
    allowed = max(0.0, text_level - need)
    if bg <= allowed:
        return 1.0
    return max(0.1, allowed / bg)

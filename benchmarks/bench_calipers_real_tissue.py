"""Caliper detection and inpainting on a style nothing was tuned on: real tissue, foreign marks.

The synthetic generator drew every caliper the detector and the inpainter were developed on.
Here the tissue is real (the grey ultrasound field of the pydicom-data captures) and the marks
are drawn by independent code: OpenCV's own `drawMarker` glyphs (cross, tilted cross, star,
diamond outline) at sizes 7-13 px, 1 px thick, grey 235-255, with a dashed measurement line of
OpenCV segments between each pair. The real pixels before drawing are the ground truth, so:

- detection: per-mark precision / recall (a detection matches within 6 px of a mark's centre),
  for the classical template matcher and the learned verifier (`models/calipers`) on the same
  drawings, one after the other;
- inpainting: mean absolute error in 25 x 25 windows round each mark, before and after, for
  every method, with each detector's own boxes and with the true boxes.

Neither detector is tuned on this benchmark: it is run once, at the end, and reported as is.

    .venv/bin/python benchmarks/bench_calipers_real_tissue.py [--per-image 4] [--seed 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from casbusi_assets.cleaning.caliper_model import CaliperModel  # noqa: E402
from casbusi_assets.cleaning.calipers import detect_calipers  # noqa: E402
from casbusi_assets.cleaning.crop import ultrasound_field  # noqa: E402
from casbusi_assets.inpainting.masks import build_caliper_mask  # noqa: E402
from casbusi_assets.inpainting.methods import make_inpainter  # noqa: E402
from casbusi_assets.inpainting.quality import window_mae  # noqa: E402

# Real captures with a grey tissue field (colour ones are converted to grey as image_table does).
FILES = (
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "OBXXXX1A.dcm",
    "US1_UNCR.dcm",
    "examples_palette.dcm",
    "color3d_jpeg_baseline.dcm",
)
GLYPHS = (cv2.MARKER_CROSS, cv2.MARKER_TILTED_CROSS, cv2.MARKER_STAR, cv2.MARKER_DIAMOND)
MATCH_PX = 6
DETECTORS = ("classical", "learned")


def _grey(name: str) -> np.ndarray:
    ds = pydicom.dcmread(get_testdata_file(name))
    arr = ds.pixel_array
    if getattr(ds, "NumberOfFrames", 1) and int(getattr(ds, "NumberOfFrames", 1)) > 1:
        arr = arr[0]
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    elif photometric.startswith("YBR"):
        arr = pydicom.pixels.convert_color_space(arr, photometric, "RGB")
    if arr.dtype != np.uint8:
        arr = cv2.normalize(arr, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY) if arr.ndim == 3 else arr


def _textured_points(img: np.ndarray, box, rng, n: int) -> list[tuple[int, int]]:
    """Mark centres on tissue: inside the field, away from its edge, on textured pixels."""
    x, y, w, h = box
    pts: list[tuple[int, int]] = []
    for _ in range(400):
        if len(pts) == n:
            break
        px = int(rng.integers(x + 20, x + w - 20))
        py = int(rng.integers(y + 20, y + h - 20))
        patch = img[py - 8 : py + 9, px - 8 : px + 9]
        if patch.std() < 6 or patch.mean() > 200:
            continue
        if all(abs(px - qx) > 40 or abs(py - qy) > 40 for qx, qy in pts):
            pts.append((px, py))
    return pts


def _draw(img: np.ndarray, pts, rng) -> tuple[np.ndarray, list[dict]]:
    out = img.copy()
    marks = []
    for i, (px, py) in enumerate(pts):
        glyph = int(GLYPHS[int(rng.integers(len(GLYPHS)))])
        size = int(rng.integers(7, 14))
        level = int(rng.integers(235, 256))
        cv2.drawMarker(out, (px, py), level, glyph, size, 1, cv2.LINE_8)
        marks.append(
            {"x": px, "y": py, "box": (px - size // 2 - 2, py - size // 2 - 2, size + 4, size + 4)}
        )
        if i % 2 == 1:  # dashed line between the pair, OpenCV segments
            (ax, ay), (bx, by) = pts[i - 1], (px, py)
            n = max(2, int(np.hypot(bx - ax, by - ay) // 8))
            for k in range(1, n - 1, 2):
                t0, t1 = k / n, (k + 0.5) / n
                p0 = (int(ax + (bx - ax) * t0), int(ay + (by - ay) * t0))
                p1 = (int(ax + (bx - ax) * t1), int(ay + (by - ay) * t1))
                cv2.line(out, p0, p1, level, 1, cv2.LINE_8)
    return out, marks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-image", type=int, default=4, help="marks per capture (pairs)")
    ap.add_argument("--variants", type=int, default=3, help="draws per capture")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--model", type=Path, default=None, help="caliper weights (default: shipped)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cv2.setNumThreads(1)
    model = CaliperModel.load(args.model, device="cpu")
    methods = {m: make_inpainter(m) for m in ("telea", "ns", "learned")}
    counts = {d: [0, 0, 0] for d in DETECTORS}  # tp, fp, fn
    errors: dict[str, list[float]] = {
        "before": [],
        **{f"{m}, {d} boxes": [] for d in DETECTORS for m in methods},
        **{f"{m}, truth boxes": [] for m in methods},
    }
    ms: dict[str, list[float]] = {
        **{f"detect ({d})": [] for d in DETECTORS},
        **{m: [] for m in methods},
    }
    for name in FILES:
        clean = _grey(name)
        field = ultrasound_field(clean, None)
        box = (field.x, field.y, field.w, field.h)
        if field.w < 80 or field.h < 80:
            print(f"{name}: field {box} too small for marks, skipped")
            continue
        for _ in range(args.variants):
            pts = _textured_points(clean, box, rng, args.per_image)
            pts = pts[: len(pts) // 2 * 2]
            if not pts:
                continue
            drawn, marks = _draw(clean, pts, rng)
            errors["before"].append(window_mae(drawn, clean, marks))
            for det in DETECTORS:
                t0 = time.process_time()
                found = detect_calipers(drawn, field=box, model=model if det == "learned" else None)
                ms[f"detect ({det})"].append((time.process_time() - t0) * 1000)
                centres = [(m.x + m.w / 2, m.y + m.h / 2) for m in found]
                used: set[int] = set()
                c = counts[det]
                for mk in marks:
                    hit = next(
                        (
                            j
                            for j, (cx, cy) in enumerate(centres)
                            if j not in used and np.hypot(cx - mk["x"], cy - mk["y"]) <= MATCH_PX
                        ),
                        None,
                    )
                    if hit is None:
                        c[2] += 1
                    else:
                        used.add(hit)
                        c[0] += 1
                c[1] += len(centres) - len(used)
                mask = build_caliper_mask(drawn, [(m.x, m.y, m.w, m.h) for m in found]).mask
                for mname, inp in methods.items():
                    t0 = time.process_time()
                    fixed = inp.inpaint(drawn, mask)
                    if det == "learned":
                        ms[mname].append((time.process_time() - t0) * 1000)
                    errors[f"{mname}, {det} boxes"].append(window_mae(fixed, clean, marks))
            truth_mask = build_caliper_mask(drawn, [m["box"] for m in marks]).mask
            for mname, inp in methods.items():
                fixed = inp.inpaint(drawn, truth_mask)
                errors[f"{mname}, truth boxes"].append(window_mae(fixed, clean, marks))
    marks_total = counts[DETECTORS[0]][0] + counts[DETECTORS[0]][2]
    print(f"captures: {len(FILES)} real files x {args.variants} draws, {marks_total} marks")
    for det in DETECTORS:
        tp, fp, fn = counts[det]
        print(
            f"detection, {det}: precision {tp / max(1, tp + fp):.3f}, "
            f"recall {tp / max(1, tp + fn):.3f} (tp {tp}, fp {fp}, fn {fn}); "
            f"{np.median(ms[f'detect ({det})']):.0f} CPU-ms median"
        )
    before = float(np.mean(errors["before"]))
    print(f"window MAE before: {before:.2f}")
    for m in errors:
        if m == "before":
            continue
        after = float(np.mean(errors[m]))
        cpu = f"  {np.median(ms[m]):.0f} CPU-ms median" if m in ms else ""
        print(f"  {m:26s} after {after:.2f}  cut {before / after:.1f}x{cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

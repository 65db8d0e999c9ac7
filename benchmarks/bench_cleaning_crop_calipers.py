"""Crop box (ultrasound field) and caliper detection against ground truth, and their speed.

    .venv/bin/python benchmarks/bench_cleaning_crop_calipers.py --seed 90917 --patients 55
    .venv/bin/python benchmarks/bench_cleaning_crop_calipers.py --batch-dir DIR   # reuse a batch

What it does:

1. generates one batch (both screen styles) unless ``--batch-dir`` holds one, and decodes every
   still the way ``image_table`` stores it (Doppler in colour, the rest grey);
2. crop: ``ultrasound_field`` with the regions as the DICOM carries them, and
   ``find_ultrasound_field`` on every image with the regions ignored; IoU against the truth
   ``field_box`` (the union of the regions), per style and per capture type;
3. the real pydicom-data captures with their region sequence removed: the heuristic's IoU
   against the region (union of the image regions) each file declares, one line per file;
4. calipers, both detectors side by side on every still (the classical template matcher and
   the learned verifier, ``models/calipers``; same image, one after the other, so machine load
   hits both alike): ``detect_calipers`` with the crop box as the field and the OCR text boxes
   (the truth text box and caliper legend box stand in for ``ocr_table.text_boxes``; ``--ocr``
   runs the real reader instead) as suppression boxes. A detection matches a truth mark when
   its centre lies within ``MATCH_PX`` pixels of the mark's centre (greedy, nearest first, one
   to one); precision and recall per mark, per screen style, per mark look (``classic``, the
   varied style's ``legacy`` look, its ``wide`` look), per shape; plus OBXXXX1A and the Philips
   JPGLossless echo capture (their real ``+`` marks, positions read off the pixels by hand);
5. speed per image of each step: CPU ms of this process (median and p90), OpenCV and torch on
   one thread (the machine is shared, so CPU time is steadier than wall time).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from casbusi_assets.cleaning.caliper_model import CaliperModel  # noqa: E402
from casbusi_assets.cleaning.calipers import detect_calipers  # noqa: E402
from casbusi_assets.cleaning.crop import (  # noqa: E402
    box_iou,
    crop_from_regions,
    find_ultrasound_field,
    ultrasound_field,
)
from casbusi_assets.pixels.decode import decode_frame, prepare_still  # noqa: E402

MATCH_PX = 6.0
DETECTORS = ("classical", "learned")
# "fused": the learned marks plus every classical mark no learned box overlaps (both run; its
# time is the sum of the two).
REPORTED = (*DETECTORS, "fused")
REAL_FILES = (
    "OBXXXX1A.dcm",
    "OBXXXX1A_rle.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "color3d_jpeg_baseline.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "US1_UNCR.dcm",
    "US1_J2KR.dcm",
)
# The real caliper marks, centres read off the pixels (zoomed crops).
REAL_CALIPERS = {
    "OBXXXX1A.dcm": [(459, 291), (498, 301)],
    "JPGLosslessP14SV1_1s_1f_8b.dcm": [(628, 319), (689, 435)],
}


def _regions_json(ds: pydicom.Dataset) -> str:
    keys = (
        "RegionDataType",
        "RegionLocationMinX0",
        "RegionLocationMinY0",
        "RegionLocationMaxX1",
        "RegionLocationMaxY1",
    )
    items = []
    for r in ds.get("SequenceOfUltrasoundRegions", []) or []:
        items.append({k: int(getattr(r, k)) for k in keys if k in r})
    return json.dumps(items)


def _stored_pixels(ds: pydicom.Dataset) -> np.ndarray:
    return prepare_still(decode_frame(ds, 0), ds.get("PhotometricInterpretation")).array


def load_batch(zip_path: Path, truth_path: Path) -> list[tuple[pd.Series, np.ndarray, str]]:
    truth = pd.read_parquet(truth_path)
    stills = truth[
        (truth["member_kind"] == "image")
        & (truth["expected_status"] == "ok")
        & (truth["capture"] != "green_corrupt")
    ]
    out = []
    with zipfile.ZipFile(zip_path) as zf:
        for _, row in stills.iterrows():
            ds = pydicom.dcmread(io.BytesIO(zf.read(row["member_path"])))
            out.append((row, _stored_pixels(ds), _regions_json(ds)))
    return out


def _xywh(box_json: str | None) -> tuple[int, int, int, int] | None:
    if not box_json:
        return None
    b = json.loads(box_json)
    return (int(b[0]), int(b[1]), int(b[2]), int(b[3])) if len(b) == 4 else None


def _x0y0x1y1(box_json: str | None) -> tuple[int, int, int, int] | None:
    if not box_json:
        return None
    b = json.loads(box_json)
    return (int(b[0]), int(b[1]), int(b[2]), int(b[3])) if len(b) == 4 else None


def match_marks(
    truth: list[tuple[float, float]], found: list[tuple[float, float]], radius: float = MATCH_PX
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): greedy one-to-one by distance."""
    pairs = sorted(
        (np.hypot(t[0] - f[0], t[1] - f[1]), i, j)
        for i, t in enumerate(truth)
        for j, f in enumerate(found)
    )
    used_t, used_f = set(), set()
    for d, i, j in pairs:
        if d > radius:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
    tp = len(used_t)
    return tp, len(found) - tp, len(truth) - tp


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    s = sorted(samples)
    return f"{statistics.median(s):.1f} / {s[int(0.9 * (len(s) - 1))]:.1f}"


def fuse(learned, classical):
    """Learned marks plus the classical marks that no learned box overlaps."""

    def over(a, b) -> bool:
        return not (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)

    return list(learned) + [c for c in classical if not any(over(c, m) for m in learned)]


def _field_look(row: pd.Series) -> str:
    """What fills the declared field (truth `field_look`; batches made before it: rectangle),
    `_deep` when the echo fills only the fan's upper part."""
    look = row.get("field_look") or "rectangle"
    share = row.get("field_echo_share")
    return f"{look}_deep" if share is not None and share < 1.0 else str(look)


def load_baseline(path: Path):
    """An earlier crop module (e.g. `git show <commit>:casbusi_assets/cleaning/crop.py`), to
    run its `find_ultrasound_field` side by side with the current one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("crop_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["crop_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod


def run(
    items,
    model: CaliperModel,
    ocr: bool = False,
    show_misses: int = 0,
    crop_only: bool = False,
    baseline=None,
) -> dict:
    crop_rows = []
    cal = {d: defaultdict(lambda: [0, 0, 0]) for d in REPORTED}
    per_image_misses = []
    t_regions, t_heur, t_base = [], [], []
    t_cal: dict[str, list[float]] = {d: [] for d in REPORTED}
    engine = None
    if ocr:
        from casbusi_assets.ocr.engines import RapidOcrEngine
        from casbusi_assets.ocr.reading import read_annotation

        engine = RapidOcrEngine()
    for row, img, regions in items:
        truth_box = _xywh(row["field_box"])
        t0 = time.process_time()
        with_regions = ultrasound_field(img, regions)
        t_regions.append((time.process_time() - t0) * 1000)
        t0 = time.process_time()
        heur = find_ultrasound_field(img)
        t_heur.append((time.process_time() - t0) * 1000)
        base = None
        if baseline is not None:
            # Side by side: the baseline right after the current one on the same image, and
            # the current one timed again after it (alternating order; the median of both).
            t0 = time.process_time()
            base = baseline.find_ultrasound_field(img)
            t_base.append((time.process_time() - t0) * 1000)
            t0 = time.process_time()
            find_ultrasound_field(img)
            t_heur.append((time.process_time() - t0) * 1000)
        crop_rows.append(
            {
                "style": row["screen_style"],
                "capture": row["capture"],
                "iou_regions": box_iou(with_regions.as_tuple(), truth_box),
                "source": with_regions.source,
                "iou_heuristic": box_iou(heur.as_tuple(), truth_box),
                "iou_baseline": box_iou(base.as_tuple(), truth_box) if base else float("nan"),
                "member": row["member_path"],
                "heur": heur.as_tuple(),
                "truth": truth_box,
                "look": _field_look(row),
            }
        )
        if crop_only:
            continue
        # Calipers on every still (images without calipers count their false positives).
        if engine is not None:
            reading = read_annotation(img, engine)
            text_boxes = [tuple(b.box) for b in reading.text_boxes]
        else:
            text_boxes = [
                b
                for b in (_x0y0x1y1(row["text_box"]), _x0y0x1y1(row["caliper_legend_box"]))
                if b is not None
            ]
        truth_marks = json.loads(row["calipers"] or "[]")
        looks = {t.get("look", "classic") for t in truth_marks} or {"none"}
        by_det = {}
        for det in REPORTED:
            if det == "fused":
                marks = fuse(by_det["learned"], by_det["classical"])
                t_cal[det].append(t_cal["learned"][-1] + t_cal["classical"][-1])
            else:
                t0 = time.process_time()
                marks = detect_calipers(
                    img,
                    field=with_regions.as_tuple(),
                    text_boxes=text_boxes,
                    model=model if det == "learned" else None,
                )
                t_cal[det].append((time.process_time() - t0) * 1000)
            by_det[det] = marks
            found = [(m.x + m.w / 2 - 0.5, m.y + m.h / 2 - 0.5) for m in marks]
            tp, fp, fn = match_marks([(t["x"], t["y"]) for t in truth_marks], found)
            keys = ["all", f"style={row['screen_style']}", *(f"look={k}" for k in looks)]
            for key in keys:
                c = cal[det][key]
                c[0] += tp
                c[1] += fp
                c[2] += fn
            # Per shape: recall only (a false positive has no shape).
            for t in truth_marks:
                tp1, _, _ = match_marks([(t["x"], t["y"])], found)
                c = cal[det][f"shape={t['shape']}"]
                c[0] += tp1
                c[2] += 1 - tp1
            if fp or fn:
                per_image_misses.append((det, row["member_path"], row["capture"], tp, fp, fn))
    df = pd.DataFrame(crop_rows)
    return {
        "crop": df,
        "calipers": {d: dict(v) for d, v in cal.items()},
        "misses": per_image_misses,
        "times": {
            "ultrasound_field": t_regions,
            "find_ultrasound_field": t_heur,
            **({"find_ultrasound_field (baseline)": t_base} if t_base else {}),
            **{f"detect_calipers ({d})": v for d, v in t_cal.items()},
        },
    }


def real_captures(
    model: CaliperModel, crop_only: bool = False, baseline=None
) -> tuple[list[dict], dict]:
    """Crop heuristic per file; calipers on the files with real marks, both detectors, with no
    text boxes and with the text boxes the pipeline's OCR reader (`read_annotation` with
    RapidOCR) gives."""
    from pydicom.data import get_testdata_file

    from casbusi_assets.ocr.engines import RapidOcrEngine
    from casbusi_assets.ocr.reading import read_annotation

    engine = None
    rows = []
    cal = {f"{d}, {t}": [0, 0, 0] for t in ("no text boxes", "OCR text boxes") for d in REPORTED}
    for name in REAL_FILES:
        ds = pydicom.dcmread(get_testdata_file(name))
        img = _stored_pixels(ds)
        h, w = img.shape[:2]
        declared = crop_from_regions(_regions_json(ds), w, h)
        heur = find_ultrasound_field(img)
        base = baseline.find_ultrasound_field(img).as_tuple() if baseline else None
        rows.append(
            {
                "file": name,
                "size": f"{w}x{h}",
                "declared": declared.as_tuple() if declared else None,
                "heuristic": heur.as_tuple(),
                "iou": round(box_iou(heur.as_tuple(), declared.as_tuple()), 3)
                if declared
                else None,
                "baseline": base,
                "iou_baseline": round(box_iou(base, declared.as_tuple()), 3)
                if declared and base
                else None,
            }
        )
        if name in REAL_CALIPERS and not crop_only:
            engine = engine or RapidOcrEngine()
            ocr_boxes = [tuple(b.box) for b in read_annotation(img, engine).text_boxes]
            notes = []
            for tname, boxes in (("no text boxes", []), ("OCR text boxes", ocr_boxes)):
                by_det = {}
                for det in REPORTED:
                    if det == "fused":
                        marks = fuse(by_det["learned"], by_det["classical"])
                    else:
                        marks = detect_calipers(
                            img,
                            field=(declared or heur).as_tuple(),
                            text_boxes=boxes,
                            model=model if det == "learned" else None,
                        )
                    by_det[det] = marks
                    found = [(m.x + m.w / 2 - 0.5, m.y + m.h / 2 - 0.5) for m in marks]
                    tp, fp, fn = match_marks(REAL_CALIPERS[name], found)
                    notes.append(f"{det}, {tname}: tp {tp} fp {fp} fn {fn}")
                    c = cal[f"{det}, {tname}"]
                    cal[f"{det}, {tname}"] = [c[0] + tp, c[1] + fp, c[2] + fn]
            rows[-1]["calipers"] = "; ".join(notes)
    return rows, cal


def real_sheet(path: Path, baseline=None, width: int = 480) -> None:
    """A contact sheet of the real captures that declare a sane region: declared region green,
    heuristic red, baseline heuristic (when given) blue; each frame `width` px wide."""
    from pydicom.data import get_testdata_file

    tiles = []
    for name in (
        "OBXXXX1A.dcm",
        "color3d_jpeg_baseline.dcm",
        "gdcm-US-ALOKA-16.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
    ):
        ds = pydicom.dcmread(get_testdata_file(name))
        img = _stored_pixels(ds)
        h, w = img.shape[:2]
        declared = crop_from_regions(_regions_json(ds), w, h)
        vis = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img[:, :, ::-1].copy()
        boxes = [(declared, (0, 220, 0), 3), (find_ultrasound_field(img), (0, 0, 255), 2)]
        if baseline is not None:
            boxes.append((baseline.find_ultrasound_field(img), (255, 128, 0), 2))
        for box, colour, thick in boxes:
            if box is not None:
                cv2.rectangle(vis, (box.x, box.y), (box.x1 - 1, box.y1 - 1), colour, thick)
        scale = width / w
        vis = cv2.resize(vis, (width, int(round(h * scale))), interpolation=cv2.INTER_AREA)
        cv2.putText(
            vis,
            name,
            (6, vis.shape[0] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        tiles.append(vis)
    rows = []
    for i in range(0, len(tiles), 2):
        pair = tiles[i : i + 2]
        hh = max(t.shape[0] for t in pair)
        pair = [cv2.copyMakeBorder(t, 0, hh - t.shape[0], 0, 4, cv2.BORDER_CONSTANT) for t in pair]
        rows.append(np.hstack(pair))
    cv2.imwrite(str(path), np.vstack(rows))


def _pr(c: list[int]) -> str:
    tp, fp, fn = c
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    return f"| {tp} | {fp} | {fn} | {p:.3f} | {r:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=90917)
    ap.add_argument("--patients", type=int, default=55)
    ap.add_argument("--batch-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_crop_calipers"))
    ap.add_argument("--ocr", action="store_true", help="suppress with the real OCR text boxes")
    ap.add_argument("--show", type=int, default=10, help="worst crops / caliper misses to list")
    ap.add_argument("--model", type=Path, default=None, help="caliper weights (default: shipped)")
    ap.add_argument("--crop-only", action="store_true", help="crop box only, no calipers")
    ap.add_argument(
        "--baseline-crop", type=Path, default=None, help="an earlier crop.py to run side by side"
    )
    ap.add_argument("--real-sheet", type=Path, default=None, help="write the real-capture sheet")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    model = CaliperModel.load(args.model, device="cpu")
    print(f"cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
    baseline = load_baseline(args.baseline_crop) if args.baseline_crop else None
    if args.real_sheet is not None:
        real_sheet(args.real_sheet, baseline)
        print(f"wrote {args.real_sheet}")
        return

    if args.batch_dir is None:
        from casbusi_assets.synthetic import generate_batch

        t0 = time.perf_counter()
        files = generate_batch(args.out, 0, patients=args.patients, seed=args.seed)
        print(f"generated {files.n_images} stills in {time.perf_counter() - t0:.0f} s")
        zip_path, truth_path = files.zip_path, files.truth_path
    else:
        zip_path = next(args.batch_dir.glob("*.zip"))
        truth_path = zip_path.with_suffix(".truth.parquet")
    items = load_batch(zip_path, truth_path)
    res = run(items, model, ocr=args.ocr, crop_only=args.crop_only, baseline=baseline)
    df = res["crop"]
    print(f"\n## crop IoU on {len(df)} stills (seed {args.seed})\n")
    print(
        "| subset | n | IoU with regions: mean / min | heuristic only: mean / min | heur >= 0.9 |"
        " baseline heuristic: mean / min | baseline >= 0.9 |"
    )
    print("|---|---|---|---|---|---|---|")
    subsets = [("all", df), *df.groupby("style"), *df.groupby("capture"), *df.groupby("look")]
    for name, sub in subsets:
        print(
            f"| {name} | {len(sub)} | {sub.iou_regions.mean():.3f} / {sub.iou_regions.min():.3f} "
            f"| {sub.iou_heuristic.mean():.3f} / {sub.iou_heuristic.min():.3f} "
            f"| {(sub.iou_heuristic >= 0.9).mean():.1%} "
            f"| {sub.iou_baseline.mean():.3f} / {sub.iou_baseline.min():.3f} "
            f"| {(sub.iou_baseline >= 0.9).mean():.1%} |"
        )
    worst = df.sort_values("iou_heuristic").head(args.show)
    print("\nworst heuristic crops:")
    for r in worst.itertuples():
        print(f"  {r.iou_heuristic:.3f} {r.style} {r.capture} {r.member} {r.heur} vs {r.truth}")

    print(f"\n## calipers (per mark, match = centre within {MATCH_PX:.0f} px)\n")
    print("| detector | subset | TP | FP | FN | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for det in REPORTED:
        for k in sorted(res["calipers"][det]):
            print(f"| {det} | {k} {_pr(res['calipers'][det][k])}")
    print("\nimages with caliper errors (member, capture, tp, fp, fn):")
    for m in res["misses"][: args.show * 3]:
        print("  ", m)

    rows, rcal = real_captures(model, crop_only=args.crop_only, baseline=baseline)
    print("\n## real pydicom-data captures, region sequence removed\n")
    print(
        "| file | size | declared region (x, y, w, h) | heuristic | IoU | calipers "
        "| baseline | baseline IoU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['file']} | {r['size']} | {r['declared']} | {r['heuristic']} | {r['iou']} "
            f"| {r.get('calipers', '')} | {r['baseline']} | {r['iou_baseline']} |"
        )
    print("\n| real calipers | TP | FP | FN | precision | recall |")
    print("|---|---|---|---|---|---|")
    for k, v in rcal.items():
        print(f"| {k} {_pr(v)}")

    print("\n## speed per image (CPU ms, median / p90, one thread)\n")
    print("| step | ms |")
    print("|---|---|")
    for k, v in res["times"].items():
        print(f"| {k} | {_ms(v)} |")


if __name__ == "__main__":
    main()

"""Caliper inpainting accuracy and speed: window MAE against the clean pixels, per method.

    .venv/bin/python benchmarks/bench_inpainting.py                    # seed 9090, 16 patients
    .venv/bin/python benchmarks/bench_inpainting.py --seed 123 --patients 24 --renders 48

Part 1, a new-seed generated batch through the real pipeline: `casbusi run-batch` (every batch
asset, so `cleaned_images` carries the caliper detector's boxes and `inpainted_images` the
default method's copies). For each still with calipers in the truth, the stored PNG
(`image_table`) is compared with the truth's `clean_png` in 25 x 25 windows round each mark,
before and after inpainting with:
  - stroke masks (masks.py) from the detector's boxes and from the truth's mark boxes (+2 px),
    inpainted by Telea, Navier-Stokes and the learned network;
  - the box baseline: the boxes themselves as the mask (Navier-Stokes and Telea).
Part 2, fresh renders (`pairs.render_pairs`, a seed used nowhere else) with marks recoloured
white / yellow / green / cyan / dim grey on grey and RGB captures, truth boxes.

Times: mask refinement + inpainting per image, wall and CPU (process time, one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from casbusi_assets.inpainting.batch import read_rgb  # noqa: E402
from casbusi_assets.inpainting.masks import box_mask, build_caliper_mask, parse_boxes  # noqa: E402
from casbusi_assets.inpainting.methods import LearnedInpainter, OpenCVInpainter  # noqa: E402
from casbusi_assets.inpainting.pairs import render_pairs, truth_boxes  # noqa: E402
from casbusi_assets.inpainting.quality import window_mae  # noqa: E402
from casbusi_assets.inpainting.resources import DEFAULT_MODEL_PATH  # noqa: E402


def _methods(weights: Path) -> dict[str, object]:
    return {
        "telea": OpenCVInpainter("telea"),
        "ns": OpenCVInpainter("ns"),
        "learned": LearnedInpainter(weights, "cpu"),
    }


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def _score(image, clean, marks, boxes, methods, acc, prefix="", legend=None):
    acc[f"{prefix}before"].append(window_mae(image, clean, marks))
    cm, ms_mask, cpu_mask = _timed(lambda: build_caliper_mask(image, boxes))
    acc["mask_ms"].append(ms_mask)
    for name, m in methods.items():
        out, ms, cpu = _timed(lambda m=m: m.inpaint(image, cm.mask))
        acc[f"{prefix}{name}"].append(window_mae(out, clean, marks))
        acc[f"{name}_ms"].append(ms_mask + ms)
        acc[f"{name}_cpu_ms"].append(cpu_mask + cpu)
    bm = box_mask(image.shape, boxes)
    for name in ("ns", "telea"):
        out = methods[name].inpaint(image, bm)
        acc[f"{prefix}box_{name}"].append(window_mae(out, clean, marks))
    truth = (image != clean).any(axis=2) if image.ndim == 3 else image != clean
    if legend:  # the measurement legend is chrome, not a caliper stroke
        x0, y0, x1, y1 = legend
        truth[max(0, y0) : y1, max(0, x0) : x1] = False
    m = cm.mask > 0
    acc["stroke_px"].append(float(truth.sum()))
    acc["mask_px"].append(float(m.sum()))
    acc["box_px"].append(float((bm > 0).sum()))
    acc["lines"].append(cm.n_lines)


def _clean_as_stored(clean_png: bytes, stored: np.ndarray) -> np.ndarray:
    """The truth's clean pixels in the form image_table stored the capture (grey or RGB)."""
    clean = cv2.imdecode(np.frombuffer(clean_png, np.uint8), cv2.IMREAD_UNCHANGED)
    if stored.ndim == 2 and clean.ndim == 3:
        from casbusi_assets.pixels.decode import prepare_still

        clean = prepare_still(clean, "RGB", keep_colour=False).array
    if stored.ndim == 3 and clean.ndim == 2:
        clean = np.repeat(clean[..., None], 3, axis=2)
    return clean


def batch_part(seed: int, patients: int, weights: Path, work: Path) -> dict[str, object]:
    from casbusi_assets.runner import run_batch
    from casbusi_assets.storage import warehouse
    from casbusi_assets.storage.home import HomeLayout
    from casbusi_assets.synthetic import generate_batch

    t0 = time.time()
    files = generate_batch(work / "gen", 1, patients=patients, seed=seed)
    home = HomeLayout(work / "home").create()
    t1 = time.time()
    run_batch(files.zip_path, home, echo=lambda m: None)
    t2 = time.time()
    truth = pd.read_parquet(files.truth_path)
    images = warehouse.read_batch(home.warehouse, "image_table", files.batch_id)
    cleaned = warehouse.read_batch(home.warehouse, "cleaned_images", files.batch_id)
    inpainted = warehouse.read_batch(home.warehouse, "inpainted_images", files.batch_id)
    paths = dict(zip(images["sop_instance_uid"], images["image_path"], strict=True))
    det = cleaned.set_index("sop_instance_uid")
    cal = truth[truth["has_calipers"].fillna(False).astype(bool) & truth["clean_png"].notna()]
    cal = cal.drop_duplicates("sop_instance_uid")
    methods = _methods(weights)
    acc_truth: dict[str, list[float]] = defaultdict(list)
    acc_det: dict[str, list[float]] = defaultdict(list)
    found = 0
    for row in cal.itertuples():
        if row.sop_instance_uid not in paths:
            continue
        image = read_rgb(paths[row.sop_instance_uid])
        clean = _clean_as_stored(row.clean_png, image)
        marks = json.loads(row.calipers)
        legend = json.loads(row.caliper_legend_box) if row.caliper_legend_box else None
        _score(image, clean, marks, truth_boxes(marks), methods, acc_truth, legend=legend)
        boxes = (
            parse_boxes(det.loc[row.sop_instance_uid, "caliper_boxes"])
            if row.sop_instance_uid in det.index
            else []
        )
        found += bool(boxes)
        if boxes:
            _score(image, clean, marks, boxes, methods, acc_det, legend=legend)
    # The asset's own copies (default method, detector boxes), as the run wrote them.
    asset_before, asset_after = [], []
    ip = inpainted.set_index("sop_instance_uid")
    for row in cal.itertuples():
        if row.sop_instance_uid not in ip.index or ip.loc[row.sop_instance_uid, "status"] != "ok":
            continue
        image = read_rgb(paths[row.sop_instance_uid])
        copy = read_rgb(ip.loc[row.sop_instance_uid, "inpainted_path"])
        clean = _clean_as_stored(row.clean_png, image)
        marks = json.loads(row.calipers)
        asset_before.append(window_mae(image, clean, marks))
        asset_after.append(window_mae(copy, clean, marks))
    return {
        "seed": seed,
        "patients": patients,
        "stills": len(images),
        "caliper_stills": len(cal),
        "marks": int(sum(len(json.loads(c)) for c in cal["calipers"])),
        "detector_found": found,
        "asset_rows": len(inpainted),
        "asset_method": str(inpainted["method"].iloc[0]) if len(inpainted) else None,
        "asset_before": float(np.mean(asset_before)) if asset_before else None,
        "asset_after": float(np.mean(asset_after)) if asset_after else None,
        "asset_images": len(asset_after),
        "generate_s": round(t1 - t0, 1),
        "run_batch_s": round(t2 - t1, 1),
        "truth_boxes": {k: float(np.mean(v)) for k, v in acc_truth.items()},
        "detector_boxes": {k: float(np.mean(v)) for k, v in acc_det.items()},
        "n_truth": len(acc_truth["before"]),
        "n_detector": len(acc_det["before"]),
    }


def render_part(seed: int, n: int, weights: Path) -> dict[str, object]:
    methods = _methods(weights)
    by_colour: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    colours = ("grey", "white_rgb", "yellow", "green", "cyan", "dim_grey")
    for pair in render_pairs(seed, n, colours):
        _score(
            pair.image,
            pair.clean,
            pair.marks,
            truth_boxes(pair.marks),
            methods,
            by_colour[pair.colour],
            legend=pair.legend_box,
        )
    return {c: {k: float(np.mean(v)) for k, v in acc.items()} for c, acc in by_colour.items()}


def _table(res: dict[str, float], label: str) -> str:
    b = res["before"]
    lines = [
        f"| {label} | MAE | cut |",
        "|---|---|---|",
        f"| before (calipers in) | {b:.2f} | 1.0x |",
    ]
    for k, name in (
        ("telea", "Telea, stroke mask"),
        ("ns", "Navier-Stokes, stroke mask"),
        ("learned", "learned, stroke mask"),
        ("box_telea", "Telea, box mask"),
        ("box_ns", "Navier-Stokes, box mask"),
    ):
        if k in res:
            lines.append(f"| {name} | {res[k]:.2f} | {b / res[k]:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=9090)
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--renders", type=int, default=36)
    ap.add_argument("--render-seed", type=int, default=424242)
    ap.add_argument("--weights", type=Path, default=Path(DEFAULT_MODEL_PATH))
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="write the raw figures as JSON")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    out: dict[str, object] = {"load_start": os.getloadavg()[0]}
    if not args.skip_batch:
        with tempfile.TemporaryDirectory() as tmp:
            res = batch_part(args.seed, args.patients, args.weights, Path(tmp))
        out["batch"] = res
        print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=1))
        print(
            _table(res["truth_boxes"], f"seed {args.seed}, truth boxes ({res['n_truth']} stills)")
        )
        if res["n_detector"]:
            print(
                _table(
                    res["detector_boxes"],
                    f"seed {args.seed}, detector boxes ({res['n_detector']} stills)",
                )
            )
        for k in (
            "mask_ms",
            "ns_ms",
            "telea_ms",
            "learned_ms",
            "learned_cpu_ms",
            "ns_cpu_ms",
            "stroke_px",
            "mask_px",
            "box_px",
            "lines",
        ):
            print(k, round(res["truth_boxes"][k], 1))
    rend = render_part(args.render_seed, args.renders, args.weights)
    out["renders"] = rend
    print(f"\nrenders, seed {args.render_seed}: before / telea / ns / learned / box_ns, learned ms")
    for c, r in rend.items():
        print(
            f"| {c} | {r['before']:.2f} | {r['telea']:.2f} | {r['ns']:.2f} | {r['learned']:.2f} "
            f"| {r['box_ns']:.2f} | {r['learned_ms']:.0f} |"
        )
    out["load_end"] = os.getloadavg()[0]
    print(f"load average at end: {out['load_end']:.1f}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

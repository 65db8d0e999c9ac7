"""Train the learned caliper inpainter (casbusi_assets/inpainting/model.py) on generator pairs.

    .venv/bin/python models/inpainting/train.py                 # ~10 min on one CPU core
    .venv/bin/python models/inpainting/train.py --steps 200     # a quick run

Pairs: caliper captures rendered straight from the synthetic generator with their clean pixels
(`casbusi_assets.inpainting.pairs`), marks recoloured white / yellow / green / cyan / dim grey,
on grey and RGB captures. Masks come from the same refinement the asset uses
(`masks.build_caliper_mask` on boxes round each mark), so the network learns the holes it will
be given. Training crops are 48 x 48 windows round marks and along their lines, one channel at a
time; the loss is the mean absolute error on masked pixels. Validation renders come from a seed
never used for training, on whole images, against Navier-Stokes on the same masks.

Writes models/inpainting/inpainter.pt (state dict + config) and metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from casbusi_assets.inpainting.masks import build_caliper_mask  # noqa: E402
from casbusi_assets.inpainting.methods import LearnedInpainter, OpenCVInpainter  # noqa: E402
from casbusi_assets.inpainting.model import InpaintNet, InpaintNetConfig, save_model  # noqa: E402
from casbusi_assets.inpainting.pairs import MARK_COLOURS, render_pairs, truth_boxes  # noqa: E402
from casbusi_assets.inpainting.quality import window_mae  # noqa: E402

OUT = Path(__file__).resolve().parent
CROP = 48
TRAIN_SEED = 20_000
VAL_SEED = 30_000


def _crops(pairs_n: int, seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ns = OpenCVInpainter("ns", 3.0)
    keys = ("image", "clean", "mask", "fill")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for pair in render_pairs(seed, pairs_n, tuple(MARK_COLOURS)):
        mask = build_caliper_mask(pair.image, truth_boxes(pair.marks)).mask
        fill = ns.inpaint(pair.image, mask)
        h, w = mask.shape
        # Centres: every mark, and points along the masked lines (holes away from marks).
        ys, xs = np.nonzero(mask)
        centres = [(int(m["x"]), int(m["y"])) for m in pair.marks]
        if len(ys):
            pick = rng.choice(len(ys), size=min(len(ys), len(centres)), replace=False)
            centres += [(int(xs[i]), int(ys[i])) for i in pick]
        for cx, cy in centres:
            x0 = int(np.clip(cx - CROP // 2 + rng.integers(-12, 13), 0, w - CROP))
            y0 = int(np.clip(cy - CROP // 2 + rng.integers(-12, 13), 0, h - CROP))
            sl = (slice(y0, y0 + CROP), slice(x0, x0 + CROP))
            ch = int(rng.integers(3)) if pair.image.ndim == 3 else None
            for k, arr in (("image", pair.image), ("clean", pair.clean), ("fill", fill)):
                a = arr[sl]
                out[k].append(a[..., ch] if ch is not None else a)
            out["mask"].append(mask[sl])
    return {k: np.stack(v) for k, v in out.items()}


def _augment(batch: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    k = int(rng.integers(4))
    flip = rng.random() < 0.5
    res = []
    for a in batch:
        a = np.rot90(a, k, axes=(1, 2))
        if flip:
            a = a[:, :, ::-1]
        res.append(np.ascontiguousarray(a))
    return res


def _to_t(a: np.ndarray, mask: bool = False) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float32))[:, None]
    return (t > 0).float() if mask else t / 127.5 - 1.0


def validate(weights: Path, n: int) -> dict[str, float]:
    """Whole-image window MAE on held-out renders: before, NS, Telea, learned (same masks)."""
    learned = LearnedInpainter(weights, "cpu")
    methods = {"ns": OpenCVInpainter("ns"), "telea": OpenCVInpainter("telea"), "learned": learned}
    sums = {k: 0.0 for k in ("before", *methods)}
    for pair in render_pairs(VAL_SEED, n, tuple(MARK_COLOURS)):
        mask = build_caliper_mask(pair.image, truth_boxes(pair.marks)).mask
        sums["before"] += window_mae(pair.image, pair.clean, pair.marks)
        for name, m in methods.items():
            sums[name] += window_mae(m.inpaint(pair.image, mask), pair.clean, pair.marks)
    return {k: round(v / n, 3) for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps")
    ap.add_argument("--minutes", type=float, default=10.0, help="stop earlier than --steps")
    ap.add_argument("--pairs", type=int, default=180, help="training captures to render")
    ap.add_argument("--val-pairs", type=int, default=36)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=8)
    # One thread: on a shared 2-core machine two torch threads spin-wait on each other
    # (measured 0.4 s per step with one thread against 3-4 s with two, under load).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT / "inpainter.pt")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    t0 = time.time()
    data = _crops(args.pairs, TRAIN_SEED, rng)
    n = len(data["image"])
    print(f"{n} crops from {args.pairs} renders in {time.time() - t0:.0f} s", flush=True)

    model = InpaintNet(InpaintNetConfig(width=args.width))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.steps)
    budget = args.minutes * 60
    t1 = time.time()
    step, ema = 0, None
    while step < args.steps and time.time() - t1 < budget:
        idx = rng.choice(n, size=args.batch, replace=False)
        img, clean, mask, fill = _augment(
            [data[k][idx] for k in ("image", "clean", "mask", "fill")], rng
        )
        x, y, m, f = _to_t(img), _to_t(clean), _to_t(mask, True), _to_t(fill)
        pred = model(x, m, f)
        loss = ((pred - y).abs() * m).sum() / m.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            print(
                f"step {step}  masked L1 {ema * 127.5:.2f} grey levels  {time.time() - t1:.0f} s",
                flush=True,
            )
    train_s = time.time() - t1
    save_model(
        model,
        args.out,
        extra={"steps": step, "train_seconds": round(train_s), "crops": n, "pairs": args.pairs},
    )
    metrics = validate(args.out, args.val_pairs)
    metrics.update(
        steps=step,
        train_seconds=round(train_s),
        total_seconds=round(time.time() - t0),
        crops=n,
        parameters=sum(p.numel() for p in model.parameters()),
        train_seed=TRAIN_SEED,
        val_seed=VAL_SEED,
        val_pairs=args.val_pairs,
    )
    (args.out.parent / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

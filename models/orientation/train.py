"""Train the body-marker orientation model on generated captures and write the shipped weights.

    .venv/bin/python models/orientation/train.py            # writes models/orientation/orientation_v1.pt
    .venv/bin/python models/orientation/train.py --out /tmp/o.pt --workers 2

Data: captures rendered straight from the synthetic generator's plans
(casbusi_assets.synthetic.marker_captures), both screen styles, a sixth without a marker, text
kept / stripped of its orientation words / blanked. Training seeds 101-110, validation seed 202
(the benchmark uses a seed neither touches). Every random choice is seeded and torch runs on a
fixed thread count, so a rerun reproduces the weights' metrics. See MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from casbusi_assets.cleaning import orientation as om  # noqa: E402

TRAIN_SEEDS = tuple(range(101, 111))
PER_TRAIN_SEED = 100
VAL_SEED = 202
VAL_N = 240
EXTRA_MARKERS = 3  # markers painted at random places on each training screen
JITTERS_REAL = 2  # jittered crops per real marker
JITTERS_EXTRA = 1
NEGATIVES = 1  # marker-free crops per screen
LOC_EPOCHS = 15
CLS_EPOCHS = 16
TARGET_ACCURACY = 0.97  # covered accuracy the threshold must reach on validation


def _target(mc, scale: float) -> tuple[float, float, float] | None:
    """Marker centre and size in canvas px from the renderer's marker box."""
    if mc.marker_box is None:
        return None
    x0, y0, x1, _ = mc.marker_box
    reach = (x1 - x0 - 1) / 2.0
    cx, cy = x0 + reach + 0.5, y0 + reach + 0.5
    size = 2.0 * (reach - 2.0) / 1.35
    return cx * scale, cy * scale, size * scale


def _jittered_crops(canvas, rng, cx, cy, size, k, torch):
    n = k
    dx = rng.uniform(-0.12, 0.12, n) * size
    dy = rng.uniform(-0.12, 0.12, n) * size
    sf = np.exp(rng.uniform(-0.2, 0.2, n))
    t = torch.from_numpy(canvas[None, None].astype(np.float32) / 255.0).expand(n, 1, *canvas.shape)
    crops = om.crop_markers(
        t,
        torch.tensor(cx + dx, dtype=torch.float32),
        torch.tensor(cy + dy, dtype=torch.float32),
        torch.tensor(size * sf * om.CROP_SCALE, dtype=torch.float32),
    )
    return (crops[:, 0].numpy() * 255.0).clip(0, 255).astype(np.uint8)


def _paint_extras(mc, rng, k: int, avoid: tuple[float, float, float] | None):
    """A copy of the screen with up to `k` more markers drawn at random, well-separated places
    (clear of the real one), and each one's centre, size and label."""
    from casbusi_assets.synthetic.annotations import probe_angle, sample_annotation
    from casbusi_assets.synthetic.marker_captures import marker_label
    from casbusi_assets.synthetic.scanner_screen import (
        _draw_body_marker,
        _marker_backdrop,
        sample_marker_look,
    )

    img = mc.image.copy()
    h, w = img.shape[:2]
    rgb = img.ndim == 3
    placed: list[tuple[float, float, float]] = [avoid] if avoid is not None else []
    out = []
    for _ in range(k):
        area = "axilla" if rng.random() < 0.15 else "breast"
        ann = sample_annotation(rng, str(rng.choice(["left", "right"])), area)
        angle = probe_angle(ann.orientation, ann.marker_hour, rng)
        classic = rng.random() < 0.4
        size = int(np.clip(0.09 * h, 44, 90)) if classic else int(rng.uniform(36, 120))
        reach = int(math.ceil(size / 2 * 1.35)) + 6
        for _attempt in range(30):
            cx = int(rng.integers(reach, w - reach))
            cy = int(rng.integers(reach, h - reach))
            if all(math.hypot(cx - x, cy - y) > 0.8 * (size + s) + 10 for x, y, s in placed):
                break
        else:
            continue
        look = None if classic else sample_marker_look(rng, rgb, bool(rgb and rng.random() < 0.2))
        color = (230, 230, 230) if look is None else look.color
        if look is None:
            hs = size // 2 + 6
            img[cy - hs : cy + hs, cx - hs : cx + hs] //= 4
        else:
            _marker_backdrop(img, cx, cy, size, look)
        col = color if rgb else (int(max(color)),)
        sub = np.random.default_rng(int(rng.integers(2**32)))
        _draw_body_marker(img, sub, cx, cy, size, ann, angle, col, look)
        placed.append((float(cx), float(cy), float(size)))
        out.append(((cx + 0.5, cy + 0.5, float(size)), marker_label(ann, True)))
    return img, out


def make_shard(job: tuple[int, int, bool]) -> dict[str, np.ndarray]:
    """Render one seed's captures: locator inputs and targets, classifier crops and labels."""
    import torch

    from casbusi_assets.synthetic.marker_captures import iter_marker_captures

    torch.set_num_threads(1)
    seed, n, with_crops = job
    rng = np.random.default_rng([seed, 424242])
    smalls, targets, crops, labels = [], [], [], []
    canvases, caps, empty = [], [], []
    for mc in iter_marker_captures(seed, n, text="mixed"):
        canvas, scale = om.letterbox(mc.image)
        q = om.LOC_POOL
        small = canvas.reshape(om.CANVAS_H // q, q, om.CANVAS_W // q, q).mean(axis=(1, 3))
        smalls.append(small.astype(np.float16))
        tgt = _target(mc, scale)
        targets.append(tgt if tgt is not None else (-1.0, -1.0, -1.0))
        label = om.MODEL_CLASSES.index(mc.label)
        caps.append(label)
        if not with_crops:
            canvases.append(canvas)
            continue
        if tgt is None:
            empty.append(canvas)  # for hard negatives once the locator is trained
        if tgt is not None:
            crops.append(_jittered_crops(canvas, rng, *tgt, JITTERS_REAL, torch))
            labels += [label] * JITTERS_REAL
        real = None if tgt is None else (tgt[0] / scale, tgt[1] / scale, tgt[2] / scale)
        img, extras = _paint_extras(mc, rng, EXTRA_MARKERS, real)
        c2, s2 = om.letterbox(img)
        for (ex, ey, es), lab in extras:
            crops.append(_jittered_crops(c2, rng, ex * s2, ey * s2, es * s2, JITTERS_EXTRA, torch))
            labels += [om.MODEL_CLASSES.index(lab)] * JITTERS_EXTRA
        nh = min(om.CANVAS_H, int(mc.image.shape[0] * scale))
        nw = min(om.CANVAS_W, int(mc.image.shape[1] * scale))
        for _ in range(NEGATIVES):
            for _attempt in range(20):
                s = float(rng.uniform(20, 110))
                x, y = float(rng.uniform(0, nw)), float(rng.uniform(0, nh))
                if tgt is None or math.hypot(x - tgt[0], y - tgt[1]) > 0.8 * tgt[2]:
                    break
            crops.append(_jittered_crops(canvas, rng, x, y, s, 1, torch))
            labels.append(om.MODEL_CLASSES.index("none"))
    out = {
        "small": np.stack(smalls),
        "target": np.array(targets, dtype=np.float32),
        "label": np.array(caps, dtype=np.int64),
    }
    if with_crops:
        out["crops"] = np.concatenate(crops)
        out["crop_label"] = np.array(labels, dtype=np.int64)
        out["empty"] = (
            np.stack(empty) if empty else np.zeros((0, om.CANVAS_H, om.CANVAS_W), np.uint8)
        )
    else:
        out["canvas"] = np.stack(canvases)
    return out


def _loc_targets(target: np.ndarray, flip: np.ndarray):
    """Heat map (N, 48, 64), and per marker: cell index, size / offset targets."""
    cell = om.LOC_POOL * om.LOC_STRIDE
    gh, gw = om.CANVAS_H // cell, om.CANVAS_W // cell
    n = len(target)
    heat = np.zeros((n, gh, gw), np.float32)
    cells, regs, has = np.zeros(n, np.int64), np.zeros((n, 3), np.float32), target[:, 2] > 0
    yy, xx = np.mgrid[0:gh, 0:gw]
    for i in np.flatnonzero(has):
        cx, cy, size = target[i]
        if flip[i]:
            cx = om.CANVAS_W - cx
        gx, gy = cx / cell, cy / cell
        ix, iy = min(gw - 1, int(gx)), min(gh - 1, int(gy))
        sigma = max(0.7, size / cell / 5.0)
        heat[i] = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma**2))
        heat[i, iy, ix] = 1.0
        cells[i] = iy * gw + ix
        regs[i] = (math.log(size / cell), gx - ix - 0.5, gy - iy - 0.5)
    return heat, cells, regs, has


def _focal(logit, target, torch):
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    npos = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / npos


def train_locator(net, small: np.ndarray, target: np.ndarray, log) -> None:
    import torch

    loc = net.locator
    opt = torch.optim.Adam(loc.parameters(), lr=2e-3, weight_decay=1e-5)
    n = len(small)
    bs = 32
    steps = LOC_EPOCHS * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(7)
    loc.train()
    for ep in range(LOC_EPOCHS):
        order = rng.permutation(n)
        total = 0.0
        for b in range(0, n, bs):
            idx = order[b : b + bs]
            flip = rng.random(len(idx)) < 0.5
            x = small[idx].astype(np.float32) / 255.0
            x[flip] = x[flip, :, ::-1]
            heat, cells, regs, has = _loc_targets(target[idx], flip)
            out = loc(torch.from_numpy(np.ascontiguousarray(x))[:, None])
            loss = _focal(out[:, 0], torch.from_numpy(heat), torch)
            if has.any():
                hi = torch.from_numpy(np.flatnonzero(has))
                flat = out[hi, 1:].flatten(2)
                at = flat.gather(2, torch.from_numpy(cells[has])[:, None, None].expand(-1, 3, 1))
                loss = loss + torch.nn.functional.smooth_l1_loss(
                    at[:, :, 0], torch.from_numpy(regs[has])
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"locator epoch {ep + 1}/{LOC_EPOCHS} loss {total / n:.4f}")
    loc.eval()


def hard_negatives(canvases: np.ndarray, per_screen: int = 4) -> np.ndarray:
    """Crops centred on the brightest blobs of screens without a marker (text, ruler ticks, the
    orientation dot, the grey bar): where a locator is most tempted, so the classifier learns
    to call them "none". Classical, so the classifier can train alongside the locator."""
    import cv2
    import torch

    rng = np.random.default_rng(13)
    out = []
    for canvas in canvases:
        blur = cv2.GaussianBlur(canvas, (0, 0), 4)
        peaks = (blur == cv2.dilate(blur, np.ones((25, 25), np.uint8))) & (blur > 20)
        ys, xs = np.nonzero(peaks)
        order = np.argsort(-blur[ys, xs].astype(np.int32))[:per_screen]
        for k in order:
            size = float(rng.uniform(25, 100))
            out.append(_jittered_crops(canvas, rng, xs[k] + 0.5, ys[k] + 0.5, size, 1, torch))
    return np.concatenate(out) if out else np.zeros((0, om.CROP_PX, om.CROP_PX), np.uint8)


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _train_part(job: tuple) -> tuple[str, dict]:
    """Train one half of the net in its own process (the two halves are independent)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    part, arrays = job
    net = om.build_net()
    if part == "locator":
        train_locator(net, arrays["small"], arrays["target"], _say)
        return part, net.locator.state_dict()
    hard = hard_negatives(arrays["empty"])
    print(f"{len(hard)} hard negatives from {len(arrays['empty'])} marker-free screens", flush=True)
    crops = np.concatenate([arrays["crops"], hard])
    none = om.MODEL_CLASSES.index("none")
    labels = np.concatenate([arrays["crop_label"], np.full(len(hard), none)])
    train_classifier(net, crops, labels, _say)
    return part, net.classifier.state_dict()


def train_classifier(net, crops: np.ndarray, labels: np.ndarray, log) -> None:
    import torch

    cls = net.classifier
    opt = torch.optim.Adam(cls.parameters(), lr=2e-3, weight_decay=1e-5)
    n = len(crops)
    bs = 128
    steps = CLS_EPOCHS * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(11)
    cls.train()
    for ep in range(CLS_EPOCHS):
        order = rng.permutation(n)
        total, correct = 0.0, 0
        for b in range(0, n, bs):
            idx = order[b : b + bs]
            x = crops[idx].astype(np.float32) / 255.0
            # Mirror images keep every orientation class (a radial bar stays radial, a 45 degree
            # oblique becomes 135); laterality is not what is learned here.
            fh = rng.random(len(idx)) < 0.5
            fv = rng.random(len(idx)) < 0.5
            x[fh] = x[fh, :, ::-1]
            x[fv] = x[fv, ::-1, :]
            # A quarter turn swaps trans and long and keeps the other classes.
            rot = rng.random(len(idx)) < 0.5
            x[rot] = np.rot90(x[rot], axes=(1, 2))
            y = labels[idx].copy()
            swap = {om.MODEL_CLASSES.index("trans"): om.MODEL_CLASSES.index("long")}
            swap.update({v: k for k, v in swap.items()})
            y[rot] = [swap.get(int(c), int(c)) for c in y[rot]]
            y_t = torch.from_numpy(y)
            x = x * rng.uniform(0.8, 1.0, (len(idx), 1, 1)).astype(np.float32)
            logits = cls(torch.from_numpy(np.ascontiguousarray(x))[:, None])
            loss = torch.nn.functional.cross_entropy(logits, y_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_t).sum())
        log(f"classifier epoch {ep + 1}/{CLS_EPOCHS} loss {total / n:.4f} acc {correct / n:.3f}")
    cls.eval()


def evaluate(net, canvases: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    probs, pm = [], []
    with torch.inference_mode():
        for b in range(0, len(canvases), 16):
            x = torch.from_numpy(canvases[b : b + 16, None].astype(np.float32) / 255.0)
            pr, p, _ = net(x)
            probs.append(pr.numpy())
            pm.append(p.numpy())
    return {"probs": np.concatenate(probs), "p_marker": np.concatenate(pm), "label": labels}


def threshold_table(ev: dict[str, np.ndarray], thresholds) -> list[dict[str, float]]:
    """Covered accuracy and coverage on marker images with an orientation, and how often an
    image whose marker shows none (or that has none) gets an orientation, per threshold."""
    rows = []
    has = ev["label"] < len(om.ORIENTATION_CLASSES)
    for t in thresholds:
        res = om.combine(ev["probs"], ev["p_marker"], float(t))
        pred = np.array([om.ORIENTATION_CLASSES.index(lab) if lab else -1 for lab, _ in res])
        covered = has & (pred >= 0)
        rows.append(
            {
                "threshold": round(float(t), 3),
                "coverage": float(covered.sum() / max(1, has.sum())),
                "covered_accuracy": float(
                    (pred[covered] == ev["label"][covered]).sum() / max(1, covered.sum())
                ),
                "forced_accuracy": float(
                    (ev["probs"][has, :5].argmax(1) == ev["label"][has]).mean()
                ),
                "none_filled": float((pred[~has] >= 0).sum() / max(1, (~has).sum())),
            }
        )
    return rows


def _cache_file(cache: Path, job: tuple[int, int, bool]) -> Path:
    q = om.LOC_POOL
    return cache / f"shard_{job[0]}_{job[1]}_{int(job[2])}_pool{q}_crop{om.CROP_PX}.npz"


def _load_cache(cache: Path | None, jobs) -> list[dict[str, np.ndarray]] | None:
    if cache is None or not all(_cache_file(cache, j).is_file() for j in jobs):
        return None
    return [dict(np.load(_cache_file(cache, j))) for j in jobs]


def _save_cache(cache: Path | None, jobs, shards) -> None:
    if cache is None:
        return
    cache.mkdir(parents=True, exist_ok=True)
    for j, sh in zip(jobs, shards, strict=True):
        np.savez(_cache_file(cache, j), **sh)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished worker processes (user + system)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=om.DEFAULT_MODEL_PATH)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--cache", type=Path, default=None, help="keep the rendered data here (reruns skip it)"
    )
    args = ap.parse_args(argv)

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", flush=True)

    jobs = [(s, PER_TRAIN_SEED, True) for s in TRAIN_SEEDS] + [(VAL_SEED, VAL_N, False)]
    shards = _load_cache(args.cache, jobs)
    if shards is None:
        with Pool(args.workers) as pool:
            shards = pool.map(make_shard, jobs, chunksize=1)
        _save_cache(args.cache, jobs, shards)
    train, val = shards[:-1], shards[-1]
    small = np.concatenate([s["small"] for s in train])
    target = np.concatenate([s["target"] for s in train])
    crops = np.concatenate([s["crops"] for s in train])
    crop_label = np.concatenate([s["crop_label"] for s in train])
    t_data = time.time() - t0
    log(f"data: {len(small)} screens, {len(crops)} crops, {len(val['label'])} validation screens")

    empty = np.concatenate([s["empty"] for s in train])
    parts = [
        ("locator", {"small": small, "target": target}),
        ("classifier", {"crops": crops, "crop_label": crop_label, "empty": empty}),
    ]
    with Pool(2) as pool:  # one process per half: each runs single-threaded on its own core
        trained = dict(pool.map(_train_part, parts, chunksize=1))
    net = om.build_net()
    net.locator.load_state_dict(trained["locator"])
    net.classifier.load_state_dict(trained["classifier"])
    net.eval()
    log("trained")

    ev = evaluate(net, val["canvas"], val["label"])
    table = threshold_table(ev, np.round(np.arange(0.3, 0.96, 0.05), 2))
    ok = [r for r in table if r["covered_accuracy"] >= TARGET_ACCURACY]
    chosen = ok[0] if ok else table[-1]
    for r in table:
        log(json.dumps(r))
    log(f"chosen min_confidence {chosen['threshold']}")
    meta = {
        "classes": list(om.MODEL_CLASSES),
        "min_confidence": chosen["threshold"],
        "validation": chosen,
        "validation_table": table,
        "train_seeds": list(TRAIN_SEEDS),
        "val_seed": VAL_SEED,
        "train_screens": len(small),
        "train_crops": len(crops),
        "data_seconds": round(t_data, 1),
        "total_seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(_cpu_seconds(), 1),
        "load_average_at_end": round(os.getloadavg()[0], 1),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "meta": json.dumps(meta)}, args.out)
    log(f"CPU seconds {meta['cpu_seconds']}, load average {meta['load_average_at_end']}")
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

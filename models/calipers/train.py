"""Train the caliper verifier of `casbusi_assets/cleaning/caliper_model.py` on generated screens.

    nice .venv/bin/python models/calipers/train.py                 # ~10 CPU minutes
    nice .venv/bin/python models/calipers/train.py --screens 300 --epochs 3   # a quick run

Data: screens rendered straight from the generator (`render_capture`, no DICOM encoding),
seeds 7001+ for training and 7901 for validation (the benchmarks use other seeds). 80% carry
calipers of both screen styles (the varied style's wide look has every mark family, colour
and stroke); the rest have none, so text, rulers, body markers, colour flow and speckle are
seen as negatives; captures are grey, dual view, dark, yellow overlay and Doppler (colour marks
on RGB). Every proposal of `propose` is labelled by `candidate_labels` against the truth mark
boxes; all positives, every negative near a mark, a text box, the legend or the body marker,
and 60 other negatives per screen are kept.

The threshold is chosen on the validation screens, run whole (every proposal), as the one with
the best per-mark F1 with precision >= recall; it is saved in the checkpoint with the metrics
(`metrics.json`).
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from casbusi_assets.cleaning.caliper_model import (  # noqa: E402
    CaliperModel,
    build_net,
    candidate_labels,
    detect_calipers_learned,
    features,
    propose,
)
from casbusi_assets.synthetic.annotations import sample_annotation  # noqa: E402
from casbusi_assets.synthetic.scanner_screen import (  # noqa: E402
    CALIPER_COLOURS,
    FONTS,
    PROFILES,
    CaptureSpec,
    _draw_mark,
    _grey_level,
    draw_text,
    render_capture,
)

OUT = Path(__file__).resolve().parent
CAPTURES = ("grayscale", "doppler", "yellow_overlay", "dual_view", "dark")
CAPTURE_P = (0.6, 0.15, 0.1, 0.1, 0.05)


# Families the generator draws rarely or the verifier found hard (points of a few pixels,
# brackets, arrowheads): extra pairs of them are painted on training screens, with weights.
EXTRA_SHAPES = (
    "point",
    "bracket",
    "arrowhead",
    "open_arrowhead",
    "diamond",
    "filled_diamond",
    "small_cross",
    "dot",
    "circle",
    "tilted_cross",
)
EXTRA_P = (0.22, 0.22, 0.14, 0.1, 0.06, 0.06, 0.06, 0.05, 0.05, 0.04)
NEG_WORDS = ("LT BREAST", "RT", "x 0.8", "+ 1.2", "o", "ANT", "2:00 3CM FN", "Dist", "1.06 cm")


def _free(x: int, y: int, taken: list[tuple[int, int, int, int]], pad: int) -> bool:
    return all(not (b[0] - pad <= x <= b[2] + pad and b[1] - pad <= y <= b[3] + pad) for b in taken)


def augment(r, fbox, boxes, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Paint an extra measurement of a hard family (appended to ``r.calipers``) and explicit
    negatives (text inside the field with no OCR box, evenly spaced dot chains: the ruler along
    a sector's slanted edge) on the first frame; returns the negatives' boxes (kept as hard
    negatives). Marks go on the field's tissue, away from text, legend, marker and marks."""
    img = r.frames[0]
    grey = img.ndim == 2
    fx, fy, fw, fh = fbox
    taken = [tuple(int(v) for v in b) for b in boxes]
    if r.marker_box is not None:
        taken.append(tuple(int(v) for v in r.marker_box))
    for m in r.calipers:
        bx, by, bw, bh = m["box"]
        taken.append((bx, by, bx + bw, by + bh))
    negs: list[tuple[int, int, int, int]] = []
    if rng.random() < 0.7 and fw > 120 and fh > 120:
        shape = str(rng.choice(EXTRA_SHAPES, p=EXTRA_P))
        if shape in ("point", "small_cross", "dot", "circle"):
            s = int(rng.integers(2, 6))
        else:
            s = int(rng.integers(2, 13))
        thick = int(min(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]), max(1, (2 * s + 1) // 3)))
        name = str(rng.choice(list(CALIPER_COLOURS)))
        colour = CALIPER_COLOURS[name]
        colour = (_grey_level(colour),) if grey else colour
        ink = colour[0] if grey else colour
        angle = float(rng.uniform(0, 180)) if rng.random() < 0.5 else 0.0
        r_mark = s + thick + 3
        for _ in range(20):
            px = int(rng.integers(fx + r_mark + 4, fx + fw - r_mark - 4))
            py = int(rng.integers(fy + r_mark + 4, fy + fh - r_mark - 4))
            th = rng.uniform(0, np.pi)
            ln = rng.uniform(max(4 * s + 2 * thick + 12, 30), 160)
            qx = int(np.clip(px + ln * np.cos(th), fx + r_mark + 4, fx + fw - r_mark - 4))
            qy = int(np.clip(py + ln * np.sin(th), fy + r_mark + 4, fy + fh - r_mark - 4))
            length = float(np.hypot(qx - px, qy - py))
            pad = 2 * r_mark + 8
            if (
                length >= 4 * s + 2 * thick + 12
                and _free(px, py, taken, pad)
                and _free(qx, qy, taken, pad)
            ):
                break
        else:
            length = 0.0
        if length:
            line = str(rng.choice(["dotted", "dashed", "none"], p=[0.55, 0.2, 0.25]))
            step = float(rng.uniform(3.0, 8.0))
            dash = int(rng.integers(2, 5)) if line == "dashed" else 1
            start = s + thick + 3
            if line != "none":
                for t in np.arange(start, length - start + 1, step + dash - 1):
                    for u in np.arange(t, min(t + dash, length - start + 1)):
                        xx = int(round(px + (qx - px) * u / length))
                        yy = int(round(py + (qy - py) * u / length))
                        img[yy, xx] = ink
            for (x, y), (ox, oy) in (((px, py), (qx, qy)), ((qx, qy), (px, py))):
                a = angle
                if "arrowhead" in shape:
                    a = float(np.degrees(np.arctan2(y - oy, x - ox)))
                box = _draw_mark(img, x, y, shape, s, colour, thick, a)
                r.calipers.append({"x": x, "y": y, "shape": shape, "box": list(box)})
                taken.append((box[0], box[1], box[0] + box[2], box[1] + box[3]))
    if rng.random() < 0.35:
        # A line of text inside the field that no OCR box covers: glyphs are not marks.
        words = [str(w) for w in rng.choice(NEG_WORDS, size=int(rng.integers(1, 4)))]
        cap = float(rng.uniform(7, 13))
        level = int(rng.integers(180, 256))
        tx = int(rng.integers(fx + 4, max(fx + 5, fx + fw - 160)))
        ty = int(rng.integers(fy + 4, max(fy + 5, fy + fh - 20)))
        if _free(tx + 60, ty + 6, taken, 70):
            font = FONTS[int(rng.integers(len(FONTS)))]
            col = (level,) if grey else (level, level, level)
            box = draw_text(img, [" ".join(words)], tx, ty, font, cap, col)
            negs.append(tuple(int(v) for v in box))
    if rng.random() < 0.25:
        # An evenly spaced chain of dots at any slant (a depth scale along a sector edge).
        d = int(rng.integers(2, 5))
        level = int(rng.integers(180, 256))
        gap = float(rng.uniform(10, 40))
        th = rng.uniform(0, np.pi)
        x0 = float(rng.uniform(fx + 10, fx + fw - 10))
        y0 = float(rng.uniform(fy + 10, fy + fh - 10))
        for k in range(int(rng.integers(4, 12))):
            x = int(round(x0 + k * gap * np.cos(th)))
            y = int(round(y0 + k * gap * np.sin(th)))
            if fx + 4 <= x < fx + fw - 8 and fy + 4 <= y < fy + fh - 8 and _free(x, y, taken, 12):
                img[y : y + d, x : x + d] = level
                negs.append((x - 2, y - 2, x + d + 2, y + d + 2))
    return negs


def screens(seed: int, n: int, caliper_share: float = 0.8, extra: bool = True):
    """(rendered, field box x, y, w, h, suppression boxes, hard-negative boxes) for n generated
    screens; ``extra`` paints the `augment` marks and negatives (from a stream of their own,
    so the screens are the same either way)."""
    rng = np.random.default_rng([seed, 4242])
    aug = np.random.default_rng([seed, 4243])
    for _ in range(n):
        profile = PROFILES[int(rng.integers(len(PROFILES)))]
        width, height = profile.sizes[int(rng.integers(len(profile.sizes)))]
        style = "varied" if rng.random() < 0.75 else "classic"
        side = "left" if rng.random() < 0.5 else "right"
        spec = CaptureSpec(
            capture=str(rng.choice(CAPTURES, p=CAPTURE_P)),
            width=int(width),
            height=int(height),
            profile=profile,
            probe=profile.probes[int(rng.integers(len(profile.probes)))],
            study_date="20240115",
            study_time="101500",
            annotation=sample_annotation(rng, side, "breast", wide=style == "varied"),
            text_font=FONTS[int(rng.integers(len(FONTS)))],
            calipers=bool(rng.random() < caliper_share),
            style=style,
        )
        r = render_capture(spec, np.random.default_rng(int(rng.integers(2**63))))
        x0 = min(g.x0 for g in r.regions)
        y0 = min(g.y0 for g in r.regions)
        x1 = max(g.x1 for g in r.regions)
        y1 = max(g.y1 for g in r.regions)
        fbox = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
        boxes = [b for b in (r.text_box, r.caliper_legend_box) if b is not None]
        sub = np.random.default_rng(int(aug.integers(2**63)))
        negs = augment(r, fbox, boxes, sub) if extra else []
        yield r, fbox, boxes, negs


def _near(c, boxes, pad: int = 6) -> bool:
    return any(b[0] - pad <= c.cx <= b[2] + pad and b[1] - pad <= c.cy <= b[3] + pad for b in boxes)


def build_set(seed: int, n: int, neg_per_screen: int = 60):
    rng = np.random.default_rng(seed)
    planes, scal, ys = [], [], []
    t0 = time.perf_counter()
    for k, (r, fbox, boxes, negs) in enumerate(screens(seed, n)):
        props = propose(r.frames[0], fbox)
        if not props.cands:
            continue
        y = candidate_labels(props.cands, r.calipers)
        hard = [*boxes, *negs]
        if r.marker_box is not None:
            hard.append(r.marker_box)
        for m in r.calipers:
            bx, by, bw, bh = m["box"]
            hard.append((bx - 34, by - 34, bx + bw + 34, by + bh + 34))
        keep = [i for i, c in enumerate(props.cands) if y[i] or _near(c, hard)]
        rest = [i for i in range(len(props.cands)) if i not in set(keep)]
        if rest:
            keep += rng.choice(rest, size=min(len(rest), neg_per_screen), replace=False).tolist()
        props.cands = [props.cands[i] for i in keep]
        props.ids = [props.ids[i] for i in keep]
        p, s = features(props)
        planes.append((p * 255).round().astype(np.uint8))
        scal.append(s)
        ys.append(y[keep])
        if (k + 1) % 50 == 0:
            print(
                f"  seed {seed}: {k + 1}/{n} screens, {time.perf_counter() - t0:.0f} s", flush=True
            )
    return np.concatenate(planes), np.concatenate(scal), np.concatenate(ys)


def per_mark(model: CaliperModel, items, thresholds) -> dict[float, tuple[int, int, int]]:
    """Per-mark (tp, fp, fn) at each threshold (6 px centre match, one to one), the whole
    detector run at each (the pair rescue and the bracket merge depend on the threshold)."""
    out = {t: [0, 0, 0] for t in thresholds}
    for img, fbox, boxes, marks in items:
        for t in thresholds:
            found = detect_calipers_learned(img, model, field=fbox, text_boxes=boxes, threshold=t)
            used: set[int] = set()
            for m in marks:
                best = None
                for j, f in enumerate(found):
                    d = np.hypot(f.centre[0] - m["x"], f.centre[1] - m["y"])
                    if j not in used and d <= 6 and (best is None or d < best[0]):
                        best = (d, j)
                if best is not None:
                    used.add(best[1])
            tp = len(used)
            out[t][0] += tp
            out[t][1] += len(found) - tp
            out[t][2] += len(marks) - tp
    return {t: tuple(v) for t, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--screens", type=int, default=1200)
    ap.add_argument("--val-screens", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--epoch-size", type=int, default=40000, help="candidates per epoch (all marks + negatives)"
    )
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "calipers_v2.pt")
    ap.add_argument("--cache", type=Path, default=None, help="npz of the training set")
    ap.add_argument(
        "--calibrate-only",
        action="store_true",
        help="keep the weights in --out, only choose the threshold again on the validation seed",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.process_time()
    if args.calibrate_only:
        ck = torch.load(args.out, map_location="cpu", weights_only=False)
        net = build_net()
        net.load_state_dict(ck["state_dict"])
        old = json.loads((args.out.parent / "metrics.json").read_text())
        return calibrate(net, args, ck, old["training_candidates"], old["training_marks"], t_start)
    if args.cache is not None and args.cache.is_file():
        z = np.load(args.cache)
        planes, scal, y = z["planes"], z["scal"], z["y"]
    else:
        planes, scal, y = build_set(args.seed, args.screens)
        if args.cache is not None:
            np.savez(args.cache, planes=planes, scal=scal, y=y)
    print(f"training set: {len(y)} candidates, {int(y.sum())} marks", flush=True)
    net = build_net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    pos_weight = torch.tensor(3.0)
    P = torch.from_numpy(planes)
    S = torch.from_numpy(scal)
    Y = torch.from_numpy(y)
    g = torch.Generator().manual_seed(args.seed)
    pos_idx = torch.nonzero(Y > 0).squeeze(1)
    neg_idx = torch.nonzero(Y == 0).squeeze(1)
    for epoch in range(args.epochs):
        net.train()
        # Every mark each epoch, and a fresh draw of negatives (the CPU budget of a shared VM).
        n_neg = min(len(neg_idx), max(0, args.epoch_size - len(pos_idx)))
        pick = neg_idx[torch.randperm(len(neg_idx), generator=g)[:n_neg]]
        both = torch.cat([pos_idx, pick])
        perm = both[torch.randperm(len(both), generator=g)]
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(perm), 256):
            idx = perm[i : i + 256]
            x = P[idx].float() / 255.0
            if torch.rand(1, generator=g).item() < 0.5:  # marks have no handedness
                x = x.flip(3)
            if torch.rand(1, generator=g).item() < 0.5:
                x = x.flip(2)
            logit = net(x, S[idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, Y[idx], pos_weight=pos_weight
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int(((logit > 0).float() == Y[idx]).sum())
            seen += len(idx)
        sched.step()
        print(f"epoch {epoch + 1}: loss {total / seen:.4f}, acc {correct / seen:.4f}", flush=True)
    ck = {
        "kind": "calipers",
        "version": 2,
        "train": {
            "seed": args.seed,
            "screens": args.screens,
            "epochs": args.epochs,
            "epoch_size": args.epoch_size,
        },
    }
    return calibrate(net, args, ck, int(len(y)), int(y.sum()), t_start)


def calibrate(net, args, ck: dict, n_cands: int, n_marks: int, t_start: float) -> int:
    """Choose the threshold on the validation screens, save weights and metrics."""
    net.eval()
    model = CaliperModel(net, "cpu", 0.5)
    val = [
        (r.frames[0], fbox, boxes, r.calipers)
        for r, fbox, boxes, _ in screens(args.seed + 900, args.val_screens)
    ]
    thresholds = [round(t, 2) for t in np.arange(0.5, 0.96, 0.05)]
    res = per_mark(model, val, thresholds)
    best, best_f1 = 0.5, -1.0
    table = {}
    for t, (tp, fp, fn) in res.items():
        p = tp / max(1, tp + fp)
        r = tp / max(1, tp + fn)
        f1 = 2 * p * r / max(1e-9, p + r)
        table[str(t)] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r}
        print(f"  threshold {t:.2f}: precision {p:.3f} recall {r:.3f} (tp {tp} fp {fp} fn {fn})")
        if p >= r and f1 > best_f1:
            best, best_f1 = t, f1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ck.update(state_dict=net.state_dict(), threshold=best)
    torch.save(ck, args.out)
    metrics = {
        "threshold": best,
        "validation_seed": args.seed + 900,
        "validation_screens": args.val_screens,
        "validation_per_mark": table,
        "training_candidates": n_cands,
        "training_marks": n_marks,
        "cpu_seconds": round(time.process_time() - t_start, 1),
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    (args.out.parent / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"saved {args.out} (threshold {best})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

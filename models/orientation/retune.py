"""Re-choose how trained orientation weights are read, and their threshold, without training.

    nice .venv/bin/python models/orientation/retune.py models/orientation/orientation_v4.pt \
        --mirror-tta --candidates 1 --out /tmp/orientation_v4c1.pt [--cache /tmp/o4/cache]

The tensors are copied unchanged; the architecture entry of the meta (mirror averaging, number
of heat-map candidates) is set as asked and the threshold is chosen again on the validation
seed by the same rule as train.py (orientation.choose_min_confidence): averaging changes the
probabilities, so the stored threshold would no longer be the rule's. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "models" / "orientation"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from casbusi_assets.cleaning import orientation as om  # noqa: E402


def _validation(cache: Path | None) -> dict[str, np.ndarray]:
    """The validation canvases and labels (train.py's validation shard, cached if present)."""
    import train

    job = (train.VAL_SEED, train.VAL_N, False)
    if cache is not None:
        for f in sorted(cache.glob(f"*_shard_{job[0]}_{job[1]}_0_*.npz")):
            with np.load(f) as z:
                return {"canvas": z["canvas"], "label": z["label"]}
    shard = train.make_shard(job)
    return {"canvas": shard["canvas"], "label": shard["label"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mirror-tta", action="store_true")
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch
    import train

    torch.manual_seed(0)
    torch.set_num_threads(2)
    blob = torch.load(args.weights, map_location="cpu", weights_only=True)
    meta = json.loads(blob["meta"])
    arch = {
        **om.LEGACY_ARCH,
        **meta.get("arch", {}),
        "mirror_tta": bool(args.mirror_tta),
        "candidates": int(args.candidates),
    }
    net = om.build_net(arch)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    val = _validation(args.cache)
    ev = train.evaluate(net, val["canvas"], val["label"])
    table = om.threshold_table(ev["probs"], ev["p_marker"], ev["label"], train.THRESHOLD_GRID)
    chosen, reached = om.choose_min_confidence(table, train.TARGET_ACCURACY, train.MIN_COVERED)
    has = ev["label"] < len(om.ORIENTATION_CLASSES)
    guess = ev["probs"][has, : len(om.ORIENTATION_CLASSES)].argmax(1)
    print(f"validation best guess {float((guess == ev['label'][has]).mean()):.4f}")
    print(f"chosen min_confidence {chosen['threshold']} (target reached: {reached}): {chosen}")
    meta.update(
        arch=arch,
        min_confidence=chosen["threshold"],
        threshold_target_reached=reached,
        validation=chosen,
        validation_table=table,
        retuned_from=args.weights.name,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": blob["state_dict"], "meta": json.dumps(meta)}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

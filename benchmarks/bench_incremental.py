"""Does batch N+1 cost what batch 1 cost? The 1st vs the 10th batch into one home.

Ten consecutive generated batches (`generate_batches(..., batches=10, patients=8, seed=7002)`,
~60 stills each, each re-sending one study of the batch before it, so the cross-batch duplicate
lookup has real work). The first nine go into home A one after another (their costs are
printed too). Then, alternating `--repeat` times, batch 10 runs
- as the 1st batch of a fresh, empty home, and
- as the 10th batch of home A (afterwards `casbusi delete-batch` removes it again, so the next
  repeat is again a new 10th batch, not a re-run).
Both are the same command, `casbusi run-batch ZIP [--select ...]` (default: every batch asset,
the whole graph), each in its own subprocess (run the script with `nice`); wall time and CPU
seconds (the run and every worker under it) per run, medians compared.

    nice .venv/bin/python benchmarks/bench_incremental.py --batches /tmp/bench_data/ten \
        [--repeat 2] [--select dicom_catalog,image_table,video_table]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "casbusi_assets.cli"]


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(home: Path, *args: str) -> dict:
    cpu0 = _cpu_children()
    t0 = time.perf_counter()
    env = dict(os.environ, CASBUSI_HOME=str(home))
    proc = subprocess.run(
        [*CLI, "--home", str(home), *args],  # inherits this script's niceness
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return {
        "wall": time.perf_counter() - t0,
        "cpu": _cpu_children() - cpu0,
        "load": os.getloadavg()[0],
    }


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=Path, required=True, help="folder of batch_001..010.zip")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--select", default="", help="asset names (default: every batch asset)")
    args = parser.parse_args()
    zips = sorted(args.batches.glob("batch_*.zip"))[:10]
    assert len(zips) == 10, f"need 10 batch zips in {args.batches}, found {len(zips)}"
    select = ["--select", args.select] if args.select else []
    tmp = Path(tempfile.mkdtemp(prefix="bench_incr_"))
    try:
        home = tmp / "home_a"
        fill = []
        for z in zips[:9]:
            r = run(home, "run-batch", str(z), *select)
            fill.append((z.stem, r))
            print(f"# fill {z.stem}: {r}", file=sys.stderr, flush=True)
        first, tenth = [], []
        for i in range(args.repeat):
            fresh = tmp / f"fresh_{i}"
            r1 = run(fresh, "run-batch", str(zips[9]), *select)
            first.append(r1)
            print(f"# 1st #{i}: {r1}", file=sys.stderr, flush=True)
            shutil.rmtree(fresh, ignore_errors=True)
            r10 = run(home, "run-batch", str(zips[9]), *select)
            tenth.append(r10)
            print(f"# 10th #{i}: {r10}", file=sys.stderr, flush=True)
            run(home, "delete-batch", zips[9].stem)
        what = args.select or "every batch asset"
        print(f"runs: `casbusi run-batch` ({what}); {os.cpu_count()} cores\n")
        print("| run | batch | wall s | CPU s | load |")
        print("|---|---|---|---|---|")
        for k, (name, r) in enumerate(fill, 1):
            print(
                f"| fill, position {k} | {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['load']:.1f} |"
            )
        for i, (a, b) in enumerate(zip(first, tenth, strict=True)):
            print(
                f"| 1st (fresh home) #{i} | {zips[9].stem} | {a['wall']:.1f} | {a['cpu']:.1f} | {a['load']:.1f} |"
            )
            print(
                f"| 10th (home A) #{i} | {zips[9].stem} | {b['wall']:.1f} | {b['cpu']:.1f} | {b['load']:.1f} |"
            )
        for key in ("wall", "cpu"):
            a = median([r[key] for r in first])
            b = median([r[key] for r in tenth])
            print(f"\nmedian {key}: 1st {a:.1f} s, 10th {b:.1f} s, 10th / 1st = {b / a:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

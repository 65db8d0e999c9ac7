"""The whole `ocr_table` step, two readers side by side in one run (e.g. before / after a change).

    .venv/bin/python benchmarks/bench_ocr_side_by_side.py --before /tmp/ocr_before \
        [--also previous=/tmp/ocr_prev] [--patients 20] [--seed 8808] [--rounds 2] \
        [--varied-share 0.6]

`--before` is a checkout of the project at the old commit (`git worktree add /tmp/ocr_before
f60f5db`). One batch is generated with the current generator; each reader then runs in its own
process with PYTHONPATH pointing at its tree: it ingests the batch into a home of its own
(untimed: catalog, images, clips) and materialises `ocr_table` alone through Dagster, which is
what is timed (engine start-up, PNG loading, OCR, parsing, Parquet), in wall-clock seconds and
in CPU seconds of the step's process and its worker processes (all threads: on a loaded machine the work done is less
noisy than the time it took). Rounds alternate
before / after (and any `--also` trees, between them) so that a change in machine load hits
all alike; the load average is printed with every step, and the summary gives each reader's
median and its ratio to "before" round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_STEP = r"""
import json, os, sys, time
from pathlib import Path
from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.home import layout
zip_path, home_dir = Path(sys.argv[1]), Path(sys.argv[2])
home = layout(home_dir).create()
quiet = lambda message: None
key = zip_path.stem
if not home_dir.joinpath(".ingested").exists():
    run_batch(zip_path, home, select=["dicom_catalog", "image_table", "video_table"], echo=quiet)
    home_dir.joinpath(".ingested").write_text("ok")
load = os.getloadavg()[0]
import resource
def _cpu():  # this process and its finished children (the OCR worker processes)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime
t0, c0 = time.perf_counter(), _cpu()
run_batch(zip_path, home, select=["ocr_table"], echo=quiet)
seconds, cpu = time.perf_counter() - t0, _cpu() - c0
df = warehouse.read_batch(home.warehouse, "ocr_table", key)
ok = df[df["status"] == "ok"]
import casbusi_assets
print(json.dumps({"rows": len(df), "ok": len(ok), "seconds": seconds, "cpu": cpu, "load": load,
                  "load_end": os.getloadavg()[0], "tree": str(Path(casbusi_assets.__file__).parents[1]),
                  "lateral": float((ok["laterality"] != "unknown").mean()) if len(ok) else 0.0}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="project checkout of the old reader")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkout to time in the same rounds (e.g. an intermediate commit)",
    )
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=8808)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--varied-share", type=float, default=None)
    args = ap.parse_args()

    from casbusi_assets.synthetic import generate_batches
    from casbusi_assets.synthetic.config import GeneratorConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench_ocr_sbs_"))
    cfg = (
        GeneratorConfig()
        if args.varied_share is None
        else GeneratorConfig(varied_style_share=args.varied_share)
    )
    files = generate_batches(
        tmp / "in", batches=1, patients=args.patients, seed=args.seed, config=cfg
    )[0]
    print(
        f"batch seed {args.seed}, {args.patients} patients, varied_style_share "
        f"{cfg.varied_style_share}; {os.cpu_count()} cores"
    )
    print(
        "\n| round | reader | tree | rows | step seconds | images/s | CPU s per image "
        "| load start / end |"
    )
    print("|---|---|---|---|---|---|---|---|")
    trees = {"before": args.before}
    for item in args.also:
        name, _, path = item.partition("=")
        trees[name] = path
    trees["after"] = args.after
    results: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    for k in range(args.rounds):
        # odd rounds in the other order, so that neither reader always runs first
        for name, tree in list(trees.items())[:: 1 if k % 2 == 0 else -1]:
            env = {**os.environ, "PYTHONPATH": tree, "CASBUSI_OCR_ENGINE": "rapidocr"}
            proc = subprocess.run(
                [sys.executable, "-c", _STEP, str(files.zip_path), str(tmp / f"home_{name}")],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                cwd=tree,
            )
            if proc.returncode != 0:
                print(f"| {k + 1} | {name} | failed: {proc.stderr.strip().splitlines()[-1:]} |")
                results[name].append(float("nan"))
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rate = r["rows"] / r["seconds"]
            results[name].append(rate)
            cpus[name].append(r["cpu"] / r["rows"])
            print(
                f"| {k + 1} | {name} | {r['tree']} | {r['rows']} | {r['seconds']:.1f} | "
                f"{rate:.2f} | {r['cpu'] / r['rows']:.3f} | {r['load']:.1f} / {r['load_end']:.1f} |",
                flush=True,
            )
    print()
    base = results["before"]
    for name, rates in results.items():
        ok = [x for x in rates if x == x]
        if not ok:
            continue
        ratios = [a / b for a, b in zip(rates, base, strict=True) if a == a and b == b]
        print(
            f"{name}: median {statistics.median(ok):.2f} images/s, mean "
            f"{statistics.fmean(ok):.2f} over {len(ok)} rounds; vs before, round by round: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + f"; CPU s per image median {statistics.median(cpus[name]):.3f}"
        )


if __name__ == "__main__":
    main()

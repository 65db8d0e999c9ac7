"""Time the synthetic batch generator on a ~200-still batch.

    .venv/bin/python benchmarks/bench_generate.py [--patients 30] [--seed 0] [--workers 2]

Prints stills, clips, members, seconds and stills per second (plus the zip size). Rendering and
encoding run in `--workers` processes; the output bytes do not depend on the worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from casbusi_assets.synthetic import generate_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 40 patients give about 200 stills with the default proportions.
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        def cpu() -> float:
            # CPU seconds of this process and its workers: robust to other load on the machine.
            me, kids = (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
            return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

        c0 = cpu()
        t0 = time.perf_counter()
        f = generate_batch(
            Path(tmp), 0, patients=args.patients, seed=args.seed, workers=args.workers
        )
        seconds = time.perf_counter() - t0
        cpu_seconds = cpu() - c0
        result = {
            "patients": args.patients,
            "workers": args.workers,
            "stills": f.n_images,
            "clips": f.n_videos,
            "members": f.n_members,
            "seconds": round(seconds, 2),
            "stills_per_second": round(f.n_images / seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "cpu_ms_per_still": round(1000 * cpu_seconds / f.n_images, 1),
            "zip_mb": round(f.zip_path.stat().st_size / 1e6, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

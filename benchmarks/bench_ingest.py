"""Ingest throughput: `casbusi run-batch --select dicom_catalog,image_table` vs a naive baseline.

The baseline works the way the original CASBUSI tool did: extract the whole zip to disk, then a
thread pool that runs a full `pydicom.dcmread` on every file, flattens its tags into a dict, and
writes each still image with `cv2.imwrite` at its default PNG settings. Both run on the same
generated batch, in the same invocation, each in its own subprocess (for a clean peak-RSS figure).

    .venv/bin/python benchmarks/bench_ingest.py [--images 500] [--seed 11] [--repeat 1]

Prints a markdown table; the latest figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _baseline(zip_path: Path, work: Path) -> dict:
    """The original tool's approach; returns counts and seconds."""
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np
    import pydicom

    started = time.perf_counter()
    raw = work / "unzipped"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(raw)
    out = work / "images"
    out.mkdir()
    files = [p for p in raw.rglob("*") if p.is_file()]

    def one(path: Path) -> str:
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            return "error"
        row = {}
        for elem in ds:
            if elem.keyword == "PixelData":
                continue
            if elem.VR == "SQ":
                if len(elem.value):
                    for sub in elem.value[0]:
                        row[sub.keyword] = str(sub.value)
            else:
                row[elem.keyword] = str(elem.value)
        if "PixelData" not in ds or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return "other"
        try:
            arr = ds.pixel_array
        except Exception:
            return "error"
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(out / f"{ds.SOPInstanceUID}.png"), arr)
        return "image"

    with ThreadPoolExecutor() as pool:
        results = list(pool.map(one, files))
    return {"seconds": time.perf_counter() - started, "images": results.count("image")}


def _ours(zip_path: Path, home: Path) -> dict:
    from casbusi_assets.home import layout
    from casbusi_assets.runner import run_batch

    started = time.perf_counter()
    run_batch(zip_path, layout(home), select=["dicom_catalog", "image_table"], echo=lambda m: None)
    seconds = time.perf_counter() - started
    from casbusi_assets import warehouse

    images = warehouse.read_batch(home / "warehouse", "image_table", zip_path.stem)
    return {"seconds": seconds, "images": int((images["status"] == "ok").sum())}


def _child(mode: str, zip_path: str, work: str) -> None:
    fn = _baseline if mode == "baseline" else _ours
    result = fn(Path(zip_path), Path(work))
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run_child(mode: str, zip_path: Path, work: Path) -> dict:
    env = dict(os.environ, CASBUSI_HOME=str(work))
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(zip_path), str(work)],
        check=True, capture_output=True, text=True, env=env, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ZIP", "WORK"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    from casbusi_assets.synthetic import generate_batches

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        # The default generator mix averages ~6 stills per patient.
        patients = max(1, round(args.images / 6))
        files = generate_batches(tmp / "in", batches=1, patients=patients, seed=args.seed)
        zip_path = files[0].zip_path
        mb = zip_path.stat().st_size / 1e6
        rows = []
        for i in range(args.repeat):
            for mode in ("baseline", "casbusi"):
                work = tmp / f"{mode}_{i}"
                work.mkdir()
                r = _run_child(mode, zip_path, work)
                rows.append((mode, r))
                shutil.rmtree(work, ignore_errors=True)
        print(f"batch: {files[0].n_images} stills, {files[0].n_videos} clips, "
              f"{files[0].n_members} members, {mb:.1f} MB zip; {os.cpu_count()} cores\n")
        print("| run | seconds | images | images/s | zip MB/s | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for mode, r in rows:
            print(f"| {mode} | {r['seconds']:.1f} | {r['images']} | "
                  f"{r['images'] / r['seconds']:.1f} | {mb / r['seconds']:.1f} | "
                  f"{r['max_rss_mb']:.0f} |")
        base = [r["seconds"] for m, r in rows if m == "baseline"]
        ours = [r["seconds"] for m, r in rows if m == "casbusi"]
        print(f"\nspeed-up (baseline seconds / casbusi seconds, median): "
              f"{sorted(base)[len(base) // 2] / sorted(ours)[len(ours) // 2]:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

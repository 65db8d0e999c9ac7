"""Ingest throughput: `casbusi run-batch --select dicom_catalog,image_table` vs a naive baseline.

Three runs: `casbusi` is the real CLI path (a Dagster run: catalog with hashes, DICOM-JSON
headers and validation, then the PNG export, Parquet tables); `casbusi-core` calls the same domain
functions without Dagster, to show the orchestration overhead. The baseline works the way the original CASBUSI tool did: extract the whole zip to disk, then a
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
    from casbusi_assets.runner import run_batch
    from casbusi_assets.storage.home import layout

    started = time.perf_counter()
    run_batch(zip_path, layout(home), select=["dicom_catalog", "image_table"], echo=lambda m: None)
    seconds = time.perf_counter() - started
    from casbusi_assets.storage import warehouse

    images = warehouse.read_batch(home / "warehouse", "image_table", zip_path.stem)
    return {"seconds": seconds, "images": int((images["status"] == "ok").sum())}


def _core(zip_path: Path, work: Path) -> dict:
    """casbusi's domain functions without Dagster: shows the orchestration overhead."""
    from casbusi_assets.ingest.catalog import catalog_zip
    from casbusi_assets.ingest.zip_members import ZipLimits
    from casbusi_assets.pixels.batch import export_images
    from casbusi_assets.storage.file_staging import staged_batch_dir

    started = time.perf_counter()
    catalog = catalog_zip(zip_path, "bench", workers=2)
    with staged_batch_dir(work, "image_table", "bench") as staged:
        images = export_images(zip_path, catalog, staged, ZipLimits(), workers=2)
    return {
        "seconds": time.perf_counter() - started,
        "images": int((images["status"] == "ok").sum()),
    }


def _member_counts(zip_path: Path) -> int:
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        return sum(1 for i in zf.infolist() if not i.is_dir())


def _child(mode: str, zip_path: str, work: str) -> None:
    fn = {"baseline": _baseline, "casbusi": _ours, "casbusi-core": _core}[mode]
    result = fn(Path(zip_path), Path(work))
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["max_rss_mb"] = max(me.ru_maxrss, kids.ru_maxrss) / 1024
    # CPU seconds (this process and its workers) are far less sensitive to other load than wall
    # time on a shared 2-core machine.
    result["cpu_seconds"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps(result))


def _run_child(mode: str, zip_path: Path, work: Path) -> dict:
    env = dict(os.environ, CASBUSI_HOME=str(work))
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(zip_path), str(work)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--zip", help="use this batch zip instead of generating one")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ZIP", "WORK"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        if args.zip:
            zip_path = Path(args.zip).resolve()
        else:
            # The default generator mix averages ~4.9 stills per patient. Generate in a child
            # process: Linux carries a parent's peak RSS over into the children it starts.
            patients = max(1, round(args.images / 4.9))
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "casbusi"),
                    "generate",
                    str(tmp / "in"),
                    "--batches",
                    "1",
                    "--patients",
                    str(patients),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                capture_output=True,
            )
            zip_path = tmp / "in" / "batch_001.zip"
        mb = zip_path.stat().st_size / 1e6
        cat_counts = _member_counts(zip_path)
        rows = []
        for i in range(args.repeat):
            for mode in ("baseline", "casbusi", "casbusi-core"):
                work = tmp / f"{mode}_{i}"
                work.mkdir()
                r = _run_child(mode, zip_path, work)
                r["load"] = os.getloadavg()[0]
                rows.append((mode, r))
                shutil.rmtree(work, ignore_errors=True)
        print(f"batch: {cat_counts} members, {mb:.1f} MB zip; {os.cpu_count()} cores\n")
        print("| run | wall s | CPU s | images | images/s | zip MB/s | peak RSS MB | load |")
        print("|---|---|---|---|---|---|---|---|")
        for mode, r in rows:
            print(
                f"| {mode} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['images']} | "
                f"{r['images'] / r['seconds']:.1f} | {mb / r['seconds']:.1f} | "
                f"{r['max_rss_mb']:.0f} | {r['load']:.1f} |"
            )

        def median(mode: str, key: str) -> float:
            values = sorted(r[key] for m, r in rows if m == mode)
            return values[len(values) // 2]

        for key, label in (("seconds", "wall"), ("cpu_seconds", "CPU")):
            base, ours = median("baseline", key), median("casbusi", key)
            core = median("casbusi-core", key)
            print(
                f"\nmedian {label} seconds: baseline {base:.1f}, casbusi {ours:.1f} "
                f"({base / ours:.2f}x), casbusi-core {core:.1f} ({base / core:.2f}x)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

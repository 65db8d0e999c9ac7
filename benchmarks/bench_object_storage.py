"""Local home vs s3:// (moto on loopback): what the object-storage path costs per operation.

Side by side in one run, alternating local / s3 per repeat (median of the repeats), so machine
load falls on both alike. moto (its own process) is an S3 server on loopback: the figures are the
cost of the fsspec/s3fs path and the HTTP round trips, not of a real S3 region's latency.

    .venv/bin/python benchmarks/bench_object_storage.py [--files 200] [--batches 10] [--repeats 3]

Operations: commit a batch folder of PNGs (local: rename; s3: upload), read every PNG back by its
recorded path (storage.files.read_image), write one table's batches, read them all back, and one
SQL aggregate over the view (`warehouse.query`): the first one in a fresh catalog creates
every table's view, the second finds them.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.storage import warehouse
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.files import data_path, list_files, read_image


def _pngs(n: int, seed: int = 5) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # speckle-like texture at a typical capture size: PNG ~ 150-250 KB
        img = (rng.rayleigh(40, (480, 640)).clip(0, 255)).astype(np.uint8)
        out.append(cv2.imencode(".png", img)[1].tobytes())
    return out


def _rows(batch: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "batch_id": [batch] * n,
            "patient_id": [f"{i:08d}" for i in range(n)],
            "accession_number": [f"A{i % 97}" for i in range(n)],
            "breast": ["LEFT" if i % 2 else "RIGHT" for i in range(n)],
            "has_malignant": [bool(i % 3) for i in range(n)],
            "lesion_count": [i % 5 for i in range(n)],
        }
    )


def one_round(root: str, catalog: Path, pngs: list[bytes], batches: int) -> dict[str, float]:
    t: dict[str, float] = {}
    files_root, wh = data_path(root) / "files", data_path(root) / "warehouse"
    start = time.perf_counter()
    with staged_batch_dir(files_root, "image_table", "b1") as staged:
        for i, data in enumerate(pngs):
            (staged.staging / f"{i:05d}.png").write_bytes(data)
    t["commit PNG folder"] = time.perf_counter() - start

    paths = list_files(files_root / "image_table" / "b1", "*.png")
    start = time.perf_counter()
    assert all(read_image(p) is not None for p in paths)
    t["read every PNG"] = time.perf_counter() - start

    start = time.perf_counter()
    for b in range(batches):
        warehouse.write_batch(wh, "breast_table", f"b{b:03d}", _rows(f"b{b:03d}", 2000))
    t["write table batches"] = time.perf_counter() - start

    start = time.perf_counter()
    assert len(warehouse.read_all_batches(wh, "breast_table")) == 2000 * batches
    t["read all batches"] = time.perf_counter() - start

    start = time.perf_counter()
    df = warehouse.query(
        catalog, wh, "SELECT batch_id, count(*) n FROM breast_table GROUP BY 1 ORDER BY 1"
    )
    assert len(df) == batches
    t["first SQL (creates every view)"] = time.perf_counter() - start

    start = time.perf_counter()
    df = warehouse.query(
        catalog, wh, "SELECT batch_id, count(*) n FROM breast_table GROUP BY 1 ORDER BY 1"
    )
    assert len(df) == batches
    t["SQL again (views exist)"] = time.perf_counter() - start
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    # moto in its own process: a threaded server in this one would share the GIL with the client
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex((host, port)) != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("moto_server did not start")
        time.sleep(0.2)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=f"http://{host}:{port}",
    )
    import s3fs

    fs = s3fs.S3FileSystem()
    pngs = _pngs(args.files)
    mb = sum(len(p) for p in pngs) / 1e6
    results: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for kind in ("local", "s3") if r % 2 == 0 else ("s3", "local"):
                    tag = uuid.uuid4().hex[:8]
                    if kind == "s3":
                        fs.mkdir(f"bench-{tag}")
                        root = f"s3://bench-{tag}/lake"
                    else:
                        root = str(Path(tmp) / f"local-{tag}")
                    catalog = Path(tmp) / f"catalog-{tag}.duckdb"
                    results[kind].append(one_round(root, catalog, pngs, args.batches))
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"{args.files} PNGs ({mb:.1f} MB), {args.batches} batches x 2000 rows, "
        f"median of {args.repeats} (local / s3 alternating)\n"
    )
    print("| operation | local (s) | s3 on moto (s) | ratio |")
    print("|---|---|---|---|")
    for op in results["local"][0]:
        loc = statistics.median(x[op] for x in results["local"])
        rem = statistics.median(x[op] for x in results["s3"])
        print(f"| {op} | {loc:.3f} | {rem:.3f} | {rem / loc:.1f}x |")


if __name__ == "__main__":
    main()

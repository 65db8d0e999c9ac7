"""Export time and size: `export_splits`' domain path on an ingested home, against a bare floor.

Two runs per repeat, each in its own subprocess (peak RSS is per run), interleaved:

- **casbusi**: `export_home` as the asset runs it (DuckDB query over every batch, filters,
  splits, crop + PNG encode + SHA-256 of every file in a thread pool, manifest, TrainData, data
  card, secret scan, read-only files, atomic rename), into a scratch exports folder;
- **floor**: the same list of exported files (taken from the casbusi run's manifest), each read
  with OpenCV, cropped and written with `cv2.imwrite` in a thread pool of the same size — the
  pixel work alone, with no query, hashing, manifest or checks.

    .venv/bin/python benchmarks/bench_export.py --home HOME [--repeat 3] [--workers 2]
    .venv/bin/python benchmarks/bench_export.py --home HOME --replicate-to BIG --images 1000

`--replicate-to` builds a bigger home from an ingested one: every batch copied as new batches
(hard-linked files, patient / accession / SOP identifiers re-keyed with a replica suffix) until
the home holds at least `--images` stills, then benchmarks that home. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ID_COLUMNS = (
    "patient_id",
    "accession_number",
    "sop_instance_uid",
    "study_instance_uid",
    "duplicate_of",
    "twin_of",
    "global_key",
)


def replicate(src: Path, dst: Path, min_images: int) -> int:
    """Copy `src`'s batches into `dst` as re-keyed replicas until it holds >= min_images stills."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from casbusi_assets.storage import warehouse
    from casbusi_assets.storage.home import HomeLayout

    src_home, dst_home = HomeLayout(src), HomeLayout(dst).create()
    batches = sorted(
        p.name.split("=", 1)[1] for p in (src_home.warehouse / "image_table").glob("batch_id=*")
    )
    per_copy = sum(
        pq.read_metadata(
            warehouse.batch_dir(src_home.warehouse, "image_table", b) / "data.parquet"
        ).num_rows
        for b in batches
    )
    copies = -(-min_images // per_copy)
    for r in range(copies):
        for b in batches:
            nb = f"{b}_r{r:02d}"
            for asset_dir in src_home.files.iterdir():
                if (asset_dir / b).is_dir():
                    target = dst_home.files / asset_dir.name / nb
                    if not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        subprocess.run(["cp", "-al", str(asset_dir / b), str(target)], check=True)
            for table in warehouse.tables_present(src_home.warehouse):
                path = warehouse.batch_dir(src_home.warehouse, table, b) / "data.parquet"
                if not path.is_file():
                    continue
                t = pq.read_table(path)
                cols = {}
                for name in t.schema.names:
                    col = t.column(name).to_pylist()
                    if name == "batch_id":
                        col = [nb] * len(col)
                    elif name in ID_COLUMNS:
                        col = [None if v is None else f"{v}-r{r:02d}" for v in col]
                    elif pa.types.is_string(t.schema.field(name).type):
                        col = [
                            v.replace(str(src), str(dst)).replace(f"/{b}/", f"/{nb}/")
                            if isinstance(v, str) and v.startswith(str(src))
                            else v
                            for v in col
                        ]
                    cols[name] = pa.array(col, type=t.schema.field(name).type)
                out = warehouse.batch_dir(dst_home.warehouse, table, nb)
                out.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pydict(cols, schema=t.schema), out / "data.parquet")
    warehouse.refresh_views(dst_home.catalog, dst_home.warehouse)
    return copies * per_copy


def _folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def child_casbusi(home: Path, workers: int, scratch: Path) -> dict:
    from casbusi_assets.export.config import ExportConfig
    from casbusi_assets.export.inputs import load_inputs
    from casbusi_assets.export.writer import write_export
    from casbusi_assets.storage.home import HomeLayout

    layout = HomeLayout(home)
    wall, cpu = time.perf_counter(), time.process_time()
    inputs = load_inputs(layout)
    query_s = time.perf_counter() - wall
    result = write_export(scratch, layout.root, inputs, ExportConfig(workers=workers))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_files, size = _folder_size(result.export_dir)
    return {
        "run": "casbusi",
        "wall": wall,
        "cpu": cpu,
        "query_s": query_s,
        "images_considered": len(inputs.images),
        "files": n_files,
        "exported": result.stats["files"],
        "mb": size / 1e6,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "export_dir": str(result.export_dir),
        "manifest_sha256": result.manifest_sha256,
    }


def child_floor(home: Path, workers: int, scratch: Path, manifest: Path) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import pyarrow.parquet as pq

    rows = pq.read_table(
        manifest, columns=["export_path", "source_path", "crop_x", "crop_y", "crop_w", "crop_h"]
    ).to_pylist()

    def one(r: dict) -> None:
        img = cv2.imread(str(home / r["source_path"]), cv2.IMREAD_UNCHANGED)
        x, y, w, h = r["crop_x"], r["crop_y"], r["crop_w"], r["crop_h"]
        target = scratch / r["export_path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), img[y : y + h, x : x + w])

    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, rows))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_files, size = _folder_size(scratch)
    return {
        "run": "floor",
        "wall": wall,
        "cpu": cpu,
        "files": n_files,
        "mb": size / 1e6,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _spawn(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="an ingested home")
    parser.add_argument("--replicate-to", type=Path, help="build a bigger home here first")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=["casbusi", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "casbusi":
        print(json.dumps(child_casbusi(args.home, args.workers, args.scratch)))
        return
    if args.child == "floor":
        print(json.dumps(child_floor(args.home, args.workers, args.scratch, args.manifest)))
        return

    home = args.home.resolve()
    if args.replicate_to:
        n = replicate(home, args.replicate_to.resolve(), args.images)
        print(f"replicated {home} into {args.replicate_to} ({n} stills)", file=sys.stderr)
        home = args.replicate_to.resolve()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        for i in range(args.repeat):
            load = os.getloadavg()[0]
            scratch = Path(tmp) / f"exports_{i}"
            r = _spawn(["--home", str(home), "--child", "casbusi", "--scratch", str(scratch)])
            r["load"] = load
            results.append(r)
            manifest = Path(r["export_dir"]) / "manifest.parquet"
            load = os.getloadavg()[0]
            f = _spawn(
                [
                    "--home",
                    str(home),
                    "--child",
                    "floor",
                    "--scratch",
                    str(Path(tmp) / f"floor_{i}"),
                    "--manifest",
                    str(manifest),
                ]  # fmt: skip
            )
            f["load"] = load
            results.append(f)
            for p in Path(tmp).iterdir():  # exports are read-only files; free the disk
                subprocess.run(["chmod", "-R", "u+w", str(p)], check=True)
                shutil.rmtree(p)
    first = results[0]
    print(
        f"home {home}: {first['images_considered']} stills considered; exported "
        f"{first['exported']}; manifest {first['manifest_sha256'][:16]} (same every run: "
        f"{len({r['manifest_sha256'] for r in results if r['run'] == 'casbusi'}) == 1})"
    )
    print()
    print("| run | wall s | CPU s | files | MB | files/s | peak RSS MB | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['run']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['files']} | {r['mb']:.1f} | "
            f"{r['files'] / r['wall']:.0f} | {r['rss_mb']:.0f} | {r['load']:.1f} |"
        )
    for run in ("casbusi", "floor"):
        walls = [r["wall"] for r in results if r["run"] == run]
        print(f"\nmedian wall {run}: {statistics.median(walls):.1f} s", end="")
    q = [r["query_s"] for r in results if r["run"] == "casbusi"]
    print(f"\nmedian DuckDB query (load_inputs): {statistics.median(q):.2f} s")


if __name__ == "__main__":
    main()

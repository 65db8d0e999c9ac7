"""Peak memory of the ingest against batch size: does RSS stay flat from 200 to 3,000 images?

Each (batch, mode) runs in its own subprocess (bench_ingest.run_child), batches
interleaved so load hits them alike. Two figures per run: the largest single process
(getrusage maxrss of the child and of its workers) and the largest sum over the child's process
tree (Dagster run process + ingest workers, sampled from /proc every 50 ms). Modes:
`casbusi` (`run-batch --select dicom_catalog,image_table,video_table`, a Dagster run) and
`casbusi-core` (the one-pass function alone). Frame policy first + middle.

The batches are cut from one generated 3,195-image batch by whole patients (same member bytes,
realistic 800x600-1280x960 captures): see benchmarks/README.md for the commands.

    nice .venv/bin/python benchmarks/bench_ingest_memory.py \
        /tmp/bench_data/b200/batch_0200.zip /tmp/bench_data/b1000/batch_1000.zip \
        /tmp/bench_data/big/batch_001.zip [--modes casbusi,casbusi-core] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import run_child  # noqa: E402


def _size(zip_path: Path) -> tuple[int, float]:
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    return len(infos), sum(i.file_size for i in infos) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("zips", nargs="+", type=Path)
    parser.add_argument("--modes", default="casbusi,casbusi-core")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_mem_"))
    rows = []
    try:
        for i in range(args.repeat):
            for mode in args.modes.split(","):
                for zip_path in args.zips:
                    work = tmp / f"{mode}_{zip_path.stem}_{i}"
                    work.mkdir()
                    r = run_child(mode, zip_path.resolve(), work)
                    rows.append((zip_path, mode, r))
                    print(f"# {mode} {zip_path.name}: {json.dumps(r)}", file=sys.stderr, flush=True)
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| batch | members | GB uncompressed | mode | images | wall s | "
          "peak RSS MB, largest process | run process / largest worker | "
          "peak RSS MB, process tree |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for zip_path, mode, r in rows:
        members, gb = _size(zip_path)
        print(
            f"| {zip_path.name} | {members} | {gb:.2f} | {mode} | {r.get('images')} | "
            f"{r['wall']:.0f} | {r['max_rss_mb']:.0f} | "
            f"{r['self_rss_mb']:.0f} / {r['workers_rss_mb']:.0f} | {r['tree_rss_mb']:.0f} |"
        )
    for mode in args.modes.split(","):
        runs = [(z, r) for z, m, r in rows if m == mode]
        small, large = runs[0][1], runs[-1][1]
        print(
            f"\n{mode}: largest / smallest batch: largest process "
            f"{large['max_rss_mb'] / small['max_rss_mb']:.2f}x (run process "
            f"{large['self_rss_mb'] / small['self_rss_mb']:.2f}x, largest worker "
            f"{large['workers_rss_mb'] / small['workers_rss_mb']:.2f}x), tree "
            f"{large['tree_rss_mb'] / small['tree_rss_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()

"""Five batches as five concurrent runs through the run queue, against the same five one by one.

What a backfill does: every batch is queued as its own run of `batch_job` (multiprocess
executor), the daemon launches them under `max_concurrent_runs`, and the pools in dagster.yaml
keep the core-hungry steps one at a time. The check: every run succeeds, no storage lock error
appears in any run's log, and every batch table holds exactly the five batches.

    .venv/bin/python benchmarks/bench_concurrent_batches.py [--batches 5] [--patients 3]

Both modes run in one invocation, each in a fresh home with its own webserver + daemon
(`casbusi ui`), so the wall times compare like with like on whatever load the machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCK_ERRORS = re.compile(
    r"(could not set lock|IOException|database is locked|Conflicting lock)", re.I
)
BATCH_TABLES = ("dicom_catalog", "image_table", "video_table", "ocr_table", "case_table")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(port: int, timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"webserver on port {port} did not answer in {timeout:.0f} s")


def _prepare_home(home: Path, zips: list[Path], max_runs: int) -> list[str]:
    """A fresh home whose instance allows `max_runs` concurrent runs, with every zip registered
    as a batch partition (as the inbox sensor would), and nothing materialised yet."""
    os.environ["CASBUSI_HOME"] = str(home)
    from casbusi_assets.ingest.sources import batch_key_for, register_zip
    from casbusi_assets.shared.partitions import batch_partitions
    from casbusi_assets.storage.home import HomeLayout, ensure_dagster_home

    layout = HomeLayout(home).create()
    dagster_home = ensure_dagster_home(layout)
    cfg = (dagster_home / "dagster.yaml").read_text()
    cfg = re.sub(r"max_concurrent_runs: \d+", f"max_concurrent_runs: {max_runs}", cfg)
    (dagster_home / "dagster.yaml").write_text(cfg)
    import dagster as dg

    keys = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for z in zips:
            key = batch_key_for(z)
            register_zip(layout, key, z)
            instance.add_dynamic_partitions(batch_partitions.name, [key])
            keys.append(key)
    return keys


def _run_mode(name: str, zips: list[Path], work: Path, max_runs: int) -> dict[str, object]:
    home = work / name
    keys = _prepare_home(home, zips, max_runs)
    port = _free_port()
    env = {**os.environ, "CASBUSI_HOME": str(home), "CASBUSI_INBOX_SETTLE_SECONDS": "3600"}
    ui = subprocess.Popen(
        [str(BIN / "casbusi"), "--home", str(home), "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_server(port)
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        started = time.perf_counter()
        run_ids = {}
        for key in keys:
            for attempt in range(30):  # the code location may still be loading
                try:
                    run_ids[key] = client.submit_job_execution(
                        "batch_job", tags={"dagster/partition": key}
                    )
                    break
                except DagsterGraphQLClientError:
                    if attempt == 29:
                        raise
                    time.sleep(2)
        statuses: dict[str, str] = {}
        while len(statuses) < len(run_ids):
            time.sleep(2)
            for key, rid in run_ids.items():
                status = client.get_run_status(rid).value
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    statuses.setdefault(key, status)
        wall = time.perf_counter() - started
    finally:
        ui.terminate()
        ui.wait(timeout=60)
    return {
        "mode": name,
        "max_concurrent_runs": max_runs,
        "wall_s": round(wall, 1),
        "statuses": statuses,
        "lock_errors": _lock_errors(home, list(run_ids.values())),
        "batches_per_table": _batches_per_table(home),
    }


def _lock_errors(home: Path, run_ids: list[str]) -> int:
    import dagster as dg

    found = 0
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        for rid in run_ids:
            for record in instance.all_logs(rid):
                text = record.user_message or ""
                if record.dagster_event and record.dagster_event.event_specific_data:
                    text += json.dumps(str(record.dagster_event.event_specific_data))
                found += bool(LOCK_ERRORS.search(text))
    return found


def _batches_per_table(home: Path) -> dict[str, int]:
    from casbusi_assets.storage import warehouse

    out = {}
    for table in BATCH_TABLES:
        df = warehouse.query(
            home / "catalog.duckdb",
            home / "warehouse",
            f"SELECT count(DISTINCT batch_id) AS n, count(*) AS rows FROM {table}",
        )
        out[table] = int(df["n"][0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--seed", type=int, default=515)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="casbusi_concurrent_"))
    from casbusi_assets.synthetic import generate_batches

    files = generate_batches(
        work / "zips", batches=args.batches, patients=args.patients, seed=args.seed
    )
    zips = [f.zip_path for f in files]
    images = sum(f.n_images for f in files)
    print(f"{len(zips)} batches, {images} stills, {sum(f.n_videos for f in files)} clips")
    results = [
        _run_mode("concurrent", zips, work, max_runs=args.batches),
        _run_mode("sequential", zips, work, max_runs=1),
    ]
    load = os.getloadavg()[0]
    for r in results:
        print(json.dumps(r))
    ok = all(
        set(r["statuses"].values()) == {"SUCCESS"}
        and r["lock_errors"] == 0
        and set(r["batches_per_table"].values()) == {args.batches}
        for r in results
    )
    seq, con = results[1]["wall_s"], results[0]["wall_s"]
    print(
        f"concurrent {con} s vs sequential {seq} s ({seq / con:.2f}x), load {load:.1f}; "
        f"{'all runs succeeded, no lock errors, every table holds each batch once' if ok else 'FAILED'}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

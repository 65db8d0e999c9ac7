"""Ingest (dicom_catalog + image_table + video_table) against the bare floor and the naive baseline.

Modes, each run in its own subprocess (so peak RSS and CPU are per run), interleaved `--repeat`
times in one invocation so machine load hits every mode alike; medians are reported:

- `floor`: the least any ingest can do. A spawn process pool (one worker per core) reads each
  member straight from the zip, `pydicom.dcmread`, SHA-256 of the member, decodes the still (or
  the first and middle frame of a clip), converts colour to grey and writes PNG with OpenCV's
  default settings. No catalog, no checks, no tables.
- `floor-isal`: the floor with the codecs casbusi uses (zip members inflated by ISA-L, PNGs
  SUB-filtered and deflated by ISA-L, `shared/png.py`): what is left of the gap once both sides
  have the same libraries, i.e. what the catalogue, checks and Dagster cost.
- `naive`: the original CASBUSI tool's way (casbusi-spec.md, section 3): `zipfile.extractall`
  to disk, then a default `ThreadPoolExecutor` over the files: full `dcmread`, every top-level
  tag (first item of sequences) flattened to a dict, SHA-256 of the file read back in 4 KB
  blocks, stills written with `cv2.imwrite` (Doppler kept in colour, otherwise yellow whitened
  and grey), the first and middle frame of clips written in grey, decoded from the same read
  (the original reads a clip's header, then those two frames with highdicom).
- `casbusi`: `casbusi run-batch ZIP --select dicom_catalog,image_table,video_table`, the real
  path: a Dagster run, the one-pass ingest step, Parquet tables, per-batch checks.
- `casbusi-core`: the same one-pass domain function (`pixels.single_pass.ingest_zip`) without
  Dagster: shows what orchestration adds.
- `before` (with `--before DIR`): `casbusi run-batch` of an older checkout (e.g. `git archive`
  of the commit before the one-pass ingest, unpacked in DIR), for the before/after figure.

Wall time is measured by the parent around the whole subprocess (interpreter and imports
included for every mode); CPU is user+sys of the child and its workers; peak RSS is both the
largest single process (getrusage maxrss) and the largest sum over the child's process tree
(sampled from /proc every 50 ms). Run the script with `nice`; children inherit it. The frame
policy is first and middle frame for all modes, as in the issue.

    nice .venv/bin/python benchmarks/bench_ingest.py --zip /tmp/bench_data/b2000/batch_2000.zip \
        --repeat 3 [--modes floor,naive,casbusi,casbusi-core] [--before /tmp/old_main] \
        [--once naive,before]   # modes to run in the first repeat only

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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("floor", "naive", "casbusi", "casbusi-core")  # and floor-isal, on request
SELECT = "dicom_catalog,image_table,video_table"


# --------------------------------------------------------------------------- floor


_FLOOR_ZIP: dict = {}


def _floor_one(job: tuple[str, str, str]) -> int:
    return _floor_member(job, fast_codecs=False)


def _floor_isal_one(job: tuple[str, str, str]) -> int:
    return _floor_member(job, fast_codecs=True)


def _floor_member(job: tuple[str, str, str], fast_codecs: bool) -> int:
    import hashlib
    import zipfile
    from io import BytesIO

    import cv2
    import pydicom
    from pydicom.pixels import get_decoder

    zip_path, name, out = job
    zf = _FLOOR_ZIP.get(zip_path)
    if zf is None:
        zf = _FLOOR_ZIP[zip_path] = zipfile.ZipFile(zip_path)
    if fast_codecs:  # the codecs casbusi uses: ISA-L inflate, SUB filter + ISA-L deflate
        from casbusi_assets.ingest.zip_members import _inflate_deflated
        from casbusi_assets.shared.png import encode_png

        info = zf.getinfo(name)
        data = _inflate_deflated(zf, info, info.file_size)
        data = zf.read(name) if data is None else data
    else:
        data = zf.read(name)
    hashlib.sha256(data).hexdigest()
    try:
        ds = pydicom.dcmread(BytesIO(data))
        frames = int(ds.get("NumberOfFrames") or 1)
        decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
        written = 0
        for k, i in enumerate(sorted({0, frames // 2})):
            arr, _ = decoder.as_array(ds, index=i)
            if arr.ndim == 3:
                arr = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
            if fast_codecs:
                Path(f"{out}_{k}.png").write_bytes(encode_png(arr))  # grey: no channel order
            else:
                cv2.imwrite(f"{out}_{k}.png", arr)
            written += 1
        return written
    except Exception:  # noqa: BLE001 - junk members: skipped, as the floor does no catalog
        return 0


def _floor(zip_path: Path, work: Path, one=None) -> dict:
    import multiprocessing
    import zipfile
    from concurrent.futures import ProcessPoolExecutor

    out = work / "png"
    out.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    jobs = [(str(zip_path), n, str(out / f"{k:06d}")) for k, n in enumerate(names)]
    workers = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pngs = sum(pool.map(one or _floor_one, jobs, chunksize=8))
    return {"pngs": pngs}


# --------------------------------------------------------------------------- naive


def _naive(zip_path: Path, work: Path) -> dict:
    import hashlib
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np
    import pydicom
    from pydicom.pixels import get_decoder

    raw = work / "unzipped"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(raw)
    out = work / "png"
    out.mkdir()
    files = [p for p in raw.rglob("*") if p.is_file()]

    def tags(ds) -> dict:
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
        return row

    def one(k_path: tuple[int, Path]) -> int:
        k, path = k_path
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001
            return 0
        tags(ds)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(4096), b""):
                digest.update(block)
        try:
            frames = int(ds.get("NumberOfFrames") or 1)
            if frames == 1:
                arr = ds.pixel_array
                if arr.ndim == 3 and ds.PhotometricInterpretation == "RGB":
                    r, g, b = (arr[..., i].astype(int) for i in range(3))
                    red = ((r - b >= 100) & (r - g >= 100) & (r >= 200)).any()
                    blue = ((b - r >= 100) & (b - g >= 100) & (b >= 200)).any()
                    if red and blue:
                        cv2.imwrite(str(out / f"{k}.png"), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
                        return 1
                    arr = arr.copy()
                    arr[(r == 255) & (g == 255) & (b == 0)] = 255
                    arr = cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_RGB2GRAY)
                elif arr.ndim == 3:
                    arr = cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_RGB2GRAY)
                cv2.imwrite(str(out / f"{k}.png"), arr)
                return 1
            # clips: the original reads the header (stop_before_pixels) for the tags and then
            # only the first and middle frame with highdicom's ImageFileReader (not installed
            # here). The tags are already flattened from the full read above, so the two
            # frames are decoded from that same read: re-reading the file (twice, as an earlier
            # version of this script did) would charge naive for work the original never does.
            decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
            written = 0
            for j, i in enumerate(sorted({0, frames // 2})):
                arr, _ = decoder.as_array(ds, index=i)
                if arr.ndim == 3:
                    arr = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
                cv2.imwrite(str(out / f"{k}_{j}.png"), arr)
                written += 1
            return written
        except Exception:  # noqa: BLE001 - the original prints and drops the file
            return 0

    with ThreadPoolExecutor() as pool:
        pngs = sum(pool.map(one, enumerate(files)))
    return {"pngs": pngs}


# --------------------------------------------------------------------------- casbusi


def _casbusi(zip_path: Path, work: Path) -> dict:
    # The command itself (`casbusi --home W run-batch ZIP --select ...`), in this process so
    # getrusage can tell this process (the Dagster run) from its workers. Its output goes to
    # stderr: the last stdout line is this child's result.
    import contextlib

    from casbusi_assets import cli

    argv = ["--home", str(work), "run-batch", str(zip_path), "--select", SELECT]
    with contextlib.redirect_stdout(sys.stderr):
        if cli.main(argv) != 0:
            raise RuntimeError("casbusi run-batch failed")
    from casbusi_assets.storage import warehouse

    return _counts(warehouse, work / "warehouse", zip_path.stem)


def _counts(warehouse, root: Path, batch: str) -> dict:
    images = warehouse.read_batch(root, "image_table", batch)
    videos = warehouse.read_batch(root, "video_table", batch)
    ok_v = videos["status"] == "ok"
    return {
        "pngs": int((images["status"] == "ok").sum()) + int(videos.loc[ok_v, "saved_frames"].sum()),
        "images": int((images["status"] == "ok").sum()),
    }


def _core(zip_path: Path, work: Path) -> dict:
    from casbusi_assets.pixels.single_pass import ingest_zip
    from casbusi_assets.shared.parallel import WorkerPool
    from casbusi_assets.storage.file_staging import staged_batch_dir

    with (
        WorkerPool(0) as pool,
        staged_batch_dir(work, "image_table", "b") as si,
        staged_batch_dir(work, "video_table", "b") as sv,
    ):
        r = ingest_zip(zip_path, "b", images=si, videos=sv, policy="first_middle", pool=pool)
    ok_v = r.videos["status"] == "ok"
    return {
        "pngs": int((r.images["status"] == "ok").sum())
        + int(r.videos.loc[ok_v, "saved_frames"].sum()),
        "images": int((r.images["status"] == "ok").sum()),
    }


# --------------------------------------------------------------------------- harness


def _child(mode: str, zip_path: str, work: str) -> None:
    fn = {
        "floor": _floor,
        "floor-isal": lambda z, w: _floor(z, w, _floor_isal_one),
        "naive": _naive,
        "casbusi": _casbusi,
        "casbusi-core": _core,
    }[mode]
    result = fn(Path(zip_path), Path(work))
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "casbusi_assets" in sys.modules:  # which checkout ran (PYTHONPATH decides)
        result["code"] = str(Path(sys.modules["casbusi_assets"].__file__).parents[1])
    result["max_rss_mb"] = max(me.ru_maxrss, kids.ru_maxrss) / 1024
    # CPU of this process (for casbusi: imports, Dagster, the step's parent side, the checks)
    # and of its workers
    result["self_cpu"] = me.ru_utime + me.ru_stime
    result["workers_cpu"] = kids.ru_utime + kids.ru_stime
    # which process it is: this one (the Dagster run process for casbusi) or a worker
    result["self_rss_mb"] = me.ru_maxrss / 1024
    result["workers_rss_mb"] = kids.ru_maxrss / 1024
    print(json.dumps(result))
    if mode == "casbusi":
        from casbusi_assets import cli

        # ends as the `casbusi` console script does (cli.run), when this checkout has it
        getattr(cli, "exit_promptly", sys.exit)(0)


def _tree_rss_kb(root_pid: int) -> int:
    """Sum of VmRSS over root_pid and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_child(
    mode: str, zip_path: Path, work: Path, env_extra: dict[str, str] | None = None
) -> dict:
    """Run one mode in a subprocess; wall, peak RSS (single process and tree)."""
    env = dict(
        os.environ,
        CASBUSI_HOME=str(work),
        CASBUSI_FRAME_POLICY="first_middle",
        **(env_extra or {}),
    )
    if mode == "before":
        cmd = [sys.executable, "-m", "casbusi_assets.cli", "--home", str(work), "run-batch"]
        cmd += [str(zip_path), "--select", SELECT]
    else:
        cmd = [sys.executable, __file__, "--child", mode, str(zip_path), str(work)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,  # inherits this script's niceness: run the script with `nice`
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=env.get("BENCH_CWD", str(ROOT)),
    )
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed ({proc.returncode}):\n{err[-3000:]}")
    if mode == "before":
        result = {"pngs": None, "max_rss_mb": None}
    else:
        result = json.loads(out.strip().splitlines()[-1])
    result["wall"] = wall
    result["tree_rss_mb"] = peak[0] / 1024
    result["load"] = os.getloadavg()[0]
    return result


def _cpu_of_children() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", required=False, help="batch zip (default: generate one)")
    parser.add_argument("--images", type=int, default=2000, help="when generating")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--before", help="checkout of an older casbusi to run as mode 'before'")
    parser.add_argument("--once", default="", help="modes to run in the first repeat only")
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
            patients = max(1, round(args.images / 4.9))  # the default mix: ~4.9 stills/patient
            subprocess.run(
                [sys.executable, "-m", "casbusi_assets.cli", "generate", str(tmp / "in")]
                + ["--batches", "1", "--patients", str(patients), "--seed", str(args.seed)],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            zip_path = tmp / "in" / "batch_001.zip"
        modes = args.modes.split(",") + (["before"] if args.before else [])
        once = set(filter(None, args.once.split(",")))
        rows: list[tuple[str, dict]] = []
        for i in range(args.repeat):
            for mode in modes:
                if i and mode in once:
                    continue
                work = tmp / f"{mode}_{i}"
                work.mkdir()
                extra = {}
                if mode == "before":
                    extra = {"PYTHONPATH": args.before, "BENCH_CWD": args.before}
                cpu_before = _cpu_of_children()
                r = run_child(mode, zip_path, work, extra)
                # user+sys of the child and every process under it (all waited for by then)
                r["cpu_seconds"] = _cpu_of_children() - cpu_before
                r["round"] = i
                rows.append((mode, r))
                print(f"# {mode} #{i}: {json.dumps(r)}", file=sys.stderr, flush=True)
                shutil.rmtree(work, ignore_errors=True)
        import zipfile

        with zipfile.ZipFile(zip_path) as zf:
            members = sum(1 for i in zf.infolist() if not i.is_dir())
            raw = sum(i.file_size for i in zf.infolist())
        print(
            f"batch {zip_path.name}: {members} members, {raw / 1e9:.2f} GB uncompressed, "
            f"{zip_path.stat().st_size / 1e9:.2f} GB zip; {os.cpu_count()} cores\n"
        )
        print(
            "| run | wall s | CPU s | PNGs | peak RSS MB, largest process (run / workers) | "
            "peak RSS MB, tree | load |"
        )
        print("|---|---|---|---|---|---|---|")
        for mode, r in rows:
            rss = f"{r['max_rss_mb']:.0f}" if r.get("max_rss_mb") else "n/a"
            if r.get("self_rss_mb"):
                rss += f" ({r['self_rss_mb']:.0f} / {r['workers_rss_mb']:.0f})"
            print(
                f"| {mode} | {r['wall']:.1f} | {r['cpu_seconds']:.1f} | {r.get('pngs') or 'n/a'} | "
                f"{rss} | {r['tree_rss_mb']:.0f} | {r['load']:.1f} |"
            )
        print()
        floor_wall = (
            median([r["wall"] for m, r in rows if m == "floor"]) if "floor" in modes else None
        )
        floor_cpu = (
            median([r["cpu_seconds"] for m, r in rows if m == "floor"])
            if "floor" in modes
            else None
        )
        print("| median | wall s | CPU s | wall / floor | CPU / floor |")
        print("|---|---|---|---|---|")
        for mode in modes:
            w = median([r["wall"] for m, r in rows if m == mode])
            c = median([r["cpu_seconds"] for m, r in rows if m == mode])
            ratio_w = f"{w / floor_wall:.2f}x" if floor_wall else "-"
            ratio_c = f"{c / floor_cpu:.2f}x" if floor_cpu else "-"
            print(f"| {mode} | {w:.1f} | {c:.1f} | {ratio_w} | {ratio_c} |")
        if "floor" in modes:
            # each mode against the floor run of the same round (the load moves between rounds)
            # and against floor-isal's, when it ran (the same codecs on both sides)
            print(
                "\n| round | mode | wall / floor | CPU / floor | wall / floor-isal | CPU / floor-isal |"
            )
            print("|---|---|---|---|---|---|")
            for i in range(args.repeat):
                this = {m: r for m, r in rows if r.get("round") == i}
                base, fast = this.get("floor"), this.get("floor-isal")
                for mode, r in this.items():
                    if base and mode != "floor":
                        vs_fast = (
                            f"{r['wall'] / fast['wall']:.2f}x | "
                            f"{r['cpu_seconds'] / fast['cpu_seconds']:.2f}x"
                            if fast and mode != "floor-isal"
                            else "- | -"
                        )
                        print(
                            f"| {i} | {mode} | {r['wall'] / base['wall']:.2f}x | "
                            f"{r['cpu_seconds'] / base['cpu_seconds']:.2f}x | {vs_fast} |"
                        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

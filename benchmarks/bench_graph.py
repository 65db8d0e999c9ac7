"""Whole graph on CPU: every batch asset of one held-out batch, then the training export.

What `casbusi run-batch ZIP` followed by `casbusi export` (the end of `casbusi demo`) does, run in
a fresh home in its own subprocess, with a sampler in this process reading the subprocess tree's
CPU time and RSS from /proc every 0.2 s (the step process and its worker processes). Per Dagster
step: wall seconds from the run's step stats (`instance.get_run_step_stats`), CPU seconds of the
whole process tree over that window (steps run one after another in-process, so the windows do
not overlap), rows written and images/s. Whole graph: images/s over the batch run, over the batch
run plus the export, and over the subprocess (Python and Dagster start-up included).

"Images" = stills (image_table rows) + clips (video_table rows, one each), as issue 14 counts
"90 stills and 6 clips ... 2.7 images/s"; the saved clip frames are reported beside it.

    nice .venv/bin/python benchmarks/bench_graph.py                 # HEAD, one run
    nice .venv/bin/python benchmarks/bench_graph.py --tree base=/tmp/wt_base --tree head=. \
        --repeat 3                                                  # side by side, alternating

`--tree NAME=DIR` runs the graph from the source tree DIR (PYTHONPATH=DIR, the same venv), so a
`git worktree add /tmp/wt_base <commit>` compares a commit with the working tree in one run.
The batch is generated once (seed 14014, not tuned on) and cached under /tmp/bench_data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CACHE = Path("/tmp/bench_data")
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- the child: one graph run
def child(zip_path: Path, home_root: Path, out: Path) -> None:
    import resource

    import dagster as dg
    import pyarrow.parquet as pq

    import casbusi_assets
    from casbusi_assets.export.assets import run_export
    from casbusi_assets.runner import run_batch
    from casbusi_assets.storage.home import layout

    t_import = time.time()
    home = layout(home_root).create()
    quiet = lambda message: None  # noqa: E731
    t0 = time.time()
    outcome = run_batch(zip_path, home, echo=quiet)
    t1 = time.time()
    export = run_export(home, echo=quiet)
    t2 = time.time()
    steps = []
    with dg.DagsterInstance.get() as instance:
        for run_id, kind in ((outcome.run_id, "batch"), (export.run_id, "export")):
            for s in instance.get_run_step_stats(run_id):
                steps.append(
                    {
                        "step": s.step_key,
                        "run": kind,
                        "start": s.start_time,
                        "end": s.end_time,
                        "status": str(s.status.value if s.status else ""),
                    }
                )
    rows = {}
    for table_dir in (home.warehouse).iterdir():
        f = table_dir / f"batch_id={outcome.batch_id}" / "data.parquet"
        if f.is_file():
            rows[table_dir.name] = pq.read_metadata(f).num_rows
    vt = home.warehouse / "video_table" / f"batch_id={outcome.batch_id}" / "data.parquet"
    frames = 0
    if vt.is_file():
        col = pq.read_table(vt, columns=["saved_frame_indices"]).column(0).to_pylist()
        frames = sum(len(v or []) for v in col)
    manifest = pq.read_metadata(export.export_dir / "manifest.parquet").num_rows
    result = {
        "package": casbusi_assets.__file__,
        "batch_id": outcome.batch_id,
        "t_import": t_import,
        "batch_run": [t0, t1],
        "export_run": [t1, t2],
        "steps": steps,
        "rows": rows,
        "clip_frames": frames,
        "export_files": manifest,
        "maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out.write_text(json.dumps(result))


# ---------------------------------------------------------------- the parent: sample, report
def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _stat(pid: int) -> tuple[float, float, int] | None:
    """(own CPU s, reaped children's CPU s, RSS bytes) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17, rss=24
    own = (int(fields[11]) + int(fields[12])) / CLK
    reaped = (int(fields[13]) + int(fields[14])) / CLK
    return own, reaped, int(fields[21]) * PAGE


class TreeSampler(threading.Thread):
    """Samples (unix time, CPU seconds, RSS bytes) of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()

    def sample(self) -> None:
        cpu, rss = 0.0, 0
        todo, first = [self.pid], True
        while todo:
            pid = todo.pop()
            st = _stat(pid)
            if st is None:
                continue
            # Reaped descendants show up in their parent's cutime/cstime; only the root's is
            # added (a child's reaped grandchildren are already in its own cutime when reaped).
            cpu += st[0] + (st[1] if first else 0.0)
            rss += st[2]
            first = False
            todo += _children(pid)
        self.samples.append((time.time(), cpu, rss))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every)

    def cpu_at(self, t: float) -> float:
        s = self.samples
        if not s:
            return 0.0
        if t <= s[0][0]:
            return s[0][1]
        for (ta, ca, _), (tb, cb, _) in zip(s, s[1:], strict=False):
            if ta <= t <= tb:
                return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 0.0)
        return s[-1][1]

    def peak_rss_mb(self) -> float:
        return max((r for _, _, r in self.samples), default=0) / 2**20


def run_once(tree: Path, zip_path: Path, workdir: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="home_", dir=workdir))
    out = home.parent / f"{home.name}.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for var in ("DAGSTER_HOME", "CASBUSI_HOME"):
        env.pop(var, None)
    log_path = home.parent / f"{home.name}.log"
    started = time.time()
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(zip_path), str(home), str(out)],
            env=env,
            cwd=str(tree),
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.time()
    sampler.stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    log = log_path.read_text(errors="replace")
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"graph run from {tree} failed ({proc.returncode}):\n{log[-4000:]}")
    res = json.loads(out.read_text())
    res["wall_process"] = ended - started
    res["cpu_process"] = usage.ru_utime + usage.ru_stime
    res["peak_rss_tree_mb"] = sampler.peak_rss_mb()
    res["load"] = os.getloadavg()
    for s in res["steps"]:
        s["wall"] = (s["end"] or s["start"]) - s["start"]
        s["cpu"] = sampler.cpu_at(s["end"] or s["start"]) - sampler.cpu_at(s["start"])
    b0, b1 = res["batch_run"]
    e0, e1 = res["export_run"]
    res["cpu_batch_run"] = sampler.cpu_at(b1) - sampler.cpu_at(b0)
    res["cpu_export_run"] = sampler.cpu_at(e1) - sampler.cpu_at(e0)
    res["home"] = str(home)
    return res


def ensure_batch(seed: int, patients: int, tree: Path) -> Path:
    """The cached batch zip; generated once with the generator of `tree` (the first tree, so a
    generator edit in progress elsewhere does not change the batch between runs)."""
    folder = CACHE / f"graph_seed{seed}_p{patients}"
    zip_path = folder / "batch_001.zip"
    if not zip_path.is_file():
        print(f"generating {patients} patients, seed {seed} into {folder} ...", flush=True)
        code = (
            "import os, sys; from pathlib import Path; "
            "from casbusi_assets.synthetic.batch import generate_batch; "
            "generate_batch(Path(sys.argv[1]), 0, patients=int(sys.argv[2]), "
            "seed=int(sys.argv[3]), workers=os.cpu_count() or 1)"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(folder), str(patients), str(seed)],
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=str(tree),  # `-c` puts the cwd first on sys.path
            check=True,
        )
    return zip_path


def _images(res: dict) -> int:
    return res["rows"].get("image_table", 0) + res["rows"].get("video_table", 0)


def table(name: str, runs: list[dict]) -> str:
    """Per-step medians over the runs of one tree, as markdown."""
    n_img = _images(runs[0])
    r0 = runs[0]
    lines = [
        f"**{name}** ({len(runs)} run(s), medians; package {r0['package']}): "
        f"{r0['rows'].get('image_table', 0)} stills + {r0['rows'].get('video_table', 0)} clips "
        f"= {n_img} images ({r0['clip_frames']} clip frames saved)",
        "",
        "| step | wall s | CPU s | CPU/wall | rows | images/s |",
        "|---|---|---|---|---|---|",
    ]
    order = [s["step"] for s in sorted(r0["steps"], key=lambda s: s["start"])]
    for step in order:
        walls = [s["wall"] for r in runs for s in r["steps"] if s["step"] == step]
        cpus = [s["cpu"] for r in runs for s in r["steps"] if s["step"] == step]
        w, c = statistics.median(walls), statistics.median(cpus)
        rows = r0["rows"].get(step, r0["export_files"] if step == "export_splits" else "")
        ips = f"{n_img / w:.1f}" if w > 0 else "-"
        lines.append(f"| {step} | {w:.2f} | {c:.2f} | {c / w if w else 0:.2f} | {rows} | {ips} |")

    def med(f) -> float:
        return statistics.median(f(r) for r in runs)

    batch = med(lambda r: r["batch_run"][1] - r["batch_run"][0])
    export = med(lambda r: r["export_run"][1] - r["export_run"][0])
    proc = med(lambda r: r["wall_process"])
    lines += [
        f"| **batch run** (`run-batch`, all batch assets) | {batch:.2f} | "
        f"{med(lambda r: r['cpu_batch_run']):.2f} | | | **{n_img / batch:.2f}** |",
        f"| **batch run + export** | {batch + export:.2f} | "
        f"{med(lambda r: r['cpu_batch_run'] + r['cpu_export_run']):.2f} | | | "
        f"**{n_img / (batch + export):.2f}** |",
        f"| whole subprocess (imports, start-up) | {proc:.2f} | "
        f"{med(lambda r: r['cpu_process']):.2f} | | | {n_img / proc:.2f} |",
        "",
        f"Peak RSS: process tree {med(lambda r: r['peak_rss_tree_mb']):.0f} MB (sum over the "
        f"step process and its workers, sampled), step process alone "
        f"{med(lambda r: r['maxrss_self_mb']):.0f} MB (ru_maxrss). Load average (1/5/15 min) at "
        "the end of each run: "
        + "; ".join(" / ".join(f"{x:.1f}" for x in r["load"]) for r in runs)
        + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=14014)
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--zip", help="use this batch zip instead of the generated one")
    ap.add_argument(
        "--tree",
        action="append",
        help="NAME=DIR: a source tree to run (repeatable; default: this checkout)",
    )
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", help="also write every run's raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the homes (for comparing outputs)")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree or []]
    trees = trees or [("head", here)]
    zip_path = (
        Path(args.zip).resolve()
        if args.zip
        else ensure_batch(args.seed, args.patients, trees[0][1])
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench_graph_"))
    print(
        f"batch {zip_path} ({zip_path.stat().st_size / 2**20:.0f} MB); {os.cpu_count()} cores; "
        f"load {os.getloadavg()[0]:.1f}; homes under {workdir}",
        flush=True,
    )
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for i in range(args.repeat):
        for name, tree in trees if i % 2 == 0 else list(reversed(trees)):
            res = run_once(tree, zip_path, workdir)
            runs[name].append(res)
            print(
                f"  {name} run {i + 1}: batch {res['batch_run'][1] - res['batch_run'][0]:.1f} s, "
                f"export {res['export_run'][1] - res['export_run'][0]:.1f} s, load "
                f"{res['load'][0]:.1f}",
                flush=True,
            )
    for name, _ in trees:
        print()
        print(table(name, runs[name]))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

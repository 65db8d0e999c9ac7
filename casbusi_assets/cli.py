"""`casbusi`: the command line scripts and users rely on.

    casbusi generate OUT_DIR [--batches N] [--patients N] [--seed S]
    casbusi run-batch ZIP [--select a,b,c]
    casbusi sql "QUERY" [--csv]
    casbusi demo
    casbusi export
    casbusi ui [--port P]
    casbusi delete-batch BATCH
    casbusi refresh-views
    casbusi labels import EXPORT.ndjson [--masks DIR]

`--home DIR` (before the command) or $CASBUSI_HOME chooses the home folder.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import NoReturn

from casbusi_assets.ingest import POOL_PURPOSE
from casbusi_assets.storage.home import HOME_ENV_VAR, HomeLayout, ensure_dagster_home, layout


def _echo(message: str) -> None:
    print(message, flush=True)


def _fail(message: str) -> int:
    print(f"casbusi: error: {message}", file=sys.stderr, flush=True)
    return 1


def cmd_generate(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.synthetic import generate_batches

    out = Path(args.out_dir).expanduser()
    if out.exists() and not out.is_dir():
        return _fail(f"{out} exists and is not a folder; give a folder to write the batches into")
    if args.batches < 1 or args.patients < 1:
        return _fail("--batches and --patients must be at least 1")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create {out}: {exc.strerror}")
    files = generate_batches(
        out, batches=args.batches, patients=args.patients, seed=args.seed, progress=_echo
    )
    for f in files:
        _echo(
            f"{f.zip_path}  ({f.n_images} images, {f.n_videos} clips, {f.n_members} members)"
            f"  truth: {f.truth_path}"
        )
    return 0


# The ingest step's pool and the module its workers run.
INGEST_POOL, INGEST_WORKER_MODULE = POOL_PURPOSE, "casbusi_assets.pixels.member"
INGEST_ASSETS = {"dicom_catalog", "image_table", "video_table"}


def _prestart_ingest_workers(select: list[str] | None) -> None:
    """Start the ingest step's workers before Dagster is even imported: their start-up (spawn
    and ~1 s of imports each) then runs beside this process's ~4-6 s of imports, definitions
    and instance set-up instead of after the step has begun. The step adopts them (same count:
    CASBUSI_WORKERS, as its IngestSettings) and shuts them down when it ends."""
    if select is not None and not INGEST_ASSETS & set(select):
        return
    try:
        workers = int(os.environ.get("CASBUSI_WORKERS", "0") or 0)
    except ValueError:
        return  # the definitions report the bad value
    from casbusi_assets.shared import parallel

    parallel.prestart(INGEST_POOL, workers, INGEST_WORKER_MODULE)


def cmd_run_batch(args: argparse.Namespace, home: HomeLayout) -> int:
    select = [s.strip() for s in args.select.split(",") if s.strip()] if args.select else None
    _prestart_ingest_workers(select)
    from casbusi_assets.runner import RunBatchError, run_batch
    from casbusi_assets.shared import parallel

    try:
        outcome = run_batch(Path(args.zip), home, select=select, echo=_echo)
    except RunBatchError as exc:
        return _fail(str(exc))
    finally:
        parallel.discard_prestarted(INGEST_POOL)  # when no step took it (failed early)
    _echo(
        f"batch {outcome.batch_id}: materialised {len(outcome.materialized)} asset(s) in "
        f"{outcome.seconds:.1f} s (run {outcome.run_id})"
    )
    return 0


def cmd_sql(args: argparse.Namespace, home: HomeLayout) -> int:
    import duckdb

    from casbusi_assets.storage import warehouse

    try:
        df = warehouse.query(home.catalog, home.warehouse, args.query)
    except (duckdb.Error, FileNotFoundError) as exc:
        return _fail(str(exc).splitlines()[0])
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    else:
        import pandas as pd

        with pd.option_context(
            "display.max_rows",
            args.max_rows,
            "display.max_columns",
            None,
            "display.width",
            shutil.get_terminal_size().columns,
            "display.max_colwidth",
            60,
        ):
            print(df.to_string(index=False, max_rows=args.max_rows) if len(df) else "(no rows)")
            if len(df) > args.max_rows:
                print(f"({len(df)} rows; use --csv for all)")
    return 0


def cmd_delete_batch(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.runner import UnknownBatchError, delete_batch

    try:
        removed = delete_batch(home, args.batch)
    except UnknownBatchError as exc:
        return _fail(str(exc))
    _echo(
        f"batch {args.batch}: removed from {removed['tables']} table(s) and "
        f"{removed['file_folders']} file folder(s)"
        + (f" and {removed['label_masks']} label mask(s)" if removed.get("label_masks") else "")
        + "; partition deleted"
    )
    return 0


def cmd_refresh_views(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.storage import warehouse

    created = warehouse.refresh_views(home.catalog, home.warehouse)
    _echo(f"views in {home.catalog}: {', '.join(created) or '(no tables yet)'}")
    return 0


def cmd_labels_import(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.definitions import build_definitions
    from casbusi_assets.labelling.assets import import_labels

    masks = Path(args.masks) if args.masks else None
    defs = build_definitions(str(home.root))
    return import_labels(home, Path(args.export), masks, defs, echo=_echo, fail=_fail)


def cmd_demo(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.demo import run_demo

    return run_demo(home, batches=args.batches, patients=args.patients, seed=args.seed, echo=_echo)


def cmd_export(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.export.assets import ExportRunError, run_export

    try:
        outcome = run_export(home, echo=_echo)
    except ExportRunError as exc:
        return _fail(str(exc))
    _echo(f"export written to {outcome.export_dir} in {outcome.seconds:.1f} s")
    for line in outcome.summary:
        _echo(f"  {line}")
    _echo(f"data card: {outcome.export_dir / 'README.md'}")
    return 0


def cmd_ui(args: argparse.Namespace, home: HomeLayout) -> int:
    from casbusi_assets.shared.processes import supervise

    dagster_home = ensure_dagster_home(home)
    # Webserver and daemon as two supervised processes (what `dagster dev` does, without its
    # deprecation warning): `kill` or Ctrl-C of this command stops both and their code servers.
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: casbusi_assets.definitions\n"
        "      location_name: casbusi_assets\n"
    )
    bin_dir = Path(sys.executable).parent

    def tool(name: str) -> str:
        return str(bin_dir / name) if (bin_dir / name).exists() else name

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), HOME_ENV_VAR: str(home.root)}
    commands = [
        [tool("dagster-webserver"), "-h", args.host, "-p", str(args.port), "-w", str(workspace)],
        [tool("dagster-daemon"), "run", "-w", str(workspace)],
    ]
    _echo(f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={dagster_home})")
    _echo("the daemon runs the inbox sensor and the run queue; Ctrl-C or `kill` stops both")
    # Run from DAGSTER_HOME so Dagster reads that dagster.yaml, not a stray one in the cwd.
    code = supervise(commands, cwd=dagster_home, env=env)
    return 0 if code in (128 + 2, 128 + 15) else code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casbusi", description=__doc__.split("\n")[0])
    parser.add_argument("--home", help=f"home folder (default: ${HOME_ENV_VAR} or ./casbusi_home)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write synthetic Mayo-style batch zips with ground truth")
    p.add_argument("out_dir")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--patients", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run-batch", help="ingest one zip: add its partition and materialise it")
    p.add_argument("zip")
    p.add_argument("--select", help="comma-separated asset names (default: every batch asset)")
    p.set_defaults(func=cmd_run_batch)

    p = sub.add_parser("sql", help="query the catalog (read-only)")
    p.add_argument("query")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("--max-rows", type=int, default=50)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("demo", help="generate batches, run the whole graph, print a report")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--patients", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "export", help="write a training export of every batch to <home>/exports/<export_id>/"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this home")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("delete-batch", help="remove a batch's rows, files and partition")
    p.add_argument("batch", help="the batch key, e.g. batch_001")
    p.set_defaults(func=cmd_delete_batch)

    p = sub.add_parser("refresh-views", help="recreate the DuckDB views (e.g. after moving home)")
    p.set_defaults(func=cmd_refresh_views)

    labels = sub.add_parser("labels", help="labels from Labelbox").add_subparsers(
        dest="labels_command", required=True
    )
    p = labels.add_parser("import", help="archive a Labelbox export (NDJSON) as a labels version")
    p.add_argument("export", help="the export file (one data row per line)")
    p.add_argument("--masks", help="folder of mask PNGs named <feature_id>.png / <mask id>.png")
    p.set_defaults(func=cmd_labels_import)
    return parser


READ_ONLY_COMMANDS = {"sql", "delete-batch"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.home:
        # Set before definitions are imported: they read the home from the environment.
        os.environ[HOME_ENV_VAR] = str(Path(args.home).expanduser().resolve())
    home = layout()
    # Read-only commands must not create a home tree where there is none.
    if args.command not in READ_ONLY_COMMANDS:
        home.create()
    return args.func(args, home)


def exit_promptly(code: int) -> NoReturn:
    """Leave the process now that the command is done, without Python's module-by-module
    teardown.

    After a Dagster run the interpreter's own shutdown (every module of dagster, pandas,
    pydicom, ... torn down one by one) took 1.1 s, on every command. By the time a command
    returns, every table, file and run record it wrote is committed and closed, so this runs
    the atexit handlers (logging, worker pools, temporary folders), flushes the output and ends
    the process with os._exit. While any non-daemon thread is still alive, or where CPython's
    atexit runner is missing, it exits the normal way instead."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if run_exit_handlers is None or any(not t.daemon for t in others):
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        # a closed or broken pipe: nothing more can be said
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run() -> NoReturn:
    """The `casbusi` command (the console script): `main`, then `exit_promptly`."""
    exit_promptly(main())


if __name__ == "__main__":
    run()

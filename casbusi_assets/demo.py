"""`casbusi demo`: synthetic batches through the whole asset graph, then a short report."""

from __future__ import annotations

from collections.abc import Callable

from casbusi_assets.storage import warehouse
from casbusi_assets.storage.home import HomeLayout


def _table_counts(home: HomeLayout) -> str:
    tables = warehouse.tables_present(home.warehouse)
    if not tables:
        return "  (no tables)"
    lines = []
    for table in tables:
        df = warehouse.query(
            home.catalog,
            home.warehouse,
            f"SELECT batch_id, count(*) AS n FROM {table} GROUP BY batch_id ORDER BY batch_id",
        )
        per_batch = ", ".join(f"{r.batch_id}: {r.n}" for r in df.itertuples())
        lines.append(f"  {table:<18} {int(df['n'].sum()):>6} rows  ({per_batch})")
    return "\n".join(lines)


def _quarantine(home: HomeLayout) -> str:
    df = warehouse.query(
        home.catalog,
        home.warehouse,
        "SELECT batch_id, member_path, error_code, error FROM dicom_catalog "
        "WHERE status = 'quarantined' ORDER BY batch_id, member_path",
    )
    if df.empty:
        return "  (none)"
    return "\n".join(
        f"  {r.batch_id}  {r.member_path}\n      {r.error_code}: {r.error}" for r in df.itertuples()
    )


def _kinds(home: HomeLayout) -> str:
    df = warehouse.query(
        home.catalog,
        home.warehouse,
        "SELECT kind, count(*) AS n FROM dicom_catalog WHERE status = 'ok' "
        "GROUP BY kind ORDER BY kind",
    )
    return ", ".join(f"{r.kind}: {r.n}" for r in df.itertuples())


def run_demo(
    home: HomeLayout,
    batches: int = 2,
    patients: int = 8,
    seed: int = 7,
    echo: Callable[[str], None] = print,
) -> int:
    from casbusi_assets.runner import RunBatchError, run_batch
    from casbusi_assets.synthetic import generate_batches

    inputs = home.root / "demo_inputs"
    echo(f"== generating {batches} synthetic batch(es) of {patients} patients into {inputs}")
    files = generate_batches(inputs, batches=batches, patients=patients, seed=seed)
    for f in files:
        echo(f"== ingesting {f.zip_path.name} ({f.n_members} members)")
        try:
            outcome = run_batch(f.zip_path, home, echo=echo)
        except RunBatchError as exc:
            echo(f"casbusi demo: {exc}")
            return 1
        echo(
            f"   {outcome.batch_id}: {len(outcome.materialized)} assets in {outcome.seconds:.1f} s"
        )

    echo("\n== report")
    echo(f"home: {home.root}")
    echo(f"DICOM members by kind (ok): {_kinds(home)}")
    echo("tables (query them with `casbusi sql`, or duckdb on the catalog):")
    echo(_table_counts(home))
    echo("quarantined members:")
    echo(_quarantine(home))
    echo("files:")
    for asset in sorted(p.name for p in home.files.iterdir() if p.is_dir()):
        n = sum(1 for _ in (home.files / asset).rglob("*.png"))
        echo(f"  {home.files / asset}  ({n} PNG files)")
    echo(f"catalog: {home.catalog}")
    echo('try:     casbusi sql "SELECT kind, count(*) FROM dicom_catalog GROUP BY kind"')
    echo("UI:      make ui   then open http://127.0.0.1:3000 (asset graph, partitions, lineage)")
    return _export(home, echo)


def _export(home: HomeLayout, echo: Callable[[str], None]) -> int:
    """The demo ends as a researcher's day does: with a training export of every batch."""
    from casbusi_assets.export.assets import ExportRunError, run_export

    echo("\n== training export (export_splits, every batch)")
    try:
        outcome = run_export(home, echo=echo)
    except ExportRunError as exc:
        echo(f"casbusi demo: {exc}")
        return 1
    echo(f"export:  {outcome.export_dir}  ({outcome.seconds:.1f} s)")
    for line in outcome.summary:
        echo(f"  {line}")
    echo(f"data card: {outcome.export_dir / 'README.md'}   (again: casbusi export)")
    return 0

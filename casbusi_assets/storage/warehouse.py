"""Tables as one Parquet file per (table, batch), with DuckDB views over them.

Runs only ever write Parquet files (atomically: temp file, then rename), so any number of runs can
write in parallel without DuckDB's single-writer lock. `<home>/catalog.duckdb` holds one view per
table over all of its batch files; a view is created once, when the table's first batch lands, and
sees later batches and added columns by itself (`union_by_name`).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from casbusi_assets.storage.schemas import TABLE_SCHEMAS

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
PARQUET_NAME = "data.parquet"


class SchemaMismatchError(ValueError):
    """An asset produced columns its table schema does not declare."""


def batch_dir(warehouse: Path, table: str, batch_id: str) -> Path:
    return warehouse / table / f"batch_id={batch_id}"


def conform(df: pd.DataFrame, schema: pa.Schema, table: str) -> pa.Table:
    """Order, add (as nulls) and cast columns to the table's schema.

    Unknown columns are an error rather than silently dropped: the schema is the contract users
    query against, so a new column must be declared in storage/schemas.py.
    """
    extra = [c for c in df.columns if c not in schema.names]
    if extra:
        raise SchemaMismatchError(
            f"{table}: columns {extra} are not in its schema; declare them in storage/schemas.py"
        )
    arrays = []
    for field in schema:
        if field.name in df.columns:
            values = df[field.name]
            # pandas' object columns hold None/NaN mixes; let Arrow treat NaN as null.
            arrays.append(
                pa.array(
                    values.tolist() if values.dtype == object else values,
                    type=field.type,
                    from_pandas=True,
                )
            )
        else:
            arrays.append(pa.nulls(len(df), type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_batch(warehouse: Path, table: str, batch_id: str, df: pd.DataFrame) -> Path:
    """Replace the batch's file of `table` atomically; an empty frame still writes a typed file."""
    schema = TABLE_SCHEMAS[table]
    arrow = conform(df, schema, table)
    folder = batch_dir(warehouse, table, batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / PARQUET_NAME
    tmp = folder / f".{PARQUET_NAME}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(arrow, tmp, compression="zstd")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_batch(warehouse: Path, table: str, batch_id: str) -> pd.DataFrame:
    path = batch_dir(warehouse, table, batch_id) / PARQUET_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{table} has no data for batch '{batch_id}' ({path}); materialise it first"
        )
    return pq.read_table(path).to_pandas()


def read_all_batches(warehouse: Path, table: str) -> pd.DataFrame:
    files = sorted((warehouse / table).glob(f"batch_id=*/{PARQUET_NAME}"))
    if not files:
        return conform(pd.DataFrame(), TABLE_SCHEMAS[table], table).to_pandas()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def delete_batch(warehouse: Path, table: str, batch_id: str) -> None:
    folder = batch_dir(warehouse, table, batch_id)
    (folder / PARQUET_NAME).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def tables_present(warehouse: Path) -> list[str]:
    if not warehouse.is_dir():
        return []
    return sorted(
        p.name
        for p in warehouse.iterdir()
        if p.is_dir() and any(p.glob(f"batch_id=*/{PARQUET_NAME}"))
    )


EMPTY_NAME = "_empty.parquet"


def _view_sql(warehouse: Path, table: str) -> str:
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a table name: {table!r}")
    if not any((warehouse / table).glob(f"batch_id=*/{PARQUET_NAME}")):
        # No batch yet (or the last one was deleted): a glob matching no file fails every query,
        # so the view reads a typed empty file instead and answers "no rows".
        target = (warehouse.resolve() / table / EMPTY_NAME).as_posix()
        return f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{target}')"
    # Absolute glob: a relative one would resolve against the *reader's* working directory.
    glob = (warehouse.resolve() / table / f"batch_id=*/{PARQUET_NAME}").as_posix()
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
        f"'{glob}', union_by_name=true, hive_partitioning=false)"
    )


def _write_empty(warehouse: Path, table: str) -> None:
    path = warehouse / table / EMPTY_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{EMPTY_NAME}.{uuid.uuid4().hex}.tmp")
        pq.write_table(conform(pd.DataFrame(), TABLE_SCHEMAS[table], table), tmp)
        os.replace(tmp, path)


def _marker(warehouse: Path, table: str) -> Path:
    return warehouse / table / ".duckdb_view"


def _connect_rw(catalog: Path, attempts: int = 8) -> duckdb.DuckDBPyConnection:
    """Open the catalog for writing, waiting out short locks (another run creating a view)."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(catalog))
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def ensure_views(catalog: Path, warehouse: Path, tables: Iterable[str]) -> list[str]:
    """Create the views that are missing or point at another home; return the ones (re)created.

    Each table's marker file records the SQL its view was created with, so the common case (the
    view exists) never opens the catalog and never contends for its lock.
    """
    todo = []
    for table in tables:
        sql = _view_sql(warehouse, table)
        if EMPTY_NAME in sql:
            _write_empty(warehouse, table)
        marker = _marker(warehouse, table)
        if not (catalog.exists() and marker.is_file() and marker.read_text() == sql):
            todo.append((table, sql, marker))
    if not todo:
        return []
    catalog.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_rw(catalog)
    try:
        for _table, sql, _marker_path in todo:
            con.execute(sql)
    finally:
        con.close()
    for _table, sql, marker in todo:
        marker.write_text(sql)
    return [t for t, _, _ in todo]


def refresh_views(catalog: Path, warehouse: Path) -> list[str]:
    """(Re)create every table's view, e.g. after the home folder moved."""
    for table in declared_tables():
        _marker(warehouse, table).unlink(missing_ok=True)
    return ensure_views(catalog, warehouse, declared_tables())


def declared_tables() -> list[str]:
    """Every table the platform declares, whether or not it holds a batch yet."""
    return sorted(TABLE_SCHEMAS)


def query(catalog: Path, warehouse: Path, sql: str) -> pd.DataFrame:
    """Run SQL against the catalog through a read-only connection. Every declared table has a
    view, so a table with no batch (yet, or any more) answers with no rows rather than an error."""
    if not warehouse.is_dir():
        raise FileNotFoundError(
            f"no warehouse at {warehouse}: nothing has been ingested into this home yet "
            "(try `casbusi demo` or `casbusi run-batch ZIP`)"
        )
    ensure_views(catalog, warehouse, declared_tables())
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute(sql).fetchdf()
    finally:
        con.close()

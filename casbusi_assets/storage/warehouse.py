"""Tables as one Parquet file per (table, batch), with DuckDB views over them.

Runs only ever write Parquet files (atomically: temp file, then rename), so any number of runs can
write in parallel without DuckDB's single-writer lock. `<home>/catalog.duckdb` holds one view per
table over all of its batch files; a view is created once, when the table's first batch lands, and
sees later batches and added columns by itself (`union_by_name`).

The warehouse root may also be an object-store URL (`CASBUSI_DATA_URL`, storage/home.py): then a
batch file is one PUT (an object appears whole, so no temp file is needed), the views glob
`s3://...`, and every DuckDB connection that reads them gets the fsspec filesystem registered
(`connect`): DuckDB's httpfs extension is not needed. The catalog stays a local file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from casbusi_assets.storage.files import DataPath, data_path, is_remote
from casbusi_assets.storage.schemas import TABLE_SCHEMAS

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
PARQUET_NAME = "data.parquet"


class SchemaMismatchError(ValueError):
    """An asset produced columns its table schema does not declare."""


def batch_dir(warehouse: DataPath, table: str, batch_id: str) -> DataPath:
    return data_path(warehouse) / table / f"batch_id={batch_id}"


def connect(
    warehouse: DataPath, database: str | Path = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read this warehouse's files: for an object-store warehouse
    its fsspec filesystem is registered on the connection (registrations are per connection)."""
    con = duckdb.connect(str(database), read_only=read_only)
    register_filesystem(con, warehouse)
    return con


def register_filesystem(con: duckdb.DuckDBPyConnection, warehouse: DataPath) -> None:
    """Let `con` read `warehouse`'s URLs (no-op for a local warehouse or if already done)."""
    root = data_path(warehouse)
    if not is_remote(root):
        return
    fs = root.fs
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if any(con.filesystem_is_registered(p) for p in protocols):
        return
    if "s3" in protocols:
        # A fresh instance whose listings are cached for this connection's life only: DuckDB asks
        # each file's size and mtime after globbing, which the glob's listing then answers
        # (measured on moto: 21 requests instead of 151 for a view over 10 batch files).
        fs = type(fs)(
            **{**fs.storage_options, "use_listings_cache": True, "skip_instance_cache": True}
        )
    con.register_filesystem(fs)


def _root_str(warehouse: DataPath) -> str:
    """The warehouse as DuckDB must see it: an absolute posix path (a relative one would resolve
    against the *reader's* working directory), or the URL."""
    root = data_path(warehouse)
    return str(root) if is_remote(root) else root.resolve().as_posix()


def _batch_files(warehouse: DataPath, table: str) -> list[DataPath]:
    """The table's batch files, sorted by batch folder."""
    root = data_path(warehouse)
    if is_remote(root):
        return [root / rel for rel in _remote_batch_keys(root, table)]
    return sorted((root / table).glob(f"batch_id=*/{PARQUET_NAME}"))


_BATCH_KEY = re.compile(rf"^([^/]+)/batch_id=[^/]+/{re.escape(PARQUET_NAME)}$")


def _remote_has_batches(root: DataPath, table: str) -> bool:
    """Whether a table has a batch file: its `batch_id=` folders, from one delimited listing
    (delete_batch removes every object of a batch folder, so a folder means a file)."""
    try:
        names = root.fs.ls((root / table).path, detail=False)
    except FileNotFoundError:
        return False
    return any(n.rstrip("/").rsplit("/", 1)[-1].startswith("batch_id=") for n in names)


def _remote_batch_keys(root: DataPath, table: str | None = None) -> list[str]:
    """`<table>/batch_id=<b>/data.parquet` keys under an object-store warehouse, from one
    recursive listing (a glob walks the prefixes level by level: one request per folder)."""
    base = (root / table).path if table else root.path
    prefix = root.path.rstrip("/")
    try:
        found = root.fs.find(base)
    except FileNotFoundError:
        return []
    rels = (f[len(prefix) :].lstrip("/") for f in found)
    return sorted(r for r in rels if _BATCH_KEY.match(r))


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


def _write_remote(arrow: pa.Table, path: DataPath) -> None:
    # One object, created when the stream closes: readers see the old file or the new one.
    with path.fs.open(path.path, "wb") as fh:
        pq.write_table(arrow, fh, compression="zstd")


# Rows converted and encoded at a time (one Parquet row group each): converting a whole batch
# at once held the Arrow copy and the encoder's buffers of every row together (a 3,557-member
# catalog, DICOM-JSON headers included, took ~100 MB more than its rows in the step process).
WRITE_CHUNK_ROWS = 1024


class BatchWriter:
    """One batch file of `table`, written in row groups as rows come, put in place by `commit`.

    For a step that makes its rows over a long pass (the ingest's catalog): each `write` converts
    and encodes a chunk and lets it go, so the rows never sit in memory all at once. The file
    goes to a hidden temp file beside the batch's file (for an object-store warehouse, a local
    temp file); `commit` replaces the batch's file with it atomically, as `write_batch` does
    (the warehouse IO manager commits a writer an asset returns); `abort` removes it.
    """

    def __init__(self, warehouse: DataPath, table: str, batch_id: str) -> None:
        self.table, self.batch_id, self.rows = table, batch_id, 0
        self.schema = TABLE_SCHEMAS[table]
        folder = batch_dir(warehouse, table, batch_id)
        if is_remote(folder):
            fd, name = tempfile.mkstemp(prefix=f".{table}.", suffix=".parquet.tmp")
            os.close(fd)
            self._tmp = Path(name)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(folder) / f".{PARQUET_NAME}.{uuid.uuid4().hex}.tmp"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self._tmp), self.schema, compression="zstd"
        )
        self._empty = True

    def write(self, df: pd.DataFrame) -> None:
        """Append rows (converted as `write_batch` converts them); a chunk is one row group."""
        if self._writer is None:
            raise RuntimeError(f"{self.table}: the batch file was already committed or aborted")
        for start in range(0, len(df), WRITE_CHUNK_ROWS):
            part = df.iloc[start : start + WRITE_CHUNK_ROWS]
            self._writer.write_table(conform(part, self.schema, self.table))
            self._empty = False
            # the chunk's Arrow copy is written: hand its pages back (the step writes for long)
            pa.default_memory_pool().release_unused()
        if len(df) == 0:
            conform(df, self.schema, self.table)  # unknown columns fail here too
        self.rows += len(df)

    def _close(self) -> None:
        if self._writer is not None:
            if self._empty:  # an empty, typed file, as write_batch writes for no rows
                self._writer.write_table(conform(pd.DataFrame(), self.schema, self.table))
            self._writer.close()
            self._writer = None
            pa.default_memory_pool().release_unused()  # hand the encoder's buffers back

    def commit(self, warehouse: DataPath) -> DataPath:
        """Replace the batch's file in `warehouse` with what was written; returns its path."""
        if self._writer is None and not self._tmp.exists():
            raise RuntimeError(f"{self.table}: the batch file was already committed or aborted")
        self._close()
        folder = batch_dir(warehouse, self.table, self.batch_id)
        final = folder / PARQUET_NAME
        try:
            if is_remote(folder):
                # one object, created when the stream closes: readers see the old file or the new
                with open(self._tmp, "rb") as src, final.fs.open(final.path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
            elif self._tmp.parent == Path(folder):
                os.replace(self._tmp, final)
            else:  # another warehouse than the one written beside: copy, then replace
                folder.mkdir(parents=True, exist_ok=True)
                tmp = Path(folder) / f".{PARQUET_NAME}.{uuid.uuid4().hex}.tmp"
                try:
                    shutil.copyfile(self._tmp, tmp)
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
        finally:
            self._tmp.unlink(missing_ok=True)
        return final

    def abort(self) -> None:
        """Drop what was written (a failed step); the batch's file stays as it was."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)


def write_batch(warehouse: DataPath, table: str, batch_id: str, df: pd.DataFrame) -> DataPath:
    """Replace the batch's file of `table` atomically; an empty frame still writes a typed file.

    Rows are converted and written WRITE_CHUNK_ROWS at a time, so the memory this takes does not
    grow with the batch."""
    conform(df.iloc[:0], TABLE_SCHEMAS[table], table)  # unknown columns: fail before writing
    writer = BatchWriter(warehouse, table, batch_id)
    try:
        writer.write(df)
    except BaseException:
        writer.abort()
        raise
    return writer.commit(warehouse)


def _read_file(path: DataPath, columns: list[str] | None = None) -> pa.Table:
    if is_remote(path):
        with path.fs.open(path.path, "rb") as fh:
            return pq.read_table(fh, columns=columns)
    return pq.read_table(path, columns=columns)


def read_batch(
    warehouse: DataPath, table: str, batch_id: str, columns: list[str] | None = None
) -> pd.DataFrame:
    """One batch of `table`; `columns` reads only those (e.g. not a catalog's headers)."""
    path = batch_dir(warehouse, table, batch_id) / PARQUET_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{table} has no data for batch '{batch_id}' ({path}); materialise it first"
        )
    frame = _read_file(path, columns).to_pandas()
    pa.default_memory_pool().release_unused()  # the Arrow copy is gone: hand its pages back
    return frame


def iter_batch(
    warehouse: DataPath,
    table: str,
    batch_id: str,
    columns: list[str] | None = None,
    rows: int = WRITE_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """One batch of `table` as DataFrames of at most `rows` rows (at least one, maybe empty),
    for a reader that needs a column too large to hold for a whole batch (a catalog's headers)."""
    path = batch_dir(warehouse, table, batch_id) / PARQUET_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{table} has no data for batch '{batch_id}' ({path}); materialise it first"
        )
    with path.open("rb") if is_remote(path) else open(path, "rb") as fh:
        parquet = pq.ParquetFile(fh)
        produced = False
        # One thread: Arrow's decoding threads each keep their own heap, which grew the step
        # process by ~10 MB per row group of headers; and each chunk's buffers are handed back.
        for batch in parquet.iter_batches(batch_size=rows, columns=columns, use_threads=False):
            produced = True
            frame = pa.Table.from_batches([batch]).to_pandas()
            del batch
            pa.default_memory_pool().release_unused()
            yield frame
        if not produced:  # no rows: one empty, typed frame
            empty = parquet.schema_arrow.empty_table()
            yield (empty.select(columns) if columns else empty).to_pandas()


def read_all_batches(warehouse: DataPath, table: str) -> pd.DataFrame:
    files = _batch_files(warehouse, table)
    if not files:
        return conform(pd.DataFrame(), TABLE_SCHEMAS[table], table).to_pandas()
    return pd.concat([_read_file(f).to_pandas() for f in files], ignore_index=True)


def delete_batch(warehouse: DataPath, table: str, batch_id: str) -> None:
    folder = batch_dir(warehouse, table, batch_id)
    if is_remote(folder):
        fs = folder.fs
        objects = fs.find(folder.path)  # the file and anything else left in the batch "folder"
        if objects:
            fs.rm(objects)
        return
    (folder / PARQUET_NAME).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def table_glob(warehouse: DataPath, table: str) -> str | None:
    """The glob of a table's batch files for DuckDB's read_parquet (a URL on object storage:
    query it through `connect(warehouse)`), or None when no batch file exists (DuckDB fails on a
    glob that matches nothing)."""
    if not _batch_files(warehouse, table):
        return None
    return f"{_root_str(warehouse)}/{table}/batch_id=*/{PARQUET_NAME}"


def batch_ids(warehouse: DataPath, table: str) -> list[str]:
    """The batches that hold a file of `table`."""
    return [f.parent.name.split("=", 1)[1] for f in _batch_files(warehouse, table)]


def tables_present(warehouse: DataPath) -> list[str]:
    root = data_path(warehouse)
    if is_remote(root):
        # one listing for every table rather than one per table folder
        return sorted({rel.split("/", 1)[0] for rel in _remote_batch_keys(root)})
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and any(p.glob(f"batch_id=*/{PARQUET_NAME}"))
    )


EMPTY_NAME = "_empty.parquet"


def _view_sql(warehouse: DataPath, table: str, has_batches: bool | None = None) -> str:
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a table name: {table!r}")
    root = _root_str(warehouse)
    if has_batches is None:
        has_batches = bool(_batch_files(warehouse, table))
    if not has_batches:
        # No batch yet (or the last one was deleted): a glob matching no file fails every query,
        # so the view reads a typed empty file instead and answers "no rows".
        target = f"{root}/{table}/{EMPTY_NAME}"
        return f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{target}')"
    glob = f"{root}/{table}/batch_id=*/{PARQUET_NAME}"
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
        f"'{glob}', union_by_name=true, hive_partitioning=false)"
    )


def _write_empty(warehouse: DataPath, table: str) -> None:
    path = data_path(warehouse) / table / EMPTY_NAME
    if not path.is_file():
        if is_remote(path):
            _write_remote(conform(pd.DataFrame(), TABLE_SCHEMAS[table], table), path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{EMPTY_NAME}.{uuid.uuid4().hex}.tmp")
        pq.write_table(conform(pd.DataFrame(), TABLE_SCHEMAS[table], table), tmp)
        os.replace(tmp, path)


def _marker(warehouse: DataPath, table: str, catalog: Path | None = None) -> Path:
    root = data_path(warehouse)
    if is_remote(root):
        # The catalog is a local file on each host while the warehouse is shared, so the
        # record of "this catalog has this view" belongs beside the catalog.
        base = catalog if catalog is not None else Path(tempfile.gettempdir()) / "casbusi"
        return base.with_name(base.name + ".views") / table
    return root / table / ".duckdb_view"


def lock_path(warehouse: DataPath, name: str) -> Path:
    """A local file to flock for writers of `name` that rewrite shared files. For an object-store
    warehouse it is in the temp folder (it guards this host's writers only)."""
    root = data_path(warehouse)
    if is_remote(root):
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / "casbusi-locks" / digest / f"{name}.lock"
    else:
        path = root / name / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _connect_rw(
    catalog: Path, warehouse: DataPath | None = None, attempts: int = 8
) -> duckdb.DuckDBPyConnection:
    """Open the catalog for writing, waiting out short locks (another run creating a view)."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(catalog))
            if warehouse is not None:
                register_filesystem(con, warehouse)  # CREATE VIEW binds, so it reads the glob
            return con
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def ensure_views(catalog: Path, warehouse: DataPath, tables: Iterable[str]) -> list[str]:
    """Create the views that are missing or point at another home; return the ones (re)created.

    Each table's marker file records the SQL its view was created with, so the common case (the
    view exists) never opens the catalog and never contends for its lock.
    """
    todo = []
    # On object storage every listing is a round trip: one listing answers for every table, and
    # a table's empty file is only checked when its view is (re)created.
    tables = list(tables)
    root = data_path(warehouse)
    remote = is_remote(root)
    # a few tables (an IO manager's one): one folder listing each, whatever the batch count
    present = None
    if remote:
        present = (
            {t for t in tables if _remote_has_batches(root, t)}
            if len(tables) <= 3
            else set(tables_present(warehouse))
        )
    for table in tables:
        sql = _view_sql(warehouse, table, None if present is None else table in present)
        if EMPTY_NAME in sql and not remote:
            _write_empty(warehouse, table)
        marker = _marker(warehouse, table, catalog)
        if not (catalog.exists() and marker.is_file() and marker.read_text() == sql):
            todo.append((table, sql, marker))
            if EMPTY_NAME in sql and remote:
                _write_empty(warehouse, table)
    if not todo:
        return []
    catalog.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_rw(catalog, warehouse)
    try:
        for _table, sql, _marker_path in todo:
            con.execute(sql)
    finally:
        con.close()
    for _table, sql, marker in todo:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(sql)
    return [t for t, _, _ in todo]


def refresh_views(catalog: Path, warehouse: DataPath) -> list[str]:
    """(Re)create every table's view, e.g. after the home folder moved."""
    for table in declared_tables():
        _marker(warehouse, table, catalog).unlink(missing_ok=True)
    return ensure_views(catalog, warehouse, declared_tables())


def declared_tables() -> list[str]:
    """Every table the platform declares, whether or not it holds a batch yet."""
    return sorted(TABLE_SCHEMAS)


def query(catalog: Path, warehouse: DataPath, sql: str) -> pd.DataFrame:
    """Run SQL against the catalog through a read-only connection. Every declared table has a
    view, so a table with no batch (yet, or any more) answers with no rows rather than an error."""
    if not warehouse.is_dir():
        raise FileNotFoundError(
            f"no warehouse at {warehouse}: nothing has been ingested into this home yet "
            "(try `casbusi demo` or `casbusi run-batch ZIP`)"
        )
    ensure_views(catalog, warehouse, declared_tables())
    con = connect(warehouse, catalog, read_only=True)
    try:
        return con.execute(sql).fetchdf()
    finally:
        con.close()

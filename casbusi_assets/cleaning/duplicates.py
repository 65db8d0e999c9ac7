"""Exact and pixel duplicates, within a batch and against every batch ingested before it.

Two images are duplicates when they share either hash:
- `raw_hash`: the catalog's `pixel_sha256` of the encoded PixelData bytes (the same file, or the
  same pixels under the same encoding, re-sent with other header tags or UIDs);
- `pixel_hash`: the hash of the decoded pixels (`quality.pixel_hash`), which also matches the same
  picture re-encoded under another transfer syntax.

The kept copy of a group is decided by one deterministic rule: the copy of the **earliest batch**
(in ingestion order: the order the batches were added as partitions), then the **smallest
SOPInstanceUID**. Every other member gets `duplicate_of` (the kept UID) and `duplicate_of_batch`.

Earlier batches are looked up with DuckDB straight over the warehouse Parquet files
(`read_parquet` with a filter on the current batch's hashes), so no earlier batch is ever loaded
into pandas whole: the query returns only the matching rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from casbusi_assets.storage.warehouse import connect, table_glob

PARQUET = "data.parquet"


def _glob(warehouse: Path, table: str) -> str | None:
    # None when nothing matches (DuckDB fails on such a glob); a URL when on object storage
    return table_glob(warehouse, table)


def earlier_copies(
    warehouse: Path,
    earlier_batches: Sequence[str],
    raw_hashes: Sequence[str],
    pixel_hashes: Sequence[str],
) -> pd.DataFrame:
    """Rows of earlier batches (batch_id, sop_instance_uid, raw_hash, pixel_hash) sharing a hash.

    Reads `dicom_catalog` (every ingested batch has one: ok image rows' `pixel_sha256`) and
    `cleaned_images` (decoded hashes of batches already cleaned).
    """
    cols = ["batch_id", "sop_instance_uid", "raw_hash", "pixel_hash"]
    if not earlier_batches:
        return pd.DataFrame(columns=cols)
    # in-memory: never contends for the catalog file's lock; reads s3:// globs too
    con = connect(warehouse)
    try:
        con.register("batches", pd.DataFrame({"b": list(earlier_batches)}))
        con.register("raw", pd.DataFrame({"h": [h for h in raw_hashes if h]}, dtype=object))
        con.register("pix", pd.DataFrame({"h": [h for h in pixel_hashes if h]}, dtype=object))
        frames = []
        catalog = _glob(warehouse, "dicom_catalog")
        if catalog:
            frames.append(
                con.execute(
                    f"""SELECT batch_id, sop_instance_uid, pixel_sha256 AS raw_hash,
                               CAST(NULL AS VARCHAR) AS pixel_hash
                        FROM read_parquet('{catalog}', union_by_name=true)
                        WHERE kind = 'image' AND status = 'ok'
                          AND batch_id IN (SELECT b FROM batches)
                          AND pixel_sha256 IN (SELECT h FROM raw)"""
                ).fetchdf()
            )
        cleaned = _glob(warehouse, "cleaned_images")
        if cleaned:
            frames.append(
                con.execute(
                    f"""SELECT batch_id, sop_instance_uid, raw_hash, pixel_hash
                        FROM read_parquet('{cleaned}', union_by_name=true)
                        WHERE batch_id IN (SELECT b FROM batches)
                          AND (pixel_hash IN (SELECT h FROM pix)
                               OR raw_hash IN (SELECT h FROM raw))"""
                ).fetchdf()
            )
    finally:
        con.close()
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, x: object) -> object:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def assign_duplicates(
    current: pd.DataFrame,
    earlier: pd.DataFrame,
    batch_order: Sequence[str],
) -> pd.DataFrame:
    """`duplicate_of`, `duplicate_of_batch` for each row of `current` (null for kept copies).

    `current` and `earlier` have batch_id, sop_instance_uid, raw_hash, pixel_hash. Groups are
    the connected components of "shares a raw or a decoded hash". `batch_order` ranks batches
    (earliest first); a batch not in it ranks after every listed one, by name.
    """
    rank = {b: i for i, b in enumerate(batch_order)}
    everyone = pd.concat([current, earlier], ignore_index=True).drop_duplicates(
        ["batch_id", "sop_instance_uid"]
    )
    uf = _UnionFind()
    for row in everyone.itertuples(index=False):
        node = ("img", row.batch_id, row.sop_instance_uid)
        uf.find(node)
        for kind, value in (("raw", row.raw_hash), ("pix", row.pixel_hash)):
            if isinstance(value, str) and value:
                uf.union(node, (kind, value))

    def sort_key(batch: str, sop: str) -> tuple[int, str, str]:
        return (rank.get(batch, len(rank)), batch, sop)

    kept: dict[object, tuple[int, str, str]] = {}
    for row in everyone.itertuples(index=False):
        root = uf.find(("img", row.batch_id, row.sop_instance_uid))
        key = sort_key(row.batch_id, row.sop_instance_uid)
        if root not in kept or key < kept[root]:
            kept[root] = key
    dup_of, dup_batch = [], []
    for row in current.itertuples(index=False):
        root = uf.find(("img", row.batch_id, row.sop_instance_uid))
        _, batch, sop = kept[root]
        if (batch, sop) == (row.batch_id, row.sop_instance_uid):
            dup_of.append(None)
            dup_batch.append(None)
        else:
            dup_of.append(sop)
            dup_batch.append(batch)
    return pd.DataFrame(
        {"duplicate_of": dup_of, "duplicate_of_batch": dup_batch}, index=current.index
    )


def find_duplicates(
    current: pd.DataFrame, warehouse: Path, batch_order: Sequence[str]
) -> pd.DataFrame:
    """`assign_duplicates` against every batch that precedes the current one in `batch_order`.

    The current batch is `current.batch_id` (one value). When it is not in `batch_order` (a
    batch not registered as a partition), every other listed batch counts as earlier.
    """
    if current.empty:
        return pd.DataFrame({"duplicate_of": [], "duplicate_of_batch": []}, dtype=object)
    batch_id = str(current["batch_id"].iloc[0])
    order = list(batch_order)
    earlier_batches = order[: order.index(batch_id)] if batch_id in order else order
    earlier_batches = [b for b in earlier_batches if b != batch_id]
    earlier = earlier_copies(
        warehouse,
        earlier_batches,
        current["raw_hash"].dropna().tolist(),
        current["pixel_hash"].dropna().tolist(),
    )
    return assign_duplicates(current, earlier, order)

"""The manifest's content hash: equal for equal rows, whatever their order; changed by any edit."""

from __future__ import annotations

from casbusi_assets.export.manifest import (
    MANIFEST_SCHEMA,
    content_hash,
    manifest_table,
    read_manifest,
    write_manifest,
)


def _rows():
    return [
        {"export_path": "images/b.png", "file_kind": "image", "sha256": "1", "bytes": 10,
         "patient_id": "p", "split": "train", "valid": 0, "inpainted": False},
        {"export_path": "images/a.png", "file_kind": "image", "sha256": "2", "bytes": 11,
         "patient_id": "q", "split": "val", "valid": 1, "inpainted": True},
    ]  # fmt: skip


def test_same_rows_same_hash_and_bytes_in_any_order(tmp_path):
    a, b = manifest_table(_rows()), manifest_table(list(reversed(_rows())))
    assert a.schema == MANIFEST_SCHEMA
    assert a.column("export_path").to_pylist() == ["images/a.png", "images/b.png"]
    assert content_hash(a) == content_hash(b)
    write_manifest(a, tmp_path / "a.parquet")
    write_manifest(b, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert content_hash(read_manifest(tmp_path / "a.parquet")) == content_hash(a)


def test_any_change_changes_the_hash():
    rows = _rows()
    rows[0]["split"] = "test"
    assert content_hash(manifest_table(rows)) != content_hash(manifest_table(_rows()))

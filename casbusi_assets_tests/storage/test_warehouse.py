from pathlib import Path

import duckdb
import pandas as pd
import pytest

from casbusi_assets.storage import warehouse
from casbusi_assets.storage.schemas import BREAST_TABLE


def _breasts(batch: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "batch_id": [batch] * n,
            "patient_id": [f"{i:08d}" for i in range(n)],
            "accession_number": ["A1"] * n,
            "breast": ["LEFT"] * n,
            "has_malignant": [True] * n,
            "lesion_count": list(range(n)),
        }
    )


def test_rewriting_a_batch_replaces_its_rows_only(tmp_path):
    wh, cat = tmp_path / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 3))
    warehouse.write_batch(wh, "breast_table", "b2", _breasts("b2", 2))
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 4))
    df = warehouse.query(
        cat, wh, "SELECT batch_id, count(*) n FROM breast_table GROUP BY 1 ORDER BY 1"
    )
    assert df.to_dict("records") == [{"batch_id": "b1", "n": 4}, {"batch_id": "b2", "n": 2}]


def test_empty_frame_writes_typed_file_and_view_works(tmp_path):
    wh, cat = tmp_path / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", pd.DataFrame())
    back = warehouse.read_batch(wh, "breast_table", "b1")
    assert list(back.columns) == BREAST_TABLE.names and len(back) == 0
    df = warehouse.query(cat, wh, "SELECT count(*) AS n FROM breast_table")
    assert int(df["n"][0]) == 0


def test_leading_zero_ids_and_null_ints_survive(tmp_path):
    wh = tmp_path / "warehouse"
    df = _breasts("b1", 2)
    df["lesion_count"] = [None, 3]
    warehouse.write_batch(wh, "breast_table", "b1", df)
    back = warehouse.read_batch(wh, "breast_table", "b1")
    assert back["patient_id"].tolist() == ["00000000", "00000001"]
    assert pd.isna(back["lesion_count"][0]) and back["lesion_count"][1] == 3


def test_undeclared_column_is_refused(tmp_path):
    with pytest.raises(warehouse.SchemaMismatchError, match="surprise"):
        warehouse.write_batch(tmp_path, "breast_table", "b1", _breasts("b1", 1).assign(surprise=1))


def test_view_sees_later_batches_through_open_read_only_connection(tmp_path):
    wh, cat = tmp_path / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 1))
    warehouse.ensure_views(cat, wh, ["breast_table"])
    reader = duckdb.connect(str(cat), read_only=True)
    try:
        warehouse.write_batch(wh, "breast_table", "b2", _breasts("b2", 5))
        # The view exists already, so no write connection is needed while the reader holds the file.
        assert warehouse.ensure_views(cat, wh, ["breast_table"]) == []
        assert reader.execute("SELECT count(*) FROM breast_table").fetchone()[0] == 6
    finally:
        reader.close()


def test_refresh_views_after_home_moves(tmp_path):
    old = tmp_path / "old"
    warehouse.write_batch(old / "warehouse", "breast_table", "b1", _breasts("b1", 2))
    warehouse.ensure_views(old / "catalog.duckdb", old / "warehouse", ["breast_table"])
    new = tmp_path / "new"
    old.rename(new)
    assert "breast_table" in warehouse.refresh_views(new / "catalog.duckdb", new / "warehouse")
    df = warehouse.query(
        new / "catalog.duckdb", new / "warehouse", "SELECT count(*) n FROM breast_table"
    )
    assert int(df["n"][0]) == 2


def test_table_without_batches_answers_no_rows(tmp_path):
    # A declared table that never had a batch, and one whose last batch was deleted, both answer
    # an empty result with their columns instead of "Table ... does not exist".
    wh, cat = tmp_path / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 2))
    warehouse.ensure_views(cat, wh, ["breast_table"])
    assert int(warehouse.query(cat, wh, "SELECT count(*) n FROM breast_table")["n"][0]) == 2
    warehouse.delete_batch(wh, "breast_table", "b1")
    warehouse.ensure_views(cat, wh, ["breast_table"])
    empty = warehouse.query(cat, wh, "SELECT * FROM breast_table")
    assert len(empty) == 0 and "batch_id" in empty.columns
    never = warehouse.query(cat, wh, "SELECT * FROM dicom_catalog")
    assert len(never) == 0 and "sop_instance_uid" in never.columns
    # and a new batch is seen again
    warehouse.write_batch(wh, "breast_table", "b2", _breasts("b2", 3))
    warehouse.ensure_views(cat, wh, ["breast_table"])
    assert int(warehouse.query(cat, wh, "SELECT count(*) n FROM breast_table")["n"][0]) == 3


def test_query_on_a_home_with_nothing_ingested_says_so_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing has been ingested"):
        warehouse.query(tmp_path / "catalog.duckdb", tmp_path / "warehouse", "SELECT 1")
    assert list(tmp_path.iterdir()) == []


# -- the same warehouse on object storage: moto's s3:// on loopback, and fsspec's memory:// --


def test_object_store_warehouse_writes_reads_replaces_and_deletes(remote_url, tmp_path):
    from casbusi_assets.storage.files import data_path

    wh = data_path(remote_url) / "warehouse"
    path = warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 3))
    assert str(path) == f"{remote_url}/warehouse/breast_table/batch_id=b1/data.parquet"
    warehouse.write_batch(wh, "breast_table", "b2", _breasts("b2", 2))
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 4))  # replaces b1 only
    assert warehouse.read_batch(wh, "breast_table", "b1")["patient_id"].tolist() == [
        f"{i:08d}" for i in range(4)
    ]
    assert len(warehouse.read_all_batches(wh, "breast_table")) == 6
    assert warehouse.tables_present(wh) == ["breast_table"]
    assert warehouse.batch_ids(wh, "breast_table") == ["b1", "b2"]
    with pytest.raises(FileNotFoundError, match="materialise it first"):
        warehouse.read_batch(wh, "breast_table", "b9")
    warehouse.delete_batch(wh, "breast_table", "b1")
    assert warehouse.batch_ids(wh, "breast_table") == ["b2"]
    assert not warehouse.batch_dir(wh, "breast_table", "b1").exists()
    assert not list((tmp_path).iterdir())  # nothing was written locally


def test_object_store_views_answer_sql_from_a_local_catalog(remote_url, tmp_path):
    from casbusi_assets.storage.files import data_path

    wh, cat = data_path(remote_url) / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 3))
    assert "breast_table" in warehouse.ensure_views(cat, wh, warehouse.declared_tables())
    # later batches are seen by the existing view (no new view, no catalog write)
    warehouse.write_batch(wh, "breast_table", "b2", _breasts("b2", 5))
    assert warehouse.ensure_views(cat, wh, ["breast_table"]) == []
    df = warehouse.query(
        cat, wh, "SELECT batch_id, count(*) n FROM breast_table GROUP BY 1 ORDER BY 1"
    )
    assert df.to_dict("records") == [{"batch_id": "b1", "n": 3}, {"batch_id": "b2", "n": 5}]
    # a declared table with no batch answers no rows, with its columns
    never = warehouse.query(cat, wh, "SELECT * FROM dicom_catalog")
    assert len(never) == 0 and "sop_instance_uid" in never.columns
    # the catalog and the view markers are local; the view reads the URL
    assert cat.is_file()
    assert remote_url in (tmp_path / "catalog.duckdb.views" / "breast_table").read_text()
    # a plain connection to the catalog lacks the filesystem; warehouse.connect registers it
    with warehouse.connect(wh, cat, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM breast_table").fetchone()[0] == 8


def test_object_store_last_batch_deleted_answers_no_rows(remote_url, tmp_path):
    from casbusi_assets.storage.files import data_path

    wh, cat = data_path(remote_url) / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 2))
    warehouse.ensure_views(cat, wh, ["breast_table"])
    warehouse.delete_batch(wh, "breast_table", "b1")
    warehouse.ensure_views(cat, wh, ["breast_table"])
    assert len(warehouse.query(cat, wh, "SELECT * FROM breast_table")) == 0
    assert warehouse.tables_present(wh) == []


def test_s3_view_sql_and_markers_carry_no_credentials(s3_url, tmp_path):
    from casbusi_assets.storage.files import data_path

    wh, cat = data_path(s3_url) / "warehouse", tmp_path / "catalog.duckdb"
    warehouse.write_batch(wh, "breast_table", "b1", _breasts("b1", 1))
    warehouse.ensure_views(cat, wh, ["breast_table"])
    with warehouse.connect(wh, cat, read_only=True) as con:
        sql = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name='breast_table'"
        ).fetchone()
    text = sql[0] + (tmp_path / "catalog.duckdb.views" / "breast_table").read_text()
    assert "s3://" in text and "testing" not in text and "127.0.0.1" not in text


def test_a_batch_writer_replaces_the_file_only_on_commit(tmp_path: Path) -> None:
    wh = warehouse
    first = pd.DataFrame({"batch_id": ["b"], "member_path": ["a.dcm"], "status": ["ok"]})
    wh.write_batch(tmp_path, "dicom_catalog", "b", first)
    writer = wh.BatchWriter(tmp_path, "dicom_catalog", "b")
    writer.write(pd.DataFrame({"batch_id": ["b", "b"], "member_path": ["x", "y"]}))
    assert wh.read_batch(tmp_path, "dicom_catalog", "b")["member_path"].tolist() == ["a.dcm"]
    writer.abort()  # a failed step: the old file stays, no temp file is left
    folder = tmp_path / "dicom_catalog" / "batch_id=b"
    assert [p.name for p in folder.iterdir()] == ["data.parquet"]
    assert wh.read_batch(tmp_path, "dicom_catalog", "b")["member_path"].tolist() == ["a.dcm"]

    writer = wh.BatchWriter(tmp_path, "dicom_catalog", "b")
    writer.write(pd.DataFrame({"batch_id": ["b"], "member_path": ["x"]}))
    writer.write(pd.DataFrame({"batch_id": ["b"], "member_path": ["y"]}))
    other = tmp_path / "other_warehouse"  # committed into another warehouse: copied there
    assert writer.commit(other) == other / "dicom_catalog" / "batch_id=b" / "data.parquet"
    assert wh.read_batch(other, "dicom_catalog", "b")["member_path"].tolist() == ["x", "y"]
    assert writer.rows == 2 and [p.name for p in folder.iterdir()] == ["data.parquet"]
    with pytest.raises(RuntimeError, match="already committed"):
        writer.write(first)


def test_a_batch_writer_with_no_rows_writes_a_typed_empty_file(tmp_path: Path) -> None:
    wh = warehouse
    writer = wh.BatchWriter(tmp_path, "image_table", "b")
    writer.commit(tmp_path)
    df = wh.read_batch(tmp_path, "image_table", "b")
    assert df.empty and list(df.columns) == wh.TABLE_SCHEMAS["image_table"].names


def test_a_batch_read_in_chunks_is_the_batch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse, "WRITE_CHUNK_ROWS", 2)  # row groups of 2
    df = _breasts("b1", 5)
    warehouse.write_batch(tmp_path, "breast_table", "b1", df)
    chunks = list(warehouse.iter_batch(tmp_path, "breast_table", "b1", ["patient_id"], rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    whole = warehouse.read_batch(tmp_path, "breast_table", "b1", columns=["patient_id"])
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    warehouse.write_batch(tmp_path, "breast_table", "b2", df.iloc[:0])
    (empty,) = warehouse.iter_batch(tmp_path, "breast_table", "b2", ["patient_id"])
    assert empty.empty and list(empty.columns) == ["patient_id"]
    with pytest.raises(FileNotFoundError, match="materialise it first"):
        next(warehouse.iter_batch(tmp_path, "breast_table", "b9"))

"""Bad archives through the whole graph: clear failures, nothing written where it must not be."""

from __future__ import annotations

import zipfile

import pytest

from casbusi_assets.cli import main
from casbusi_assets.runner import RunBatchError, run_batch
from casbusi_assets.storage import warehouse

from .conftest import with_identifiers, write_zip


def _outputs(home):
    return sorted(
        p.relative_to(home.root).as_posix()
        for p in [*home.warehouse.rglob("*.parquet"), *home.files.rglob("*.png")]
    )


def test_corrupt_zip_fails_with_a_clear_message_and_no_outputs(home, tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"this is not a zip archive at all" * 100)
    with pytest.raises(RunBatchError, match=r"dicom_catalog failed: .*broken\.zip"):
        run_batch(bad, home, echo=lambda m: None)
    assert not any(p.startswith(("warehouse/dicom_catalog", "files/")) for p in _outputs(home))


def test_truncated_zip_fails_cleanly_from_the_cli(home, tmp_path, capsys):
    good = write_zip(
        tmp_path / "whole.zip",
        {
            "a/1": with_identifiers("US1_UNCR.dcm", "00000001", "A1"),
        },
    )
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    code = main(["--home", str(home.root), "run-batch", str(cut)])
    err = capsys.readouterr().err
    assert code == 1
    # Progress lines go to stderr too; the reason is one final line.
    errors = [line for line in err.splitlines() if line.startswith("casbusi: error:")]
    assert errors == [err.strip().splitlines()[-1]]
    assert errors[0].startswith("casbusi: error: batch cut: dicom_catalog failed:")
    assert "cut.zip" in errors[0] and "truncated" in errors[0]
    assert _outputs(home) == []


def test_unsafe_member_paths_are_quarantined_and_nothing_escapes(home, tmp_path):
    dicom = with_identifiers("US1_UNCR.dcm", "00000001", "A1")
    zip_path = tmp_path / "slip.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("ok/image", dicom)
        zf.writestr("../../escaped.dcm", dicom)
        zf.writestr("/etc/absolute.dcm", dicom)
        zf.writestr("a/../../../up.dcm", dicom)
    before = {p for p in tmp_path.rglob("*")}
    run_batch(zip_path, home, echo=lambda m: None)
    cat = warehouse.read_batch(home.warehouse, "dicom_catalog", "slip").set_index("member_path")
    assert cat.loc["ok/image", "status"] == "ok"
    for name in ("../../escaped.dcm", "/etc/absolute.dcm", "a/../../../up.dcm"):
        assert cat.loc[name, "error_code"] == "unsafe_path", name
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(home.root) for p in created)
    assert not (tmp_path.parent / "escaped.dcm").exists()
    images = warehouse.read_batch(home.warehouse, "image_table", "slip")
    assert len(images) == 1


def test_decompression_bomb_is_refused_by_the_size_limit(home, tmp_path, monkeypatch):
    monkeypatch.setenv("CASBUSI_MAX_MEMBER_MB", "20")
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok/image", with_identifiers("US1_UNCR.dcm", "00000001", "A1"))
        zf.writestr("bomb/zeros.dcm", bytes(64 * 1024 * 1024))  # 64 MB of zeros, ~64 KB zipped
    assert zip_path.stat().st_size < 2 * 1024 * 1024
    run_batch(zip_path, home, echo=lambda m: None)
    cat = warehouse.read_batch(home.warehouse, "dicom_catalog", "bomb").set_index("member_path")
    assert cat.loc["bomb/zeros.dcm", "error_code"] == "too_large"
    assert "20.0 MiB" in cat.loc["bomb/zeros.dcm", "error"]
    assert cat.loc["ok/image", "status"] == "ok"


def test_delete_batch_removes_rows_files_and_partition(home, tmp_path):
    import dagster as dg

    from casbusi_assets.runner import UnknownBatchError, delete_batch

    keep = write_zip(tmp_path / "keep.zip", {"a/1": with_identifiers("US1_UNCR.dcm", "1", "A1")})
    gone = write_zip(tmp_path / "gone.zip", {"a/1": with_identifiers("US1_UNCR.dcm", "2", "A2")})
    for z in (keep, gone):
        run_batch(z, home, select=["dicom_catalog", "image_table"], echo=lambda m: None)
    assert main(["--home", str(home.root), "delete-batch", "gone"]) == 0
    df = warehouse.query(
        home.catalog, home.warehouse, "SELECT DISTINCT batch_id FROM image_table ORDER BY 1"
    )
    assert df["batch_id"].tolist() == ["keep"]
    assert not (home.files / "image_table" / "gone").exists()
    assert (home.files / "image_table" / "keep").is_dir()
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("batch") == ["keep"]
    # A second delete, or a key that never existed, is an error naming the batches there are.
    with pytest.raises(UnknownBatchError, match=r"no batch 'gone' .*batches: keep"):
        delete_batch(home, "gone")
    assert main(["--home", str(home.root), "delete-batch", "never"]) == 1
    # Deleting the last batch leaves the tables queryable: empty results, not "does not exist".
    delete_batch(home, "keep")
    assert warehouse.tables_present(home.warehouse) == []
    empty = warehouse.query(home.catalog, home.warehouse, "SELECT * FROM image_table")
    assert len(empty) == 0 and "sop_instance_uid" in empty.columns


def test_a_failed_first_run_leaves_no_partition_or_registry_entry(home, tmp_path):
    import dagster as dg

    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip" * 100)
    with pytest.raises(RunBatchError):
        run_batch(bad, home, echo=lambda m: None)
    assert not (home.registry / "broken.json").exists()
    with dg.DagsterInstance.get() as instance:
        assert "broken" not in instance.get_dynamic_partitions("batch")


def test_zip_without_dicom_says_so(home, tmp_path, capsys):
    readme_only = write_zip(tmp_path / "readme_only.zip", {"README.txt": b"nothing to see"})
    assert main(["--home", str(home.root), "run-batch", str(readme_only)]) == 0
    out = capsys.readouterr()
    assert "no DICOM" in out.out + out.err

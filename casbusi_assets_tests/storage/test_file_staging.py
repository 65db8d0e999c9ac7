import pytest

from casbusi_assets.storage.file_staging import staged_batch_dir


def test_rerun_replaces_folder_without_orphans(tmp_path):
    with staged_batch_dir(tmp_path, "image_table", "b1") as s:
        (s.staging / "old.png").write_bytes(b"1")
    with staged_batch_dir(tmp_path, "image_table", "b1") as s:
        (s.staging / "new.png").write_bytes(b"2")
        assert s.final_path(s.staging / "new.png") == tmp_path / "image_table" / "b1" / "new.png"
    assert sorted(p.name for p in (tmp_path / "image_table").iterdir()) == ["b1"]
    assert [p.name for p in (tmp_path / "image_table" / "b1").iterdir()] == ["new.png"]


def test_failure_keeps_previous_files(tmp_path):
    with staged_batch_dir(tmp_path, "image_table", "b1") as s:
        (s.staging / "keep.png").write_bytes(b"1")
    with pytest.raises(RuntimeError), staged_batch_dir(tmp_path, "image_table", "b1") as s:
        (s.staging / "partial.png").write_bytes(b"2")
        raise RuntimeError("decode exploded")
    assert [p.name for p in (tmp_path / "image_table").iterdir()] == ["b1"]
    assert [p.name for p in (tmp_path / "image_table" / "b1").iterdir()] == ["keep.png"]

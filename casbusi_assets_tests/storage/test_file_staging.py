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


# -- the files root on object storage: staging stays local, commit uploads and replaces --


def test_object_store_commit_uploads_and_replaces_the_batch_folder(remote_url):
    from casbusi_assets.storage.files import data_path, list_files, read_bytes

    root = data_path(remote_url) / "files"
    with staged_batch_dir(root, "image_table", "b1") as s:
        (s.staging / "old.png").write_bytes(b"1")
        (s.staging / "frames").mkdir()
        (s.staging / "frames" / "f0.png").write_bytes(b"f")
    with staged_batch_dir(root, "image_table", "b1") as s:
        assert s.staging.is_dir() and not str(s.staging).startswith(remote_url)  # local
        (s.staging / "new.png").write_bytes(b"2")
        url = str(s.final_path(s.staging / "new.png"))
        assert url == f"{remote_url}/files/image_table/b1/new.png"
        staging = s.staging
    assert not staging.exists()  # the local staging folder is cleaned up
    assert list_files(root / "image_table" / "b1", "**/*") == [url]  # old objects gone
    assert read_bytes(url) == b"2"


def test_object_store_failure_keeps_previous_objects(remote_url):
    from casbusi_assets.storage.files import data_path, list_files

    root = data_path(remote_url) / "files"
    with staged_batch_dir(root, "image_table", "b1") as s:
        (s.staging / "keep.png").write_bytes(b"1")
    with pytest.raises(RuntimeError), staged_batch_dir(root, "image_table", "b1") as s:
        (s.staging / "partial.png").write_bytes(b"2")
        staging = s.staging
        raise RuntimeError("decode exploded")
    assert not staging.exists()
    assert list_files(root / "image_table" / "b1") == [
        f"{remote_url}/files/image_table/b1/keep.png"
    ]


def test_object_store_remove_batch_files(remote_url):
    from casbusi_assets.storage.file_staging import remove_batch_files
    from casbusi_assets.storage.files import data_path, list_files

    root = data_path(remote_url) / "files"
    for batch in ("b1", "b2"):
        with staged_batch_dir(root, "image_table", batch) as s:
            (s.staging / "x.png").write_bytes(b"1")
    remove_batch_files(root, "image_table", "b1")
    remove_batch_files(root, "image_table", "b_never")  # nothing there: no error
    assert list_files(root / "image_table", "*/*.png") == [
        f"{remote_url}/files/image_table/b2/x.png"
    ]

import os

import pytest

from casbusi_assets.ingest.sources import (
    BatchSourceError,
    batch_key_for,
    find_zip,
    register_zip,
    scan_inbox,
)
from casbusi_assets.storage.home import HomeLayout


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("batch_001.zip", "batch_001"),
        ("Batch 10-23 (Mayo).ZIP", "batch_10-23_mayo"),
        ("a|b,c.zip", "a_b_c"),
        ("..evil...zip", "evil"),
    ],
)
def test_batch_keys_are_safe(name, key):
    assert batch_key_for(name) == key


def test_unusable_name_is_an_error():
    with pytest.raises(BatchSourceError, match="batch key"):
        batch_key_for("....zip")


def _touch(path, data=b"PK", age=100.0):
    path.write_bytes(data)
    t = path.stat().st_mtime - age
    os.utime(path, (t, t))
    return path


def test_scan_ignores_partial_uploads_and_waits_for_fresh_files(tmp_path):
    _touch(tmp_path / "b1.zip")
    _touch(tmp_path / "b2.zip.part")
    _touch(tmp_path / ".b3.zip")
    _touch(tmp_path / "b4.zip", age=0)  # just written: not settled yet
    scan = scan_inbox(tmp_path, None, settle_seconds=30)
    assert [z.key for z in scan.ready] == ["b1"]
    assert scan.waiting == ["b4.zip"]
    # Next tick: b4 unchanged since the last look -> complete; b1 already done.
    again = scan_inbox(tmp_path, scan.state, settle_seconds=30)
    assert [z.key for z in again.ready] == ["b4"]
    assert scan_inbox(tmp_path, again.state, settle_seconds=30).ready == []


def test_changed_zip_under_same_name_is_ready_again(tmp_path):
    z = _touch(tmp_path / "b1.zip")
    first = scan_inbox(tmp_path, None, settle_seconds=1)
    _touch(z, data=b"PK-changed")
    second = scan_inbox(tmp_path, first.state, settle_seconds=1)
    assert [r.key for r in second.ready] == ["b1"]
    assert second.ready[0].fingerprint != first.ready[0].fingerprint


def test_find_zip_prefers_registry_then_inbox(tmp_path):
    home = HomeLayout(tmp_path / "home").create()
    inbox_zip = _touch(home.inbox / "Batch 7.zip")
    assert find_zip(home, "batch_7") == inbox_zip
    elsewhere = _touch(tmp_path / "batch_7.zip")
    register_zip(home, "batch_7", elsewhere)
    assert find_zip(home, "batch_7") == elsewhere.resolve()
    elsewhere.unlink()
    with pytest.raises(BatchSourceError, match="no longer exists"):
        find_zip(home, "batch_7")
    with pytest.raises(BatchSourceError, match="no zip found for batch 'nope'"):
        find_zip(home, "nope")


def test_zips_whose_names_collide_are_held_back(tmp_path):
    _touch(tmp_path / "Batch 1.zip")
    _touch(tmp_path / "batch_1.zip")
    _touch(tmp_path / "batch_2.zip")
    scan = scan_inbox(tmp_path, None, settle_seconds=1)
    assert [z.key for z in scan.ready] == ["batch_2"]
    assert scan.conflicts == ["Batch 1.zip", "batch_1.zip"]

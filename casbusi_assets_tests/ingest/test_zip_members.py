"""Safe zip reading: listing problems, bounded reads, whole-archive refusals."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from casbusi_assets.ingest import zip_members
from casbusi_assets.ingest.zip_members import (
    ArchiveLimitError,
    CorruptArchiveError,
    MemberReadError,
    ThreadLocalZip,
    ZipLimits,
    list_members,
    open_batch_zip,
    path_problem,
    read_member,
    read_root_file,
)

MB = 1024 * 1024


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def read_error(zpath: Path) -> MemberReadError:
    """What reading the one member of `zpath` raises."""
    with open_batch_zip(zpath) as zf:
        (m,) = list_members(zf)
        with pytest.raises(MemberReadError) as err:
            read_member(zf, m)
    return err.value


def test_listing_sorted_skips_directories_and_flags_unsafe_paths(tmp_path: Path) -> None:
    zpath = make_zip(
        tmp_path / "b.zip",
        {
            "z/ok.dcm": b"a",
            "a/": b"",
            "../evil.dcm": b"x",
            "/abs/path.dcm": b"x",
            "C:/win.dcm": b"x",
            "..\\back.dcm": b"x",
            "a/../../up.dcm": b"x",
            "folder\\fine.dcm": b"x",
        },
    )
    with open_batch_zip(zpath) as zf:
        members = list_members(zf)
    by_path = {m.path: m for m in members}
    assert [m.path for m in members] == sorted(by_path)
    assert "a/" not in by_path
    for bad in ("../evil.dcm", "/abs/path.dcm", "C:/win.dcm", "..\\back.dcm", "a/../../up.dcm"):
        assert by_path[bad].problem_code == "unsafe_path", bad
        assert repr(bad) in (by_path[bad].problem or "")
    assert by_path["z/ok.dcm"].problem_code is None
    # A Windows zipper's backslash separator alone is not an escape.
    assert by_path["folder\\fine.dcm"].problem_code is None


@pytest.mark.parametrize(
    ("name", "bad"),
    [("a/b.dcm", False), ("./a.dcm", False), ("a\x00.dcm", True), ("\\\\server\\x", True)],
)
def test_path_problem(name: str, bad: bool) -> None:
    assert (path_problem(name) is not None) is bad


def test_zip_bomb_member_is_flagged_from_listing_and_read_is_bounded(tmp_path: Path) -> None:
    # 64 MB of zeros deflates to ~64 KB (ratio ~1000); test limits are low so this stays fast.
    zpath = make_zip(tmp_path / "bomb.zip", {"bomb.dcm": bytes(64 * MB), "ok.dcm": b"DICM" * 10})
    limits = ZipLimits(max_member_bytes=8 * MB, max_ratio=100)
    t0 = time.perf_counter()
    with open_batch_zip(zpath, limits) as zf:
        members = {m.path: m for m in list_members(zf, limits)}
        bomb = members["bomb.dcm"]
        assert bomb.problem_code == "too_large"
        assert "max_member_bytes" in (bomb.problem or "")
        # Even when a caller ignores the listing, the read stops at the cap.
        with pytest.raises(MemberReadError) as err:
            read_member(zf, bomb, limits)
        assert err.value.code == "too_large"
        assert read_member(zf, members["ok.dcm"], limits) == b"DICM" * 10
    assert time.perf_counter() - t0 < 5


def test_ratio_rule_catches_bomb_under_size_limit(tmp_path: Path) -> None:
    zpath = make_zip(tmp_path / "bomb.zip", {"b.dcm": bytes(4 * MB)})
    limits = ZipLimits(max_ratio=50, ratio_min_bytes=MB)
    with open_batch_zip(zpath, limits) as zf:
        (m,) = list_members(zf, limits)
    assert m.problem_code == "too_large"
    assert "compression ratio" in (m.problem or "")


def test_lying_header_size_is_not_trusted(tmp_path: Path) -> None:
    zpath = make_zip(tmp_path / "lie.zip", {"x.dcm": bytes(3 * MB)})
    limits = ZipLimits(max_member_bytes=MB, max_ratio=10_000)
    with zipfile.ZipFile(zpath) as zf:
        # Pretend the central directory declared a tiny size.
        info = zf.infolist()[0]
        info.file_size = 10
        m = list_members(zf, limits)[0]
        assert m.problem_code is None
        with pytest.raises(MemberReadError):
            read_member(zf, m, limits)


def test_crc_error_is_unreadable_member(tmp_path: Path) -> None:
    payload = os.urandom(20_000)
    zpath = make_zip(tmp_path / "crc.zip", {"x.dcm": payload}, zipfile.ZIP_STORED)
    raw = bytearray(zpath.read_bytes())
    idx = raw.index(payload[:64])
    raw[idx + 100] ^= 0xFF  # flip one stored byte: the CRC no longer matches
    zpath.write_bytes(bytes(raw))
    err = read_error(zpath)
    assert err.code == "unreadable_member"
    assert "CRC" in str(err)


def test_random_bytes_and_half_zip_are_corrupt_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(CorruptArchiveError, match="junk.zip"):
        open_batch_zip(junk)
    good = make_zip(tmp_path / "good.zip", {f"f{i}.dcm": os.urandom(10_000) for i in range(5)})
    half = tmp_path / "half.zip"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptArchiveError, match="truncated"):
        open_batch_zip(half)
    with pytest.raises(CorruptArchiveError, match="does not exist"):
        open_batch_zip(tmp_path / "missing.zip")


def test_archive_limits_refuse_whole_batch(tmp_path: Path) -> None:
    zpath = make_zip(tmp_path / "many.zip", {f"{i}.dcm": b"x" * 1000 for i in range(20)})
    with pytest.raises(ArchiveLimitError, match="max_members"):
        open_batch_zip(zpath, ZipLimits(max_members=10))
    with pytest.raises(ArchiveLimitError, match="max_total_bytes"):
        open_batch_zip(zpath, ZipLimits(max_total_bytes=5000))


def test_read_root_file_root_nested_and_ambiguous(tmp_path: Path) -> None:
    root = make_zip(tmp_path / "r.zip", {"Total_Cases_Anon.CSV": b"a,b\n", "x/y.dcm": b""})
    nested = make_zip(tmp_path / "n.zip", {"batch/total_cases_anon.csv": b"n\n"})
    ambiguous = make_zip(
        tmp_path / "a.zip", {"p/total_cases_anon.csv": b"1", "q/total_cases_anon.csv": b"2"}
    )
    deep = make_zip(tmp_path / "d.zip", {"a/b/total_cases_anon.csv": b"1"})
    with zipfile.ZipFile(root) as zf:
        assert read_root_file(zf, "total_cases_anon.csv") == b"a,b\n"
    with zipfile.ZipFile(nested) as zf:
        assert read_root_file(zf, "total_cases_anon.csv") == b"n\n"
    with zipfile.ZipFile(ambiguous) as zf:
        assert read_root_file(zf, "total_cases_anon.csv") is None
    with zipfile.ZipFile(deep) as zf:
        assert read_root_file(zf, "total_cases_anon.csv") is None


def test_thread_local_zip_gives_one_handle_per_thread(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    zpath = make_zip(tmp_path / "t.zip", {f"{i}.bin": bytes([i]) * 5000 for i in range(16)})
    with ThreadLocalZip(zpath) as tlz, ThreadPoolExecutor(4) as pool:
        members = list_members(tlz.get())

        def read(m):  # type: ignore[no-untyped-def]
            return m.path, read_member(tlz.get(), m), id(tlz.get())

        results = list(pool.map(read, members))
    assert all(data == bytes([int(p.split(".")[0])]) * 5000 for p, data, _ in results)


def _dicom_like(seed: int, size: int) -> bytes:
    # speckle-like bytes with black runs: compresses like a capture, not like zeros or noise
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size, dtype=np.uint8)
    data[rng.random(size) < 0.5] = 0
    return b"DICM" + data.tobytes()


def test_deflated_members_inflate_fast_and_equal_zipfile(tmp_path: Path) -> None:
    members = {f"p/{k}.dcm": _dicom_like(k, n) for k, n in enumerate([1, 900, 70_000, 3 * MB])}
    zpath = make_zip(tmp_path / "b.zip", members)
    with open_batch_zip(zpath) as zf:
        for m in list_members(zf):
            info = zf.getinfo(m.path)
            # the ISA-L path takes every plain deflated member ...
            assert zip_members._inflate_deflated(zf, info, m.size) is not None
            # ... and gives zipfile's bytes
            assert read_member(zf, m) == zf.read(m.path) == members[m.path]


@pytest.mark.parametrize("damage", ["stream", "local_name"])
def test_damaged_deflated_member_gets_zipfile_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    payload = _dicom_like(7, 200_000)
    zpath = make_zip(tmp_path / "d.zip", {"x.dcm": payload})
    raw = bytearray(zpath.read_bytes())
    if damage == "stream":
        raw[30 + len("x.dcm") + 5_000] ^= 0xFF  # inside the deflate stream
    else:
        raw[30] = ord("y")  # the local header now names y.dcm, the directory x.dcm
    zpath.write_bytes(bytes(raw))
    err = read_error(zpath)
    assert err.code == "unreadable_member"
    # the fast path gave up and zipfile named the problem, as it did before
    with monkeypatch.context() as patched:
        patched.setattr(zip_members, "_fast_zlib", None)
        assert str(err) == str(read_error(zpath))
    if damage == "local_name":
        assert "differ" in str(err)

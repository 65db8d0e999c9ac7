"""The one-pass ingest: catalog rows and PNG exports from a single read of each member."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydicom.data import get_testdata_file

from casbusi_assets.ingest.catalog import catalog_zip
from casbusi_assets.ingest.zip_members import CorruptArchiveError
from casbusi_assets.pixels import single_pass
from casbusi_assets.pixels.single_pass import ingest_zip
from casbusi_assets.shared.parallel import WorkerPool
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets_tests.ingest.test_catalog import gray, make_dicom

DUP_UID = "1.2.826.0.1.3680043.8.498.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def _undecodable_jpeg() -> bytes:
    """A still that passes the catalogue's structural checks (JPEG markers at both ends, one
    frame) but whose codestream is garbage: only a real decode finds out."""
    from io import BytesIO

    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(BytesIO(make_dicom(gray(16, 16), sop_uid="1.2.3.99")))
    ds.file_meta.TransferSyntaxUID = JPEG_BASELINE
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\x13\x37" * 40 + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def batch_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zips") / "batch.zip"
    dup = make_dicom(gray(40, 56, seed=3), sop_uid=DUP_UID)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(get_testdata_file("US1_UNCR.dcm"), "p1/us1.dcm")  # RGB still
        zf.write(get_testdata_file("OBXXXX1A_rle_2frame.dcm"), "p1/clip.dcm")  # 2-frame RLE
        zf.writestr("p1/a_first.dcm", dup)
        zf.writestr("p2/z_copy.dcm", dup)  # the same instance again: exported once
        zf.writestr("p2/still.dcm", make_dicom(gray(seed=1)))
        zf.writestr("p2/cine.dcm", make_dicom(np.stack([gray(seed=s) for s in range(5)]), frames=5))
        zf.writestr("p2/bad_codestream.dcm", _undecodable_jpeg())
        zf.writestr("p2/cut.dcm", make_dicom(gray(200, 200))[:3000])
        zf.writestr("p2/notes.txt", b"not dicom")
        zf.writestr("../escape.dcm", make_dicom(gray()))
        zf.writestr("total_cases_anon.csv", b"PatientID\n1\n")
    return path


def _run(zip_path: Path, root: Path, workers: int, images: bool = True, videos: bool = True):
    with (
        WorkerPool(workers) as pool,
        staged_batch_dir(root, "image_table", "b1") as si,
        staged_batch_dir(root, "video_table", "b1") as sv,
    ):
        result = ingest_zip(
            zip_path,
            "b1",
            images=si if images else None,
            videos=sv if videos else None,
            policy="first_middle",
            pool=pool,
        )
    return result


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_catalog_rows_match_the_catalogue_alone(batch_zip: Path, tmp_path: Path) -> None:
    result = _run(batch_zip, tmp_path, workers=1)
    alone = catalog_zip(batch_zip, "b1", executor="serial")
    pd.testing.assert_frame_equal(result.catalog, alone)


def test_one_png_per_instance_duplicates_collapse(batch_zip: Path, tmp_path: Path) -> None:
    result = _run(batch_zip, tmp_path, workers=1)
    images = result.images.set_index("sop_instance_uid")
    ok = result.catalog[(result.catalog["status"] == "ok") & (result.catalog["kind"] == "image")]
    assert set(images.index) == set(ok["sop_instance_uid"])
    dup = images.loc[DUP_UID]
    assert dup["member_path"] == "p1/a_first.dcm" and dup["n_members"] == 2  # first path wins
    written = sorted(p.name for p in (tmp_path / "image_table" / "b1").iterdir())
    expected = sorted(Path(p).name for p in images.loc[images["status"] == "ok", "image_path"])
    assert written == expected  # no temp copies left, nothing for the failed still
    for p in images.loc[images["status"] == "ok", "image_path"]:
        assert Path(p).is_file()
    bad = images[images["member_path"] == "p2/bad_codestream.dcm"].iloc[0]
    assert bad["status"] == "failed" and bad["image_path"] is None and bad["error"]


def test_clips_get_their_policy_frames(batch_zip: Path, tmp_path: Path) -> None:
    result = _run(batch_zip, tmp_path, workers=1)
    videos = result.videos.set_index("member_path")
    assert set(videos.index) == {"p1/clip.dcm", "p2/cine.dcm"}
    cine = videos.loc["p2/cine.dcm"]
    assert cine["status"] == "ok" and cine["saved_frame_indices"] == "[0, 2]"
    frames = sorted(p.name for p in Path(cine["frames_dir"]).iterdir())
    assert frames == ["frame_0000.png", "frame_0002.png"]
    assert "n_members" not in result.videos.columns  # not a VIDEO_TABLE column


def test_worker_processes_give_the_same_tables_and_files(batch_zip: Path, tmp_path: Path) -> None:
    one = _run(batch_zip, tmp_path / "one", workers=1)
    two = _run(batch_zip, tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(one.catalog, two.catalog)
    for a, b, col in (
        (one.images, two.images, "image_path"),
        (one.videos, two.videos, "frames_dir"),
    ):
        a = a.assign(**{col: a[col].str.replace(str(tmp_path / "one"), "", regex=False)})
        b = b.assign(**{col: b[col].str.replace(str(tmp_path / "two"), "", regex=False)})
        pd.testing.assert_frame_equal(a, b)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_rerun_replaces_the_files_exactly(batch_zip: Path, tmp_path: Path) -> None:
    _run(batch_zip, tmp_path, workers=1)
    first = _files(tmp_path)
    _run(batch_zip, tmp_path, workers=1)
    assert _files(tmp_path) == first
    assert not [p for p in tmp_path.rglob(".*")]  # no staging, trash or temp names left


def test_catalog_only_decodes_nothing(batch_zip: Path, tmp_path: Path, monkeypatch) -> None:
    def no_decode(*args, **kwargs):
        raise AssertionError("catalog-only pass must not decode pixels")

    monkeypatch.setattr(single_pass.decode, "export_still_dataset", no_decode)
    monkeypatch.setattr(single_pass.decode, "export_video_dataset", no_decode)
    result = _run(batch_zip, tmp_path, workers=1, images=False, videos=False)
    assert result.images is None and result.videos is None
    assert len(result.catalog) == 11
    assert not any((tmp_path / "image_table" / "b1").iterdir())


def test_progress_reaches_every_member(batch_zip: Path) -> None:
    lines: list[str] = []
    ingest_zip(batch_zip, "b1", report=lines.append)
    assert lines[-1] == "ingest: 11/11 (100%)"


def test_a_broken_archive_fails_before_any_file_is_written(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"\x13\x37" * 4000)
    with pytest.raises(CorruptArchiveError):
        _run(junk, tmp_path / "out", workers=1)
    assert not (tmp_path / "out" / "image_table" / "b1").exists()


def test_a_bad_frame_policy_is_refused_before_any_work(batch_zip: Path, tmp_path: Path) -> None:
    with staged_batch_dir(tmp_path, "video_table", "b1") as sv, pytest.raises(ValueError):
        ingest_zip(batch_zip, "b1", videos=sv, policy="sometimes")


def test_a_catalog_streamed_to_its_batch_file_is_the_whole_catalog(
    batch_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest step writes catalog rows to the warehouse in chunks as they come and keeps only
    # the rows without headers: the file must hold exactly the catalog a whole pass returns,
    # in the same order, whatever the chunk boundaries (small chunks here: 3 rows per hand-off,
    # 2 per row group).
    from casbusi_assets.storage import warehouse

    monkeypatch.setattr(single_pass, "CHUNK_ROWS", 3)
    monkeypatch.setattr(warehouse, "WRITE_CHUNK_ROWS", 2)
    whole = _run(batch_zip, tmp_path / "whole", workers=1).catalog
    wh = tmp_path / "warehouse"
    writer = warehouse.BatchWriter(wh, "dicom_catalog", "b1")
    with (
        WorkerPool(2) as pool,
        staged_batch_dir(tmp_path / "s", "image_table", "b1") as si,
        staged_batch_dir(tmp_path / "s", "video_table", "b1") as sv,
    ):
        streamed = ingest_zip(
            batch_zip, "b1", images=si, videos=sv, policy="first_middle", pool=pool,
            catalog_writer=writer,
        )  # fmt: skip
    writer.commit(wh)
    from_file = warehouse.read_batch(wh, "dicom_catalog", "b1")
    expected = warehouse.conform(whole, warehouse.TABLE_SCHEMAS["dicom_catalog"], "x").to_pandas()
    pd.testing.assert_frame_equal(from_file, expected, check_exact=True)
    assert from_file["header"].notna().sum() >= 5  # the headers are in the file...
    assert "header" not in streamed.catalog.columns  # ...not in what the step keeps
    pd.testing.assert_frame_equal(streamed.catalog, whole.drop(columns=["header"]))
    assert [p.name for p in (wh / "dicom_catalog" / "batch_id=b1").iterdir()] == ["data.parquet"]

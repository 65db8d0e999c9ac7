from pathlib import Path

import cv2
import numpy as np
import pytest

from casbusi_assets.storage import files


def _png(value: int = 7) -> tuple[np.ndarray, bytes]:
    img = np.full((5, 6), value, dtype=np.uint8)
    img[1, 2] = 200
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return img, buf.tobytes()


def test_local_paths_and_file_urls_stay_plain_paths(tmp_path):
    assert files.data_path(tmp_path) == tmp_path and isinstance(files.data_path(tmp_path), Path)
    assert files.data_path(f"file://{tmp_path}") == tmp_path
    assert not files.is_remote(str(tmp_path)) and not files.is_remote(f"file://{tmp_path}")
    assert files.is_remote("s3://bucket/x") and files.is_remote("memory://x")


def test_image_read_back_the_same_from_a_local_path_and_a_url(remote_url, tmp_path):
    img, data = _png()
    local = tmp_path / "a.png"
    local.write_bytes(data)
    url = f"{remote_url}/files/a.png"
    (files.data_path(url)).write_bytes(data)
    for where in (str(local), local, url):
        assert files.exists(where)
        assert files.read_bytes(where) == data
        np.testing.assert_array_equal(files.read_image(where), img)
        assert files.read_image(where, cv2.IMREAD_COLOR).shape == (5, 6, 3)


def test_missing_or_broken_files_read_as_none_like_imread(remote_url, tmp_path):
    for where in (str(tmp_path / "none.png"), f"{remote_url}/none.png", "", None):
        assert not files.exists(where)
        assert files.read_image(where) is None
    files.data_path(f"{remote_url}/junk.png").write_bytes(b"not a png")
    assert files.read_image(f"{remote_url}/junk.png") is None
    with pytest.raises(FileNotFoundError):
        files.read_bytes(f"{remote_url}/none.png")


def test_list_files_returns_recorded_strings(remote_url, tmp_path):
    for root in (str(tmp_path), remote_url):
        for name in ("f2.png", "f1.png", "x.txt"):
            (files.data_path(root) / "frames" / name).parent.mkdir(parents=True, exist_ok=True)
            (files.data_path(root) / "frames" / name).write_bytes(b"1")
        assert files.list_files(f"{root}/frames", "*.png") == [
            f"{root}/frames/f1.png",
            f"{root}/frames/f2.png",
        ]

"""A whole home with its warehouse and files on s3:// (moto on loopback): run-batch writes the
Parquet and PNG objects, `casbusi sql` answers from the local catalog, the recorded paths read
back, and delete-batch removes the batch's objects. Only configuration differs from a local home.
"""

from __future__ import annotations

import pytest

from casbusi_assets.cli import main
from casbusi_assets.runner import delete_batch, run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.files import read_image
from casbusi_assets.storage.home import DATA_URL_ENV_VAR, HOME_ENV_VAR, layout
from casbusi_assets.synthetic import generate_batches

SELECT = ["dicom_catalog", "image_table", "video_table"]


@pytest.mark.slow
def test_run_batch_sql_and_delete_batch_on_s3(s3_url, tmp_path, monkeypatch, capsys):
    import s3fs

    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "home"))
    monkeypatch.setenv(DATA_URL_ENV_VAR, s3_url)
    home = layout().create()
    assert home.remote
    zips = generate_batches(tmp_path / "zips", batches=2, patients=2, seed=31)
    for z in zips:
        run_batch(z.zip_path, home, select=SELECT, echo=lambda m: None)

    fs = s3fs.S3FileSystem()
    key = s3_url.removeprefix("s3://")
    objects = set(fs.find(key))
    for table in SELECT:
        for z in zips:
            assert f"{key}/warehouse/{table}/batch_id={z.batch_id}/data.parquet" in objects
    assert not (home.root / "warehouse").exists() and not (home.root / "files").exists()

    assert main(["sql", "--csv", "SELECT batch_id, image_path FROM image_table "
                 "WHERE status = 'ok' ORDER BY 1, 2"]) == 0  # fmt: skip
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()[1:]]
    assert {b for b, _ in rows} == {z.batch_id for z in zips}
    for batch, url in rows:
        assert url.startswith(f"{s3_url}/files/image_table/{batch}/")
        assert url.removeprefix("s3://") in objects
    img = read_image(rows[0][1])
    assert img is not None and img.ndim in (2, 3) and min(img.shape[:2]) > 16
    pngs = {k for k in objects if k.startswith(f"{key}/files/image_table/") and k.endswith(".png")}
    assert len(pngs) == len(rows)  # one object per ok image, no orphans

    removed = delete_batch(home, "batch_002")
    assert removed["tables"] == len(SELECT) and removed["file_folders"] >= 1
    left = set(fs.find(key))
    assert not {k for k in left if "batch_002" in k}
    assert {k for k in left if "batch_001" in k} == {k for k in objects if "batch_001" in k}
    df = warehouse.query(home.catalog, home.warehouse, "SELECT DISTINCT batch_id FROM image_table")
    assert df["batch_id"].tolist() == ["batch_001"]

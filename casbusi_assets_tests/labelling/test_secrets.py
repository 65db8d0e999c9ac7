"""The API key never leaves memory: after an online upload and an import (masks fetched with the
key), it is in no file under the home (Dagster's run and event storage included), no log line and
no metadata value."""

from __future__ import annotations

import logging

import dagster as dg

from casbusi_assets.labelling.assets import import_labels
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets_tests.labelling.conftest import CROP, labels_definitions, materialize_crops
from casbusi_assets_tests.labelling.export_fixture import export_line, ndjson

SECRET = "lb-test-key-5f0c1e9a7d3b4c2e8a6f"


def _png_bytes() -> bytes:
    import cv2
    import numpy as np

    img = np.zeros((CROP[3], CROP[2], 3), np.uint8)
    img[1:4, 1:4] = (152, 103, 123)
    return cv2.imencode(".png", img)[1].tobytes()


def test_the_key_is_in_no_file_log_or_metadata(world, fake_sdk, monkeypatch, caplog, capfd):
    home = world["home"]
    monkeypatch.setenv("LABELBOX_API_KEY", SECRET)
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    fake_sdk.api_key = SECRET
    labelbox = LabelboxResource(
        api_key=dg.EnvVar("LABELBOX_API_KEY"),
        project_id=fake_sdk.project_id,
        dataset_id=fake_sdk.dataset_id,
    )
    caplog.set_level(logging.DEBUG)
    instance = dg.DagsterInstance.local_temp(tempdir=str(home.dagster_home))
    upload = materialize_crops(world, labelbox, instance=instance)
    assert upload.success and fake_sdk.rows  # really went online

    # Labels back: the mask is fetched from its URL with the key (online resolver).
    url = "https://api.labelbox.com/api/v1/tasks/task9/masks/cm7/index/1"
    fake_sdk.masks[url] = _png_bytes()
    export = home.root.parent / "export.ndjson"
    export.write_text(ndjson([export_line("casbusi-1.2.0", "dr1", CROP[2], CROP[3])]))
    code = import_labels(home, export, None, labels_definitions(home, labelbox), echo=print)
    assert code == 0
    assert fake_sdk.mask_requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"

    needle = SECRET.encode()
    leaked = [p for p in home.root.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert leaked == []
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err
    with dg.DagsterInstance.get() as cli_instance:
        for inst in (instance, cli_instance):
            for run in inst.get_runs():
                for record in inst.all_logs(run.run_id):
                    assert SECRET not in str(record.message)
                    event = record.dagster_event
                    mat = (
                        event.step_materialization_data
                        if event and event.is_step_materialization
                        else None
                    )
                    if mat is not None:
                        for value in mat.materialization.metadata.values():
                            assert SECRET not in str(value.value)
                assert SECRET not in str(run.run_config) and SECRET not in str(run.tags)

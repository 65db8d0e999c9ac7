"""The two assets end to end: crops out (offline outbox, online through the SDK fake), labels back
through the CLI import and the labels inbox sensor."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.ingest.resources import InboxSettings
from casbusi_assets.labelling.archive import mask_pixels, read_versions
from casbusi_assets.labelling.assets import import_labels, labels_versions
from casbusi_assets.labelling.labelbox_client import wire_specs
from casbusi_assets.labelling.offline import labelbox_paths
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets.labelling.sensors import labels_inbox_sensor
from casbusi_assets.storage.resources import CasbusiHome
from casbusi_assets.storage.warehouse import read_batch
from casbusi_assets_tests.labelling.conftest import (
    BATCH,
    CROP,
    catalog_with_names,
    labels_definitions,
    materialize_crops,
    stand_in_assets,
)
from casbusi_assets_tests.labelling.export_fixture import export_line, ndjson

OFFLINE = LabelboxResource(mode="auto")  # no key: offline


def _online(server) -> LabelboxResource:
    return LabelboxResource(
        api_key=server.api_key, project_id=server.project_id, dataset_id=server.dataset_id
    )


def test_offline_upload_writes_the_sdk_payloads_to_the_outbox(world):
    home = world["home"]
    res = materialize_crops(world, OFFLINE)
    table = read_batch(home.warehouse, "labelbox_crops", BATCH)
    assert list(table["upload_status"]) == ["outbox"] * 4
    assert list(table["inpainted"]) == [False, False, False, True]
    crop = cv2.imread(table.loc[3, "crop_path"], cv2.IMREAD_UNCHANGED)
    assert crop.shape == (CROP[3], CROP[2]) and int(crop[0, 0]) == 222  # from the inpainted copy

    outbox = labelbox_paths(home.root).outbox / f"{BATCH}.json"
    payload = json.loads(outbox.read_text())
    specs = payload["upsert_data_rows"]
    assert [s["id"] for s in specs] == [{"type": "AUTO", "value": ""}] * 4
    first = specs[0]["payload"]
    assert first["global_key"] == "casbusi-1.2.0" and first["media_type"] == "IMAGE"
    assert first["row_data"] == table.loc[0, "crop_path"]
    assert first["attachments"] == [
        {"type": "IMAGE", "name": "uncropped capture", "value": table.loc[0, "original_path"]}
    ]
    assert {m["name"]: m["value"] for m in first["metadata_fields"]}["casbusi_batch"] == BATCH
    assert payload["create_batch"] == {
        "name": BATCH,
        "global_keys": [f"casbusi-1.2.{i}" for i in range(4)],
    }
    meta = res.asset_materializations_for_node("labelbox_crops")[0].metadata
    assert meta["mode"].value == "offline" and meta["upload_status"].value == {"outbox": 4}
    before = outbox.read_bytes()
    materialize_crops(world, OFFLINE)
    assert outbox.read_bytes() == before  # a re-run writes the same outbox


def test_online_upload_twice_same_keys_no_duplicate_rows(world, fake_sdk):
    materialize_crops(world, _online(fake_sdk))
    first = read_batch(world["home"].warehouse, "labelbox_crops", BATCH)
    materialize_crops(world, _online(fake_sdk))
    second = read_batch(world["home"].warehouse, "labelbox_crops", BATCH)
    assert list(first["global_key"]) == list(second["global_key"])
    assert list(first["upload_status"]) == ["created"] * 4
    assert list(second["upload_status"]) == ["updated"] * 4
    assert list(first["data_row_id"]) == list(second["data_row_id"])
    assert len(fake_sdk.rows) == 4 and len(fake_sdk.batches) == 1
    # The exact items of the first upsert are the offline outbox's items, sent to the SDK.
    (items,), _ = fake_sdk.calls_named("Dataset.upsert_data_rows")[0]
    assert [s["payload"]["global_key"] for s in wire_specs("ds-1", items)] == list(
        first["global_key"]
    )


def test_a_timed_out_task_fails_the_asset_with_a_clear_message(world, fake_sdk):
    fake_sdk.hang_tasks = True
    res = materialize_crops(world, _online(fake_sdk), raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure).step_failure_data
    message = failure.user_failure_data.description
    assert "data row upsert task" in message and "did not finish within 600 s" in message


def test_a_duplicate_key_in_the_task_result_is_recorded_on_the_row(world, fake_sdk):
    fake_sdk.duplicate_on_create.add("casbusi-1.2.1")
    res = materialize_crops(world, _online(fake_sdk))
    table = read_batch(world["home"].warehouse, "labelbox_crops", BATCH).set_index("global_key")
    assert table.loc["casbusi-1.2.1", "upload_status"] == "failed"
    assert "duplicate global key" in table.loc["casbusi-1.2.1", "upload_error"].lower()
    assert res.asset_materializations_for_node("labelbox_crops")[0].metadata["failed"].value == 1


def test_bad_key_fails_the_asset_with_one_line(world, fake_sdk):
    bad = LabelboxResource(api_key="nope", project_id="proj-1", dataset_id="ds-1")
    res = materialize_crops(world, bad, raise_on_error=False)
    failure = next(e for e in res.all_events if e.is_step_failure).step_failure_data
    message = failure.user_failure_data.description
    assert "rejected the API key" in message and "\n" not in message


def _export_with_mask(folder: Path, lines) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    masks = folder / "export.masks"
    masks.mkdir(exist_ok=True)
    img = np.zeros((CROP[3], CROP[2], 3), np.uint8)
    img[5:25, 10:30] = (152, 103, 123)  # BGR of color_rgb [123, 103, 152]
    cv2.imwrite(str(masks / "cm7.png"), img)
    export = folder / "export.ndjson"
    export.write_text(ndjson(lines))
    return export, masks


def test_cli_import_archives_labels_and_names_malformed_lines(world, monkeypatch, capsys):
    home = world["home"]
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    materialize_crops(world, OFFLINE)
    export, masks = _export_with_mask(
        home.root.parent / "drop",
        [
            export_line(
                "casbusi-1.2.0", "dr1", CROP[2], CROP[3], answers=["Benign Lesion Present"]
            ),
            "{not json",
            export_line("unknown-key", "dr9", CROP[2], CROP[3], composite=None),
        ],
    )
    errors: list[str] = []
    out: list[str] = []

    def fail(m: str) -> int:
        errors.append(m)
        return 1

    defs = labels_definitions(home, OFFLINE)
    code = import_labels(home, export, masks, defs, echo=out.append, fail=fail)
    assert code == 1
    assert (
        errors[0]
        == "export.ndjson line 2: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )
    assert "the other lines were archived" in errors[-1]
    assert any("unknown-key" in line for line in out)
    archive = read_versions(home.warehouse)
    assert sorted(archive["status"]) == ["malformed", "ok", "unknown_global_key"]
    ok = archive[archive["status"] == "ok"].iloc[0]
    assert ok["benign_lesion_present"] and not ok["malignant_lesion_present"]
    mask = mask_pixels(ok["mask_path"])
    expected = np.zeros((150, 200), bool)
    expected[20 + 5 : 20 + 25, 30 + 10 : 30 + 30] = True
    assert np.array_equal(mask, expected)
    # The same file again is the same retrieval: no new version.
    assert import_labels(home, export, masks, defs, echo=out.append, fail=fail) == 0
    assert "nothing new" in out[-1]
    assert len(read_versions(home.warehouse)["archive_version"].unique()) == 1


def test_a_new_export_is_a_new_version_and_the_old_one_stays(world, monkeypatch):
    home = world["home"]
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    materialize_crops(world, OFFLINE)
    defs = labels_definitions(home, OFFLINE)
    e1, m1 = _export_with_mask(
        home.root.parent / "d1", [export_line("casbusi-1.2.0", "dr1", 100, 80)]
    )
    e2, m2 = _export_with_mask(
        home.root.parent / "d2", [export_line("casbusi-1.2.0", "dr1", 100, 80, label_id="lb2")]
    )
    assert import_labels(home, e1, m1, defs, echo=lambda m: None) == 0
    assert import_labels(home, e2, m2, defs, echo=lambda m: None) == 0
    archive = read_versions(home.warehouse)
    assert len(archive["archive_version"].unique()) == 2
    assert sorted(archive["label_id"]) == ["lb1", "lb2"]


def test_labels_inbox_sensor_snapshots_and_requests_one_run_per_export(world, tmp_path):
    home = world["home"]
    inbox = labelbox_paths(home.root).inbox
    export, _ = _export_with_mask(inbox, [export_line("casbusi-1.2.0", "dr1", 100, 80)])
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "casbusi_home": CasbusiHome(home=str(home.root)),
        "inbox_settings": InboxSettings(settle_seconds=0),
    }
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=resources)
    result = labels_inbox_sensor(ctx)
    (version,) = result.dynamic_partitions_requests[0].partition_keys
    assert result.dynamic_partitions_requests[0].partitions_def_name == labels_versions.name
    assert [r.partition_key for r in result.run_requests] == [version]
    snap = labelbox_paths(home.root).snapshot(version)
    assert (snap / "export.ndjson").read_bytes() == export.read_bytes()
    assert (snap / "masks" / "cm7.png").is_file()  # export.masks/ came along
    again = labels_inbox_sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources)
    )
    assert isinstance(again, dg.SkipReason)


@pytest.mark.parametrize("mode", ["sideways"])
def test_an_unknown_mode_is_a_clear_error(mode):
    with pytest.raises(Exception, match="mode must be one of"):
        LabelboxResource(mode=mode).resolved_mode()


def test_casbusi_labels_import_command(world, monkeypatch, capsys):
    from casbusi_assets import cli

    home = world["home"]
    monkeypatch.setenv("CASBUSI_HOME", str(home.root))
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    monkeypatch.delenv("LABELBOX_API_KEY", raising=False)
    materialize_crops(world, OFFLINE)
    export, masks = _export_with_mask(
        home.root.parent / "drop", [export_line("casbusi-1.2.0", "dr1", 100, 80), "[1, 2]"]
    )
    code = cli.main(
        ["--home", str(home.root), "labels", "import", str(export), "--masks", str(masks)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "1 malformed line(s)" in err and "export.ndjson line 2: not a JSON object" in err
    assert "rows archived" in out
    assert (
        cli.main(["--home", str(home.root), "labels", "import", str(home.root / "nope.ndjson")])
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_labels_sync_job_pulls_the_export_into_the_inbox(world, fake_sdk):
    from casbusi_assets.labelling.assets import labels_sync_job
    from casbusi_assets.labelling.offline import scan_labels_inbox

    home = world["home"]
    fake_sdk.export_lines = [export_line("casbusi-1.2.0", "dr1", 100, 80)]
    result = labels_sync_job.execute_in_process(
        resources={"casbusi_home": CasbusiHome(home=str(home.root)), "labelbox": _online(fake_sdk)}
    )
    path = Path(result.output_for_node("pull_labelbox_export"))
    assert path.parent == labelbox_paths(home.root).inbox and path.suffix == ".ndjson"
    assert json.loads(path.read_text()) == fake_sdk.export_lines[0]
    ready, _ = scan_labels_inbox(path.parent, {}, settle_seconds=0)
    assert [r.path for r in ready] == [path]  # only the complete export, no .part left


def test_a_batch_with_identifying_header_fields_is_not_uploaded(world):
    home = world["home"]
    outbox = labelbox_paths(home.root).outbox / f"{BATCH}.json"
    # the same batch, but its catalog says a file still carries a patient's name
    upstream = {a.key.path[-1]: a for a in world["upstream"]}
    uids = [f"1.2.{i}" for i in range(4)]
    leaky_catalog = catalog_with_names(
        pd.DataFrame({"sop_instance_uid": uids, "patient_id": ["p1"] * 4}), "Doe^Jane"
    )
    upstream.update({a.key.path[-1]: a for a in stand_in_assets({"dicom_catalog": leaky_catalog})})
    res = materialize_crops({**world, "upstream": list(upstream.values())}, OFFLINE)
    table = read_batch(home.warehouse, "labelbox_crops", BATCH)
    assert len(table) == 4 and set(table["upload_status"]) == {"blocked_phi"}
    assert table["upload_error"].str.contains("PatientName").all()
    assert not outbox.exists()  # nothing was sent, not even to the outbox
    meta = res.asset_materializations_for_node("labelbox_crops")[0].metadata
    assert meta["mode"].value == "blocked"
    assert "Doe" not in json.dumps({k: str(v.value) for k, v in meta.items()})  # names, not values

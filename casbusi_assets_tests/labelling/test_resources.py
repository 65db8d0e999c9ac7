"""The Labelbox resource as the code location wires it: key and ids from the environment through
EnvVar (never the value), offline by default, both assets and jobs in the Definitions."""

from __future__ import annotations

import dagster as dg
import pytest

from casbusi_assets.definitions import build_definitions, build_resources
from casbusi_assets.labelling.backend import LabellingSetupError
from casbusi_assets.labelling.labelbox_client import LabelboxBackend
from casbusi_assets.labelling.offline import OfflineBackend
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets.storage.home import HomeLayout


def test_without_a_key_the_deployment_is_offline(monkeypatch, tmp_path):
    for name in ("LABELBOX_API_KEY", "LABELBOX_PROJECT_ID", "LABELBOX_DATASET_ID"):
        monkeypatch.delenv(name, raising=False)
    resource = build_resources(str(tmp_path))["labelbox"]
    assert resource.api_key == "" and resource.resolved_mode() == "offline"
    assert isinstance(resource.backend(HomeLayout(tmp_path)), OfflineBackend)


def test_with_a_key_it_is_wired_as_an_env_var_and_goes_online(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELBOX_API_KEY", "k-123")
    monkeypatch.setenv("LABELBOX_PROJECT_ID", "p-1")
    monkeypatch.setenv("LABELBOX_DATASET_ID", "d-1")
    resource = build_resources(str(tmp_path))["labelbox"]
    assert isinstance(resource.api_key, dg.EnvVar) and resource.api_key.env_var_name == (
        "LABELBOX_API_KEY"
    )

    @dg.asset
    def probe(labelbox: LabelboxResource) -> str:
        backend = labelbox.backend(HomeLayout(tmp_path))
        assert isinstance(backend, LabelboxBackend) and "k-123" not in repr(backend)
        assert "k-123" not in repr(labelbox)
        return labelbox.resolved_mode()

    result = dg.materialize([probe], resources={"labelbox": resource})
    assert result.output_for_node("probe") == "online"


def test_online_without_a_key_is_a_setup_error(tmp_path):
    with pytest.raises(LabellingSetupError, match="LABELBOX_API_KEY"):
        LabelboxResource(mode="online", project_id="p").backend(HomeLayout(tmp_path))


def test_definitions_hold_the_labelling_assets_jobs_and_sensor(tmp_path):
    defs = build_definitions(str(tmp_path))
    graph = defs.resolve_asset_graph()
    crops = graph.get(dg.AssetKey("labelbox_crops"))
    archive = graph.get(dg.AssetKey("labels_archive"))
    assert crops.partitions_def.name == "batch" and crops.group_name == "labelling"
    assert archive.partitions_def.name == "labels_version"
    assert crops.parent_keys >= {dg.AssetKey("cleaned_images"), dg.AssetKey("inpainted_images")}
    assert archive.parent_keys == {dg.AssetKey("labelbox_crops")}
    batch = {
        k.to_user_string()
        for k in defs.resolve_job_def("batch_job").asset_layer.executable_asset_keys
    }
    assert "labelbox_crops" in batch and "labels_archive" not in batch
    assert defs.resolve_job_def("labels_import_job") and defs.resolve_job_def("labels_sync_job")
    assert defs.resolve_sensor_def("labels_inbox_sensor")
    schedule = defs.resolve_schedule_def("labels_sync_schedule")
    assert schedule.job_name == "labels_sync_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED

"""`export_splits` through Dagster: materialised against a home, with its checks and metadata."""

from __future__ import annotations

import dagster as dg

from casbusi_assets.definitions import build_definitions
from casbusi_assets.export.assets import export_splits
from casbusi_assets.export.resources import ExportSettings
from casbusi_assets.storage.resources import CasbusiHome
from casbusi_assets_tests.export.conftest import FakeBatch, add_batch, pids


def test_export_splits_materialises_a_folder_with_passing_checks(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 8)))
    result = dg.materialize(
        [export_splits],
        resources={
            "casbusi_home": CasbusiHome(home=str(fake_home.root)),
            "export_settings": ExportSettings(),
        },
        raise_on_error=False,
    )
    assert result.success
    mat = result.asset_materializations_for_node("export_splits")[0]
    folder = mat.metadata["export_dir"].value
    assert folder.startswith(str(fake_home.root / "exports"))
    assert mat.metadata["files"].value["image"] == 24
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_patient_in_two_splits": True, "every_manifest_file_exists": True}


def test_a_bad_setting_fails_with_its_name(fake_home):
    add_batch(fake_home, FakeBatch("batch_001", pids(0, 2)))
    result = dg.materialize(
        [export_splits],
        resources={
            "casbusi_home": CasbusiHome(home=str(fake_home.root)),
            "export_settings": ExportSettings(split_mode="random"),
        },
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "split_mode" in failure.step_failure_data.user_failure_data.description


def test_export_is_its_own_job_and_not_in_the_batch_job(tmp_path):
    defs = build_definitions(str(tmp_path))
    batch = defs.resolve_job_def("batch_job").asset_layer.executable_asset_keys
    export = defs.resolve_job_def("export_job").asset_layer.executable_asset_keys
    assert dg.AssetKey("export_splits") not in batch
    assert export == {dg.AssetKey("export_splits")}
    node = defs.resolve_asset_graph().get(dg.AssetKey("export_splits"))
    assert node.partitions_def is None and node.group_name == "export"
    assert dg.AssetKey("image_table") in node.parent_keys


def test_the_sensor_exports_after_the_last_active_batch_run(tmp_path):
    from casbusi_assets.export.sensors import export_after_batches_sensor

    defs = build_definitions(str(tmp_path))
    job = defs.resolve_job_def("batch_job")
    with dg.instance_for_test() as instance:
        done = instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS)
        running = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
        event = dg.DagsterEvent(
            event_type_value="PIPELINE_SUCCESS", job_name=job.name, message="ok"
        )

        def evaluate():
            ctx = dg.build_run_status_sensor_context(
                sensor_name="export_after_batches_sensor",
                dagster_event=event,
                dagster_instance=instance,
                dagster_run=done,
            )
            return export_after_batches_sensor(ctx)

        assert isinstance(evaluate(), dg.SkipReason)
        instance.report_run_failed(running)  # the other batch run is over now
        request = evaluate()
        assert isinstance(request, dg.RunRequest) and done.run_id in request.run_key
    sensor = defs.resolve_sensor_def("export_after_batches_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

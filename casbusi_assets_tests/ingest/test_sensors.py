import os

import dagster as dg
import pytest

from casbusi_assets.ingest.resources import InboxSettings
from casbusi_assets.ingest.sensors import inbox_sensor
from casbusi_assets.storage.resources import CasbusiHome


@pytest.fixture
def home(tmp_path):
    return CasbusiHome(home=str(tmp_path / "home"))


def _drop(home: CasbusiHome, name: str, data: bytes = b"PK\x05\x06" + bytes(18), age: float = 60):
    path = home.layout().inbox / name
    path.write_bytes(data)
    t = path.stat().st_mtime - age
    os.utime(path, (t, t))
    return path


def _tick(instance, home, cursor):
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"casbusi_home": home, "inbox_settings": InboxSettings(settle_seconds=5)},
    )
    result = inbox_sensor(ctx)
    # The test context does not apply partition requests; do what the daemon would.
    if isinstance(result, dg.SensorResult):
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        return result, result.cursor
    return result, ctx.cursor


def test_new_zip_adds_one_partition_and_one_run_then_nothing(home):
    instance = dg.DagsterInstance.ephemeral()
    _drop(home, "Batch 1.zip")
    result, cursor = _tick(instance, home, None)
    assert isinstance(result, dg.SensorResult)
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["batch_1"]]
    assert [r.partition_key for r in result.run_requests] == ["batch_1"]
    assert [e.partition for e in result.asset_events] == ["batch_1"]
    assert result.asset_events[0].asset_key == dg.AssetKey("inbox_zip")

    again, _ = _tick(instance, home, cursor)
    assert isinstance(again, dg.SkipReason)
    assert instance.get_dynamic_partitions("batch") == ["batch_1"]


def test_partial_upload_is_ignored(home):
    instance = dg.DagsterInstance.ephemeral()
    _drop(home, "batch_2.zip.part")
    result, _ = _tick(instance, home, None)
    assert isinstance(result, dg.SkipReason)
    assert instance.get_dynamic_partitions("batch") == []


def test_file_still_growing_waits_for_a_stable_tick(home):
    instance = dg.DagsterInstance.ephemeral()
    path = _drop(home, "batch_3.zip", age=0)
    first, cursor = _tick(instance, home, None)
    assert isinstance(first, dg.SkipReason) and "waiting for 1" in first.skip_message
    path.write_bytes(path.read_bytes() + b"more")  # still being written
    second, cursor = _tick(instance, home, cursor)
    assert isinstance(second, dg.SkipReason)
    third, _ = _tick(instance, home, cursor)  # unchanged since the last tick: complete
    assert [r.partition_key for r in third.run_requests] == ["batch_3"]


def test_changed_zip_is_reingested_without_a_second_partition(home):
    instance = dg.DagsterInstance.ephemeral()
    path = _drop(home, "batch_4.zip")
    first, cursor = _tick(instance, home, None)
    _drop(home, "batch_4.zip", data=path.read_bytes() + b"v2", age=30)
    second, _ = _tick(instance, home, cursor)
    assert [r.partition_key for r in second.run_requests] == ["batch_4"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert second.dynamic_partitions_requests == []
    assert instance.get_dynamic_partitions("batch") == ["batch_4"]

"""The online backend against a recording fake of the SDK: exact payloads, idempotent re-sends,
errors the SDK hides (duplicate keys in task.errors, silent wait timeouts), retries, setup errors."""

from __future__ import annotations

import inspect
from pathlib import Path

import labelbox as lb
import lbox.exceptions as lbx
import pytest
from labelbox.schema.data_row_metadata import DataRowMetadataOntology
from labelbox.schema.export_task import ExportTask
from labelbox.schema.task import DataUpsertTask

from casbusi_assets.labelling.backend import (
    DataRowSpec,
    LabellingError,
    LabellingSetupError,
    global_key_for,
)
from casbusi_assets.labelling.labelbox_client import (
    METADATA_FIELDS,
    LabelboxBackend,
    build_upsert_items,
    call_with_retry,
    wire_specs,
)
from casbusi_assets_tests.labelling import fakes


def _specs(tmp_path: Path, n: int = 3) -> list[DataRowSpec]:
    specs = []
    for i in range(n):
        crop = tmp_path / f"crop{i}.png"
        orig = tmp_path / f"orig{i}.png"
        crop.write_bytes(b"png")
        orig.write_bytes(b"png")
        sop = f"1.2.3.{i}"
        specs.append(
            DataRowSpec(
                global_key=global_key_for(sop),
                crop_path=str(crop),
                original_path=str(orig),
                external_id=f"{sop}.png",
                metadata={name: f"v{i}" for name in METADATA_FIELDS},
            )
        )
    return specs


@pytest.fixture
def server() -> fakes.FakeServer:
    return fakes.FakeServer()


def _backend(server: fakes.FakeServer, **kw) -> LabelboxBackend:
    sleeps: list[float] = []
    fakes.FakeClient.server = server
    backend = LabelboxBackend(
        kw.pop("api_key", server.api_key),
        kw.pop("project_id", server.project_id),
        kw.pop("dataset_id", server.dataset_id),
        client_factory=fakes.FakeClient,
        sleep=sleeps.append,
        http_get=server.http_get,
        **kw,
    )
    backend.sleeps = sleeps  # type: ignore[attr-defined]
    return backend


def test_global_key_is_derived_from_the_sop_uid():
    assert global_key_for("1.2.840.1") == "casbusi-1.2.840.1"
    assert global_key_for(" 1.2.840.1 ") == global_key_for("1.2.840.1")
    with pytest.raises(ValueError):
        global_key_for("")


def test_first_upload_sends_creates_with_exact_payloads_and_one_batch(tmp_path, server):
    specs = _specs(tmp_path)
    result = _backend(server).upload("batch_001", specs)

    assert {gk: o.status for gk, o in result.rows.items()} == {
        s.global_key: "created" for s in specs
    }
    assert result.batch_action == "created" and result.labelling_batch == "batch_001"
    (items,), _ = server.calls_named("Dataset.upsert_data_rows")[0]
    first = specs[0]
    assert items[0] == {
        "row_data": first.crop_path,
        "external_id": "1.2.3.0.png",
        "media_type": "IMAGE",
        "metadata_fields": [{"name": n, "value": "v0"} for n in sorted(METADATA_FIELDS)],
        "attachments": [
            {
                "type": "IMAGE",
                "name": "uncropped capture",
                "value": "https://storage.example/orig0.png",
            }
        ],
        "global_key": "casbusi-1.2.3.0",
    }
    # The key lookup comes first; the metadata fields are created once in the org's schema.
    names = [n for n, _, _ in server.calls]
    assert names.index("Client.get_data_row_ids_for_global_keys") < names.index(
        "Dataset.upsert_data_rows"
    )
    created_fields = [
        k["name"] for _, k in server.calls_named("DataRowMetadataOntology.create_schema")
    ]
    assert sorted(created_fields) == sorted(METADATA_FIELDS)
    assert server.calls_named("Project.create_batch") == [
        ((), {"name": "batch_001", "global_keys": sorted(s.global_key for s in specs)})
    ]
    assert all(o.data_row_id for o in result.rows.values())


def test_upload_twice_gives_same_keys_and_no_duplicate_rows(tmp_path, server):
    specs = _specs(tmp_path)
    first = _backend(server).upload("batch_001", specs)
    n_rows = len(server.rows)
    server.calls.clear()
    second = _backend(server).upload("batch_001", specs)

    assert set(first.rows) == set(second.rows)
    assert len(server.rows) == n_rows == 3
    assert {o.status for o in second.rows.values()} == {"updated"}
    assert {gk: o.data_row_id for gk, o in first.rows.items()} == {
        gk: o.data_row_id for gk, o in second.rows.items()
    }
    (items,), _ = server.calls_named("Dataset.upsert_data_rows")[0]
    # Existing rows go as updates keyed by GlobalKey: the SDK sends them as GKEY specs.
    assert all(isinstance(i["key"], lb.GlobalKey) and "global_key" not in i for i in items)
    assert [s["id"] for s in wire_specs("ds-1", items)] == [
        {"type": "GKEY", "value": s.global_key} for s in specs
    ]
    # Re-sending the batch creates no second Labelbox batch.
    assert server.calls_named("Project.create_batch") == []
    assert second.batch_action == "exists" and len(server.batches) == 1


def test_a_rerun_with_a_new_image_queues_only_that_image_in_a_follow_up_batch(tmp_path, server):
    specs = _specs(tmp_path, 3)
    _backend(server).upload("batch_001", specs[:2])
    result = _backend(server).upload("batch_001", specs)
    assert result.rows[specs[2].global_key].status == "created"
    assert result.batch_action == "follow_up:batch_001 (2)"
    assert server.calls_named("Project.create_batch")[-1] == (
        (),
        {"name": "batch_001 (2)", "global_keys": [specs[2].global_key]},
    )


def test_duplicate_key_error_in_a_complete_task_is_detected(tmp_path, server):
    specs = _specs(tmp_path)
    # Another dataset of the org holds the key: the lookup does not see it, the upsert reports it.
    server.duplicate_on_create.add(specs[1].global_key.casefold())
    result = _backend(server).upload("batch_001", specs)
    bad = result.rows[specs[1].global_key]
    assert bad.status == "failed" and "duplicate global key" in bad.error.lower()
    assert result.rows[specs[0].global_key].status == "created"
    assert server.calls_named("Project.create_batch")[0][1]["global_keys"] == sorted(
        [specs[0].global_key, specs[2].global_key]
    )


def test_in_payload_case_insensitive_duplicate_is_caught(tmp_path, server):
    a, b = _specs(tmp_path, 2)
    twin = DataRowSpec(a.global_key.upper(), b.crop_path, b.original_path, "x.png", {})
    result = _backend(server).upload("batch_001", [a, twin])
    assert sorted(o.status for o in result.rows.values()) == ["created", "failed"]


def test_timed_out_task_is_an_error_not_a_success(tmp_path, server):
    server.hang_tasks = True
    with pytest.raises(LabellingError, match=r"did not finish within 5 s \(status IN_PROGRESS\)"):
        _backend(server, task_timeout_seconds=5).upload("batch_001", _specs(tmp_path))
    assert server.calls_named("Task.wait_till_done") == [((), {"timeout_seconds": 5})]
    assert server.calls_named("Project.create_batch") == []


def test_rate_limits_and_refused_connections_are_retried_with_backoff(tmp_path, server):
    server.fail_next["Client.get_data_row_ids_for_global_keys"] = [
        lbx.ApiLimitError("You have exceeded the rate limit"),
        lbx.NetworkError(ConnectionError("refused")),
        lbx.LabelboxError("429 Too Many Requests"),
    ]
    backend = _backend(server)
    result = backend.upload("batch_001", _specs(tmp_path))
    assert {o.status for o in result.rows.values()} == {"created"}
    assert backend.sleeps == [2.0, 4.0, 8.0]


def test_retries_give_up_with_a_clear_message():
    calls = []

    def always_429():
        calls.append(1)
        raise lbx.ApiLimitError("You have exceeded the rate limit")

    with pytest.raises(lbx.ApiLimitError):
        call_with_retry(always_429, what="x", attempts=3, sleep=lambda s: None)
    assert len(calls) == 3
    # Not transient: no retry.
    with pytest.raises(lbx.InvalidQueryError):
        call_with_retry(
            lambda: (_ for _ in ()).throw(lbx.InvalidQueryError("bad")), what="x", sleep=None
        )


def test_bad_key_missing_project_and_dataset_give_one_line_errors(tmp_path, server):
    specs = _specs(tmp_path, 1)
    with pytest.raises(LabellingSetupError) as bad_key:
        _backend(server, api_key="wrong-key-123").upload("b", specs)
    assert "LABELBOX_API_KEY" in str(bad_key.value) and "wrong-key-123" not in str(bad_key.value)
    with pytest.raises(LabellingSetupError, match="project 'nope' not found.*LABELBOX_PROJECT_ID"):
        _backend(server, project_id="nope").upload("b", specs)
    with pytest.raises(LabellingSetupError, match="dataset 'gone' not found.*LABELBOX_DATASET_ID"):
        _backend(server, dataset_id="gone").upload("b", specs)
    with pytest.raises(LabellingSetupError, match="needs an API key"):
        LabelboxBackend("", "p", "d")
    for message in (str(bad_key.value),):
        assert "\n" not in message


def test_export_waits_checks_status_and_writes_every_line(tmp_path, server):
    server.export_lines = [{"data_row": {"id": "dr1"}}, {"data_row": {"id": "dr2"}}]
    dest = tmp_path / "out" / "export.ndjson"
    assert _backend(server).export_labels(dest) == 2
    assert len(dest.read_text().splitlines()) == 2
    ((_, kwargs),) = server.calls_named("Project.export")
    assert kwargs["params"]["label_details"] and kwargs["params"]["project_details"]
    server.hang_tasks = True
    with pytest.raises(LabellingError, match="labels export task .* did not finish"):
        _backend(server).export_labels(tmp_path / "again.ndjson")


def test_mask_fetch_sends_the_key_as_bearer_token(server):
    server.masks["https://api.labelbox.com/m/1"] = b"\x89PNG"
    backend = _backend(server)
    assert backend.fetch_mask("https://api.labelbox.com/m/1") == b"\x89PNG"
    assert server.mask_requests[0]["headers"] == {"Authorization": f"Bearer {server.api_key}"}
    with pytest.raises(LabellingError, match="HTTP 404"):
        backend.fetch_mask("https://api.labelbox.com/m/unknown")


# The fake must stay a faithful stand-in: every method the backend calls on it has the real SDK
# method's parameters, so a call that binds on the fake binds on the SDK.
SDK_PAIRS = [
    (fakes.FakeClient.__init__, lb.Client.__init__),
    (fakes.FakeClient.get_project, lb.Client.get_project),
    (fakes.FakeClient.get_dataset, lb.Client.get_dataset),
    (fakes.FakeClient.get_data_row_ids_for_global_keys, lb.Client.get_data_row_ids_for_global_keys),
    (fakes.FakeClient.get_data_row_metadata_ontology, lb.Client.get_data_row_metadata_ontology),
    (fakes.FakeClient.upload_file, lb.Client.upload_file),
    (fakes.FakeDataset.upsert_data_rows, lb.Dataset.upsert_data_rows),
    (fakes.FakeProject.create_batch, lb.Project.create_batch),
    (fakes.FakeProject.batches, lb.Project.batches),
    (fakes.FakeProject.export, lb.Project.export),
    (fakes.FakeTask.wait_till_done, DataUpsertTask.wait_till_done),
    (fakes.FakeExportTask.wait_till_done, ExportTask.wait_till_done),
    (fakes.FakeExportTask.get_buffered_stream, ExportTask.get_buffered_stream),
    (fakes.FakeExportTask.has_result, ExportTask.has_result),
    (fakes.FakeMetadataOntology.create_schema, DataRowMetadataOntology.create_schema),
]


@pytest.mark.parametrize("fake, real", SDK_PAIRS, ids=lambda f: getattr(f, "__qualname__", "?"))
def test_fake_signatures_match_the_installed_sdk(fake, real):
    def names(fn):
        return [p.name for p in inspect.signature(fn).parameters.values()]

    assert names(fake) == names(real)
    for attr in ("status", "uid"):
        assert hasattr(DataUpsertTask, attr) or attr == "uid"
    assert hasattr(DataUpsertTask, "errors") and hasattr(DataUpsertTask, "result")
    assert hasattr(lb.Batch, "failed_data_row_ids") and hasattr(lb, "StreamType")


def test_items_builder_matches_the_sdk_wire_form(tmp_path):
    specs = _specs(tmp_path, 2)
    items = build_upsert_items(specs, existing=[specs[1].global_key.upper()])
    wire = wire_specs("ds-9", items)
    assert wire[0]["id"] == {"type": "AUTO", "value": ""}
    assert wire[0]["payload"]["global_key"] == specs[0].global_key
    assert wire[0]["payload"]["dataset_id"] == "ds-9"
    assert wire[1]["id"] == {"type": "GKEY", "value": specs[1].global_key}
    # The builder did not consume the caller's items (the SDK's builder mutates its input).
    assert "key" in items[1]

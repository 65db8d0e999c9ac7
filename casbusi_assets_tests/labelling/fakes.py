"""A recording fake of the Labelbox SDK surface the online backend uses.

Method names and signatures copy labelbox 7.17.0 (test_labelbox_client checks them against the
installed SDK), and the server behaviours follow the project's Labelbox reference: duplicate
global keys land in task.errors on a COMPLETE task, wait_till_done returns silently on timeout,
create_batch raises ResourceConflict for a taken name and MalformedQueryException when no row is
new to the project, a wrong key fails at the first call.
"""

from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import lbox.exceptions as lbx
from labelbox.schema.internal.data_row_upsert_item import DataRowUpsertItem


@dataclass
class FakeServer:
    api_key: str = "fake-key"
    project_id: str = "proj-1"
    dataset_id: str = "ds-1"
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # casefold(gk) -> row
    batches: list[dict[str, Any]] = field(default_factory=list)
    in_project: set[str] = field(default_factory=set)  # data row ids
    metadata_names: set[str] = field(default_factory=set)
    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    hang_tasks: bool = False  # tasks stay IN_PROGRESS (wait_till_done timed out)
    duplicate_on_create: set[str] = field(default_factory=set)  # keys another dataset holds
    fail_next: dict[str, list[Exception]] = field(default_factory=dict)
    export_lines: list[dict[str, Any]] = field(default_factory=list)
    masks: dict[str, bytes] = field(default_factory=dict)  # url -> PNG
    mask_requests: list[dict[str, Any]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def record(self, _method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((_method, copy.deepcopy(args), copy.deepcopy(kwargs)))
        queue = self.fail_next.get(_method)
        if queue:
            raise queue.pop(0)

    def calls_named(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.calls if n == name]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def http_get(self, url: str, headers: dict[str, str] | None = None, timeout: float = 0) -> Any:
        self.mask_requests.append({"url": url, "headers": dict(headers or {})})

        class Response:
            pass

        r = Response()
        ok = (headers or {}).get("Authorization") == f"Bearer {self.api_key}"
        r.status_code = 200 if ok and url in self.masks else (401 if not ok else 404)
        r.content = self.masks.get(url, b"")
        return r


class FakeTask:
    def __init__(self, server: FakeServer, result: list[dict], errors: list[dict]) -> None:
        self.server = server
        self.uid = server.new_id("task-")
        self.status = "IN_PROGRESS"
        self._result = result
        self._errors = errors

    def wait_till_done(self, timeout_seconds: float = 300.0, check_frequency: float = 2.0) -> None:
        self.server.record("Task.wait_till_done", timeout_seconds=timeout_seconds)
        if not self.server.hang_tasks:
            self.status = "COMPLETE"

    @property
    def result(self) -> list[dict] | None:
        return self._result or None

    @property
    def errors(self) -> list[dict] | None:
        return self._errors or None


class FakeBatch:
    def __init__(self, name: str, uid: str, size: int, failed: list[str]) -> None:
        self.name, self.uid, self.size = name, uid, size
        self._failed = failed

    @property
    def failed_data_row_ids(self):
        yield from self._failed


class FakeDataset:
    def __init__(self, server: FakeServer, uid: str) -> None:
        self.server, self.uid = server, uid

    def upsert_data_rows(self, items, file_upload_thread_count=20) -> FakeTask:
        s = self.server
        s.record("Dataset.upsert_data_rows", items)
        specs = DataRowUpsertItem.build(self.uid, copy.deepcopy(items))  # the SDK's own builder
        created, errors, seen = [], [], set()
        for spec in specs:
            payload = dict(spec.payload)
            if isinstance(payload.get("row_data"), str) and os.path.exists(payload["row_data"]):
                s.uploads.append(payload["row_data"])
                payload["row_data"] = (
                    f"https://storage.example/{os.path.basename(payload['row_data'])}"
                )
            if spec.id["type"] == "GKEY":
                key = spec.id["value"].casefold()
                if key not in s.rows:
                    errors.append(
                        {
                            "message": "Data row not found",
                            "failedDataRows": [{"globalKey": spec.id["value"]}],
                        }
                    )
                    continue
                s.rows[key].update({k: v for k, v in payload.items() if k != "global_key"})
                continue
            gk = payload.get("global_key", "")
            folded = gk.casefold()
            if folded in s.rows or folded in seen or folded in s.duplicate_on_create:
                errors.append(
                    {
                        "message": f"Duplicate global key: '{gk}'",
                        "failedDataRows": [
                            {
                                "externalId": payload.get("external_id"),
                                "globalKey": gk,
                                "rowData": payload.get("row_data"),
                                "metadata": [],
                                "attachments": [],
                            }
                        ],
                    }
                )
                continue
            seen.add(folded)
            row = {**payload, "id": s.new_id("dr-")}
            s.rows[folded] = row
            created.append(
                {
                    "id": row["id"],
                    "external_id": row.get("external_id"),
                    "row_data": row["row_data"],
                    "global_key": gk,
                }
            )
        return FakeTask(s, created, errors)


class FakeExportTask:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.uid = server.new_id("export-")
        self.status = "IN_PROGRESS"

    def wait_till_done(self, timeout_seconds: int = 7200) -> None:
        self.server.record("ExportTask.wait_till_done", timeout_seconds=timeout_seconds)
        if not self.server.hang_tasks:
            self.status = "COMPLETE"

    def has_result(self) -> bool:
        return bool(self.server.export_lines)

    def has_errors(self) -> bool:
        return False

    def get_buffered_stream(self, stream_type=None):
        if self.status != "COMPLETE":
            raise RuntimeError("Task is not ready yet")

        class Out:
            def __init__(self, j):
                self.json = j

        return iter([Out(copy.deepcopy(j)) for j in self.server.export_lines])


class FakeProject:
    def __init__(self, server: FakeServer, uid: str) -> None:
        self.server, self.uid = server, uid

    def batches(self):
        self.server.record("Project.batches")
        return iter(
            [FakeBatch(b["name"], b["uid"], len(b["ids"]), []) for b in self.server.batches]
        )

    def create_batch(
        self, name, data_rows=None, priority=5, consensus_settings=None, global_keys=None
    ):
        s = self.server
        s.record("Project.create_batch", name=name, global_keys=global_keys)
        if any(b["name"] == name for b in s.batches):
            raise lbx.ResourceConflict(f"Batch with name {name} already exists")
        unknown = [k for k in global_keys or [] if k.casefold() not in s.rows]
        if unknown:
            raise lbx.MalformedQueryException(
                f"Data rows with the following global keys do not exist: {unknown}"
            )
        ids = [s.rows[k.casefold()]["id"] for k in global_keys or []]
        new = [i for i in ids if i not in s.in_project]
        if not new:
            raise lbx.MalformedQueryException("No valid data rows to add to project")
        s.in_project.update(new)
        batch = {"name": name, "uid": s.new_id("b-"), "ids": new}
        s.batches.append(batch)
        return FakeBatch(name, batch["uid"], len(new), [i for i in ids if i not in new])

    def export(self, task_name=None, filters=None, params=None) -> FakeExportTask:
        self.server.record("Project.export", task_name=task_name, filters=filters, params=params)
        return FakeExportTask(self.server)


class FakeMetadataOntology:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.custom_by_name = {n: object() for n in server.metadata_names}
        self.reserved_by_name = {"tag": object()}

    def create_schema(self, name, kind, options=None):
        self.server.record("DataRowMetadataOntology.create_schema", name=name, kind=kind.name)
        self.server.metadata_names.add(name)
        self.custom_by_name[name] = object()


class FakeClient:
    """Stands in for `labelbox.Client`; `server` is the shared fake state for a test."""

    server: FakeServer = FakeServer()

    def __init__(
        self,
        api_key=None,
        endpoint="https://api.labelbox.com/graphql",
        enable_experimental=False,
        app_url="https://app.labelbox.com",
        rest_endpoint="https://api.labelbox.com/api/v1",
    ) -> None:
        if api_key is None:
            raise AssertionError("the backend must pass the key explicitly")
        self._key = api_key
        self.server = type(self).server

    def _auth(self) -> None:
        if self._key != self.server.api_key:
            raise lbx.AuthenticationError("Invalid API key")

    def get_project(self, project_id):
        self._auth()
        self.server.record("Client.get_project", project_id)
        if project_id != self.server.project_id:
            raise lbx.ResourceNotFoundError(
                message=f"Resource 'Project' not found for params: {{'id': '{project_id}'}}"
            )
        return FakeProject(self.server, project_id)

    def get_dataset(self, dataset_id):
        self._auth()
        self.server.record("Client.get_dataset", dataset_id)
        if dataset_id != self.server.dataset_id:
            raise lbx.ResourceNotFoundError(
                message=f"Resource 'Dataset' not found for params: {{'id': '{dataset_id}'}}"
            )
        return FakeDataset(self.server, dataset_id)

    def get_data_row_ids_for_global_keys(self, global_keys, timeout_seconds=60):
        self._auth()
        self.server.record("Client.get_data_row_ids_for_global_keys", list(global_keys))
        results, errors = [], []
        for gk in global_keys:
            row = self.server.rows.get(gk.casefold())
            results.append(row["id"] if row else "")
            if row is None:
                errors.append({"global_key": gk, "error": "Data Row not found"})
        status = (
            "SUCCESS"
            if not errors
            else ("PARTIAL SUCCESS" if len(errors) < len(global_keys) else "FAILURE")
        )
        return {"status": status, "results": results, "errors": errors}

    def get_data_row_metadata_ontology(self):
        self._auth()
        self.server.record("Client.get_data_row_metadata_ontology")
        return FakeMetadataOntology(self.server)

    def upload_file(self, path: str) -> str:
        self._auth()
        self.server.record("Client.upload_file", path)
        self.server.uploads.append(path)
        return f"https://storage.example/{os.path.basename(path)}"

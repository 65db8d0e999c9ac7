"""The online backend: the `labelbox` SDK (7.17.0), used the way its source says it behaves.

Behaviours that break naive code (see the project's Labelbox reference):
- a duplicate global key does not raise: the task ends COMPLETE and that row lands in
  `task.errors`, so every upsert's errors are read and matched per row;
- `wait_till_done` returns silently on timeout, so the status is checked after every wait and a
  task still IN_PROGRESS is an error;
- 429 and refused connections are not retried by the SDK, so every call goes through
  `call_with_retry` (exponential backoff);
- `create_batch` blocks until the rows are processed; a duplicate batch name raises
  ResourceConflict, and "no valid data rows" (all rows already in the project) is a plain
  `MalformedQueryException`;
- exceptions live in `lbox.exceptions`.

The API key is held in memory only; every message that leaves this module is passed through
`redact` first.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from casbusi_assets.labelling.backend import (
    DataRowSpec,
    LabellingError,
    LabellingSetupError,
    RowOutcome,
    UploadResult,
)

# Metadata fields every data row carries (created in the org's metadata schema when missing).
METADATA_FIELDS = (
    "casbusi_batch",
    "casbusi_patient",
    "casbusi_accession",
    "casbusi_laterality",
    "casbusi_orientation",
    "casbusi_label_cat",
)
EXPORT_PARAMS = {
    "attachments": True,
    "metadata_fields": True,
    "data_row_details": True,
    "project_details": True,
    "label_details": True,
    "performance_details": True,
}
LOOKUP_CHUNK = 1000  # keys per get_data_row_ids_for_global_keys job: keeps each job small
DUPLICATE_KEY = "duplicate global key"
UPLOAD_THREADS = 8  # uncropped captures uploaded at once (network bound)


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of the secret replaced (messages, never the key)."""
    if secret:
        text = text.replace(secret, "<redacted>")
    return text


def build_upsert_items(
    rows: Sequence[DataRowSpec],
    existing: Iterable[str] = (),
    attachment_values: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The items for `Dataset.upsert_data_rows`: a create (with `global_key`) for a new key, an
    update keyed by `GlobalKey` for one that already exists. Keys compare case-insensitively,
    as Labelbox compares them. `attachment_values` maps a global key to the uploaded URL of its
    uncropped capture (online); offline the local path stands in."""
    from labelbox import GlobalKey

    known = {k.casefold() for k in existing}
    items = []
    for row in sorted(rows, key=lambda r: r.global_key):
        attachment = (attachment_values or {}).get(row.global_key, row.original_path)
        item: dict[str, Any] = {
            "row_data": row.crop_path,
            "external_id": row.external_id,
            "media_type": "IMAGE",
            "metadata_fields": [
                {"name": name, "value": str(value)}
                for name, value in sorted(row.metadata.items())
                if value not in (None, "")
            ],
            "attachments": [{"type": "IMAGE", "name": "uncropped capture", "value": attachment}],
        }
        if row.global_key.casefold() in known:
            item = {"key": GlobalKey(row.global_key), **item}
        else:
            item = {**item, "global_key": row.global_key}
        items.append(item)
    return items


def wire_specs(dataset_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The specs the SDK sends for `items` (its own builder, so the form is exactly its form):
    `{"id": {"type": "AUTO"|"GKEY", "value": ...}, "payload": {..., "dataset_id": ...}}`. Local
    paths in `row_data` are replaced by upload URLs only at send time."""
    from labelbox.schema.internal.data_row_upsert_item import DataRowUpsertItem

    # The SDK's builder mutates its input (pops "key", sets dataset_id): give it a copy.
    specs = DataRowUpsertItem.build(dataset_id, copy.deepcopy(items))
    return [s.model_dump() for s in specs]


def _exceptions():
    import lbox.exceptions as lbx

    return lbx


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying that the SDK does not retry itself: rate limits and connection
    failures (it retries 5xx and request timeouts on its own)."""
    import requests

    lbx = _exceptions()
    if isinstance(exc, (lbx.ApiLimitError, lbx.NetworkError)):
        return True
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(exc, lbx.LabelboxError):
        text = str(exc).lower()
        return "429" in text or "too many requests" in text
    return False


def call_with_retry(
    fn: Callable[..., Any],
    *args: Any,
    what: str,
    attempts: int = 5,
    base_delay: float = 2.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> Any:
    """fn(*args, **kwargs), retried with exponential backoff on transient errors."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


class LabelboxBackend:
    """Data rows, batches, exports and masks through the Labelbox SDK."""

    mode = "online"

    def __init__(
        self,
        api_key: str,
        project_id: str,
        dataset_id: str,
        *,
        endpoint: str = "",
        task_timeout_seconds: float = 600.0,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        client_factory: Callable[..., Any] | None = None,
        http_get: Callable[..., Any] | None = None,
    ) -> None:
        if not api_key:
            raise LabellingSetupError(
                "Labelbox online mode needs an API key: set LABELBOX_API_KEY (or use offline mode)"
            )
        if not project_id:
            raise LabellingSetupError("Labelbox online mode needs LABELBOX_PROJECT_ID")
        self._key = api_key
        self.project_id = project_id
        self.dataset_id = dataset_id
        self.endpoint = endpoint
        self.task_timeout_seconds = task_timeout_seconds
        self.attempts = attempts
        self._sleep = sleep
        self._client_factory = client_factory
        self._http_get = http_get
        self._client = None

    def __repr__(self) -> str:  # never the key
        return f"LabelboxBackend(project_id={self.project_id!r}, dataset_id={self.dataset_id!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
        try:
            return call_with_retry(
                fn, *args, what=what, attempts=self.attempts, sleep=self._sleep, **kwargs
            )
        except LabellingError:
            raise
        except Exception as exc:
            raise self._explain(exc, what) from None

    def _explain(self, exc: BaseException, what: str) -> LabellingError:
        lbx = _exceptions()
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "", self._key)
        if isinstance(exc, (lbx.AuthenticationError, lbx.AuthorizationError)) or (
            isinstance(exc, lbx.LabelboxError) and "401" in text
        ):
            return LabellingSetupError(
                f"Labelbox rejected the API key during {what} ({text}): set LABELBOX_API_KEY "
                "to a valid key"
            )
        if is_transient(exc):
            return LabellingError(
                f"{what}: Labelbox still rate-limited or unreachable after {self.attempts} "
                f"attempts ({type(exc).__name__}: {text})"
            )
        if type(exc).__name__ == "RetryError":  # google-api-core: the SDK's own retries ran out
            return LabellingError(f"{what}: Labelbox kept failing with server errors ({text})")
        return LabellingError(f"{what} failed: {type(exc).__name__}: {text}")

    def client(self) -> Any:
        if self._client is None:
            if self._client_factory is not None:
                factory = self._client_factory
            else:
                import labelbox

                factory = labelbox.Client
            kwargs = {"endpoint": self.endpoint} if self.endpoint else {}
            try:
                self._client = factory(api_key=self._key, **kwargs)
            except Exception as exc:
                raise self._explain(exc, "connecting to Labelbox") from None
        return self._client

    def _project(self) -> Any:
        lbx = _exceptions()
        try:
            return call_with_retry(
                self.client().get_project,
                self.project_id,
                what="project lookup",
                attempts=self.attempts,
                sleep=self._sleep,
            )
        except lbx.ResourceNotFoundError:
            raise LabellingSetupError(
                f"Labelbox project '{self.project_id}' not found, or not visible to this API key "
                "(check LABELBOX_PROJECT_ID)"
            ) from None
        except Exception as exc:
            raise self._explain(exc, "project lookup") from None

    def _dataset(self) -> Any:
        lbx = _exceptions()
        if not self.dataset_id:
            raise LabellingSetupError("Labelbox upload needs LABELBOX_DATASET_ID")
        try:
            return call_with_retry(
                self.client().get_dataset,
                self.dataset_id,
                what="dataset lookup",
                attempts=self.attempts,
                sleep=self._sleep,
            )
        except lbx.ResourceNotFoundError:
            raise LabellingSetupError(
                f"Labelbox dataset '{self.dataset_id}' not found, or not visible to this API key "
                "(check LABELBOX_DATASET_ID)"
            ) from None
        except Exception as exc:
            raise self._explain(exc, "dataset lookup") from None

    def _wait(self, task: Any, what: str) -> None:
        """Wait for a task and fail unless it COMPLETEd (wait_till_done returns on timeout)."""
        self._call(task.wait_till_done, what=what, timeout_seconds=self.task_timeout_seconds)
        status = task.status
        if status == "IN_PROGRESS":
            raise LabellingError(
                f"Labelbox {what} task {task.uid} did not finish within "
                f"{self.task_timeout_seconds:g} s (status IN_PROGRESS); rerun once it completes"
            )
        if status != "COMPLETE":
            raise LabellingError(f"Labelbox {what} task {task.uid} ended with status {status}")

    def lookup_keys(self, keys: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
        """({key: data_row_id or ''} for keys that exist, {key: reason} for keys refused)."""
        found: dict[str, str] = {}
        refused: dict[str, str] = {}
        client = self.client()
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = list(keys[start : start + LOOKUP_CHUNK])
            res = self._call(
                client.get_data_row_ids_for_global_keys, chunk, what="global key lookup"
            )
            missing: set[str] = set()
            for err in res.get("errors") or []:
                gk = str(err.get("global_key", ""))
                reason = str(err.get("error", ""))
                if "not found" in reason.lower():
                    missing.add(gk.casefold())
                else:
                    refused[gk] = reason
            ids = list(res.get("results") or [])
            aligned = len(ids) == len(chunk)  # documented as one entry per input, in order
            refused_folded = {k.casefold() for k in refused}
            for i, gk in enumerate(chunk):
                folded = gk.casefold()
                if folded in missing or folded in refused_folded:
                    continue
                row_id = ids[i] if aligned else ""
                if aligned and not row_id:
                    continue
                found[gk] = row_id
        return found, refused

    def _ensure_metadata_schema(self, names: Iterable[str]) -> None:
        from labelbox.schema.data_row_metadata import DataRowMetadataKind

        mdo = self._call(self.client().get_data_row_metadata_ontology, what="metadata schema")
        known = set(mdo.custom_by_name) | set(mdo.reserved_by_name)
        for name in sorted(set(names) - known):
            self._call(
                mdo.create_schema,
                name=name,
                kind=DataRowMetadataKind.string,
                what=f"creating metadata field {name}",
            )

    # -- the backend interface ----------------------------------------------------------------

    def upload(self, batch_id: str, rows: Sequence[DataRowSpec]) -> UploadResult:
        project = self._project()
        dataset = self._dataset()
        result = UploadResult(mode=self.mode, rows={})
        if not rows:
            result.batch_action = "none"
            return result
        keys = [r.global_key for r in rows]
        found, refused = self.lookup_keys(keys)
        for gk, reason in refused.items():
            result.rows[gk] = RowOutcome(
                "failed", f"global key held by a data row this key cannot use: {reason}"
            )
        to_send = [r for r in rows if r.global_key not in result.rows]
        if not to_send:
            result.batch_action = "none"
            return result
        self._ensure_metadata_schema({n for r in to_send for n in r.metadata})
        client = self.client()

        def upload_original(row: DataRowSpec) -> str:
            return self._call(
                client.upload_file, row.original_path, what="uploading an uncropped capture"
            )

        # The SDK uploads row_data files in its own thread pool; the attachments are ours.
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            urls = dict(
                zip(
                    [r.global_key for r in to_send],
                    pool.map(upload_original, to_send),
                    strict=True,
                )
            )
        items = build_upsert_items(to_send, existing=found, attachment_values=urls)
        task = self._call(dataset.upsert_data_rows, items, what="data row upsert")
        self._wait(task, "data row upsert")
        for error in self._call(lambda: task.errors, what="reading upsert errors") or []:
            message = redact(str(error.get("message", "")), self._key)
            if DUPLICATE_KEY in message.lower():
                message = f"duplicate global key: another data row already has it ({message})"
            for failed in error.get("failedDataRows") or []:
                gk = failed.get("globalKey") or ""
                match = next((k for k in keys if k.casefold() == gk.casefold()), gk)
                result.rows[match] = RowOutcome("failed", message or "rejected by Labelbox")
        created_ids = {
            str(r.get("global_key", "")).casefold(): r.get("id")
            for r in (self._call(lambda: task.result, what="reading upsert results") or [])
        }
        sent_ok = [r.global_key for r in to_send if r.global_key not in result.rows]
        # Read back: every key must now resolve (an update to a vanished key is not a success).
        present, _ = self.lookup_keys(sent_ok) if sent_ok else ({}, {})
        for gk in sent_ok:
            if gk not in present:
                result.rows[gk] = RowOutcome("failed", "not found in Labelbox after the upsert")
                continue
            row_id = present[gk] or created_ids.get(gk.casefold()) or found.get(gk) or None
            result.rows[gk] = RowOutcome("updated" if gk in found else "created", None, row_id)
        self._queue(project, batch_id, result)
        return result

    def _queue(self, project: Any, batch_id: str, result: UploadResult) -> None:
        """One Labelbox batch per data batch: created once; a re-send adds only rows created in
        this run (a follow-up batch `<batch> (n)`), since existing rows were queued before."""
        lbx = _exceptions()
        ok = sorted(gk for gk, o in result.rows.items() if o.status in ("created", "updated"))
        created = sorted(gk for gk, o in result.rows.items() if o.status == "created")
        names = {
            b.name for b in self._call(lambda: list(project.batches()), what="listing batches")
        }
        if batch_id not in names:
            name, keys = batch_id, ok
        elif created:
            n = 2
            while f"{batch_id} ({n})" in names:
                n += 1
            name, keys = f"{batch_id} ({n})", created
        else:
            result.labelling_batch, result.batch_action = batch_id, "exists"
            return
        if not keys:
            result.batch_action = "none"
            return
        try:
            batch = call_with_retry(
                project.create_batch,
                name=name,
                global_keys=keys,
                what="creating the batch",
                attempts=self.attempts,
                sleep=self._sleep,
            )
        except lbx.MalformedQueryException as exc:
            if "no valid data rows" not in str(exc).lower():
                raise self._explain(exc, "creating the batch") from None
            result.labelling_batch, result.batch_action = name, "none"
            result.notes.append("every row was already in the project")
            return
        except lbx.ProcessingWaitTimeout:
            raise LabellingError(
                f"Labelbox did not finish processing the rows of batch '{name}' in time; "
                "rerun later (the rows are uploaded, only the batch is missing)"
            ) from None
        except Exception as exc:
            raise self._explain(exc, "creating the batch") from None
        result.labelling_batch = name
        result.batch_action = "created" if name == batch_id else f"follow_up:{name}"
        failed_ids = set(self._call(lambda: list(batch.failed_data_row_ids), what="batch result"))
        for outcome in result.rows.values():
            if outcome.data_row_id and outcome.data_row_id in failed_ids:
                outcome.error = f"not added to batch '{name}' (already in the project?)"

    def export_labels(self, dest: Path) -> int:
        import labelbox as lb

        project = self._project()
        task = self._call(project.export, params=dict(EXPORT_PARAMS), what="labels export")
        self._wait(task, "labels export")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        n = 0
        with tmp.open("w") as fh:
            if self._call(task.has_result, what="labels export"):
                stream = self._call(
                    task.get_buffered_stream, stream_type=lb.StreamType.RESULT, what="export"
                )
                for output in stream:
                    fh.write(json.dumps(output.json, sort_keys=True) + "\n")
                    n += 1
        tmp.replace(dest)
        if self._call(task.has_errors, what="labels export"):
            errors = [
                json.dumps(o.json, sort_keys=True)
                for o in task.get_buffered_stream(stream_type=lb.StreamType.ERRORS)
            ]
            # Not *.ndjson: the labels inbox sensor must not take the errors for an export.
            errors_path = dest.parent / f"{dest.name.split('.')[0]}.export-errors.jsonl"
            errors_path.write_text("\n".join(errors) + "\n")
        return n

    def fetch_mask(self, url: str) -> bytes:
        """A mask PNG: the URL points at the Labelbox API and needs the key as a bearer token."""
        import requests

        get = self._http_get or requests.get

        def fetch() -> bytes:
            response = get(url, headers={"Authorization": f"Bearer {self._key}"}, timeout=30)
            status = int(getattr(response, "status_code", 200))
            if status == 429:
                lbx = _exceptions()
                raise lbx.ApiLimitError("429 Too Many Requests")
            if status >= 500:
                raise requests.ConnectionError(f"HTTP {status}")
            if status in (401, 403):
                raise LabellingError(
                    f"mask URL refused with HTTP {status}: the key lacks access, or the export is "
                    "older than 30 days (export again)"
                )
            if status >= 400:
                raise LabellingError(f"mask URL answered HTTP {status}")
            return bytes(response.content)

        return self._call(fetch, what="mask download")

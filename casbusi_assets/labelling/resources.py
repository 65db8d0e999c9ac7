"""The Labelbox resource: API key, project and dataset from environment variables, never code."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.labelling.backend import (
    DEFAULT_KEY_PREFIX,
    LabellingBackend,
    LabellingSetupError,
)
from casbusi_assets.storage.home import HomeLayout

MODES = ("auto", "online", "offline")


class LabelboxResource(dg.ConfigurableResource):
    """Where crops go and labels come from. `online` uses the Labelbox SDK (needs the key, project
    and dataset); `offline` writes what it would send to <home>/labelbox/outbox/ and takes labels
    from export files; `auto` (default) is online exactly when an API key is set. Wire the key
    with `dg.EnvVar("LABELBOX_API_KEY")` so the UI shows the variable's name, not its value."""

    api_key: str = Field(
        default="", description="Labelbox API key (LABELBOX_API_KEY); never logged"
    )
    project_id: str = Field(default="", description="Labelbox project id (LABELBOX_PROJECT_ID)")
    dataset_id: str = Field(default="", description="Labelbox dataset id (LABELBOX_DATASET_ID)")
    mode: str = Field(default="auto", description="auto | online | offline")
    global_key_prefix: str = Field(
        default=DEFAULT_KEY_PREFIX, description="Global key = prefix + SOPInstanceUID"
    )
    endpoint: str = Field(default="", description="GraphQL endpoint; empty = Labelbox's")
    task_timeout_seconds: float = Field(default=600.0, description="Longest wait for a task")
    max_attempts: int = Field(default=5, description="Tries for rate-limited / refused calls")

    def __repr_args__(self):  # the resolved key must not reach a log line through repr()
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name == "api_key" and value else value)

    def resolved_mode(self) -> str:
        if self.mode not in MODES:
            raise LabellingSetupError(
                f"Labelbox mode must be one of {', '.join(MODES)}, not {self.mode!r}"
            )
        if self.mode == "auto":
            return "online" if self.api_key else "offline"
        return self.mode

    def backend(self, home: HomeLayout) -> LabellingBackend:
        from casbusi_assets.labelling.offline import OfflineBackend, labelbox_paths

        if self.resolved_mode() == "offline":
            return OfflineBackend(labelbox_paths(home.root), self.project_id, self.dataset_id)
        from casbusi_assets.labelling.labelbox_client import LabelboxBackend

        return LabelboxBackend(
            self.api_key,
            self.project_id,
            self.dataset_id,
            endpoint=self.endpoint,
            task_timeout_seconds=self.task_timeout_seconds,
            attempts=self.max_attempts,
        )

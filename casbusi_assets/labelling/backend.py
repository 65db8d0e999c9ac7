"""The small interface every labelling tool sits behind (Labelbox today; CVAT or Label Studio later).

A backend takes the rows of one data batch and makes them appear in the tool's project (or
writes what it would send, offline), and hands back a labels export as a file. Everything after
that (parsing, masks, the archive) works on files, so it is the same for every mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Global keys are unique per organisation, case-insensitive, at most 200 characters; Labelbox
# replaces other characters with '_', so keep to a set it leaves alone.
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_GLOBAL_KEY = 200
DEFAULT_KEY_PREFIX = "casbusi-"


class LabellingError(RuntimeError):
    """A labelling backend call failed; the message is one line and never holds a secret."""


class LabellingSetupError(LabellingError):
    """Wrong key, missing project or dataset, bad configuration: fix the settings and rerun."""


def global_key_for(sop_instance_uid: str, prefix: str = DEFAULT_KEY_PREFIX) -> str:
    """The data row's global key: a fixed prefix plus the SOPInstanceUID, so the same image always
    maps to the same Labelbox row whatever batch or run sends it."""
    uid = (sop_instance_uid or "").strip()
    if not uid:
        raise ValueError("a global key needs a SOPInstanceUID")
    key = _KEY_SAFE.sub("_", f"{prefix}{uid}")
    if len(key) > MAX_GLOBAL_KEY:
        raise ValueError(f"global key longer than {MAX_GLOBAL_KEY} characters: {key[:40]}...")
    return key


@dataclass(frozen=True)
class DataRowSpec:
    """One image to label: the crop file, the uncropped capture as an attachment, metadata."""

    global_key: str
    crop_path: str  # local file; the online backend uploads it
    original_path: str  # the uncropped capture, attached for context
    external_id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class RowOutcome:
    status: str  # created | updated | failed | outbox
    error: str | None = None
    data_row_id: str | None = None


@dataclass
class UploadResult:
    """What happened to each row of one batch, keyed by global key."""

    mode: str  # online | offline
    rows: dict[str, RowOutcome]
    labelling_batch: str | None = None  # the tool-side batch (queue) the rows went to
    batch_action: str = ""  # created | exists | follow_up:<name> | none | outbox
    outbox_path: str | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows.values() if r.status == status)


class LabellingBackend(Protocol):
    """What the assets need from a labelling tool."""

    mode: str

    def upload(self, batch_id: str, rows: Sequence[DataRowSpec]) -> UploadResult:
        """Create or update the rows (idempotent by global key) and queue them for labelling."""
        ...

    def export_labels(self, dest: Path) -> int:
        """Write the project's labels export (NDJSON, one data row per line) to `dest`; return
        the number of lines. Offline backends raise LabellingSetupError (import a file instead)."""
        ...

    def fetch_mask(self, url: str) -> bytes:
        """The PNG behind a mask reference; raises LabellingError when it cannot be fetched."""
        ...

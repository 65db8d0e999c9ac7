"""A Labelbox export (NDJSON, the current streamable format) into one record per label.

Each line is one data row: `data_row` (id, global_key, ...), `media_attributes`,
`projects → {project_id: {labels: [...], project_details}}`, each label with `label_details`
and `annotations → objects / classifications / relationships`. A line that cannot be read is
reported with its line number and the other lines are still parsed; a data row without labels
gives one record with no label (it was in the project, not yet labelled).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casbusi_assets.labelling.masks import MaskRef

# The original tool's instance labels (casbusi-spec §8.2): an answer (radio or checklist) with
# one of these names, or a yes/no classification so named answered yes, sets the flag.
FLAG_TERMS = {
    "reject image": "reject_image",
    "only normal tissue": "only_normal_tissue",
    "cyst lesion present": "cyst_lesion_present",
    "benign lesion present": "benign_lesion_present",
    "malignant lesion present": "malignant_lesion_present",
    "discard entire exam": "discard_entire_exam",
}
FLAG_COLUMNS = tuple(FLAG_TERMS.values())
_YES = {"yes", "true", "y", "1", "present"}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ParsedLabel:
    line: int
    data_row_id: str
    global_key: str | None
    external_id: str | None
    project_id: str | None
    label_id: str | None  # None: the data row has no label yet
    labeler: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    workflow_status: str | None = None
    media_size: tuple[int, int] | None = None  # (width, height) of the row data, if exported
    masks: list[MaskRef] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)  # non-mask objects, as exported
    classifications: dict[str, Any] = field(default_factory=dict)  # flattened name → answer
    flags: dict[str, bool] = field(default_factory=dict)


def _norm(text: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", str(text))).strip().lower()


def _timestamp(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} is not an ISO timestamp: {value!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _answer_terms(answer: dict[str, Any]) -> Iterator[str]:
    for key in ("name", "value"):
        if answer.get(key):
            yield _norm(answer[key])
    for nested in answer.get("classifications") or []:
        yield from _classification_terms(nested)


def _classification_terms(c: dict[str, Any]) -> Iterator[str]:
    if isinstance(c.get("radio_answer"), dict):
        yield from _answer_terms(c["radio_answer"])
    for a in c.get("checklist_answers") or []:
        yield from _answer_terms(a)


def _flatten(c: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    name = prefix + str(c.get("name") or c.get("value") or c.get("feature_id") or "?")
    if isinstance(c.get("radio_answer"), dict):
        answer = c["radio_answer"]
        out[name] = answer.get("name") or answer.get("value")
        for nested in answer.get("classifications") or []:
            _flatten(nested, f"{name}.", out)
    elif "checklist_answers" in c:
        answers = c.get("checklist_answers") or []
        out[name] = [a.get("name") or a.get("value") for a in answers]
        for a in answers:
            for nested in a.get("classifications") or []:
                _flatten(nested, f"{name}.", out)
    elif isinstance(c.get("text_answer"), dict):
        out[name] = c["text_answer"].get("content")
    else:
        out[name] = None


def instance_flags(classifications: list[dict[str, Any]]) -> dict[str, bool]:
    """The six booleans of the original instance labels from a label's classifications."""
    flags = dict.fromkeys(FLAG_COLUMNS, False)
    for c in classifications:
        terms = set(_classification_terms(c))
        own = _norm(c.get("name") or c.get("value") or "")
        if own in FLAG_TERMS and terms & _YES:
            flags[FLAG_TERMS[own]] = True
        for term in terms:
            if term in FLAG_TERMS:
                flags[FLAG_TERMS[term]] = True
    return flags


def _mask_ref(obj: dict[str, Any]) -> MaskRef | None:
    fid = str(obj.get("feature_id") or "")
    name = str(obj.get("name") or obj.get("value") or "")
    composite = obj.get("composite_mask")
    if isinstance(composite, dict) and composite.get("url"):
        color = composite.get("color_rgb")
        if not (isinstance(color, list) and len(color) == 3):
            raise ValueError(f"object {fid}: composite_mask.color_rgb is not [R, G, B]")
        return MaskRef("composite", str(composite["url"]), tuple(int(v) for v in color), fid, name)
    single = obj.get("mask")
    if isinstance(single, dict) and single.get("url"):
        return MaskRef("instance", str(single["url"]), None, fid, name)
    return None


def _parse_label(label: Any, base: dict[str, Any]) -> ParsedLabel:
    if not isinstance(label, dict):
        raise ValueError("a label is not a JSON object")
    details = label.get("label_details") or {}
    annotations = label.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValueError(f"label {label.get('id')}: annotations is not an object")
    objects = annotations.get("objects") or []
    classifications = annotations.get("classifications") or []
    if not isinstance(objects, list) or not isinstance(classifications, list):
        raise ValueError(f"label {label.get('id')}: objects / classifications are not lists")
    parsed = ParsedLabel(
        **base,
        label_id=str(label["id"]) if label.get("id") else None,
        labeler=details.get("created_by"),
        created_at=_timestamp(details.get("created_at"), "label_details.created_at"),
        updated_at=_timestamp(details.get("updated_at"), "label_details.updated_at"),
    )
    if parsed.label_id is None:
        raise ValueError("a label has no id")
    for obj in objects:
        if not isinstance(obj, dict):
            raise ValueError(f"label {parsed.label_id}: an object is not a JSON object")
        ref = _mask_ref(obj)
        if ref is not None:
            parsed.masks.append(ref)
        else:
            parsed.objects.append(obj)
    for c in classifications:
        if not isinstance(c, dict):
            raise ValueError(f"label {parsed.label_id}: a classification is not a JSON object")
        _flatten(c, "", parsed.classifications)
    parsed.flags = instance_flags(classifications)
    return parsed


def parse_line(obj: Any, line: int, project_id: str | None = None) -> list[ParsedLabel]:
    """The labels of one export line (one data row); raises ValueError when it is malformed."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    row = obj.get("data_row")
    if not isinstance(row, dict) or not row.get("id"):
        raise ValueError("no data_row.id (is this a Labelbox NDJSON export?)")
    media = obj.get("media_attributes") or {}
    size = None
    if media.get("width") and media.get("height"):
        size = (int(media["width"]), int(media["height"]))
    projects = obj.get("projects") or {}
    if not isinstance(projects, dict):
        raise ValueError("projects is not an object")
    if project_id and project_id in projects:
        projects = {project_id: projects[project_id]}
    out: list[ParsedLabel] = []
    for pid, project in projects.items():
        if not isinstance(project, dict):
            raise ValueError(f"project {pid} is not an object")
        base = {
            "line": line,
            "data_row_id": str(row["id"]),
            "global_key": row.get("global_key"),
            "external_id": row.get("external_id"),
            "project_id": str(pid),
            "workflow_status": (project.get("project_details") or {}).get("workflow_status"),
            "media_size": size,
        }
        labels = project.get("labels") or []
        if not isinstance(labels, list):
            raise ValueError(f"project {pid}: labels is not a list")
        out += [_parse_label(label, base) for label in labels]
        if not labels:
            out.append(ParsedLabel(**base, label_id=None))
    if not projects:
        base = {
            "line": line,
            "data_row_id": str(row["id"]),
            "global_key": row.get("global_key"),
            "external_id": row.get("external_id"),
            "project_id": None,
            "media_size": size,
        }
        out.append(ParsedLabel(**base, label_id=None))
    return out


def parse_export_lines(
    lines: Iterable[str], project_id: str | None = None
) -> tuple[list[ParsedLabel], list[LineError]]:
    """Every readable label, and one error per unreadable line (1-based line numbers)."""
    labels: list[ParsedLabel] = []
    errors: list[LineError] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            errors.append(LineError(number, f"not valid JSON ({exc})"))
            continue
        try:
            labels += parse_line(obj, number, project_id)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            errors.append(LineError(number, str(exc) or type(exc).__name__))
    return labels, errors


def parse_export_file(
    path: Path, project_id: str | None = None
) -> tuple[list[ParsedLabel], list[LineError]]:
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        return parse_export_lines(fh, project_id)

"""Export lines in the documented structure: the assembled line of the project's Labelbox reference
(§10, from the docs sample, the SDK's streamable-export fixtures and the composite-mask notebook),
with only ids, keys, sizes and answers filled in per test."""

from __future__ import annotations

import copy
import json
from typing import Any

T = "2024-04-08T16:21:26.000+00:00"
T2 = "2024-04-09T17:04:23+00:00"

# Verbatim structure of the reference's assembled line ("T" replaced by a timestamp,
# "<task>" / "<cm>" by ids).
ASSEMBLED_LINE: dict[str, Any] = {
    "data_row": {
        "id": "dr1",
        "global_key": "c1/img-0",
        "external_id": "img-0",
        "row_data": "https://store.example.org/c1/img-0.png",
        "details": {
            "dataset_id": "ds1",
            "dataset_name": "cases",
            "created_at": T,
            "created_by": "ops@example.org",
        },
    },
    "media_attributes": {"height": 1707, "width": 2560, "mime_type": "image/png"},
    "attachments": [],
    "metadata_fields": [],
    "projects": {
        "pr1": {
            "name": "Case review",
            "labels": [
                {
                    "label_kind": "Default",
                    "version": "1.0.0",
                    "id": "lb1",
                    "label_details": {
                        "created_at": T,
                        "updated_at": T2,
                        "created_by": "labeler@example.org",
                        "content_last_updated_at": T,
                        "reviews": [],
                    },
                    "performance_details": {
                        "seconds_to_create": 8,
                        "seconds_to_review": 0,
                        "skipped": False,
                    },
                    "annotations": {
                        "objects": [
                            {
                                "feature_id": "f1",
                                "feature_schema_id": "s1",
                                "name": "box",
                                "value": "box",
                                "annotation_kind": "ImageBoundingBox",
                                "classifications": [],
                                "bounding_box": {
                                    "top": 48.0,
                                    "left": 58.0,
                                    "height": 65.0,
                                    "width": 12.0,
                                },
                            },
                            {
                                "feature_id": "f2",
                                "name": "outline",
                                "value": "outline",
                                "annotation_kind": "ImagePolygon",
                                "classifications": [],
                                "polygon": [
                                    {"x": 147.7, "y": 118.2},
                                    {"x": 142.8, "y": 104.9},
                                    {"x": 57.8, "y": 118.8},
                                ],
                            },
                            {
                                "feature_id": "f3",
                                "name": "tip",
                                "value": "tip",
                                "annotation_kind": "ImagePoint",
                                "classifications": [],
                                "point": {"x": 120.0, "y": 80.0},
                            },
                            {
                                "feature_id": "f4",
                                "name": "lesion",
                                "value": "lesion",
                                "annotation_kind": "ImageSegmentationMask",
                                "classifications": [],
                                "composite_mask": {
                                    "url": "https://api.labelbox.com/api/v1/tasks/task9/masks/cm7/index/1",
                                    "color_rgb": [123, 103, 152],
                                },
                            },
                        ],
                        "classifications": [
                            {
                                "feature_id": "f5",
                                "name": "quality",
                                "value": "quality",
                                "radio_answer": {
                                    "feature_id": "f6",
                                    "name": "good",
                                    "value": "good",
                                    "classifications": [],
                                },
                            },
                            {
                                "feature_id": "f7",
                                "name": "findings",
                                "value": "findings",
                                "checklist_answers": [
                                    {
                                        "feature_id": "f8",
                                        "name": "scar",
                                        "value": "scar",
                                        "classifications": [],
                                    }
                                ],
                            },
                            {
                                "feature_id": "f9",
                                "name": "notes",
                                "value": "notes",
                                "text_answer": {"content": "free form text..."},
                            },
                        ],
                        "relationships": [],
                    },
                }
            ],
            "project_details": {
                "batch_id": "b1",
                "batch_name": "c1",
                "workflow_status": "IN_REVIEW",
                "priority": 5,
                "consensus_expected_label_count": 1,
                "workflow_history": [],
            },
        }
    },
}

INSTANCE_MASK_URL = "https://api.labelbox.com/api/v1/projects/pr1/annotations/{fid}/index/1/mask"


def export_line(
    global_key: str | None,
    data_row_id: str,
    width: int,
    height: int,
    label_id: str | None = "lb1",
    composite: tuple[str, list[int]] | None = ("cm7", [123, 103, 152]),
    instance_mask: str | None = None,
    answers: list[str] | None = None,
) -> dict[str, Any]:
    """The assembled line for one data row: its key, size, label id, mask form and the names of
    checklist answers (e.g. 'Malignant Lesion Present'); label_id=None leaves it unlabelled."""
    line = copy.deepcopy(ASSEMBLED_LINE)
    row = line["data_row"]
    row["id"] = data_row_id
    if global_key is None:
        del row["global_key"]
    else:
        row["global_key"] = global_key
    line["media_attributes"].update(width=width, height=height)
    project = line["projects"]["pr1"]
    if label_id is None:
        project["labels"] = []
        return line
    label = project["labels"][0]
    label["id"] = label_id
    objects = label["annotations"]["objects"]
    mask_obj = objects[3]
    if composite is None:
        del mask_obj["composite_mask"]
    else:
        cm, color = composite
        mask_obj["composite_mask"] = {
            "url": f"https://api.labelbox.com/api/v1/tasks/task9/masks/{cm}/index/1",
            "color_rgb": color,
        }
    if instance_mask is not None:
        objects.append(
            {
                "feature_id": instance_mask,
                "name": "cyst",
                "value": "cyst",
                "annotation_kind": "ImageSegmentationMask",
                "classifications": [],
                "mask": {"url": INSTANCE_MASK_URL.format(fid=instance_mask)},
            }
        )
    if answers:
        label["annotations"]["classifications"].append(
            {
                "feature_id": "f10",
                "name": "Instance Labels",
                "value": "instance_labels",
                "checklist_answers": [
                    {"feature_id": f"a{i}", "name": a, "value": a.lower(), "classifications": []}
                    for i, a in enumerate(answers)
                ],
            }
        )
    return line


def ndjson(lines: list[dict[str, Any] | str]) -> str:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)

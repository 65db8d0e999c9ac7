"""Export NDJSON (the documented structure) into label records; bad lines named, not fatal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from casbusi_assets.labelling.export_parsing import instance_flags, parse_export_lines
from casbusi_assets_tests.labelling.export_fixture import ASSEMBLED_LINE, export_line, ndjson


def test_the_assembled_reference_line_parses_into_one_label():
    (label,), errors = parse_export_lines([json.dumps(ASSEMBLED_LINE)])
    assert errors == []
    assert (label.data_row_id, label.global_key, label.project_id, label.label_id) == (
        "dr1",
        "c1/img-0",
        "pr1",
        "lb1",
    )
    assert label.labeler == "labeler@example.org"
    assert label.created_at == datetime(2024, 4, 8, 16, 21, 26, tzinfo=UTC)
    assert label.updated_at == datetime(2024, 4, 9, 17, 4, 23, tzinfo=UTC)
    assert label.workflow_status == "IN_REVIEW"
    assert label.media_size == (2560, 1707)
    assert label.classifications == {
        "quality": "good",
        "findings": ["scar"],
        "notes": "free form text...",
    }
    (mask,) = label.masks
    assert (mask.kind, mask.color_rgb, mask.mask_id) == ("composite", (123, 103, 152), "cm7")
    assert [o["annotation_kind"] for o in label.objects] == [
        "ImageBoundingBox",
        "ImagePolygon",
        "ImagePoint",
    ]
    assert not any(label.flags.values())


def test_single_instance_mask_id_is_the_feature_id():
    line = export_line("k", "dr1", 10, 10, composite=None, instance_mask="feat-42")
    (label,), _ = parse_export_lines([json.dumps(line)])
    (mask,) = label.masks
    assert (mask.kind, mask.mask_id, mask.color_rgb) == ("instance", "feat-42", None)


def test_malformed_lines_are_named_and_the_others_still_parse():
    text = ndjson(
        [
            export_line("k1", "dr1", 10, 10),
            '{"data_row": {"id": "dr2"}, "projects": ',  # cut off mid-line
            export_line("k3", "dr3", 10, 10),
            {"no": "data_row"},
            "",
        ]
    )
    labels, errors = parse_export_lines(text.splitlines())
    assert [label.data_row_id for label in labels] == ["dr1", "dr3"]
    assert [e.line for e in errors] == [2, 4]
    assert str(errors[0]).startswith("line 2: not valid JSON")
    assert "data_row.id" in str(errors[1])


def test_a_bad_timestamp_is_a_line_error():
    line = export_line("k1", "dr1", 10, 10)
    line["projects"]["pr1"]["labels"][0]["label_details"]["created_at"] = "yesterday"
    labels, errors = parse_export_lines([json.dumps(line)])
    assert labels == [] and "created_at" in str(errors[0])


def test_unlabelled_rows_are_kept_as_rows_without_a_label():
    (label,), errors = parse_export_lines(
        [json.dumps(export_line("k", "dr1", 5, 5, label_id=None))]
    )
    assert errors == [] and label.label_id is None and label.global_key == "k"


def test_instance_label_answers_set_the_flags():
    line = export_line(
        "k", "dr1", 5, 5, answers=["Malignant Lesion Present", "Cyst_Lesion_Present"]
    )
    (label,), _ = parse_export_lines([json.dumps(line)])
    assert label.flags["malignant_lesion_present"] and label.flags["cyst_lesion_present"]
    assert not label.flags["reject_image"]
    exam = [{"name": "Exam Options", "radio_answer": {"name": "Discard Entire Exam"}}]
    assert instance_flags(exam)["discard_entire_exam"]
    yes_no = [{"name": "Reject Image", "radio_answer": {"name": "Yes"}}]
    assert instance_flags(yes_no)["reject_image"]
    assert not instance_flags([{"name": "Reject Image", "radio_answer": {"name": "No"}}])[
        "reject_image"
    ]

"""Column schemas of every warehouse table, in one place.

The IO manager conforms each asset's DataFrame to its schema before writing, so a batch with no
rows still yields a typed Parquet file, every batch has the same column order, and DuckDB views
over all batches line up. Add a column here when an asset gains one.
"""

from __future__ import annotations

import pyarrow as pa

# Why a member of a zip was quarantined. `dicom_catalog.error_code` holds one of these; the
# human-readable `error` column says more. The synthetic generator's ground truth uses the same codes.
QUARANTINE_CODES = {
    "unsafe_path": "member path is absolute or escapes the archive (zip-slip)",
    "too_large": "member exceeds the configured size or compression-ratio limit",
    "unreadable_member": "the zip entry itself cannot be read (CRC error, unsupported compression)",
    "not_dicom": "not a DICOM file",
    "truncated": "DICOM file ends before its declared content",
    "undecodable_pixels": "pixel data present but cannot be decoded",
    "missing_sop_instance_uid": "SOPInstanceUID is missing or empty (the file has no identity)",
}

# Codes earlier versions wrote and this one no longer does; old batches may still hold them until
# they are re-run. `missing_identifier` quarantined readable files whose PatientID or
# AccessionNumber was empty: such files are now catalogued ok with `missing_links` set (the
# cleaning stage excludes them with `missing_patient_id` / `missing_accession`), and a missing
# SOPInstanceUID has its own code, `missing_sop_instance_uid`.
RETIRED_QUARANTINE_CODES = {
    "missing_identifier": "retired: PatientID, AccessionNumber or SOPInstanceUID was missing",
}

# `missing_links` (dicom_catalog, image_table, video_table): which links to a case are empty, as a
# comma-separated string of these names in this order ("patient_id", "accession_number",
# "patient_id,accession_number"), null when the file has both. A comma string (not a JSON list)
# so SQL filters stay plain: `WHERE missing_links IS NULL`, `LIKE '%accession_number%'`.
MISSING_LINK_NAMES = ("patient_id", "accession_number")

# `doppler_kind` (image_table, video_table): 'color' (colour flow, one or both hues), 'power'
# (power Doppler: a one-sided red/orange/yellow map), null when the capture is not Doppler.
DOPPLER_KINDS = ("color", "power")

STR = pa.string()
I64 = pa.int64()
F64 = pa.float64()
BOOL = pa.bool_()

DICOM_CATALOG = pa.schema(
    [
        ("batch_id", STR),
        ("member_path", STR),
        ("sop_instance_uid", STR),
        ("study_instance_uid", STR),
        ("series_instance_uid", STR),
        ("sop_class_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("missing_links", STR),  # empty case links: see MISSING_LINK_NAMES; null when none
        ("modality", STR),
        ("manufacturer", STR),
        ("model_name", STR),
        ("study_description", STR),
        ("study_date", STR),
        ("patient_sex", STR),
        ("patient_age", STR),
        ("photometric_interpretation", STR),
        ("rows", I64),
        ("columns", I64),
        ("number_of_frames", I64),
        ("bits_allocated", I64),
        ("transfer_syntax_uid", STR),
        ("kind", STR),  # image | video | no_pixels | case_csv (null when unreadable)
        ("region_count", I64),
        ("us_regions", STR),  # JSON list of SequenceOfUltrasoundRegions items
        ("file_size", I64),
        ("file_sha256", STR),
        ("pixel_sha256", STR),
        ("header", STR),  # DICOM-JSON (PS3.18) without pixel data, all tags incl. sequences
        ("status", STR),  # ok | quarantined
        ("error_code", STR),  # one of QUARANTINE_CODES, null when ok
        ("error", STR),
    ]
)

# The first SequenceOfUltrasoundRegions box (DICOM RegionLocationMin/Max) and how many there are.
_FIRST_REGION = [
    ("region_count", I64),
    ("region_x0", I64),
    ("region_y0", I64),
    ("region_x1", I64),
    ("region_y1", I64),
]

IMAGE_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("study_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("missing_links", STR),  # see MISSING_LINK_NAMES; null when both links are present
        ("member_path", STR),
        ("n_members", I64),  # >1 when the zip holds the same SOP instance more than once
        ("image_path", STR),
        ("is_doppler", BOOL),
        ("doppler_kind", STR),  # color | power | null (see DOPPLER_KINDS)
        ("original_photometric_interpretation", STR),
        ("stored_as", STR),  # 'gray' | 'rgb'
        ("yellow_pixels_whitened", I64),
        ("rows", I64),
        ("columns", I64),
        *_FIRST_REGION,
        ("png_bytes", I64),
        ("status", STR),  # ok | failed (decode failed after the catalog accepted the file)
        ("error", STR),
    ]
)

VIDEO_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("study_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("missing_links", STR),  # see MISSING_LINK_NAMES; null when both links are present
        ("member_path", STR),
        ("frames_dir", STR),
        ("n_frames", I64),
        ("saved_frames", I64),
        ("saved_frame_indices", STR),  # JSON list of 0-based frame numbers written
        ("frame_policy", STR),
        ("is_doppler", BOOL),
        ("doppler_kind", STR),  # color | power | null (see DOPPLER_KINDS)
        ("original_photometric_interpretation", STR),
        ("rows", I64),
        ("columns", I64),
        *_FIRST_REGION,
        ("status", STR),
        ("error", STR),
    ]
)

CASE_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("source", STR),  # 'zip:<member>' or the configured override path
        ("row_number", I64),
        ("patient_id", STR),
        ("accession_number", STR),
        ("biopsy_accession", STR),
        ("biopsy_laterality", STR),
        ("birads", STR),
        ("study_laterality", STR),
        ("biopsy", STR),
        ("path_desc", STR),
        ("density_desc", STR),
        ("time_biop", F64),
        ("age", F64),
        ("race", STR),
        ("ethnicity", STR),
    ]
)

CASE_STUDY_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("biopsy_accessions", STR),  # JSON lists, one entry per biopsy row of the case CSV
        ("biopsy_lateralities", STR),
        ("biopsies", STR),
        ("path_descs", STR),
        ("density_descs", STR),
        ("birads", STR),
        ("study_laterality", STR),
        ("time_biop", F64),
        ("age", F64),
        ("race", STR),
        ("ethnicity", STR),
        ("study_description", STR),
        ("study_date", STR),
        ("patient_sex", STR),
        ("patient_size", F64),
        ("patient_weight", F64),
        ("image_count", I64),
        ("video_count", I64),
        ("trustworthiness", I64),  # 1 best .. 3 worst
        ("trust_reason", STR),
    ]
)

BREAST_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("breast", STR),  # LEFT | RIGHT
        ("path_desc", STR),
        ("density_desc", STR),
        ("has_malignant", BOOL),
        ("has_benign", BOOL),
        ("has_unknown", BOOL),
        ("lesion_count", I64),
    ]
)

OCR_TABLE = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("source", STR),  # image | video
        ("description", STR),
        ("text_boxes", STR),  # JSON list of {text, score, box}
        ("area", STR),
        ("laterality", STR),
        ("orientation", STR),
        ("clock_pos", STR),
        ("nipple_dist_cm", F64),
        ("ocr_engine", STR),
        ("ocr_device", STR),
        ("ocr_ms", F64),
        ("status", STR),
        ("error", STR),
    ]
)

# cleaned_images / cleaned_videos: the decision about each still and clip. `exclusion_reasons`
# holds codes of casbusi_assets/cleaning/rules.py REASON_CODES (README: Cleaning); empty = included.
_CROP = [
    ("crop_x", I64),  # the ultrasound field, in the original image's pixels
    ("crop_y", I64),
    ("crop_w", I64),
    ("crop_h", I64),
    ("crop_source", STR),  # regions | heuristic
]
_DECISION = [
    ("include", BOOL),
    ("exclusion_reasons", pa.list_(STR)),  # reason codes; [] when included
    ("label_cat", STR),  # doppler | long | trans | other
]

CLEANED_IMAGES = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("image_path", STR),
        ("is_doppler", BOOL),
        ("region_count", I64),
        ("pixel_hash", STR),  # SHA-256 of the decoded pixels (shape, dtype, values)
        ("raw_hash", STR),  # the catalog's pixel_sha256 (encoded PixelData bytes)
        ("is_corrupt", BOOL),
        ("corrupt_reason", STR),  # decode_failed | unreadable_png | blank | green_cast
        ("duplicate_of", STR),  # the kept copy's SOPInstanceUID: earliest batch, then smallest UID
        ("duplicate_of_batch", STR),  # the kept copy's batch
        ("twin_of", STR),  # same patient's near-identical capture (one frozen frame)
        ("twin_distance", F64),  # mean |grey difference| on the field to the nearest capture
        ("twin_relative_distance", F64),  # twin_distance over the pair's spread on the field
        ("darkness", F64),  # percent of the field's echo-bearing pixels at or below the dark level
        *_CROP,
        ("has_calipers", BOOL),
        ("caliper_boxes", STR),  # JSON [[x, y, w, h], ...], one box per mark
        ("area", STR),
        ("laterality", STR),
        ("orientation", STR),
        ("orientation_source", STR),  # ocr | model | none
        ("orientation_confidence", F64),  # the model's softmax confidence, when it was asked
        *_DECISION,
    ]
)

CLEANED_VIDEOS = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("frames_dir", STR),
        ("first_frame_path", STR),  # the frame that stands for the clip
        ("is_doppler", BOOL),
        ("region_count", I64),
        ("is_corrupt", BOOL),
        ("corrupt_reason", STR),
        ("darkness", F64),
        *_CROP,
        ("area", STR),
        ("laterality", STR),
        ("orientation", STR),
        *_DECISION,
    ]
)

# inpainted_images: caliper masks and caliper-free copies (new files; originals untouched).
INPAINTED_IMAGES = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("image_path", STR),  # the original (image_table's PNG), only read
        ("mask_path", STR),  # files/inpainted_images/<batch>/masks/<sop>.png (255 = inpainted)
        ("inpainted_path", STR),  # files/inpainted_images/<batch>/images/<sop>.png
        ("n_calipers", I64),  # caliper boxes of cleaned_images
        ("n_lines", I64),  # measurement lines found between paired marks and masked
        ("n_box_fallback", I64),  # boxes with no visible stroke, masked whole
        ("mask_pixels", I64),
        ("method", STR),  # ns | telea | learned
        ("inpaint_ms", F64),  # mask refinement + inpainting of this image
        ("status", STR),  # ok | no_boxes | failed
        ("error", STR),
    ]
)

# labelbox_crops: what was sent to the labelling tool for each included image of a batch.
LABELBOX_CROPS = pa.schema(
    [
        ("batch_id", STR),
        ("sop_instance_uid", STR),
        ("global_key", STR),  # the data row's key in Labelbox: prefix + SOPInstanceUID
        ("patient_id", STR),
        ("accession_number", STR),
        ("laterality", STR),
        ("orientation", STR),
        ("label_cat", STR),
        ("source_path", STR),  # the PNG the crop was cut from (inpainted copy or original)
        ("original_path", STR),  # the uncropped capture (sent as an attachment)
        ("crop_path", STR),  # files/labelbox_crops/<batch>/<sop>.png
        ("crop_x", I64),  # the crop box in original pixels (masks are projected back with it)
        ("crop_y", I64),
        ("crop_w", I64),
        ("crop_h", I64),
        ("image_width", I64),  # the original's size
        ("image_height", I64),
        ("inpainted", BOOL),  # cut from the caliper-free copy
        ("upload_status", STR),  # created | updated | outbox | failed | skipped
        ("upload_error", STR),
        ("data_row_id", STR),  # Labelbox's id (online)
        ("labelling_batch", STR),  # the Labelbox batch the row was queued in
    ]
)

# labels_archive: every retrieval of labels is a version (archive_version); stored per batch of the
# labelled image (batch_id; folder `_unmatched` for rows no image matches), all versions kept.
_TIMESTAMP = pa.timestamp("us", tz="UTC")
LABELS_ARCHIVE = pa.schema(
    [
        ("batch_id", STR),
        ("archive_version", STR),  # lv-<UTC time>-<content hash>: one per retrieval
        ("retrieved_at", _TIMESTAMP),
        ("source_line", I64),  # line of the export file
        ("status", STR),  # ok | unlabeled | unknown_global_key | malformed | exam_discarded
        ("error", STR),
        ("global_key", STR),
        ("sop_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("data_row_id", STR),
        ("project_id", STR),
        ("label_id", STR),
        ("labeler", STR),
        ("created_at", _TIMESTAMP),
        ("updated_at", _TIMESTAMP),
        ("workflow_status", STR),  # e.g. IN_REVIEW, DONE
        ("mask_path", STR),  # 0/255 PNG in the original image's geometry
        ("mask_status", STR),  # ok | none | missing (mask_error says why)
        ("mask_error", STR),
        ("mask_objects", STR),  # JSON: each mask object, its kind, id and status
        ("objects", STR),  # JSON: boxes / polygons / lines / points, in original pixels
        ("classifications", STR),  # JSON: classification name -> answer (list for checklists)
        ("reject_image", BOOL),
        ("only_normal_tissue", BOOL),
        ("cyst_lesion_present", BOOL),
        ("benign_lesion_present", BOOL),
        ("malignant_lesion_present", BOOL),
        ("discard_entire_exam", BOOL),  # set on every image of the exam
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "dicom_catalog": DICOM_CATALOG,
    "image_table": IMAGE_TABLE,
    "video_table": VIDEO_TABLE,
    "case_table": CASE_TABLE,
    "case_study_table": CASE_STUDY_TABLE,
    "breast_table": BREAST_TABLE,
    "ocr_table": OCR_TABLE,
    "cleaned_images": CLEANED_IMAGES,
    "cleaned_videos": CLEANED_VIDEOS,
    "inpainted_images": INPAINTED_IMAGES,
    "labelbox_crops": LABELBOX_CROPS,
    "labels_archive": LABELS_ARCHIVE,
}

TABLE_DESCRIPTIONS: dict[str, str] = {
    "dicom_catalog": "One row per zip member (quarantined ones included).",
    "image_table": "One row per still image (SOP instance) with its PNG file.",
    "video_table": "One row per cine clip with the folder of its saved frames.",
    "case_table": "The case CSV as delivered, validated and typed, one row per biopsy.",
    "case_study_table": "One row per (patient, accession) with study fields and trust score.",
    "breast_table": "Two rows (LEFT, RIGHT) per (patient, accession) with biopsy outcomes.",
    "ocr_table": "Burned-in annotation text of each image / clip, parsed into fields.",
    "cleaned_images": "Per still image: the cleaning measures and include / exclusion_reasons.",
    "cleaned_videos": "Per cine clip (its first frame): crop, darkness, include / exclusion_reasons.",
    "inpainted_images": "Per included image with calipers: its caliper mask and caliper-free copy.",
    "labelbox_crops": "Per included image of a batch: its crop file, crop box and upload outcome.",
    "labels_archive": "Labels of every retrieval (archive_version), none overwritten; masks in "
    "the original geometry.",
}


def render_markdown() -> str:
    """docs/tables.md: regenerate with `python -m casbusi_assets.storage.schemas > docs/tables.md`."""
    out = [
        "# Tables",
        "",
        "Generated from `casbusi_assets/storage/schemas.py`; every table is a "
        "DuckDB view named as below over `<home>/warehouse/<table>/batch_id=*/data.parquet`.",
        "",
    ]
    for name, schema in TABLE_SCHEMAS.items():
        out += [f"## `{name}`", "", TABLE_DESCRIPTIONS[name], "", "| column | type |", "|---|---|"]
        out += [f"| `{f.name}` | {f.type} |" for f in schema]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")

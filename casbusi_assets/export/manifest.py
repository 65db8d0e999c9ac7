"""manifest.parquet: one row per exported file, with its lineage back to the zip member.

The manifest holds nothing that depends on when or where the export ran (no export ID, no
timestamp, paths relative to the export and to the home), so two exports of the same data with
the same settings have identical manifests; `content_hash` is the fingerprint that says so.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STR, I64, BOOL = pa.string(), pa.int64(), pa.bool_()

MANIFEST_SCHEMA = pa.schema(
    [
        ("export_path", STR),  # relative to the export folder: images/…, masks/…, videos/…/…
        ("file_kind", STR),  # image | mask | video_frame
        ("sha256", STR),  # of the exported file's bytes
        ("bytes", I64),
        ("width", I64),
        ("height", I64),
        ("batch_id", STR),
        ("member_path", STR),  # the DICOM's path inside the batch zip
        ("sop_instance_uid", STR),
        ("study_instance_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("breast", STR),  # LEFT | RIGHT
        ("frame_index", I64),  # cine frame number (0-based), null for stills and masks
        ("dicom_file_sha256", STR),  # of the zip member's bytes (dicom_catalog.file_sha256)
        ("dicom_pixel_sha256", STR),  # of its decoded pixels (dicom_catalog.pixel_sha256)
        ("source_path", STR),  # the file it was cropped from, relative to the home
        ("crop_x", I64),
        ("crop_y", I64),
        ("crop_w", I64),
        ("crop_h", I64),
        ("inpainted", BOOL),  # cropped from the caliper-free copy
        ("has_calipers", BOOL),  # cleaning found calipers on the original (null: unknown)
        ("label_source", STR),  # case_table (biopsy) [+ labels_archive]
        ("labels_archive_version", STR),  # version of the instance label / mask used, or null
        ("split", STR),  # train | val | test
        ("valid", I64),  # TrainData's Valid code of the split
        ("bag_id", I64),  # TrainData's ID of the image's bag
    ]
)


def manifest_table(rows: list[dict]) -> pa.Table:
    """The rows as a table of MANIFEST_SCHEMA, sorted by export path (a stable order)."""
    ordered = sorted(rows, key=lambda r: r["export_path"])
    columns = {
        field.name: pa.array([r.get(field.name) for r in ordered], type=field.type)
        for field in MANIFEST_SCHEMA
    }
    return pa.Table.from_pydict(columns, schema=MANIFEST_SCHEMA)


def content_hash(table: pa.Table) -> str:
    """SHA-256 of the manifest's rows in canonical JSON: equal for equal content, whatever the
    Parquet writer's version."""
    digest = hashlib.sha256()
    names = table.schema.names
    digest.update(json.dumps(names).encode())
    for row in table.to_pylist():
        digest.update(json.dumps([row[n] for n in names], default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def write_manifest(table: pa.Table, path: Path) -> None:
    # No pandas metadata, fixed options: the same rows give the same bytes.
    pq.write_table(table, path, compression="zstd", store_schema=True)


def read_manifest(path: Path) -> pa.Table:
    return pq.read_table(path)

"""Ground-truth table of a synthetic batch: one row per zip member, written as Parquet.

Written with pyarrow from an explicit schema (no pandas index metadata) so the same rows always
give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from casbusi_assets.storage.schemas import BOOL, F64, I64, STR

TRUTH_SCHEMA = pa.schema(
    [
        ("batch_id", STR),
        ("member_path", STR),
        ("member_role", STR),  # dicom | case_csv | junk
        ("sop_instance_uid", STR),
        ("study_instance_uid", STR),
        ("series_instance_uid", STR),
        ("sop_class_uid", STR),
        ("patient_id", STR),
        ("accession_number", STR),
        ("missing_links", STR),  # as dicom_catalog.missing_links: "patient_id" or null
        ("member_kind", STR),  # image | video | no_pixels | non_dicom
        ("expected_status", STR),  # ok | quarantined
        ("quarantine_code", STR),  # table_schemas.QUARANTINE_CODES key or null
        ("capture", STR),
        ("is_doppler", BOOL),
        ("doppler_kind", STR),  # color | power | null, as image_table.doppler_kind
        ("photometric_interpretation", STR),
        ("transfer_syntax_uid", STR),
        ("rows", I64),
        ("columns", I64),
        ("number_of_frames", I64),
        ("frame_time_ms", F64),
        ("region_count", I64),
        ("region_x0", I64),
        ("region_y0", I64),
        ("region_x1", I64),
        ("region_y1", I64),
        ("regions", STR),  # JSON list of every region [x0, y0, x1, y1]
        ("field_box", STR),  # JSON [x, y, w, h]: the ultrasound field (union of the regions)
        # what fills the declared field: rectangle | sector | convex (a fan inside the rectangle);
        # field_echo_share < 1: only that upper share of the fan's depth holds echo, black below
        ("field_look", STR),
        ("field_echo_share", F64),
        ("physical_delta_cm", F64),
        ("annotation_text", STR),
        ("area", STR),
        ("laterality", STR),
        ("orientation", STR),
        ("clock_pos", STR),
        ("nipple_dist_cm", F64),
        ("text_degradation", STR),
        ("text_font", STR),
        ("screen_style", STR),  # classic | varied
        ("text_box", STR),
        ("has_calipers", BOOL),
        ("calipers", STR),
        ("caliper_legend_box", STR),
        ("twin_sop_instance_uid", STR),
        ("twin_source_sop_instance_uid", STR),
        ("clean_png", pa.binary()),
        ("body_marker", BOOL),
        ("probe_angle_deg", F64),
        ("exact_duplicate_of", STR),
        ("resent_from_batch", STR),
        ("filter_case", STR),
        ("study_description", STR),
        ("study_laterality", STR),  # what the images show: LEFT | RIGHT | BILATERAL
        ("patient_sex", STR),
        ("manufacturer", STR),
        ("model_name", STR),
        ("file_size", I64),
        ("file_sha256", STR),
    ]
)

TRUTH_COLUMNS = tuple(TRUTH_SCHEMA.names)


def write_truth(rows: list[dict[str, Any]], path: Path) -> None:
    """Write `rows` (missing keys become null) to `path` deterministically."""
    cols = {name: [r.get(name) for r in rows] for name in TRUTH_COLUMNS}
    table = pa.Table.from_pydict(cols, schema=TRUTH_SCHEMA)
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def read_truth(path: Path) -> pa.Table:
    """Read a truth file (convenience for tests and benchmarks)."""
    return pq.read_table(path)

"""What the export reads: every batch of the cleaned tables and their context, through DuckDB.

One SQL query per kind (stills, clips, labels) over the catalog's views, so the cost of an export
does not grow with a Python loop over batches; DuckDB does the joins and the cross-batch rules:

- a SOPInstanceUID in several batches (a re-sent study) is exported once, from its earliest
  batch (the later copies get `duplicate_of_batch`);
- the case rows of a (patient, accession) re-sent in a later batch are taken from the latest
  batch that has them (the most recent case information wins);
- a labels archive with several versions of an image's label gives the latest version.

Tables written by later stages are optional: without `cleaned_images` / `cleaned_videos` the
export falls back to the decoded tables with the DICOM ultrasound region as crop (and says so);
without `inpainted_images` it exports the original pixels; without `labels_archive` it exports
no instance labels and no masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from casbusi_assets.export.train_data import INSTANCE_COLUMNS
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.files import is_remote
from casbusi_assets.storage.home import HomeLayout


class ExportInputError(RuntimeError):
    """The warehouse lacks what an export needs; the message says what to materialise."""


@dataclass
class ExportInputs:
    images: pd.DataFrame
    videos: pd.DataFrame
    sources: dict[str, str] = field(default_factory=dict)  # role -> table used (or why none)
    batches: list[str] = field(default_factory=list)
    labels_versions: list[str] = field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        return bool(self.labels_versions)


def _columns(home: HomeLayout, table: str) -> set[str]:
    df = warehouse.query(home.catalog, home.warehouse, f"DESCRIBE {table}")
    return set(df["column_name"])


def _pick(cols: set[str], alias: str, name: str, fallback: str) -> str:
    return f"{alias}.{name}" if name in cols else fallback


def _case_ctes() -> str:
    # Latest batch wins for case information re-sent in a later batch.
    return """
    study AS (
        SELECT patient_id, accession_number, trustworthiness
        FROM case_study_table
        QUALIFY row_number() OVER (
            PARTITION BY patient_id, accession_number ORDER BY batch_id DESC) = 1
    ),
    breast AS (
        SELECT patient_id, accession_number, breast, has_malignant, has_benign, has_unknown,
               lesion_count
        FROM breast_table
        QUALIFY row_number() OVER (
            PARTITION BY patient_id, accession_number, breast ORDER BY batch_id DESC) = 1
    )"""


def _labels_cte(label_cols: set[str]) -> str:
    """The newest usable label of each image. Rows the labelling stage marks unusable (status
    other than ok / exam_discarded) are skipped; ties within a version go to the latest update,
    then the last line of the export file, so the choice is deterministic."""
    flags = ", ".join(
        col if col in label_cols else f"NULL::BOOLEAN AS {col}" for col in INSTANCE_COLUMNS.values()
    )
    if "mask_path" not in label_cols:
        mask = "NULL::VARCHAR AS label_mask_path"
    elif "mask_status" in label_cols:
        mask = "CASE WHEN mask_status = 'ok' THEN mask_path END AS label_mask_path"
    else:
        mask = "mask_path AS label_mask_path"
    usable = "AND status IN ('ok', 'exam_discarded')" if "status" in label_cols else ""
    order = ["archive_version DESC"] + [
        f"{c} DESC NULLS LAST" for c in ("updated_at", "source_line") if c in label_cols
    ]
    return f"""
    labels AS (
        SELECT sop_instance_uid, CAST(archive_version AS VARCHAR) AS labels_archive_version,
               {mask}, {flags}
        FROM labels_archive
        WHERE sop_instance_uid IS NOT NULL {usable}
        QUALIFY row_number() OVER (
            PARTITION BY sop_instance_uid ORDER BY {", ".join(order)}) = 1
    )"""


# The candidates (`cand`) joined to their study and breast rows: stills and clips alike.
_CANDIDATES_WITH_CASES = """SELECT cand.*,
           CASE WHEN cand.batch_id <> cand.first_batch THEN cand.first_batch END
               AS duplicate_of_batch,
           upper(cand.laterality) AS breast,
           s.trustworthiness,
           b.patient_id IS NOT NULL AS has_case,
           b.has_malignant, b.has_benign, b.has_unknown, b.lesion_count
    FROM cand
    LEFT JOIN study s USING (patient_id, accession_number)
    LEFT JOIN breast b
           ON b.patient_id = cand.patient_id AND b.accession_number = cand.accession_number
          AND b.breast = upper(cand.laterality)
    ORDER BY cand.batch_id, cand.sop_instance_uid
"""


def _image_sql(present: set[str], home: HomeLayout) -> tuple[str, str]:
    if "cleaned_images" in present:
        cols = _columns(home, "cleaned_images")
        base = "cleaned_images"
        source = "cleaned_images"
    else:
        cols = set()
        base = "image_table"
        source = (
            "image_table (cleaned_images not materialised: no cleaning decisions, "
            "DICOM region as crop)"
        )
    c = "c"
    include = _pick(cols, c, "include", "(i.status = 'ok')")
    reasons = _pick(cols, c, "exclusion_reasons", "NULL")
    crop = {
        "crop_x": _pick(cols, c, "crop_x", "i.region_x0"),
        "crop_y": _pick(cols, c, "crop_y", "i.region_y0"),
        "crop_w": _pick(cols, c, "crop_w", "i.region_x1 - i.region_x0 + 1"),
        "crop_h": _pick(cols, c, "crop_h", "i.region_y1 - i.region_y0 + 1"),
    }
    ocr = "ocr_table" in present
    lat_ocr = "o.laterality" if ocr else "NULL"
    laterality = f"lower(coalesce({_pick(cols, c, 'laterality', 'NULL')}, {lat_ocr}))"
    inpainted = "inpainted_images" in present
    inpaint_join = ""
    if inpainted:
        # Only copies the inpainting stage reports as made (status ok, where it has a status).
        ok = " AND p.status = 'ok'" if "status" in _columns(home, "inpainted_images") else ""
        inpaint_join = (
            "LEFT JOIN inpainted_images p ON p.batch_id = i.batch_id "
            f"AND p.sop_instance_uid = i.sop_instance_uid{ok}"
        )
    # The labelling stage's crop of the same image: the export copies its bytes instead of
    # decoding and re-encoding the PNG when it is the same cut of the same file (writer.py).
    crops = "labelbox_crops" in present
    crop_cols = ", ".join(
        f"{'k.' + src if crops else 'NULL'} AS lb_{dst}"
        for src, dst in (
            ("crop_path", "crop_path"),
            ("source_path", "source_path"),
            ("crop_x", "crop_x"),
            ("crop_y", "crop_y"),
            ("crop_w", "crop_w"),
            ("crop_h", "crop_h"),
            ("image_width", "image_w"),
            ("image_height", "image_h"),
        )
    )
    crop_join = (
        "LEFT JOIN labelbox_crops k ON k.batch_id = i.batch_id "
        "AND k.sop_instance_uid = i.sop_instance_uid AND k.crop_path IS NOT NULL"
        if crops
        else ""
    )
    labels = "labels_archive" in present
    label_cols = _columns(home, "labels_archive") if labels else set()
    flag_select = ", ".join(
        (f"l.{col}" if labels else f"NULL::BOOLEAN AS {col}") for col in INSTANCE_COLUMNS.values()
    )
    ctes = [_case_ctes()]
    if labels:
        ctes.append(_labels_cte(label_cols))
    if base == "image_table":
        from_clause = "image_table i"
    else:
        from_clause = (
            "cleaned_images c JOIN image_table i "
            "ON i.batch_id = c.batch_id AND i.sop_instance_uid = c.sop_instance_uid"
        )
    icols = _columns(home, "image_table")
    size, size_h = _pick(icols, "i", "columns", "NULL"), _pick(icols, "i", "rows", "NULL")
    sql = f"""
    WITH {", ".join(ctes)},
    cand AS (
        SELECT i.batch_id, i.sop_instance_uid, i.study_instance_uid,
               i.patient_id, i.accession_number, i.member_path, i.image_path,
               {size} AS image_w, {size_h} AS image_h,
               {include} AS include, {reasons} AS exclusion_reasons,
               {crop["crop_x"]} AS crop_x, {crop["crop_y"]} AS crop_y,
               {crop["crop_w"]} AS crop_w, {crop["crop_h"]} AS crop_h,
               {laterality} AS laterality,
               {_pick(cols, c, "label_cat", "NULL")} AS label_cat,
               {_pick(cols, c, "has_calipers", "NULL")} AS has_calipers,
               {"p.inpainted_path" if inpainted else "NULL"} AS inpainted_path,
               d.file_sha256 AS dicom_file_sha256, d.pixel_sha256 AS dicom_pixel_sha256,
               {"l.labels_archive_version" if labels else "NULL"} AS labels_archive_version,
               {"l.label_mask_path" if labels else "NULL"} AS label_mask_path,
               {"l.sop_instance_uid IS NOT NULL" if labels else "false"} AS has_instance_label,
               {flag_select}, {crop_cols},
               min(i.batch_id) OVER (PARTITION BY i.sop_instance_uid) AS first_batch
        FROM {from_clause}
        LEFT JOIN dicom_catalog d
               ON d.batch_id = i.batch_id AND d.member_path = i.member_path
        {"LEFT JOIN ocr_table o ON o.batch_id = i.batch_id AND o.sop_instance_uid = i.sop_instance_uid AND o.source = 'image'" if ocr else ""}
        {inpaint_join}
        {crop_join}
        {"LEFT JOIN labels l ON l.sop_instance_uid = i.sop_instance_uid" if labels else ""}
    )
    {_CANDIDATES_WITH_CASES}    """
    return sql, source


def _video_sql(present: set[str], home: HomeLayout) -> tuple[str, str]:
    cleaned = "cleaned_videos" in present
    cols = _columns(home, "cleaned_videos") if cleaned else set()
    source = (
        "cleaned_videos"
        if cleaned
        else "video_table (cleaned_videos not materialised: DICOM region as crop)"
    )
    c = "c" if cleaned else "v"
    include = _pick(cols, c, "include", "(v.status = 'ok')")
    ocr = "ocr_table" in present
    laterality = (
        f"lower(coalesce({_pick(cols, c, 'laterality', 'NULL')}, "
        f"{'o.laterality' if ocr else 'NULL'}))"
    )
    vcols = _columns(home, "video_table")
    size, size_h = _pick(vcols, "v", "columns", "NULL"), _pick(vcols, "v", "rows", "NULL")
    sql = f"""
    WITH {_case_ctes()},
    cand AS (
        SELECT v.batch_id, v.sop_instance_uid, v.study_instance_uid,
               v.patient_id, v.accession_number, v.member_path, v.frames_dir,
               v.saved_frame_indices, {size} AS image_w, {size_h} AS image_h,
               {include} AS include, {_pick(cols, c, "exclusion_reasons", "NULL")}
                   AS exclusion_reasons,
               {_pick(cols, c, "crop_x", "v.region_x0")} AS crop_x,
               {_pick(cols, c, "crop_y", "v.region_y0")} AS crop_y,
               {_pick(cols, c, "crop_w", "v.region_x1 - v.region_x0 + 1")} AS crop_w,
               {_pick(cols, c, "crop_h", "v.region_y1 - v.region_y0 + 1")} AS crop_h,
               {laterality} AS laterality,
               d.file_sha256 AS dicom_file_sha256, d.pixel_sha256 AS dicom_pixel_sha256,
               min(v.batch_id) OVER (PARTITION BY v.sop_instance_uid) AS first_batch
        FROM {"cleaned_videos c JOIN video_table v ON v.batch_id = c.batch_id AND v.sop_instance_uid = c.sop_instance_uid" if cleaned else "video_table v"}
        LEFT JOIN dicom_catalog d
               ON d.batch_id = v.batch_id AND d.member_path = v.member_path
        {"LEFT JOIN ocr_table o ON o.batch_id = v.batch_id AND o.sop_instance_uid = v.sop_instance_uid AND o.source = 'video'" if ocr else ""}
    )
    {_CANDIDATES_WITH_CASES}    """
    return sql, source


def _resolve(home: HomeLayout, value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if is_remote(str(value)):
        return str(value)  # an object-store URL (CASBUSI_DATA_URL)
    path = Path(str(value))
    return str(path if path.is_absolute() else home.root / path)


def load_inputs(home: HomeLayout) -> ExportInputs:
    """Every batch's candidates for the export, with the context each filter needs."""
    present = set(warehouse.tables_present(home.warehouse))
    needed = {"image_table", "dicom_catalog", "case_study_table", "breast_table"}
    missing = sorted(needed - present)
    if missing:
        raise ExportInputError(
            f"nothing to export yet: the warehouse has no {', '.join(missing)} "
            "(ingest a batch first: `casbusi run-batch ZIP` or `casbusi demo`)"
        )
    sql, image_source = _image_sql(present, home)
    images = warehouse.query(home.catalog, home.warehouse, sql)
    images["inpainted_path"] = [_resolve(home, v) for v in images["inpainted_path"]]
    images["label_mask_path"] = [_resolve(home, v) for v in images["label_mask_path"]]
    images["image_path"] = [_resolve(home, v) for v in images["image_path"]]
    images["lb_crop_path"] = [_resolve(home, v) for v in images["lb_crop_path"]]
    images["lb_source_path"] = [_resolve(home, v) for v in images["lb_source_path"]]

    if "video_table" in present:
        vsql, video_source = _video_sql(present, home)
        videos = warehouse.query(home.catalog, home.warehouse, vsql)
        videos["frames_dir"] = [_resolve(home, v) for v in videos["frames_dir"]]
    else:
        videos, video_source = pd.DataFrame(), "none (no video_table)"

    versions: list[str] = []
    if "labels_archive" in present:
        v = warehouse.query(
            home.catalog,
            home.warehouse,
            "SELECT DISTINCT CAST(archive_version AS VARCHAR) AS v FROM labels_archive "
            "WHERE archive_version IS NOT NULL AND sop_instance_uid IS NOT NULL ORDER BY 1",
        )
        versions = [str(x) for x in v["v"]]
    batches = warehouse.query(
        home.catalog,
        home.warehouse,
        "SELECT DISTINCT batch_id FROM image_table ORDER BY batch_id",
    )["batch_id"].tolist()
    sources = {
        "images": image_source,
        "videos": video_source,
        "inpainting": "inpainted_images" if "inpainted_images" in present else "none",
        "labels": "labels_archive" if versions else "none",
    }
    return ExportInputs(images, videos, sources, [str(b) for b in batches], versions)


def relative_to_home(home_root: Path, path: str | None) -> str | None:
    """A source path relative to the home (stable when the home moves), absolute outside it."""
    if not path:
        return None
    try:
        return (
            Path(os.path.relpath(path, home_root)).as_posix()
            if Path(path).is_relative_to(home_root)
            else path
        )
    except ValueError:
        return path

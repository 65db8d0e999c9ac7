"""Which catalog rows become image / video rows, and the columns they carry over.

The export itself runs in the ingest pass (pixels/single_pass.py), from the same parse of each
member as its catalog row; these rules decide which member of a duplicated SOP instance is the
one exported and what each table row copies from the catalog.
"""

from __future__ import annotations

import json

import pandas as pd

_REGION_KEYS = (
    ("region_x0", "RegionLocationMinX0"),
    ("region_y0", "RegionLocationMinY0"),
    ("region_x1", "RegionLocationMaxX1"),
    ("region_y1", "RegionLocationMaxY1"),
)


def first_region(us_regions_json: str | None) -> dict[str, int | None]:
    """The first SequenceOfUltrasoundRegions box as region_x0..region_y1 (None when absent)."""
    regions = json.loads(us_regions_json) if us_regions_json else []
    first = regions[0] if regions else {}
    return {col: first.get(tag) for col, tag in _REGION_KEYS}


def unique_instances(catalog: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Catalog rows of `kind` that are ok, one per SOP instance (first member path wins).

    The same instance can sit in a zip twice (an exact duplicate file); it is one image, exported
    once, and `n_members` says how many copies the zip held.
    """
    rows = catalog[(catalog["status"] == "ok") & (catalog["kind"] == kind)]
    rows = rows.sort_values("member_path", kind="stable")
    counts = rows.groupby("sop_instance_uid")["member_path"].transform("size")
    rows = rows.assign(n_members=counts)
    return rows.drop_duplicates("sop_instance_uid", keep="first").reset_index(drop=True)


# Catalog columns every image / video row carries over unchanged.
CARRIED = (
    "sop_instance_uid",
    "study_instance_uid",
    "patient_id",
    "accession_number",
    "missing_links",
    "member_path",
    "region_count",
)

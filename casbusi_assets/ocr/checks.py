"""Per-batch checks of the OCR table (see shared/checks.py for why they are standalone)."""

import dagster as dg
import pandas as pd

from casbusi_assets.shared.checks import UNIQUE_SOP, batch_check, unique_sop_result


@batch_check(
    "ocr_table",
    "one_row_per_image_and_clip",
    "Every exported image and clip was read: one OCR row each, nothing else.",
    additional_ins={
        "image_table": dg.AssetIn("image_table"),
        "video_table": dg.AssetIn("video_table"),
    },
)
def one_row_per_image_and_clip(
    ocr_table: pd.DataFrame, image_table: pd.DataFrame, video_table: pd.DataFrame
) -> dg.AssetCheckResult:
    expected = set(image_table["sop_instance_uid"]) | set(video_table["sop_instance_uid"])
    got = set(ocr_table["sop_instance_uid"]) if len(ocr_table) else set()
    return dg.AssetCheckResult(
        passed=got == expected and len(ocr_table) == len(image_table) + len(video_table),
        metadata={
            "rows": len(ocr_table),
            "missing": len(expected - got),
            "unexpected": len(got - expected),
        },
    )


@batch_check("ocr_table", UNIQUE_SOP, "Every SOPInstanceUID appears once in the batch.")
def ocr_table_unique_sop(ocr_table: pd.DataFrame) -> dg.AssetCheckResult:
    return unique_sop_result(ocr_table)

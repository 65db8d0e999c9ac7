"""Per-batch checks of the pixel tables (see shared/checks.py for why they are standalone)."""

import dagster as dg
import pandas as pd

from casbusi_assets.shared.checks import UNIQUE_SOP, batch_check, unique_sop_result
from casbusi_assets.shared.metadata import markdown_table


@batch_check("image_table", "every_image_decoded", "Every catalogued still decoded to a PNG.")
def every_image_decoded(image_table: pd.DataFrame) -> dg.AssetCheckResult:
    failed = image_table[image_table["status"] == "failed"] if len(image_table) else image_table
    return dg.AssetCheckResult(
        passed=len(failed) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed": len(failed),
            "failures": markdown_table(failed, ["member_path", "error"]),
        },
    )


@batch_check("image_table", UNIQUE_SOP, "Every SOPInstanceUID appears once in the batch.")
def image_table_unique_sop(image_table: pd.DataFrame) -> dg.AssetCheckResult:
    return unique_sop_result(image_table)


@batch_check("video_table", UNIQUE_SOP, "Every SOPInstanceUID appears once in the batch.")
def video_table_unique_sop(video_table: pd.DataFrame) -> dg.AssetCheckResult:
    return unique_sop_result(video_table)

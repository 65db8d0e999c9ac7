"""Per-batch check of the inpainted copies (see shared/checks.py for why checks are standalone)."""

import dagster as dg
import pandas as pd

from casbusi_assets.inpainting.batch import check_copies
from casbusi_assets.shared.checks import batch_check
from casbusi_assets.shared.metadata import markdown_table


@batch_check(
    "inpainted_images",
    "copies_differ_only_inside_masks",
    "Each inpainted copy equals its original outside its mask, pixel for pixel (files re-read).",
)
def copies_differ_only_inside_masks(inpainted_images: pd.DataFrame) -> dg.AssetCheckResult:
    checked = check_copies(inpainted_images)
    bad = checked[checked["outside"] != 0]
    return dg.AssetCheckResult(
        passed=bool(bad.empty),
        metadata={
            "checked": len(checked),
            "failing": len(bad),
            "rows": markdown_table(bad, list(bad.columns)),
        },
    )

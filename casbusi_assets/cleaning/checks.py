"""Per-batch checks of the cleaning tables (see shared/checks.py for why they are standalone)."""

import dagster as dg
import pandas as pd

from casbusi_assets.cleaning.batch import crop_outside_image
from casbusi_assets.shared.checks import batch_check
from casbusi_assets.shared.metadata import markdown_table


@batch_check(
    "cleaned_images",
    "included_images_have_crop_inside",
    "Every included image has a crop box of positive size inside the image.",
    additional_ins={"image_table": dg.AssetIn("image_table")},
)
def included_images_have_crop_inside(
    cleaned_images: pd.DataFrame, image_table: pd.DataFrame
) -> dg.AssetCheckResult:
    bad = crop_outside_image(cleaned_images, image_table)
    return dg.AssetCheckResult(
        passed=bool(bad.empty),
        metadata={
            "included": int(cleaned_images["include"].sum()) if len(cleaned_images) else 0,
            "failing": len(bad),
            "rows": markdown_table(bad, list(bad.columns)),
        },
    )

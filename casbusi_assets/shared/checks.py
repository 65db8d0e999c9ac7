"""Per-batch asset checks every stage shares.

Checks are standalone `@asset_check`s with the batch partitions (Dagster 1.13 preview): a check
yielded from an asset body is recorded with no partition, so the UI's "latest check result" could
not say which batch it speaks for. Each check here loads just its batch of the table.
"""

import warnings

import dagster as dg
import pandas as pd

from casbusi_assets.shared.metadata import markdown_table
from casbusi_assets.shared.partitions import batch_partitions

# Partitioned asset checks are a preview feature in 1.13; the warning says nothing a user can act on.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")


def batch_check(asset: str, name: str, description: str, **kwargs: object):
    """`@dg.asset_check` for one batch of `asset` (same partition as the run's)."""
    return dg.asset_check(
        asset=asset,
        name=name,
        description=description,
        partitions_def=batch_partitions,
        **kwargs,
    )


UNIQUE_SOP = "unique_sop_instance_uid"


def unique_sop_result(df: pd.DataFrame) -> dg.AssetCheckResult:
    """One row per SOPInstanceUID in a batch of a table (re-runs replace, never append)."""
    uids = df["sop_instance_uid"].dropna() if len(df) else pd.Series(dtype=str)
    dupes = uids[uids.duplicated(keep=False)]
    return dg.AssetCheckResult(
        passed=bool(dupes.empty),
        metadata={
            "rows": len(df),
            "duplicated_uids": int(dupes.nunique()),
            "examples": markdown_table(
                df[df["sop_instance_uid"].isin(set(dupes))], ["sop_instance_uid"], limit=10
            ),
        },
    )

"""Small builders for the metadata assets attach, so the UI answers "what happened to this batch?"."""

from __future__ import annotations

import dagster as dg
import pandas as pd


def counts(series: pd.Series) -> dict[str, int]:
    """Value counts as a plain, sorted dict (None shown as 'null')."""
    values = series.fillna("null").astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(values.items())}


def markdown_table(df: pd.DataFrame, columns: list[str], limit: int = 20) -> dg.MetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = df[columns].head(limit)
    more = f"\n\n_… {len(df) - limit} more rows_" if len(df) > limit else ""
    return dg.MetadataValue.md(shown.to_markdown(index=False) + more)

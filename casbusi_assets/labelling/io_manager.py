"""The labels archive's IO manager: a version's rows in, stored beside earlier versions."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from casbusi_assets.labelling.archive import ensure_view, read_versions, write_version
from casbusi_assets.storage.home import layout


class LabelsArchiveIOManager(dg.ConfigurableIOManager):
    """Writes one labels version (partition key) into the warehouse's `labels_archive` files,
    replacing only that version's rows; loads the requested versions (all, downstream)."""

    home: str = ""

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        home = layout(self.home or None).create()
        version = context.partition_key
        written = write_version(home.warehouse, version, obj)
        try:
            ensure_view(home.catalog, home.warehouse)
        except Exception as exc:  # the data is safe; a held lock only delays the SQL view
            context.log.warning(f"could not create the DuckDB view for labels_archive ({exc})")
        context.add_output_metadata(
            {"dagster/row_count": len(obj), "batch_files": ", ".join(written) or "(none)"}
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        home = layout(self.home or None).create()
        if context.has_asset_partitions:
            return read_versions(home.warehouse, context.asset_partition_keys)
        return read_versions(home.warehouse)

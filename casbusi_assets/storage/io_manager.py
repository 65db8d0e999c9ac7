"""The warehouse IO manager: DataFrames in, one Parquet file per (table, batch) out.

Re-materialising a batch replaces exactly that batch's file; loading a partitioned input reads
just its batch. Views in `<home>/catalog.duckdb` are created when a table's first batch lands.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from casbusi_assets.storage import warehouse
from casbusi_assets.storage.home import layout


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Parquet per (table, batch) under <home>/warehouse, with DuckDB views for SQL."""

    home: str = ""
    # "" = $CASBUSI_DATA_URL, else inside the home; e.g. s3://bucket/prefix (no credentials here:
    # s3fs reads the standard AWS variables)
    data_url: str = ""

    def _paths(self):
        return layout(self.home or None, self.data_url or None).create()

    def handle_output(
        self, context: dg.OutputContext, obj: pd.DataFrame | warehouse.BatchWriter
    ) -> None:
        home = self._paths()
        table = context.asset_key.path[-1]
        if not context.has_partition_key:
            raise dg.DagsterInvariantViolationError(
                f"{table}: the warehouse IO manager stores batch-partitioned tables only"
            )
        batch_id = context.partition_key
        if isinstance(obj, warehouse.BatchWriter):
            # A table the asset streamed into its batch file as it went (the ingest's catalog):
            # put that file in place, as write_batch would have written it.
            if (obj.table, obj.batch_id) != (table, batch_id):
                raise ValueError(
                    f"{table}: got the batch file of {obj.table} for batch '{obj.batch_id}'"
                )
            rows = obj.rows
            path = obj.commit(home.warehouse)
        else:
            if "batch_id" in obj.columns and len(obj) and (obj["batch_id"] != batch_id).any():
                raise ValueError(f"{table}: rows carry a batch_id other than '{batch_id}'")
            obj = obj.assign(batch_id=batch_id)
            rows = len(obj)
            path = warehouse.write_batch(home.warehouse, table, batch_id, obj)
        try:
            warehouse.ensure_views(home.catalog, home.warehouse, [table])
        except Exception as exc:  # the data is safe; a held lock only delays the SQL view
            context.log.warning(
                f"could not create the DuckDB view for {table} ({exc}); "
                f"it will be created by the next run or `casbusi sql`"
            )
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(path)),
                "dagster/row_count": rows,
                "table": table,
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        home = self._paths()
        table = context.asset_key.path[-1]
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            frames = [warehouse.read_batch(home.warehouse, table, k) for k in keys]
            return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return warehouse.read_all_batches(home.warehouse, table)

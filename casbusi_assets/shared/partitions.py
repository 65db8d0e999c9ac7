"""One dynamic partition per batch; the key is the sanitised zip stem (see batch_sources)."""

import dagster as dg

batch_partitions = dg.DynamicPartitionsDefinition(name="batch")


def batch_table(group_name: str, kinds: set[str], **extra: object) -> dict[str, object]:
    """@dg.asset arguments every batch-partitioned warehouse table shares."""
    return {
        "partitions_def": batch_partitions,
        "group_name": group_name,
        "kinds": kinds,
        "io_manager_key": "warehouse_io_manager",
        "metadata": {"partition_expr": "batch_id"},
        **extra,
    }

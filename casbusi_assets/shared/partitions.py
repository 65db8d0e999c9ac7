"""One dynamic partition per batch; the key is the sanitised zip stem (see batch_sources)."""

import dagster as dg

from casbusi_assets.shared.deployment_tags import inference_op_tags

batch_partitions = dg.DynamicPartitionsDefinition(name="batch")


def batch_table(group_name: str, kinds: set[str], **extra: object) -> dict[str, object]:
    """@dg.asset arguments every batch-partitioned warehouse table shares. A step in the
    `inference` pool also gets the tags that send it to GPU workers on Celery / Kubernetes."""
    if extra.get("pool") == "inference":
        extra = {"op_tags": inference_op_tags(), **extra}
    return {
        "partitions_def": batch_partitions,
        "group_name": group_name,
        "kinds": kinds,
        "io_manager_key": "warehouse_io_manager",
        "metadata": {"partition_expr": "batch_id"},
        **extra,
    }

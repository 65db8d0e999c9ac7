"""One dynamic partition per batch; the key is the sanitised zip stem (see batch_sources)."""

import dagster as dg

batch_partitions = dg.DynamicPartitionsDefinition(name="batch")

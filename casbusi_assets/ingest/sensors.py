"""The inbox sensor: one partition and one run per new (or changed) complete zip.

It only lists the inbox folder: no hashing or unzipping (sensor ticks time out after 60 s).
"""

import json

import dagster as dg

from casbusi_assets.ingest.resources import InboxSettings
from casbusi_assets.ingest.sources import describe, scan_inbox
from casbusi_assets.jobs import batch_job
from casbusi_assets.shared.partitions import batch_partitions
from casbusi_assets.storage.resources import CasbusiHome


@dg.sensor(
    target=batch_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches <home>/inbox for complete *.zip batches and starts a batch run for each.",
)
def inbox_sensor(
    context: dg.SensorEvaluationContext, casbusi_home: CasbusiHome, inbox_settings: InboxSettings
) -> dg.SensorResult | dg.SkipReason:
    home = casbusi_home.layout()
    state = json.loads(context.cursor) if context.cursor else None
    scan = scan_inbox(home.inbox, state, inbox_settings.settle_seconds)
    cursor = json.dumps(scan.state, sort_keys=True)
    if scan.conflicts:
        context.log.warning(
            f"not ingesting {', '.join(scan.conflicts)}: their names map to the same batch key; "
            "rename one of them"
        )
    if not scan.ready:
        waiting = f"; waiting for {len(scan.waiting)} zip(s) to finish" if scan.waiting else ""
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new complete zip in {home.inbox}{waiting}")
    keys = [z.key for z in scan.ready]
    existing = set(context.instance.get_dynamic_partitions(batch_partitions.name))
    new_keys = [k for k in keys if k not in existing]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=z.key,
                # A changed zip under the same name gets a new run key, hence a new run.
                run_key=f"{z.key}:{z.fingerprint.token}",
                tags={"casbusi/zip": str(z.path)},
            )
            for z in scan.ready
        ],
        dynamic_partitions_requests=(
            [batch_partitions.build_add_request(new_keys)] if new_keys else []
        ),
        asset_events=[
            dg.AssetMaterialization(
                asset_key="inbox_zip",
                partition=z.key,
                metadata={
                    "path": dg.MetadataValue.path(str(z.path)),
                    "bytes": z.fingerprint.size,
                    "fingerprint": describe(z),
                },
            )
            for z in scan.ready
        ],
        cursor=cursor,
    )

"""The labels inbox sensor: each complete export dropped into <home>/labelbox/inbox/ becomes a new
labels version (snapshotted first) and one run of `labels_import_job`."""

import json

import dagster as dg

from casbusi_assets.ingest.resources import InboxSettings
from casbusi_assets.labelling.assets import labels_import_job, labels_sync_job, labels_versions
from casbusi_assets.labelling.offline import labelbox_paths, scan_labels_inbox, snapshot_export
from casbusi_assets.storage.resources import CasbusiHome


@dg.sensor(
    job=labels_import_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches <home>/labelbox/inbox for Labelbox exports (*.ndjson, masks in "
    "<name>.masks/) and archives each as a new labels version.",
)
def labels_inbox_sensor(
    context: dg.SensorEvaluationContext, casbusi_home: CasbusiHome, inbox_settings: InboxSettings
) -> dg.SensorResult | dg.SkipReason:
    paths = labelbox_paths(casbusi_home.layout().root)
    paths.inbox.mkdir(parents=True, exist_ok=True)
    seen = json.loads(context.cursor) if context.cursor else {}
    ready, waiting = scan_labels_inbox(paths.inbox, seen, inbox_settings.settle_seconds)
    if not ready:
        more = f"; waiting for {len(waiting)} file(s) to settle" if waiting else ""
        return dg.SkipReason(f"no new export in {paths.inbox}{more}")
    versions = []
    for item in ready:
        try:
            snap = snapshot_export(
                paths, item.path, item.masks_dir, origin=f"inbox:{item.path.name}"
            )
        except OSError as exc:  # vanished or unreadable: try again next tick
            context.log.warning(f"cannot import {item.path.name}: {exc}")
            continue
        seen[item.path.name] = item.token
        if snap.reused:
            context.log.info(f"{item.path.name} is identical to labels version {snap.version}")
            continue
        versions.append(snap.version)
    cursor = json.dumps(seen, sort_keys=True)
    if not versions:
        context.update_cursor(cursor)
        return dg.SkipReason("every new export was already archived")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=v, run_key=v) for v in versions],
        dynamic_partitions_requests=[labels_versions.build_add_request(versions)],
        cursor=cursor,
    )


# Online polling: hourly pulls of the project's labels (each lands in the inbox, so the sensor
# above archives it; an export identical to the last one adds no version). Off by default: it
# needs LABELBOX_API_KEY and LABELBOX_PROJECT_ID. Turn it on in the UI (Automation).
labels_sync_schedule = dg.ScheduleDefinition(
    name="labels_sync_schedule",
    job=labels_sync_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly labels_sync_job (online mode); the labels inbox sensor archives each pull.",
)

"""`export_after_batches_sensor`: a new export once the last running batch has finished.

Off by default: every export is a new folder, so whether new batches should produce one by
themselves is the deployment's choice (turn it on in the UI: Automation → sensors). A backfill of
many batches gives one export, after its last run, not one per batch.
"""

import dagster as dg

from casbusi_assets.jobs import batch_job, export_job

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[batch_job],
    request_job=export_job,
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Start export_job when a batch run succeeds and no other batch run is active.",
)
def export_after_batches_sensor(context: dg.RunStatusSensorContext):
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=batch_job.name, statuses=_ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason("batch runs are still active; the export follows the last of them")
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")

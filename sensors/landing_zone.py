"""The hourly landing-zone connector: list the connectors' inboxes (only the pipeline may list) and process
what is there, in bounded runs keyed by object generations, then publish standardized meter-hours."""

import time

import dagster as dg

from leap_orchestration import settings
from leap_orchestration.intake.discovery import is_settled, pending_uploads
from leap_orchestration.intake.process import write_pending_status
from leap_orchestration.intake.tick import batch_digest, config_entry
from leap_orchestration.resources import LandingStoreResource

MAX_UPLOADS_PER_RUN = 100
MAX_RUNS_PER_TICK = 10  # at most 1,000 files an hour; a larger backlog is taken over the next hours
INTAKE_ASSETS = ("uploads", "upload_errors", "interval_readings")

landing_zone_job = dg.define_asset_job(
    "landing_zone_connector",
    selection=dg.AssetSelection.assets(*INTAKE_ASSETS, "standardized_meter_hours"),
    description="Check and load the GCS connectors' new files, then publish standardized meter-hours. Launched "
                "without config it takes every complete file in the landing zone.",
    config=dg.RunConfig(ops={"interval_intake": {"config": {"sources": ["connectors"]}}}),
    executor_def=dg.in_process_executor,
)


@dg.schedule(job=landing_zone_job, cron_schedule="0 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every hour: one run per batch of new connector files (or one run to publish changes).")
def landing_zone_schedule(context: dg.ScheduleEvaluationContext, landing_zone: LandingStoreResource):
    store = landing_zone.store()
    # GCS objects appear whole; a file dropped into the local stand-in must have stopped changing
    now_ns = time.time_ns()
    pending = [u for u in pending_uploads(store) if is_settled(u, now_ns, settings.settle_seconds())]
    hour = context.scheduled_execution_time.strftime("%Y%m%dT%H")
    batches = [pending[i : i + MAX_UPLOADS_PER_RUN] for i in range(0, len(pending), MAX_UPLOADS_PER_RUN)]
    requests = []
    for batch in batches[:MAX_RUNS_PER_TICK]:
        for u in batch:  # connectors can poll their status object (readable by name) from now on
            write_pending_status(store, u, "QUEUED")
        # Keyed by the files' generations (a tick evaluated twice starts one run) and the hour (a file whose run
        # failed is taken again next hour; processing is idempotent, so an overlap is harmless).
        requests.append(dg.RunRequest(
            run_key=f"landing-zone-{hour}-{batch_digest(batch)}",
            run_config=dg.RunConfig(ops={"interval_intake": {"config": {"connector_uploads": [config_entry(u) for u in batch]}}}),
            tags={"leap/uploads": ", ".join(u.obj.key for u in batch)[:4000], "leap/upload_count": str(len(batch))},
        ))
    if not requests:  # nothing new: still publish hours that other uploads changed
        requests.append(dg.RunRequest(
            run_key=f"landing-zone-{hour}-publish",
            run_config=dg.RunConfig(ops={"interval_intake": {"config": {"sources": []}}}),
        ))
    return requests

"""The hourly landing-zone connector: list the connectors' inboxes (only the pipeline may list) and process
what is there, in bounded runs keyed by object generations, then publish standardized meter-hours."""

import time

import dagster as dg

from leap_orchestration import settings
from leap_orchestration.intake.discovery import is_settled, scan_inboxes
from leap_orchestration.intake.process import mark_queued
from leap_orchestration.intake.tick import batch_digest, config_entry
from leap_orchestration.intake.zone_state import record_ignored
from leap_orchestration.resources import LandingStoreResource, WarehouseResource

MAX_UPLOADS_PER_RUN = 100
MAX_RUNS_PER_TICK = 10  # at most 1,000 files an hour; a larger backlog is taken over the next hours
INTAKE_ASSETS = ("uploads", "upload_errors", "interval_readings")

landing_zone_job = dg.define_asset_job(
    "landing_zone_connector",
    selection=dg.AssetSelection.assets(*INTAKE_ASSETS, "standardized_meter_hours"),
    description="Check and load the GCS connectors' new files, then publish standardized meter-hours. Launched "
    "without config it catches up on every complete file (landing zone and partners' inboxes; on a fresh home, "
    "intake loads the meter configuration first). No job-level config: the hourly publish-only run selects "
    "standardized_meter_hours alone, and config for an unselected step is refused.",
)


@dg.schedule(
    job=landing_zone_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: one run per batch of new connector files (or one run to publish changes).",
)
def landing_zone_schedule(
    context: dg.ScheduleEvaluationContext, landing_zone: LandingStoreResource, warehouse: WarehouseResource
):
    store = landing_zone.store()
    wh = warehouse.warehouse()
    uploads, others = scan_inboxes(store)
    # GCS objects appear whole; a file dropped into the local stand-in must have stopped changing
    now_ns = time.time_ns()
    pending = [u for u in uploads if is_settled(u, now_ns, settings.settle_seconds())]
    hour = context.scheduled_execution_time.strftime("%Y%m%dT%H")
    ignored = _report_ignored(context, wh, others)
    batches = [pending[i : i + MAX_UPLOADS_PER_RUN] for i in range(0, len(pending), MAX_UPLOADS_PER_RUN)]
    runs = []
    for batch in batches[:MAX_RUNS_PER_TICK]:
        mark_queued(store, batch)  # connectors can poll their status object (readable by name) from now on
        # Keyed by the files' generations (a tick evaluated twice starts one run) and the hour (a file whose run
        # failed is taken again next hour; processing is idempotent, so an overlap is harmless).
        runs.append(
            (
                f"landing-zone-{hour}-{batch_digest(batch)}",
                {"connector_uploads": [config_entry(u) for u in batch]},
                {
                    "leap/uploads": ", ".join(u.obj.key for u in batch)[:4000],
                    "leap/upload_count": str(len(batch)),
                },
            )
        )
    if not runs:  # nothing new: still publish hours that other uploads changed, without touching intake
        runs.append((f"landing-zone-{hour}-publish", None, {}))
    if ignored:  # shown on the tick's first run, as well as in the tick's log
        runs[0][2]["leap/ignored_objects"] = ", ".join(u.obj.key for u in ignored)[:4000]
    return [
        dg.RunRequest(
            run_key=key, run_config=dg.RunConfig(ops={"interval_intake": {"config": config}}), tags=tags
        )
        if config is not None
        else dg.RunRequest(
            run_key=key,
            tags=tags,
            asset_selection=[dg.AssetKey("standardized_meter_hours")],
            # partner health is judged hourly even when nothing arrives: silence is what it looks for
            asset_check_keys=[dg.AssetCheckKey(dg.AssetKey("uploads"), "partner_health")],
        )
        for key, config, tags in runs
    ]


def _report_ignored(context: dg.ScheduleEvaluationContext, wh, others) -> list:
    """Objects in a connector's prefix that are not uploads stay where they are; each version is reported once:
    a WARNING in this tick's log, a tag on the tick's first run, a row in landing_zone_ignored."""
    new = record_ignored(wh, others) or []  # None: the warehouse is busy, the next hour reports them
    for u in new:
        context.log.warning(
            f"{u.obj.key} (version {u.obj.version}, {u.obj.size} bytes) is not an upload: only .csv and .csv.gz "
            "objects directly under a connector's prefix are taken. Left in place; reported once "
            "(warehouse table landing_zone_ignored)."
        )
    return new

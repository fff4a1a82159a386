"""When settlement runs: after readings or the configuration change, and every hour."""

import json

import dagster as dg

from assets.settlement import SETTLEMENT_ASSETS

settlement_job = dg.define_asset_job(
    "settle_events",
    selection=dg.AssetSelection.assets(*SETTLEMENT_ASSETS),
    description="Recompute the baselines of events whose inputs changed, then event performance and its roll-ups.",
)
WATCHED = (dg.AssetKey("interval_readings"), dg.AssetKey("meter_configuration"))


@dg.sensor(
    job=settlement_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Settles again after new readings or a new configuration (one run for any number of them).",
)
def settlement_sensor(context: dg.SensorEvaluationContext):
    seen = json.loads(context.cursor) if context.cursor else {}
    latest = {}
    for key in WATCHED:
        records = context.instance.fetch_materializations(key, limit=1).records
        latest[key.to_user_string()] = records[0].storage_id if records else 0
    if latest == seen:
        return dg.SkipReason("no new readings or configuration since the last settlement")
    # run key: the newest materializations seen, so a tick evaluated twice starts one run
    run_key = "settle-" + "-".join(str(latest[k.to_user_string()]) for k in WATCHED)
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key)], cursor=json.dumps(latest))


@dg.schedule(
    job=settlement_job,
    cron_schedule="30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: settle events that ended since, and anything the sensor missed (cheap when "
    "nothing changed: inputs are compared by digest).",
)
def settlement_schedule(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"settle-hourly-{context.scheduled_execution_time:%Y%m%dT%H}")

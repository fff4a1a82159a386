"""Sensors: new complete uploads in any tenant inbox, and changes to the XML configuration."""

import json
import os
import time

import dagster as dg

from leap_orchestration import settings
from leap_orchestration.config.loader import LOADER_VERSION, config_fingerprint
from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import mark_queued
from leap_orchestration.intake.tick import config_entry, plan_tick
from leap_orchestration.resources import ConfigurationResource, LandingStoreResource
from leap_orchestration.run_liveness import reap_safely

MAX_UPLOADS_PER_RUN = 25
MAX_RUNS_PER_TICK = 4
RETRY_SECONDS = 15 * 60
TICK_SECONDS = int(os.environ.get("LEAP_SENSOR_INTERVAL", "5"))

intake_job = dg.define_asset_job(
    "process_uploads",
    selection=dg.AssetSelection.assets("uploads", "upload_errors", "interval_readings"),
    description="Validate and load a batch of uploads.",
    # partners wait for these results: queued ahead of settlement, and first to the duckdb pool's slot
    run_tags={"dagster/priority": "10"},
)
configuration_job = dg.define_asset_job(
    "load_configuration",
    selection=dg.AssetSelection.assets("meter_configuration"),
)


@dg.sensor(
    job=intake_job,
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each complete upload in any tenant inbox, in micro-batches (see ARCHITECTURE.md).",
)
def landing_inbox_sensor(context: dg.SensorEvaluationContext, landing_store: LandingStoreResource):
    reap_safely(context.instance)  # a killed run's pool slot is freed within a tick, even with no run going
    store = landing_store.store()
    state = json.loads(context.cursor) if context.cursor else {}
    plan = plan_tick(
        pending_uploads(store),
        state,
        time.time(),
        settle_seconds=settings.settle_seconds(),
        retry_seconds=RETRY_SECONDS,
        max_per_run=MAX_UPLOADS_PER_RUN,
        max_runs=MAX_RUNS_PER_TICK,
    )
    requests = []
    for batch, run_key in zip(plan.batches, plan.run_keys, strict=True):
        mark_queued(store, batch)  # partners can poll their status object from the moment a run is requested
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                run_config=dg.RunConfig(
                    ops={"interval_intake": {"config": {"uploads": [config_entry(u) for u in batch]}}}
                ),
                tags={
                    "leap/uploads": ", ".join(f"{u.tenant}/{u.obj.name}" for u in batch)[:4000],
                    "leap/upload_count": str(len(batch)),
                },
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(plan.state))


@dg.sensor(
    job=configuration_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reloads the meter configuration when an XML file changes.",
)
def configuration_sensor(context: dg.SensorEvaluationContext, configuration: ConfigurationResource):
    fingerprint = config_fingerprint(configuration.folder())
    cursor = f"{LOADER_VERSION}:{fingerprint}"
    if cursor == context.cursor:
        return dg.SkipReason("configuration unchanged")
    if context.cursor is None and _loaded_fingerprint(context) == fingerprint:
        # first tick after a run that loaded this very configuration (the demo's, a catch-up): nothing to do
        return dg.SensorResult(skip_reason="configuration already loaded", cursor=cursor)
    # keyed by content and tick, not content alone: a revert to an earlier configuration (A -> B -> A) must load
    # A again, and Dagster skips a run key the sensor has used before; a tick evaluated twice keeps its key
    run_key = f"config-{cursor[:26]}-{context.last_tick_completion_time or 0:.0f}"
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key)], cursor=cursor)


def _loaded_fingerprint(context: dg.SensorEvaluationContext) -> str | None:
    """The fingerprint of the configuration meter_configuration last loaded (its materialization's metadata)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a test's context without an instance
        return None
    records = instance.fetch_materializations(dg.AssetKey("meter_configuration"), limit=1).records
    entry = records[0].asset_materialization.metadata.get("fingerprint") if records else None
    return entry.value if entry is not None else None

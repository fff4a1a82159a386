"""Publish standardized meter-hours for the connectors' accepted uploads, republishing only what changed.

Which hours: every UTC hour that an accepted upload not yet standardized (`standardized_jobs`) touched, for each
connector that ever delivered a reading of that meter-hour. So a connector's own upload publishes its hours,
and a later upload (from any source) that changes one of them republishes it with the current readings.
What goes out: complete hours only (all four 15-minute readings); an hour completed later is published then.
Change detection: against `standardized_hours` (what each object holds), so an unchanged hour is not rewritten.
Crash safety: objects are written first, then their rows; jobs are marked standardized only once all of their
objects are written. A re-run after a crash rewrites at most the objects of the interrupted run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import polars as pl

from leap_orchestration.config.models import Connector
from leap_orchestration.standardized.meter_data import MeterHour, object_key, render
from leap_orchestration.stores.buckets import BucketStore
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import atomically, run, serialize_with

log = logging.getLogger(__name__)
CHUNK = 5_000  # objects rendered and written per step: bounds memory, records progress as it goes
ROUND = 6  # kWh decimals compared and published (1 mWh): float noise from summation order is not a change

_CHANGED_HOURS = f"""
WITH touched AS (
    SELECT DISTINCT meter_id, date_trunc('hour', interval_start_utc) AS hour_start_utc
    FROM interval_reading_history WHERE job_id IN (SELECT job_id FROM _new_jobs)
), delivered AS (
    SELECT DISTINCT u.connector_id, h.meter_id, t.hour_start_utc
    FROM interval_reading_history h
    JOIN touched t ON t.meter_id = h.meter_id AND date_trunc('hour', h.interval_start_utc) = t.hour_start_utc
    JOIN uploads u ON u.job_id = h.job_id
    WHERE u.connector_id IS NOT NULL
), current AS (
    SELECT d.connector_id, d.meter_id, d.hour_start_utc,
           round(sum(r.energy_net_kwh), {ROUND}) AS usage_kwh,
           CASE WHEN count(r.energy_consumed_kwh) = 4 THEN round(sum(r.energy_consumed_kwh), {ROUND}) END AS consumed_kwh,
           CASE WHEN count(r.energy_generated_kwh) = 4 THEN round(sum(r.energy_generated_kwh), {ROUND}) END AS generated_kwh,
           bool_and(r.final) AS final, count(*) AS intervals
    FROM delivered d
    JOIN interval_readings r ON r.meter_id = d.meter_id AND date_trunc('hour', r.interval_start_utc) = d.hour_start_utc
    GROUP BY ALL
)
SELECT c.connector_id, c.meter_id, c.hour_start_utc, m.meter_number, m.config_uri, c.usage_kwh, c.consumed_kwh,
       c.generated_kwh, c.final, coalesce(p.revision, 0) + 1 AS revision
FROM current c
JOIN meters m ON m.meter_id = c.meter_id
LEFT JOIN standardized_hours p
    ON p.connector_id = c.connector_id AND p.meter_id = c.meter_id AND p.hour_start_utc = c.hour_start_utc
WHERE c.intervals = 4 AND m.meter_number IS NOT NULL
  AND (p.connector_id IS NULL OR p.usage_kwh IS DISTINCT FROM c.usage_kwh OR p.final IS DISTINCT FROM c.final
       OR p.consumed_kwh IS DISTINCT FROM c.consumed_kwh OR p.generated_kwh IS DISTINCT FROM c.generated_kwh)
ORDER BY c.connector_id, m.meter_number, c.hour_start_utc
"""


@dataclass
class PublishReport:
    published: int = 0  # objects written (first publication or a change)
    republished: int = 0  # of which, hours that had been published before
    failed: int = 0
    jobs: int = 0  # uploads whose hours are now standardized
    unknown_connectors: list[str] = field(
        default_factory=list
    )  # delivered by a connector no longer configured
    objects: list[tuple[str, str]] = field(
        default_factory=list
    )  # (bucket, key), first few for the run's metadata


def publish_standardized(
    warehouse: Warehouse,
    buckets: BucketStore,
    connectors: list[Connector],
    *,
    run_id: str | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    chunk: int = CHUNK,
) -> PublishReport:
    by_id = {c.connector_id: c for c in connectors}
    report = PublishReport()
    with warehouse.connect() as con:
        run(con, "SET TimeZone = 'UTC'")  # date_trunc('hour') of a TIMESTAMPTZ must mean the UTC hour
        run(
            con,
            """CREATE OR REPLACE TEMP TABLE _new_jobs AS SELECT job_id FROM uploads
                    WHERE status = 'COMPLETED' AND job_id NOT IN (SELECT job_id FROM standardized_jobs)""",
        )
        changed = con.sql(_CHANGED_HOURS).pl()
        known = changed.filter(pl.col("connector_id").is_in(list(by_id)))
        report.unknown_connectors = sorted(set(changed["connector_id"]) - set(by_id))
        for start in range(0, known.height, chunk):
            written = _publish_chunk(known.slice(start, chunk), by_id, buckets, run_id, now(), report)
            if written.height:
                atomically(con, partial(_record_hours, con, written))
        if report.failed == 0:
            report.jobs = con.execute("SELECT count(*) FROM _new_jobs").fetchall()[0][0]
            atomically(con, partial(_record_jobs, con, now()))
    return report


def _record_hours(con, written: pl.DataFrame) -> None:
    """What each written object now holds (one row per connector, meter and hour)."""
    serialize_with(con, "standardized_hours")  # a second publisher must not insert the same hour beside ours
    con.register("_written", written)
    try:
        run(
            con,
            """MERGE INTO standardized_hours h USING _written w USING (connector_id, meter_id, hour_start_utc)
               WHEN MATCHED THEN UPDATE
               WHEN NOT MATCHED THEN INSERT BY NAME""",
        )
    finally:
        con.unregister("_written")


def _record_jobs(con, now: dt.datetime) -> None:
    serialize_with(con, "standardized_hours")
    run(
        con,
        """INSERT INTO standardized_jobs (job_id, standardized_at)
           SELECT job_id, ? FROM _new_jobs WHERE job_id NOT IN (SELECT job_id FROM standardized_jobs)""",
        [now],
    )


def _publish_chunk(
    rows: pl.DataFrame,
    by_id: dict[str, Connector],
    buckets: BucketStore,
    run_id: str | None,
    created_at: dt.datetime,
    report: PublishReport,
) -> pl.DataFrame:
    """Render and write one chunk per bucket; returns the `standardized_hours` rows of the objects written."""
    written = []
    for (connector_id,), group in rows.group_by(["connector_id"], maintain_order=True):
        connector = by_id[connector_id]
        creator = f"leap-orchestration landing-zone connector for {connector_id}"
        records = group.to_dicts()
        objects = []
        for r in records:
            hour = MeterHour(
                r["config_uri"],
                r["meter_number"],
                r["hour_start_utc"],
                r["usage_kwh"],
                r["consumed_kwh"],
                r["generated_kwh"],
                r["final"],
                r["revision"],
            )
            objects.append(
                (
                    object_key(connector_id, r["meter_number"], r["hour_start_utc"]),
                    render(hour, creator, created_at),
                )
            )
        results = buckets.put_many(connector.output_bucket, objects)
        for r, (key, _), error in zip(records, objects, results, strict=True):
            if error is not None:
                report.failed += 1
                log.error("could not publish %s/%s: %s", connector.output_bucket, key, error)
                continue
            report.published += 1
            report.republished += r["revision"] > 1
            if len(report.objects) < 20:
                report.objects.append((connector.output_bucket, key))
            written.append(
                {
                    "connector_id": connector_id,
                    "meter_id": r["meter_id"],
                    "hour_start_utc": r["hour_start_utc"],
                    "bucket": connector.output_bucket,
                    "object_key": key,
                    "usage_kwh": r["usage_kwh"],
                    "consumed_kwh": r["consumed_kwh"],
                    "generated_kwh": r["generated_kwh"],
                    "final": r["final"],
                    "revision": r["revision"],
                    "published_at": created_at,
                    "run_id": run_id,
                }
            )
    return pl.DataFrame(
        written,
        schema={
            "connector_id": pl.String,
            "meter_id": pl.String,
            "hour_start_utc": pl.Datetime("us", "UTC"),
            "bucket": pl.String,
            "object_key": pl.String,
            "usage_kwh": pl.Float64,
            "consumed_kwh": pl.Float64,
            "generated_kwh": pl.Float64,
            "final": pl.Boolean,
            "revision": pl.Int32,
            "published_at": pl.Datetime("us", "UTC"),
            "run_id": pl.String,
        },
    )

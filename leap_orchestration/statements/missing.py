"""The data a partner still owes: missing 15-minute readings that would change an event's numbers.

From `missing_intervals` (kept by settlement for every event: its event window, its adjustment windows on the
event day, and the needed slots of incomplete days among the Y most recent candidate days), for the partner that
owned the meter at each interval's time (the only one who may upload it). Event windows always count; adjustment
and look-back intervals only while some statement of that event is not FINAL (a former owner is told about the
look-back days it owned, for as long as the statements paid on them can still change). A reading loaded since
the event was last settled is no longer owed. Consecutive intervals of a meter are one window, with every event
it affects and the earliest submission deadline (the event's end + its program's data deadline).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from leap_orchestration.settlement.engine import CHANNEL_COLUMN
from leap_orchestration.settlement.views import local_time
from leap_orchestration.warehouse.duck import frame

COLUMNS = (
    "meter_id",
    "window_start_utc",
    "window_end_utc",
    "window_start_local",
    "intervals",
    "windows",
    "events",
    "submission_deadline_utc",
    "overdue",
)

_OWED = f"""
WITH latest AS (
    SELECT subject_id AS event_id, status FROM statement_versions WHERE kind = 'event'
    QUALIFY row_number() OVER (PARTITION BY partner_id, statement_id ORDER BY version DESC) = 1),
final_events AS (  -- every statement of the event in force is FINAL: its baselines no longer change
    SELECT event_id FROM latest WHERE status <> 'WITHDRAWN' GROUP BY event_id HAVING bool_and(status = 'FINAL'))
SELECT o.partner_id, mi.meter_id, mi.interval_start_utc, mi.window_kind, mi.event_id,
       e.end_utc + p.data_deadline AS deadline_utc, m.timezone
FROM missing_intervals mi JOIN dr_events e USING (event_id) JOIN programs p USING (program_id)
JOIN meters m ON m.meter_id = mi.meter_id
JOIN meter_ownership o ON o.meter_id = mi.meter_id AND o.valid_from <= mi.interval_start_utc
     AND (o.valid_to IS NULL OR o.valid_to > mi.interval_start_utc)
WHERE ($partner IS NULL OR o.partner_id = $partner)
  AND (mi.window_kind = 'event' OR mi.event_id NOT IN (SELECT event_id FROM final_events))
  AND NOT EXISTS (SELECT 1 FROM interval_readings r WHERE r.meter_id = mi.meter_id
                  AND r.interval_start_utc = mi.interval_start_utc
                  AND (CASE p.channel {" ".join(f"WHEN '{k}' THEN r.{c}" for k, c in CHANNEL_COLUMN.items())} END)
                      IS NOT NULL)
"""


def owed_windows(
    con: duckdb.DuckDBPyConnection, now: dt.datetime, partner_id: str | None = None
) -> pl.DataFrame:
    """partner_id + COLUMNS, one row per window of consecutive missing intervals of a meter, by deadline."""
    owed = frame(con, _OWED, {"partner": partner_id})
    schema = {"partner_id": pl.String} | dict.fromkeys(COLUMNS, pl.String)
    if owed.is_empty():
        return pl.DataFrame(schema=schema | {"intervals": pl.Int64, "overdue": pl.Boolean})
    per_interval = (
        owed.with_columns(pl.col("interval_start_utc", "deadline_utc").dt.convert_time_zone("UTC"))
        .group_by("partner_id", "meter_id", "interval_start_utc")
        .agg(
            pl.col("window_kind").unique().sort(),
            pl.col("event_id").unique().sort(),
            pl.col("deadline_utc").min(),
            pl.col("timezone").first(),
        )
        .sort("partner_id", "meter_id", "interval_start_utc")
    )
    step = dt.timedelta(minutes=15)
    new_window = (
        (pl.col("meter_id") != pl.col("meter_id").shift())
        | (pl.col("partner_id") != pl.col("partner_id").shift())
        | (pl.col("interval_start_utc") - pl.col("interval_start_utc").shift() != step)
    ).fill_null(True)
    windows = (
        per_interval.with_columns(window=new_window.cum_sum())
        .group_by("partner_id", "meter_id", "window")
        .agg(
            pl.col("interval_start_utc").min().alias("start"),
            (pl.col("interval_start_utc").max() + step).alias("end"),
            pl.len().cast(pl.Int64).alias("intervals"),
            pl.col("window_kind")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort()
            .str.join(" "),
            pl.col("event_id")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort()
            .str.join(" "),
            pl.col("deadline_utc").min(),
            pl.col("timezone").first(),
        )
        .sort("deadline_utc", "partner_id", "meter_id", "start")
    )
    local = [local_time(start, zone) for start, zone in windows.select("start", "timezone").rows()]
    return windows.select(
        "partner_id",
        "meter_id",
        pl.col("start").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("window_start_utc"),
        pl.col("end").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("window_end_utc"),
        pl.Series("window_start_local", local, dtype=pl.String),
        "intervals",
        pl.col("window_kind").alias("windows"),
        pl.col("event_id").alias("events"),
        pl.col("deadline_utc").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("submission_deadline_utc"),
        (pl.col("deadline_utc") < now).alias("overdue"),
    )

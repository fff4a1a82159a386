"""Event performance and its roll-ups, rebuilt set-wise from the stored baselines (docs/baselines.md).

Reduction per interval: adjusted baseline − actual (`net`, `consumed`) or actual − adjusted baseline
(`generated`). A program's `clip` decides where values are clipped at zero: `interval` (each interval, before
any sum), `event` (each meter's event total), or `none` (never; the default). Each rebuild replaces its table in
one transaction: these tables are small (a row per meter and event) next to the baselines they come from.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from leap_orchestration.warehouse.duck import atomically, run

# per-interval signed reduction of a `baselines` row b joined with its program p
_REDUCTION = (
    "CASE WHEN p.channel = 'generated' THEN b.actual_kwh - b.adjusted_baseline_kwh "
    "ELSE b.adjusted_baseline_kwh - b.actual_kwh END"
)
_INTERVAL_REDUCTION = f"CASE WHEN p.clip = 'interval' THEN greatest({_REDUCTION}, 0) ELSE {_REDUCTION} END"


def _replace(con: duckdb.DuckDBPyConnection, table: str, select: str, params=None) -> int:
    def replace() -> None:
        run(con, f"DELETE FROM {table}")
        run(con, f"INSERT INTO {table} BY NAME {select}", params)

    atomically(con, replace)
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def settlement_version(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of what is settled (each event, its inputs digest and when it was computed): the same for as
    long as no event's baselines changed. `baselines` gives it to Dagster as its data version, so an hourly look
    that changes nothing does not mark the assets below it unsynced."""
    return con.execute(
        """SELECT md5(coalesce(string_agg(event_id || ':' || inputs_digest || ':' || CAST(computed_at AS VARCHAR),
                                          ',' ORDER BY event_id), ''))
           FROM settled_events"""
    ).fetchall()[0][0]


def settled_since_performance(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `event_performance` is behind the baselines: an event was settled (computed or recomputed) after
    its last rebuild, or the events it covers are not those settled with meters (one was removed or added)."""
    return con.execute(
        """SELECT coalesce((SELECT max(computed_at) FROM settled_events)
                           > (SELECT max(computed_at) FROM event_performance), true)
                  OR EXISTS (SELECT event_id FROM settled_events WHERE meters > 0
                             EXCEPT SELECT event_id FROM event_performance)
                  OR EXISTS (SELECT event_id FROM event_performance EXCEPT SELECT event_id FROM settled_events)"""
    ).fetchall()[0][0]


def rebuild_event_performance(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> int:
    """One row per meter and settled event; sums over the intervals with an actual. Meters without numbers
    (INSUFFICIENT_DAYS, NO_ADJUSTMENT_DATA for a same-day baseline, or not a single actual in the event) keep
    their actuals and interval counts, with NULL baseline and reduction."""
    return _replace(
        con,
        "event_performance",
        f"""
        WITH iv AS (
            SELECT b.event_id, b.meter_id, b.adjusted_baseline_kwh, b.baseline_kwh, b.actual_kwh,
                   {_INTERVAL_REDUCTION} AS reduction
            FROM baselines b JOIN programs p USING (program_id) WHERE b.actual_kwh IS NOT NULL
        ), sums AS (
            SELECT event_id, meter_id, sum(adjusted_baseline_kwh) AS baseline_kwh, sum(baseline_kwh) AS unadjusted,
                   sum(reduction) AS reduction
            FROM iv GROUP BY ALL
        ), numbered AS (  -- meters with a baseline and at least one actual to sum
            SELECT DISTINCT event_id, meter_id FROM baselines WHERE actual_kwh IS NOT NULL)
        SELECT s.event_id, s.meter_id, s.program_id, s.method,
               CASE WHEN n.meter_id IS NULL THEN NULL ELSE coalesce(x.baseline_kwh, 0) END AS baseline_kwh,
               s.actual_kwh,
               CASE WHEN n.meter_id IS NULL THEN NULL WHEN p.clip = 'event' THEN greatest(coalesce(x.reduction, 0), 0)
                    ELSE coalesce(x.reduction, 0) END AS reduction_kwh,
               CASE WHEN n.meter_id IS NULL OR s.intervals_present = 0 THEN NULL
                    ELSE (CASE WHEN p.clip = 'event' THEN greatest(x.reduction, 0) ELSE x.reduction END)
                         / (s.intervals_present * 0.25) END AS avg_reduction_kw,
               s.intervals_expected, s.intervals_present, s.status,
               CASE WHEN n.meter_id IS NULL THEN NULL ELSE coalesce(x.unadjusted, 0) END AS unadjusted_baseline_kwh,
               date_diff('second', e.start_utc, e.end_utc) / 3600.0 AS event_hours, p.channel, p.clip,
               $now AS computed_at
        FROM baseline_status s JOIN programs p USING (program_id) JOIN dr_events e USING (event_id)
        LEFT JOIN numbered n ON n.event_id = s.event_id AND n.meter_id = s.meter_id
        LEFT JOIN sums x ON x.event_id = s.event_id AND x.meter_id = s.meter_id""",
        {"now": now},
    )


def rebuild_hourly(con: duckdb.DuckDBPyConnection) -> int:
    """Per meter and clock hour of an event (local clock: the hour starts where the local minute is 0): the sum
    of its four intervals; an hour missing an interval or an actual is dropped."""
    return _replace(
        con,
        "event_performance_hourly",
        f"""
        SELECT b.event_id, b.meter_id, b.program_id,
               b.interval_start_utc - to_minutes(minute(b.interval_start_utc AT TIME ZONE m.timezone)) AS hour_start_utc,
               sum(b.adjusted_baseline_kwh) AS baseline_kwh, sum(b.actual_kwh) AS actual_kwh,
               sum({_INTERVAL_REDUCTION}) AS reduction_kwh
        FROM baselines b JOIN programs p USING (program_id) JOIN meters m USING (meter_id)
        GROUP BY ALL HAVING count(b.actual_kwh) = 4""",
    )


# Per event: how many meters were enrolled, had numbers, were OK, and the totals over them (the columns of
# program_event_performance, by name). The event_performance asset's charts read it before the roll-up is stored.
PROGRAM_EVENTS = """
    SELECT e.event_id, e.program_id, e.start_utc, e.end_utc, any_value(f.event_hours) AS event_hours,
           count(*) AS meters_enrolled, count(f.reduction_kwh) AS meters_with_numbers,
           count(*) FILTER (WHERE f.status = 'OK') AS meters_ok, sum(f.baseline_kwh) AS baseline_kwh,
           sum(f.actual_kwh) AS actual_kwh, sum(f.reduction_kwh) AS reduction_kwh,
           sum(f.reduction_kwh) / any_value(f.event_hours) AS avg_reduction_kw
    FROM dr_events e JOIN event_performance f USING (event_id) GROUP BY e.event_id, e.program_id, e.start_utc, e.end_utc"""


def rebuild_program_events(con: duckdb.DuckDBPyConnection) -> int:
    return _replace(con, "program_event_performance", PROGRAM_EVENTS)


def rebuild_seasons(con: duckdb.DuckDBPyConnection) -> int:
    """Per program, season and meter: Σ reduction kWh ÷ Σ event hours over the season's events the meter was
    enrolled for, an event without numbers counting as zero. Seasons come from programs.xml; an event outside
    every season falls under the UTC year of its start."""
    return _replace(
        con,
        "season_performance",
        """
        WITH placed AS (
            SELECT f.*, coalesce(s.season_id, strftime(e.start_utc AT TIME ZONE 'UTC', '%Y')) AS season_id
            FROM event_performance f JOIN dr_events e USING (event_id)
            LEFT JOIN program_seasons s ON s.program_id = f.program_id AND e.start_utc >= s.start_utc AND e.start_utc < s.end_utc
        )
        SELECT program_id, season_id, meter_id, count(*) AS events, count(reduction_kwh) AS events_with_numbers,
               sum(event_hours) AS event_hours, sum(coalesce(reduction_kwh, 0)) AS reduction_kwh,
               sum(coalesce(reduction_kwh, 0)) / sum(event_hours) AS avg_reduction_kw
        FROM placed GROUP BY ALL""",
    )

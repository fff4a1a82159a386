"""The day-matching engine: baselines and performance for one DR event, set-wise over all its meters in DuckDB.

Implements DOMAIN.md §6 exactly. Python only prepares the event's parameters (preset, windows, holidays); every
per-meter, per-day and per-slot step is SQL over all enrolled meters at once. Steps, all per meter:
  local day/slot of each reading (the meter's time zone; a 25-hour day's repeated slot is averaged) →
  candidate days of the event day's type within the look-back, not holidays (unless that is the type), not
  days with an event of the meter, with every event and adjustment slot present → the Y most recent (low-usage
  days replaced by older ones) → selection (all / highest X / middle) → unadjusted baseline per slot →
  day-of adjustment from the event day's actuals → per-interval rows and a status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from leap_orchestration.settlement.calendars import holidays_between
from leap_orchestration.settlement.presets import SATURDAY, SUNDAY_HOLIDAY, WEEKDAY, WEEKEND_HOLIDAY, Preset
from leap_orchestration.warehouse.duck import run

INTERVAL = dt.timedelta(minutes=15)
CHANNEL_COLUMN = {"net": "energy_net_kwh", "consumed": "energy_consumed_kwh", "generated": "energy_generated_kwh"}


@dataclass(frozen=True)
class EventSpec:
    event_id: str
    program_id: str
    start_utc: dt.datetime
    end_utc: dt.datetime
    preset: Preset
    channel: str = "net"
    holiday_calendar: str = "NERC"


def _window_table(event: EventSpec) -> list[tuple[str, dt.datetime]]:
    """(role, interval start UTC) of every interval of the event window and of the adjustment windows."""
    rows = []
    t = event.start_utc
    while t < event.end_utc:
        rows.append(("event", t))
        t += INTERVAL
    adjustment = event.preset.adjustment
    for lo, hi, anchor in adjustment.windows if adjustment else ():
        base = event.start_utc if anchor == "start" else event.end_utc
        t, stop = base + dt.timedelta(hours=lo), base + dt.timedelta(hours=hi)
        while t < stop:
            rows.append(("adjust", t))
            t += INTERVAL
    return rows


def _rules_table(preset: Preset) -> list[tuple]:
    """(day type, Y, selection, X, look-back, first day back, low usage) for each day type the preset knows."""
    return [(t, r.days, r.selection, r.keep, r.lookback_days, r.first_day_back, r.low_usage) for t, r in preset.rules.items()]


def _day_type_sql(split: str, day: str) -> str:
    """SQL for the day type of `day` (a DATE expression); holidays are in temp table _holidays."""
    holiday = f"{day} IN (SELECT day FROM _holidays)"
    dow = f"isodow({day})"
    if split == "weekday/saturday/sunday":
        return (f"CASE WHEN {dow} = 7 OR {holiday} THEN '{SUNDAY_HOLIDAY}' WHEN {dow} = 6 THEN '{SATURDAY}' "
                f"ELSE '{WEEKDAY}' END")
    return f"CASE WHEN {dow} >= 6 OR {holiday} THEN '{WEEKEND_HOLIDAY}' ELSE '{WEEKDAY}' END"


def compute_event(con: duckdb.DuckDBPyConnection, event: EventSpec) -> None:
    """Fill temp tables _event_baselines (per meter and event interval) and _event_status (per meter)."""
    preset = event.preset
    windows = _window_table(event)
    max_lookback = max((r.lookback_days for r in preset.rules.values()), default=0)
    first = (event.start_utc - dt.timedelta(days=max_lookback + 2)).date()
    run(con, "CREATE OR REPLACE TEMP TABLE _holidays AS SELECT unnest(?::DATE[]) AS day",
        [holidays_between(event.holiday_calendar, first, event.end_utc.date() + dt.timedelta(days=1))])
    run(con, "CREATE OR REPLACE TEMP TABLE _windows AS SELECT unnest(?::VARCHAR[]) AS role, unnest(?::TIMESTAMPTZ[]) AS ts",
        [[r for r, _ in windows], [t for _, t in windows]])
    run(con, """CREATE OR REPLACE TEMP TABLE _rules (day_type VARCHAR, y INTEGER, selection VARCHAR, x INTEGER,
                lookback INTEGER, first_back INTEGER, low_usage BOOLEAN)""")
    if preset.rules:
        con.executemany("INSERT INTO _rules VALUES (?, ?, ?, ?, ?, ?, ?)", _rules_table(preset))
    value = CHANNEL_COLUMN[event.channel]
    params = {"program": event.program_id, "start": event.start_utc,
              "from_ts": event.start_utc - dt.timedelta(days=max_lookback + 2),
              "to_ts": event.end_utc + dt.timedelta(days=1)}
    # meters enrolled at the event's start, the event day and the local slots of every window interval
    run(con, """CREATE OR REPLACE TEMP TABLE _meters AS
        SELECT m.meter_id, m.timezone,
               (CAST($start AS TIMESTAMPTZ) AT TIME ZONE m.timezone)::DATE AS event_day
        FROM meters m
        WHERE m.meter_id IN (SELECT meter_id FROM meter_enrollments WHERE program_id = $program
                             AND valid_from <= $start AND (valid_to IS NULL OR valid_to > $start))""",
        {k: params[k] for k in ("program", "start")})
    run(con, """CREATE OR REPLACE TEMP TABLE _slots AS
        SELECT m.meter_id, w.role, w.ts,
               date_diff('minute', date_trunc('day', w.ts AT TIME ZONE m.timezone), w.ts AT TIME ZONE m.timezone) AS slot
        FROM _meters m CROSS JOIN _windows w""")
    # readings of those meters by local day and slot (a repeated slot on a 25-hour day: the mean of both)
    run(con, f"""CREATE OR REPLACE TEMP TABLE _daily AS
        SELECT r.meter_id, (r.interval_start_utc AT TIME ZONE m.timezone)::DATE AS day,
               date_diff('minute', date_trunc('day', r.interval_start_utc AT TIME ZONE m.timezone),
                         r.interval_start_utc AT TIME ZONE m.timezone) AS slot,
               avg(r.{value}) AS value, bool_and(r.final) AS final
        FROM interval_readings r JOIN _meters m USING (meter_id)
        WHERE r.interval_start_utc >= $from_ts AND r.interval_start_utc < $to_ts AND r.{value} IS NOT NULL
        GROUP BY ALL""", {k: params[k] for k in ("from_ts", "to_ts")})
    run(con, f"""CREATE OR REPLACE TEMP TABLE _actuals AS
        SELECT s.meter_id, s.ts, r.{value} AS value, r.final
        FROM _slots s LEFT JOIN interval_readings r ON r.meter_id = s.meter_id AND r.interval_start_utc = s.ts
        WHERE s.role = 'event'""")
    # local days on which a meter had an event of any program it was enrolled in then
    run(con, """CREATE OR REPLACE TEMP TABLE _event_days AS
        SELECT DISTINCT m.meter_id, (e.start_utc AT TIME ZONE m.timezone)::DATE AS day
        FROM dr_events e JOIN meter_enrollments en ON en.program_id = e.program_id
        JOIN _meters m ON m.meter_id = en.meter_id
        WHERE en.valid_from <= e.start_utc AND (en.valid_to IS NULL OR en.valid_to > e.start_utc)""")
    if preset.zero or preset.same_day:
        _same_day_or_zero(con, preset)
    else:
        _day_matching(con, preset)
    if preset.same_day:  # its baseline is the adjustment window: missing data there means no numbers
        run(con, """UPDATE _event_status SET status = 'NO_ADJUSTMENT_DATA' WHERE status = 'INSUFFICIENT_DAYS'""")


def _day_matching(con, preset: Preset) -> None:
    split = preset.day_types
    run(con, f"""CREATE OR REPLACE TEMP TABLE _rule AS
        SELECT m.meter_id, m.event_day, r.*
        FROM _meters m JOIN _rules r ON r.day_type = {_day_type_sql(split, 'm.event_day')}""")
    # eligible candidate days with their event-window mean, most recent first
    run(con, f"""CREATE OR REPLACE TEMP TABLE _eligible AS
        WITH need AS (SELECT meter_id, count(DISTINCT slot) AS n FROM _slots GROUP BY meter_id),
        days AS (
            SELECT d.meter_id, d.day,
                   count(DISTINCT d.slot) AS present,
                   avg(d.value) FILTER (WHERE s.role = 'event') AS event_mean
            FROM _daily d JOIN _rule r USING (meter_id)
            JOIN (SELECT DISTINCT meter_id, slot, role FROM _slots) s ON s.meter_id = d.meter_id AND s.slot = d.slot
            WHERE d.day BETWEEN r.event_day - r.lookback AND r.event_day - r.first_back
              AND {_day_type_sql(split, 'd.day')} = r.day_type
              AND (d.meter_id, d.day) NOT IN (SELECT meter_id, day FROM _event_days)
            GROUP BY d.meter_id, d.day
        )
        SELECT days.*, row_number() OVER (PARTITION BY days.meter_id ORDER BY days.day DESC) AS rn
        FROM days JOIN need USING (meter_id) WHERE days.present = need.n""")
    # the Y most recent; low-usage days (where the rule has it) replaced by the next older ones, not re-tested
    run(con, """CREATE OR REPLACE TEMP TABLE _pool AS
        WITH first_y AS (
            SELECT e.*, r.y, r.low_usage, r.selection, r.x,
                   r.low_usage AND e.event_mean < 0.25 * avg(e.event_mean) OVER (PARTITION BY e.meter_id) AS low
            FROM _eligible e JOIN _rule r USING (meter_id) WHERE e.rn <= r.y
        ), lows AS (SELECT meter_id, count(*) FILTER (WHERE low) AS n_low FROM first_y GROUP BY meter_id)
        SELECT meter_id, day, event_mean, rn FROM first_y WHERE NOT low
        UNION ALL
        SELECT e.meter_id, e.day, e.event_mean, e.rn FROM _eligible e JOIN _rule r USING (meter_id)
        JOIN lows USING (meter_id) WHERE e.rn > r.y AND e.rn <= r.y + lows.n_low""")
    run(con, """CREATE OR REPLACE TEMP TABLE _selected AS
        WITH ranked AS (
            SELECT p.*, r.y, r.selection, r.x, count(*) OVER (PARTITION BY p.meter_id) AS n,
                   row_number() OVER (PARTITION BY p.meter_id ORDER BY p.event_mean DESC, p.day DESC) AS by_load
            FROM _pool p JOIN _rule r USING (meter_id)
        )
        SELECT meter_id, day FROM ranked WHERE n = y AND (
            selection = 'all' OR (selection = 'highest' AND by_load <= x)
            OR (selection = 'middle' AND by_load > 1 AND by_load < n))""")
    run(con, """CREATE OR REPLACE TEMP TABLE _unadjusted AS
        SELECT d.meter_id, d.slot, avg(d.value) AS baseline, bool_and(d.final) AS final
        FROM _daily d JOIN _selected s USING (meter_id, day) GROUP BY ALL""")
    _adjust_and_emit(con, preset)


def _adjust_and_emit(con, preset: Preset) -> None:
    adjustment = preset.adjustment
    kind = adjustment.kind if adjustment else "none"
    cap = adjustment.cap if adjustment and adjustment.cap is not None else None
    if kind == "multiplicative":
        raw = "CASE WHEN sum(u.baseline) = 0 THEN 1.0 ELSE sum(a.value) / sum(u.baseline) END"
        factor = raw if cap is None else f"greatest({1 - cap}, least({1 + cap}, {raw}))"
        adjusted = "u.baseline * coalesce(adj.factor, 1.0)"
    else:
        factor = "avg(a.value) - avg(u.baseline)" if kind == "additive" else "NULL"
        adjusted = "u.baseline + coalesce(adj.factor, 0.0)"
    run(con, f"""CREATE OR REPLACE TEMP TABLE _adjustment AS
        SELECT s.meter_id, count(a.value) = count(*) AS complete, {factor} AS factor, bool_and(a.final) AS final
        FROM _slots s JOIN _meters m USING (meter_id)
        JOIN _unadjusted u ON u.meter_id = s.meter_id AND u.slot = s.slot
        LEFT JOIN _daily a ON a.meter_id = s.meter_id AND a.day = m.event_day AND a.slot = s.slot
        WHERE s.role = 'adjust' GROUP BY s.meter_id""")
    run(con, "UPDATE _adjustment SET factor = NULL WHERE NOT complete")
    _emit(con, f"""SELECT s.meter_id, s.ts, u.baseline, {adjusted} AS adjusted,
                          u.final AND coalesce(adj.final, true) AS inputs_final,
                          adj.meter_id IS NOT NULL AND NOT adj.complete AS no_adjustment_data
                   FROM _slots s JOIN _unadjusted u ON u.meter_id = s.meter_id AND u.slot = s.slot
                   LEFT JOIN _adjustment adj ON adj.meter_id = s.meter_id
                   WHERE s.role = 'event'""")


def _same_day_or_zero(con, preset: Preset) -> None:
    if preset.zero:
        _emit(con, """SELECT s.meter_id, s.ts, 0.0 AS baseline, 0.0 AS adjusted, true AS inputs_final,
                             false AS no_adjustment_data FROM _slots s WHERE s.role = 'event'""")
        return
    # the baseline is the event day's own mean over the adjustment windows; a missing slot there: no numbers
    run(con, """CREATE OR REPLACE TEMP TABLE _same_day AS
        SELECT s.meter_id, avg(a.value) AS baseline, count(a.value) = count(*) AS complete, bool_and(a.final) AS final
        FROM _slots s JOIN _meters m USING (meter_id)
        LEFT JOIN _daily a ON a.meter_id = s.meter_id AND a.day = m.event_day AND a.slot = s.slot
        WHERE s.role = 'adjust' GROUP BY s.meter_id""")
    _emit(con, """SELECT s.meter_id, s.ts, b.baseline, b.baseline AS adjusted, b.final AS inputs_final,
                         false AS no_adjustment_data
                  FROM _slots s JOIN _same_day b USING (meter_id) WHERE s.role = 'event' AND b.complete""")


def _emit(con, baseline_rows: str) -> None:
    """_event_baselines: one row per meter with a baseline and per event interval, with the actual (NULL if
    missing); _event_status: one row per enrolled meter, the first status that applies (DOMAIN.md §6)."""
    run(con, f"""CREATE OR REPLACE TEMP TABLE _event_baselines AS
        WITH b AS ({baseline_rows})
        SELECT b.meter_id, b.ts AS interval_start_utc, b.baseline AS baseline_kwh, b.adjusted AS adjusted_baseline_kwh,
               a.value AS actual_kwh, b.inputs_final AND coalesce(a.final, true) AS final, b.no_adjustment_data
        FROM b LEFT JOIN _actuals a ON a.meter_id = b.meter_id AND a.ts = b.ts""")
    run(con, """CREATE OR REPLACE TEMP TABLE _event_status AS
        SELECT m.meter_id,
               CASE WHEN count(b.meter_id) = 0 THEN 'INSUFFICIENT_DAYS'
                    WHEN bool_or(b.no_adjustment_data) THEN 'NO_ADJUSTMENT_DATA'
                    WHEN count(b.actual_kwh) < count(b.meter_id) THEN 'MISSING_ACTUALS'
                    WHEN NOT bool_and(b.final) THEN 'PROVISIONAL' ELSE 'OK' END AS status
        FROM _meters m LEFT JOIN _event_baselines b USING (meter_id) GROUP BY m.meter_id""")

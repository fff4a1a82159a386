"""The day-matching engine: baselines for one DR event, set-wise over all its meters in DuckDB.

Implements docs/baselines.md exactly. Python only prepares the event's parameters (preset, windows, holidays); every
per-meter, per-day and per-slot step is SQL over all enrolled meters at once:
  a slot calendar per time zone (the UTC instants, in the look-back, whose local slot the event needs; a
  25-hour day's repeated slot appears twice and is averaged, a 23-hour day's skipped slot not at all) →
  readings at those instants by local day and slot → candidate days of the event day's type within the
  look-back, without holidays (unless that is the type) and the meter's event days, with every event and
  adjustment slot present → the Y most recent (low-usage days replaced by older ones) → selection (all /
  highest X / middle) → unadjusted baseline per slot → day-of adjustment from the event day's actuals.
The steps hand each other temp tables inside one call, which is why they stay in this one file (over 400
lines: every table a step reads is created a few functions above it, never in another module). `compute_event`
returns its results as data frames (`EventResult`): the baselines, one status per meter, why each look-back day was or wasn't used, the rule and
adjustment each meter got, and the missing intervals that would change the result if uploaded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from leap_orchestration.settlement.calendars import holidays_between
from leap_orchestration.settlement.presets import SATURDAY, SUNDAY_HOLIDAY, WEEKDAY, WEEKEND_HOLIDAY, Preset
from leap_orchestration.warehouse.duck import run

INTERVAL = dt.timedelta(minutes=15)
CHANNEL_COLUMN = {
    "net": "energy_net_kwh",
    "consumed": "energy_consumed_kwh",
    "generated": "energy_generated_kwh",
}


@dataclass(frozen=True)
class EventSpec:
    event_id: str
    program_id: str
    start_utc: dt.datetime
    end_utc: dt.datetime
    preset: Preset
    channel: str = "net"
    holiday_calendar: str = "NERC"


@dataclass(frozen=True)
class EventResult:
    baselines: pl.DataFrame  # meter x event interval: baseline, adjusted baseline, actual, final, adjustment
    status: pl.DataFrame  # meter: status, selected days, adjustment, intervals expected/present, actual kWh
    days: (
        pl.DataFrame
    )  # meter x look-back day: day type, outcome (DAY_OUTCOMES), slots missing, event-window mean
    explanations: (
        pl.DataFrame
    )  # meter: event day, day type, Y and selection, adjustment window sums, raw/applied
    missing: (
        pl.DataFrame
    )  # meter x interval start: intervals whose upload would change the result, and window


# Why a look-back day was or wasn't one the baseline averaged, in the order they are tested (docs/baselines.md,
# "Explanations"), with the words partners read in their statements.
DAY_OUTCOMES = {
    "OUTSIDE_LOOKBACK": "more recent than the rule's first day back",
    "HOLIDAY": "a holiday of the program's calendar, so not of the event day's type",
    "WRONG_DAY_TYPE": "not of the event day's type",
    "EVENT_DAY": "the meter had an event that day",
    "MISSING_SLOTS": "a reading of the event or adjustment window is missing that day",
    "LOW_USAGE": "event-window use below 25 % of the days' mean: replaced by an older day",
    "SELECTED": "averaged into the baseline",
    "NOT_SELECTED": "among the days taken, but ranked out by the rule's selection",
    "TOO_FEW_DAYS": "eligible, but fewer than the days needed remain (after low-usage days): no baseline",
    "BEYOND_Y": "eligible, but older than the days taken",
}


def reading_range(event: EventSpec) -> tuple[dt.datetime, dt.datetime]:
    """[from, to) of the interval starts the event's baselines can read (look-back, the event day, after it)."""
    lookback = max((r.lookback_days for r in event.preset.rules.values()), default=0)
    return event.start_utc - dt.timedelta(days=lookback + 2), event.end_utc + dt.timedelta(days=1)


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


def _readings_sql(value: str) -> str:
    """Readings of the event's meters at the calendar's instants in [$lo, $hi), with local day, slot and weight.
    A query, not a table: a pass over the readings is the engine's main cost, so each pass filters its range.
    Meters come as `meter_key`, not their id: the passes group millions of (meter, day) and (meter, slot) pairs,
    and on an integer key that fits the warehouse's memory where the id (often 36 characters) spilled to disk."""
    return f"""SELECT m.meter_key, c.day, c.slot, c.is_event, c.w, r.{value} AS value, r.final
        FROM interval_readings r JOIN _meters m USING (meter_id)
        JOIN _calendar c ON c.zone = m.zone AND c.ts = r.interval_start_utc
        WHERE r.interval_start_utc >= $lo AND r.interval_start_utc < $hi AND r.{value} IS NOT NULL
          AND r.interval_start_utc IN (SELECT ts FROM _calendar_ts)"""


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _day_type_sql(split: str, day: str, holidays: bool = True) -> str:
    """SQL for the day type of `day` (a DATE expression); holidays are in temp table _holidays."""
    holiday = f"{day} IN (SELECT day FROM _holidays)" if holidays else "false"
    dow = f"isodow({day})"
    if split == "weekday/saturday/sunday":
        return (
            f"CASE WHEN {dow} = 7 OR {holiday} THEN '{SUNDAY_HOLIDAY}' WHEN {dow} = 6 THEN '{SATURDAY}' "
            f"ELSE '{WEEKDAY}' END"
        )
    return f"CASE WHEN {dow} >= 6 OR {holiday} THEN '{WEEKEND_HOLIDAY}' ELSE '{WEEKDAY}' END"


def compute_event(con: duckdb.DuckDBPyConnection, event: EventSpec) -> EventResult:
    """Baselines, statuses and their explanation for every meter enrolled in the event at its start."""
    preset = event.preset
    windows = _window_table(event)
    from_ts, to_ts = reading_range(event)
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE _holidays AS SELECT unnest(?::DATE[]) AS day",
        [
            holidays_between(
                event.holiday_calendar,
                from_ts.date() - dt.timedelta(days=1),
                to_ts.date() + dt.timedelta(days=1),
            )
        ],
    )
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE _windows AS SELECT unnest(?::VARCHAR[]) AS role, unnest(?::TIMESTAMPTZ[]) AS ts",
        [[r for r, _ in windows], [t for _, t in windows]],
    )
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _rules (day_type VARCHAR, y INTEGER, selection VARCHAR, x INTEGER,
                lookback INTEGER, first_back INTEGER, low_usage BOOLEAN)""",
    )
    if preset.rules:
        con.executemany(
            "INSERT INTO _rules VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (t, r.days, r.selection, r.keep, r.lookback_days, r.first_day_back, r.low_usage)
                for t, r in preset.rules.items()
            ],
        )
    # meters enrolled at the event's start, with the event's local day in their zone
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _meters AS
        SELECT m.meter_id, m.timezone, (CAST($start AS TIMESTAMPTZ) AT TIME ZONE m.timezone)::DATE AS event_day,
               dense_rank() OVER (ORDER BY m.timezone)::INTEGER AS zone,  -- a narrow join key per reading
               row_number() OVER (ORDER BY m.meter_id)::INTEGER AS meter_key  -- a narrow grouping key
        FROM meters m
        WHERE m.meter_id IN (SELECT meter_id FROM meter_enrollments WHERE program_id = $program
                             AND valid_from <= $start AND (valid_to IS NULL OR valid_to > $start))""",
        {"program": event.program_id, "start": event.start_utc},
    )
    # the local slot of every window interval, per time zone (the same for every meter of a zone)
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _zone_slots AS
        SELECT z.timezone, w.role, w.ts,
               date_diff('minute', date_trunc('day', w.ts AT TIME ZONE z.timezone), w.ts AT TIME ZONE z.timezone) AS slot
        FROM (SELECT DISTINCT timezone FROM _meters) z CROSS JOIN _windows w""",
    )
    # the adjustment windows' slots, each once: a repeated slot of a 25-hour event day is one slot (its value is
    # the mean of both readings), as in the candidate days
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _adjust_slots AS
        SELECT DISTINCT timezone, slot FROM _zone_slots WHERE role = 'adjust'""",
    )
    # every UTC instant of the reading range whose local slot is a needed one, with its local day; w: 1/2 for
    # each of a 25-hour day's two readings of a slot (the day's value there is their mean), else 1
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _calendar AS
        WITH ticks AS (SELECT unnest(generate_series(CAST($from_ts AS TIMESTAMPTZ), CAST($to_ts AS TIMESTAMPTZ) - INTERVAL 15 MINUTE,
                                                      INTERVAL 15 MINUTE)) AS ts),
        local AS (SELECT z.timezone, z.zone, t.ts, t.ts AT TIME ZONE z.timezone AS lt
                  FROM (SELECT DISTINCT timezone, zone FROM _meters) z CROSS JOIN ticks t),
        needed AS (
            SELECT l.timezone, l.zone, l.ts, l.lt::DATE AS day, s.slot, s.role = 'event' AS is_event
            FROM local l JOIN (SELECT DISTINCT timezone, slot, role FROM _zone_slots) s
              ON s.timezone = l.timezone AND s.slot = date_diff('minute', date_trunc('day', l.lt), l.lt))
        SELECT *, 1.0 / count(*) OVER (PARTITION BY timezone, day, slot) AS w FROM needed""",
        {"from_ts": from_ts, "to_ts": to_ts},
    )
    # instants any zone needs: a one-column filter that drops most readings before the joins
    run(con, "CREATE OR REPLACE TEMP TABLE _calendar_ts AS SELECT DISTINCT ts FROM _calendar")
    value = CHANNEL_COLUMN[event.channel]
    readings = _readings_sql(value)
    # the event day's value per needed slot (adjustment windows, same-day baselines); only from the event day
    day_lo = min(t for _, t in windows) - dt.timedelta(hours=2)
    day_hi = max(t for _, t in windows) + dt.timedelta(hours=2)
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _event_day AS
        SELECT m.meter_id, v.slot, v.value, v.final FROM (
            SELECT r.meter_key, r.slot, sum(r.value * r.w) AS value, bool_and(r.final) AS final
            FROM ({readings}) r JOIN _meters m ON m.meter_key = r.meter_key AND m.event_day = r.day
            GROUP BY ALL HAVING sum(r.w) > 0.99) v JOIN _meters m USING (meter_key)""",
        {"lo": day_lo, "hi": day_hi},
    )
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _actuals AS
        SELECT m.meter_id, s.ts, r.{value} AS value, r.final
        FROM _meters m JOIN _zone_slots s ON s.timezone = m.timezone AND s.role = 'event'
        LEFT JOIN (SELECT * FROM interval_readings WHERE interval_start_utc >= $start AND interval_start_utc < $end
                   AND {value} IS NOT NULL) r
          ON r.meter_id = m.meter_id AND r.interval_start_utc = s.ts""",
        {"start": event.start_utc, "end": event.end_utc},
    )
    # local days on which a meter had an event of any program it was enrolled in then
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _event_days AS
        SELECT DISTINCT m.meter_id, (e.start_utc AT TIME ZONE m.timezone)::DATE AS day
        FROM dr_events e JOIN meter_enrollments en ON en.program_id = e.program_id
        JOIN _meters m ON m.meter_id = en.meter_id
        WHERE en.valid_from <= e.start_utc AND (en.valid_to IS NULL OR en.valid_to > e.start_utc)""",
    )
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _explained_days (meter_id VARCHAR, day DATE, day_type VARCHAR,
                outcome VARCHAR, slots_missing INTEGER, event_window_mean_kwh DOUBLE)""",
    )
    run(con, "CREATE OR REPLACE TEMP TABLE _lookback_due (meter_id VARCHAR, day DATE)")
    if preset.zero or preset.same_day:
        _same_day_or_zero(con, preset)
    else:
        _day_matching(con, preset, readings, {"lo": from_ts, "hi": to_ts})
    _find_missing(con, value, {"lo": from_ts, "hi": to_ts})
    return EventResult(
        *(
            con.sql(f"SELECT * FROM {table}").pl()
            for table in ("_event_baselines", "_event_status", "_explained_days", "_explained", "_missing")
        )
    )


def _find_missing(con, value: str, reading_range: dict) -> None:
    """The meters' missing intervals that matter: the event window, the adjustment windows on the event day
    (a slot on the day before is never read: uploading it changes nothing), and every slot of the event and
    adjustment windows on incomplete look-back days among the Y most recent of the right type (`_lookback_due`).
    The candidates are few; they are looked up among the readings at their instants only (a one-column filter,
    as the engine's passes do), never by a scan of every reading."""
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _owed_candidates AS
        SELECT m.meter_id, s.ts, 'adjustment' AS window_kind FROM _meters m
        JOIN _zone_slots s ON s.timezone = m.timezone AND s.role = 'adjust'
        WHERE (s.ts AT TIME ZONE m.timezone)::DATE = m.event_day
        UNION ALL
        SELECT m.meter_id, c.ts, 'lookback' FROM _lookback_due d JOIN _meters m USING (meter_id)
        JOIN _calendar c ON c.zone = m.zone AND c.day = d.day""",
    )
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _missing AS
        SELECT meter_id, ts AS interval_start_utc, 'event' AS window_kind FROM _actuals WHERE value IS NULL
        UNION ALL
        SELECT c.meter_id, c.ts, c.window_kind FROM _owed_candidates c
        LEFT JOIN (SELECT meter_id, interval_start_utc FROM interval_readings
                   WHERE interval_start_utc >= $lo AND interval_start_utc < $hi AND {value} IS NOT NULL
                     AND interval_start_utc IN (SELECT DISTINCT ts FROM _owed_candidates)) r
          ON r.meter_id = c.meter_id AND r.interval_start_utc = c.ts
        WHERE r.meter_id IS NULL""",
        reading_range,
    )


def _day_matching(con, preset: Preset, readings: str, reading_range: dict) -> None:
    split = preset.day_types
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _rule AS
        SELECT m.meter_id, m.timezone, m.event_day, r.*
        FROM _meters m JOIN _rules r ON r.day_type = {_day_type_sql(split, "m.event_day")}""",
    )
    # each day's share of the needed slots present and its event-window mean
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _day_values AS
        SELECT m.meter_id, v.day, v.present, v.event_mean FROM (
            SELECT meter_key, day, sum(w) AS present,
                   sum(value * w) FILTER (WHERE is_event) / sum(w) FILTER (WHERE is_event) AS event_mean
            FROM ({readings}) r GROUP BY meter_key, day) v JOIN _meters m USING (meter_key)""",
        reading_range,
    )
    # every local day of the look-back, with what decides whether it is a candidate
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _lookback AS
        WITH need AS (SELECT timezone, count(DISTINCT slot) AS n FROM _zone_slots GROUP BY timezone),
        days AS (SELECT r.meter_id, r.timezone, r.day_type AS wanted, r.event_day, r.first_back,
                        unnest(generate_series(CAST(r.event_day - r.lookback AS TIMESTAMP),
                                               CAST(r.event_day - 1 AS TIMESTAMP), INTERVAL 1 DAY))::DATE AS day
                 FROM _rule r)
        SELECT d.meter_id, d.day, d.wanted, {_day_type_sql(split, "d.day")} AS day_type,
               {_day_type_sql(split, "d.day", holidays=False)} AS plain_day_type,
               (d.meter_id, d.day) IN (SELECT meter_id, day FROM _event_days) AS event_day,
               d.day > d.event_day - d.first_back AS too_recent,
               coalesce(v.present, 0) > n.n - 0.01 AS complete,
               greatest(0, round(n.n - coalesce(v.present, 0)))::INTEGER AS slots_missing, v.event_mean
        FROM days d JOIN need n ON n.timezone = d.timezone
        LEFT JOIN _day_values v ON v.meter_id = d.meter_id AND v.day = d.day""",
    )
    # eligible candidate days (every needed slot present) with their event-window mean, most recent first
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _eligible AS
        SELECT meter_id, day, event_mean, row_number() OVER (PARTITION BY meter_id ORDER BY day DESC) AS rn
        FROM _lookback WHERE day_type = wanted AND NOT event_day AND NOT too_recent AND complete""",
    )
    # the Y most recent; low-usage days (where the rule has it) replaced by the next older ones, not re-tested
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _first_y AS
        SELECT e.*, r.low_usage AND e.event_mean < 0.25 * avg(e.event_mean) OVER (PARTITION BY e.meter_id) AS low
        FROM _eligible e JOIN _rule r USING (meter_id) WHERE e.rn <= r.y""",
    )
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _pool AS
        WITH first_y AS (SELECT * FROM _first_y),
        lows AS (SELECT meter_id, count(*) FILTER (WHERE low) AS n_low FROM first_y GROUP BY meter_id)
        SELECT meter_id, day, event_mean FROM first_y WHERE NOT low
        UNION ALL
        SELECT e.meter_id, e.day, e.event_mean FROM _eligible e JOIN _rule r USING (meter_id)
        JOIN lows USING (meter_id) WHERE e.rn > r.y AND e.rn <= r.y + lows.n_low""",
    )
    # ranking by event-window mean, a tie to the more recent day
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _selected AS
        WITH ranked AS (
            SELECT p.*, r.y, r.selection, r.x, count(*) OVER (PARTITION BY p.meter_id) AS n,
                   row_number() OVER (PARTITION BY p.meter_id ORDER BY p.event_mean DESC, p.day DESC) AS by_load
            FROM _pool p JOIN _rule r USING (meter_id)
        )
        SELECT meter_id, day FROM ranked WHERE n = y AND (
            selection = 'all' OR (selection = 'highest' AND by_load <= x)
            OR (selection = 'middle' AND by_load > 1 AND by_load < n))""",
    )
    # a slot's baseline: the mean over the selected days of each day's value there (every day has them all).
    # Only the span of the selected days is read again (for most presets a fraction of the look-back).
    first, last = con.execute("SELECT min(day), max(day) FROM _selected").fetchall()[0]
    if first is not None:
        reading_range = {
            "lo": max(reading_range["lo"], _utc_midnight(first) - dt.timedelta(days=1)),
            "hi": min(reading_range["hi"], _utc_midnight(last) + dt.timedelta(days=2)),
        }
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _unadjusted AS
        WITH selected AS (SELECT m.meter_key, s.day FROM _selected s JOIN _meters m USING (meter_id)),
        n AS (SELECT meter_key, count(*) AS days FROM selected GROUP BY meter_key)
        SELECT m.meter_id, b.slot, b.baseline, b.final FROM (
            SELECT d.meter_key, d.slot, sum(d.value * d.w) / any_value(n.days) AS baseline,
                   bool_and(d.final) AS final
            FROM ({readings}) d JOIN selected s USING (meter_key, day) JOIN n USING (meter_key) GROUP BY ALL
        ) b JOIN _meters m USING (meter_key)""",
        reading_range,
    )
    _explain_days(con)
    _adjust_and_emit(con, preset, split)


def _explain_days(con) -> None:
    """Each look-back day's outcome (DAY_OUTCOMES, first that applies), and which incomplete days matter."""
    run(
        con,
        """INSERT INTO _explained_days BY NAME
        SELECT l.meter_id, l.day, l.day_type, l.event_mean AS event_window_mean_kwh,
               CASE WHEN NOT l.complete THEN l.slots_missing ELSE 0 END AS slots_missing,
               CASE WHEN l.too_recent THEN 'OUTSIDE_LOOKBACK'
                    WHEN l.day_type <> l.wanted AND l.plain_day_type = l.wanted THEN 'HOLIDAY'
                    WHEN l.day_type <> l.wanted THEN 'WRONG_DAY_TYPE'
                    WHEN l.event_day THEN 'EVENT_DAY'
                    WHEN NOT l.complete THEN 'MISSING_SLOTS'
                    WHEN f.low THEN 'LOW_USAGE'
                    WHEN s.day IS NOT NULL THEN 'SELECTED'
                    WHEN p.day IS NOT NULL AND pc.n < r.y THEN 'TOO_FEW_DAYS'
                    WHEN p.day IS NOT NULL THEN 'NOT_SELECTED'
                    ELSE 'BEYOND_Y' END AS outcome
        FROM _lookback l JOIN _rule r USING (meter_id)
        LEFT JOIN _first_y f USING (meter_id, day) LEFT JOIN _pool p USING (meter_id, day)
        LEFT JOIN (SELECT meter_id, count(*) AS n FROM _pool GROUP BY meter_id) pc USING (meter_id)
        LEFT JOIN _selected s USING (meter_id, day)""",
    )
    # incomplete days among the Y most recent days of the right type: uploading their slots changes the days used
    run(
        con,
        """INSERT INTO _lookback_due BY NAME
        SELECT meter_id, day FROM (
            SELECT l.meter_id, l.day, l.complete, r.y,
                   row_number() OVER (PARTITION BY l.meter_id ORDER BY l.day DESC) AS k
            FROM _lookback l JOIN _rule r USING (meter_id)
            WHERE l.day_type = l.wanted AND NOT l.event_day AND NOT l.too_recent)
        WHERE k <= y AND NOT complete""",
    )


def _adjust_and_emit(con, preset: Preset, split: str) -> None:
    adjustment = preset.adjustment
    kind = adjustment.kind if adjustment else "none"
    cap = adjustment.cap if adjustment else None
    if kind == "multiplicative":
        raw = "CASE WHEN sum(u.baseline) = 0 THEN 1.0 ELSE sum(a.value) / sum(u.baseline) END"
        factor = raw if cap is None else f"greatest({1 - cap}, least({1 + cap}, {raw}))"
        adjusted = "u.baseline * coalesce(adj.factor, 1.0)"
    else:
        raw = factor = "avg(a.value) - avg(u.baseline)" if kind == "additive" else "NULL::DOUBLE"
        adjusted = "u.baseline + coalesce(adj.factor, 0.0)"
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _adjustment AS
        SELECT m.meter_id, count(a.value) = count(*) AS complete, {raw} AS raw, {factor} AS factor,
               sum(u.baseline) AS window_baseline, bool_and(a.final) AND bool_and(u.final) AS final
        FROM _meters m JOIN _adjust_slots s ON s.timezone = m.timezone
        JOIN _unadjusted u ON u.meter_id = m.meter_id AND u.slot = s.slot
        LEFT JOIN _event_day a ON a.meter_id = m.meter_id AND a.slot = s.slot
        GROUP BY m.meter_id""",
    )
    run(con, "UPDATE _adjustment SET factor = NULL, raw = NULL WHERE NOT complete")
    _explain_meters(
        con,
        kind,
        cap,
        rule=f"""SELECT m.meter_id, {_day_type_sql(split, "m.event_day")} AS day_type, r.y AS days_wanted,
                        r.selection, r.x AS days_kept, r.lookback AS lookback_days
                 FROM _meters m LEFT JOIN _rules r ON r.day_type = {_day_type_sql(split, "m.event_day")}""",
        adjusted="""SELECT meter_id, window_baseline AS adjustment_window_baseline_kwh, raw AS adjustment_raw,
                           factor AS adjustment_applied FROM _adjustment""",
    )
    _emit(
        con,
        f"""SELECT m.meter_id, s.ts, u.baseline, {adjusted} AS adjusted,
                          u.final AND coalesce(adj.final, true) AS inputs_final,
                          adj.meter_id IS NOT NULL AND NOT adj.complete AS no_adjustment_data, adj.factor
                   FROM _meters m JOIN _zone_slots s ON s.timezone = m.timezone AND s.role = 'event'
                   JOIN _unadjusted u ON u.meter_id = m.meter_id AND u.slot = s.slot
                   LEFT JOIN _adjustment adj ON adj.meter_id = m.meter_id""",
        days="(SELECT list(day ORDER BY day) FROM _selected x WHERE x.meter_id = m.meter_id)",
    )


def _explain_meters(con, kind: str, cap: float | None, rule: str | None = None, adjusted: str | None = None):
    """_explained: per meter, the event day and its type, the rule applied (Y, selection, X, look-back), and the
    adjustment window on the event day (slots expected and present, actual and baseline kWh, ratio or delta before
    and after the cap)."""
    rule = rule or (
        "SELECT meter_id, NULL::VARCHAR AS day_type, NULL::INTEGER AS days_wanted, NULL::VARCHAR AS selection, "
        "NULL::INTEGER AS days_kept, NULL::INTEGER AS lookback_days FROM _meters"
    )
    adjusted = adjusted or (
        "SELECT meter_id, NULL::DOUBLE AS adjustment_window_baseline_kwh, NULL::DOUBLE AS adjustment_raw, "
        "NULL::DOUBLE AS adjustment_applied FROM _meters"
    )
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _explained AS
        WITH actuals AS (
            SELECT m.meter_id, count(*) AS adjustment_slots_expected, count(a.value) AS adjustment_slots_present,
                   sum(a.value) AS adjustment_window_actual_kwh
            FROM _meters m JOIN _adjust_slots s ON s.timezone = m.timezone
            LEFT JOIN _event_day a ON a.meter_id = m.meter_id AND a.slot = s.slot GROUP BY m.meter_id)
        SELECT m.meter_id, m.event_day, r.day_type, r.days_wanted, r.selection, r.days_kept, r.lookback_days,
               $kind AS adjustment_kind, CAST($cap AS DOUBLE) AS adjustment_cap,
               coalesce(a.adjustment_slots_expected, 0)::INTEGER AS adjustment_slots_expected,
               coalesce(a.adjustment_slots_present, 0)::INTEGER AS adjustment_slots_present,
               a.adjustment_window_actual_kwh, x.adjustment_window_baseline_kwh, x.adjustment_raw, x.adjustment_applied
        FROM _meters m LEFT JOIN ({rule}) r USING (meter_id) LEFT JOIN actuals a USING (meter_id)
        LEFT JOIN ({adjusted}) x USING (meter_id)""",
        {"kind": kind, "cap": cap},
    )


def _same_day_or_zero(con, preset: Preset) -> None:
    event_slots = "_meters m JOIN _zone_slots s ON s.timezone = m.timezone AND s.role = 'event'"
    if preset.zero:
        _explain_meters(con, "zero", None)
        _emit(
            con,
            f"""SELECT m.meter_id, s.ts, 0.0 AS baseline, 0.0 AS adjusted, true AS inputs_final,
                              false AS no_adjustment_data, NULL::DOUBLE AS factor FROM {event_slots}""",
        )
        return
    # the baseline is the event day's own mean over the adjustment windows; a missing slot there: no numbers
    run(
        con,
        """CREATE OR REPLACE TEMP TABLE _same_day AS
        SELECT m.meter_id, avg(a.value) AS baseline, count(a.value) = count(*) AS complete, bool_and(a.final) AS final
        FROM _meters m JOIN _adjust_slots s ON s.timezone = m.timezone
        LEFT JOIN _event_day a ON a.meter_id = m.meter_id AND a.slot = s.slot
        GROUP BY m.meter_id""",
    )
    _explain_meters(
        con,
        "same_day",
        None,
        adjusted="""SELECT meter_id, NULL::DOUBLE AS adjustment_window_baseline_kwh,
                           CASE WHEN complete THEN baseline END AS adjustment_raw,
                           CASE WHEN complete THEN baseline END AS adjustment_applied FROM _same_day""",
    )
    _emit(
        con,
        f"""SELECT m.meter_id, s.ts, b.baseline, b.baseline AS adjusted, b.final AS inputs_final,
                          false AS no_adjustment_data, NULL::DOUBLE AS factor
                   FROM {event_slots} JOIN _same_day b ON b.meter_id = m.meter_id WHERE b.complete""",
        missing_status="NO_ADJUSTMENT_DATA",
    )


def _emit(
    con, baseline_rows: str, days: str = "NULL::DATE[]", missing_status: str = "INSUFFICIENT_DAYS"
) -> None:
    """_event_baselines: one row per meter with a baseline and per event interval, with the actual (NULL if
    missing); _event_status: one row per enrolled meter with the first status that applies (docs/baselines.md), the
    days the baseline used, the adjustment applied (a ratio or a kWh delta; NULL if none) and its actuals."""
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _event_baselines AS
        WITH b AS ({baseline_rows})
        SELECT b.meter_id, b.ts AS interval_start_utc, b.baseline AS baseline_kwh, b.adjusted AS adjusted_baseline_kwh,
               a.value AS actual_kwh, b.inputs_final AND coalesce(a.final, true) AS final, b.no_adjustment_data,
               b.factor AS adjustment
        FROM b LEFT JOIN _actuals a ON a.meter_id = b.meter_id AND a.ts = b.ts""",
    )
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _event_status AS
        SELECT m.meter_id,
               CASE WHEN count(b.meter_id) = 0 THEN '{missing_status}'
                    WHEN bool_or(b.no_adjustment_data) THEN 'NO_ADJUSTMENT_DATA'
                    WHEN count(b.actual_kwh) < count(b.meter_id) THEN 'MISSING_ACTUALS'
                    WHEN NOT bool_and(b.final) THEN 'PROVISIONAL' ELSE 'OK' END AS status,
               {days} AS selected_days, any_value(b.adjustment) AS adjustment,
               any_value(a.expected) AS intervals_expected, any_value(a.present) AS intervals_present,
               any_value(a.actual_kwh) AS actual_kwh
        FROM _meters m LEFT JOIN _event_baselines b USING (meter_id)
        LEFT JOIN (SELECT meter_id, count(*) AS expected, count(value) AS present, sum(value) AS actual_kwh
                   FROM _actuals GROUP BY meter_id) a ON a.meter_id = m.meter_id
        GROUP BY m.meter_id""",
    )

"""What operators read of settlement: every event on its own, per-program totals, and the meters lacking data.

Plain rows (lists of dicts) with rounded numbers, read from `event_performance` (per-event totals by the one
shared definition, `performance.PROGRAM_EVENTS`); `assets/settlement.py` turns
them into inline tables of the UI. Totals are per program only: programs have different rules (presets,
channels, clipping), so a sum across programs would mean nothing.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb

from leap_orchestration.settlement.performance import PROGRAM_EVENTS

# Why a meter has no numbers, or partial ones, and what would clear it (docs/baselines.md, statuses).
STATUS_REASONS = {
    "OK": "",
    "PROVISIONAL": "computed from readings not all final; final readings recompute it",
    "INSUFFICIENT_DAYS": "not enough eligible days before the event: upload earlier readings (none exist if the "
    "meter joined recently)",
    "NO_ADJUSTMENT_DATA": "readings missing in the adjustment window: upload them (unadjusted baseline used)",
    "MISSING_ACTUALS": "event intervals missing: upload them (sums cover the present ones)",
}
LACKING = ("INSUFFICIENT_DAYS", "NO_ADJUSTMENT_DATA", "MISSING_ACTUALS")
# The same, in a few words for the per-event tables (a long cell makes every row of an inline table tall).
STATUS_SHORT = {
    "OK": "",
    "PROVISIONAL": "readings not final",
    "INSUFFICIENT_DAYS": "too few eligible days",
    "NO_ADJUSTMENT_DATA": "adjustment window incomplete",
    "MISSING_ACTUALS": "event intervals missing",
}


def _kwh(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def local_time(start: dt.datetime, zone: str | None) -> str:
    """An instant in a meter's local time with the date, e.g. '2025-07-15 14:00 EDT' (UTC without a zone)."""
    local = start.astimezone(ZoneInfo(zone)) if zone else start.astimezone(dt.UTC)
    return local.strftime("%Y-%m-%d %H:%M %Z")


def events(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every settled event, newest first: start (local, and UTC), meters, those OK, lacking data and not
    delivering (numbers, but reduction <= 0), and the event's totals (kWh, aggregate average kW)."""
    rows = con.execute(
        f"""SELECT p.event_id, p.program_id, p.start_utc, p.meters_enrolled, p.meters_ok,
                  (SELECT count(*) FROM event_performance f WHERE f.event_id = p.event_id
                     AND f.status IN ('INSUFFICIENT_DAYS', 'NO_ADJUSTMENT_DATA', 'MISSING_ACTUALS')) AS lacking,
                  (SELECT count(*) FROM event_performance f WHERE f.event_id = p.event_id
                     AND f.reduction_kwh <= 0 AND f.status IN ('OK', 'PROVISIONAL')) AS not_delivered,
                  p.reduction_kwh, p.avg_reduction_kw,
                  (SELECT mode(m.timezone) FROM event_performance f JOIN meters m USING (meter_id)
                     WHERE f.event_id = p.event_id) AS zone
           FROM ({PROGRAM_EVENTS}) p ORDER BY p.start_utc DESC, p.event_id"""
    ).fetchall()
    return [
        {
            "event": event,
            "program": program,
            # one column, local then UTC: the table must fit the UI's metadata column without scrolling
            "start": f"{local_time(start, zone)}, {start.astimezone(dt.UTC):%H:%M} UTC",
            "meters": meters,
            "ok": ok,
            "lacking": lacking,
            "not_delivered": idle,
            "reduction_kwh": _kwh(reduction),
            "avg_kw": _kwh(avg_kw),
        }
        for event, program, start, meters, ok, lacking, idle, reduction, avg_kw, zone in rows
    ]


def event_meters(con: duckdb.DuckDBPyConnection, event_id: str) -> list[dict]:
    """Every meter enrolled in the event: status and why, baseline, actual, reduction, average kW, intervals."""
    rows = con.execute(
        """SELECT meter_id, status, baseline_kwh, actual_kwh, reduction_kwh, avg_reduction_kw,
                  intervals_present, intervals_expected
           FROM event_performance WHERE event_id = ? ORDER BY reduction_kwh DESC NULLS LAST, meter_id""",
        [event_id],
    ).fetchall()
    return [
        {
            "meter": meter,
            "status": status,
            "why": STATUS_SHORT.get(status, ""),
            "baseline_kwh": _kwh(baseline),
            "actual_kwh": _kwh(actual),
            "reduction_kwh": _kwh(reduction),
            "avg_kw": _kwh(avg_kw),
            "delivered": "" if reduction is None else "yes" if reduction > 0 else "no",
            "intervals": f"{present}/{expected}",
        }
        for meter, status, baseline, actual, reduction, avg_kw, present, expected in rows
    ]


# look-back day outcomes in a few words, in the engine's order, for the UI's explanation tables
_OUTCOME_WORDS = {
    "NOT_SELECTED": "ranked out",
    "BEYOND_Y": "older",
    "TOO_FEW_DAYS": "too few",
    "LOW_USAGE": "low use",
    "MISSING_SLOTS": "missing readings",
    "EVENT_DAY": "event day",
    "HOLIDAY": "holiday",
    "WRONG_DAY_TYPE": "other day type",
    "OUTSIDE_LOOKBACK": "too recent",
}


def event_explanations(con: duckdb.DuckDBPyConnection, event_id: str) -> list[dict]:
    """Why each meter's baseline is what it is: the rule, how many look-back days were used, the others counted
    by why not, and the adjustment window (slots present, factor before and after the cap) (docs/baselines.md,
    "Explanations"; partners get the day-by-day list in explanation.csv). Few, short columns: the UI gives an
    inline table little width."""
    counts: dict[str, dict[str, int]] = {}
    for meter, outcome, n in con.execute(
        "SELECT meter_id, outcome, count(*) FROM baseline_days WHERE event_id = ? GROUP BY ALL", [event_id]
    ).fetchall():
        counts.setdefault(meter, {})[outcome] = n
    rows = con.execute(
        """SELECT meter_id, day_type, days_wanted, selection, days_kept, adjustment_kind,
                  adjustment_slots_present, adjustment_slots_expected, adjustment_raw, adjustment_applied
           FROM baseline_explanations WHERE event_id = ? ORDER BY meter_id""",
        [event_id],
    ).fetchall()
    out = []
    for meter, day_type, y, selection, x, kind, present, expected, raw, applied in rows:
        mine = counts.get(meter, {})
        out.append(
            {
                "meter": meter,
                "rule": _rule_text(day_type, y, selection, x, kind),
                "used": mine.get("SELECTED", 0),
                "not_used": ", ".join(f"{mine[o]} {w}" for o, w in _OUTCOME_WORDS.items() if mine.get(o)),
                "adjustment": kind,
                "window": f"{present}/{expected}" if expected else "",
                "raw": None if raw is None else round(raw, 4),
                "applied": None if applied is None else round(applied, 4),
            }
        )
    return out


def _rule_text(day_type: str | None, y: int | None, selection: str | None, x: int | None, kind: str) -> str:
    if kind in ("same_day", "zero"):
        return {"same_day": "event day's own window", "zero": "no baseline"}[kind]
    if y is None:
        return f"no rule for {day_type} days"
    return f"{y} {day_type} days" + ("" if selection == "all" else f", {selection} {x or ''}".rstrip())


def program_totals(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per program: events, reduction kWh and the aggregate average kW over all its event hours."""
    rows = con.execute(
        f"""SELECT program_id, count(*), sum(reduction_kwh), sum(reduction_kwh) / sum(event_hours)
           FROM ({PROGRAM_EVENTS}) GROUP BY ALL ORDER BY program_id"""
    ).fetchall()
    return [
        {"program": program, "events": n, "reduction_kwh": _kwh(kwh), "avg_kw": _kwh(kw)}
        for program, n, kwh, kw in rows
    ]


def lacking_data(con: duckdb.DuckDBPyConnection, ended_since: dt.datetime | None = None) -> list[dict]:
    """Each meter and event without full numbers, named, with what would clear it (only events that ended
    since `ended_since`, if given)."""
    rows = con.execute(
        """SELECT f.event_id, f.meter_id, f.status, f.intervals_present, f.intervals_expected
           FROM event_performance f JOIN dr_events e USING (event_id)
           WHERE f.status IN ('INSUFFICIENT_DAYS', 'NO_ADJUSTMENT_DATA', 'MISSING_ACTUALS')
             AND (CAST(? AS TIMESTAMPTZ) IS NULL OR e.end_utc >= ?)
           ORDER BY f.event_id, f.meter_id""",
        [ended_since, ended_since],
    ).fetchall()
    return [
        {
            "event": event,
            "meter": meter,
            "status": status,
            "intervals": f"{present}/{expected}",
            "to_clear_it": STATUS_REASONS[status],
        }
        for event, meter, status, present, expected in rows
    ]


def not_delivered(con: duckdb.DuckDBPyConnection, ended_since: dt.datetime | None = None) -> list[dict]:
    """Each meter and event with full numbers (OK or PROVISIONAL) but no reduction (reduction <= 0): its data
    is complete enough to judge, and it did not shed load (or, for a battery, did not discharge). A meter
    lacking data is sufficiency's concern, not this. Only events that ended since `ended_since`, if given."""
    rows = con.execute(
        """SELECT f.event_id, e.program_id, f.meter_id, f.status, f.baseline_kwh, f.actual_kwh, f.reduction_kwh
           FROM event_performance f JOIN dr_events e USING (event_id)
           WHERE f.reduction_kwh <= 0 AND f.status IN ('OK', 'PROVISIONAL') AND (CAST(? AS TIMESTAMPTZ) IS NULL OR e.end_utc >= ?)
           ORDER BY e.start_utc DESC, f.event_id, f.reduction_kwh, f.meter_id""",
        [ended_since, ended_since],
    ).fetchall()
    return [
        {
            "event": event,
            "program": program,
            "meter": meter,
            "status": status,
            "baseline_kwh": _kwh(baseline),
            "actual_kwh": _kwh(actual),
            "reduction_kwh": _kwh(reduction),
        }
        for event, program, meter, status, baseline, actual, reduction in rows
    ]


def seasons(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per program and season: meters, and the average kW over all event hours (missed events count as 0)."""
    rows = con.execute(
        """SELECT program_id, season_id, count(*), max(events), sum(reduction_kwh), sum(reduction_kwh) / max(event_hours)
           FROM season_performance GROUP BY ALL ORDER BY program_id, season_id"""
    ).fetchall()
    return [
        {
            "program": program,
            "season": season,
            "meters": meters,
            "events": events_,
            "reduction_kwh": _kwh(kwh),
            "avg_kw": _kwh(kw),
        }
        for program, season, meters, events_, kwh, kw in rows
    ]

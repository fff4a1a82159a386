"""Settle events: run the engine for every ended event whose inputs changed and store its baselines.

An event's inputs digest covers the configuration in force (meters, enrollments, programs, events), the engine
version, the `holidays` package version (its calendars decide day types), and the readings its baselines may read (count and latest load time of its meters' readings in the
event's reading range: readings are never deleted, and a replaced one is reloaded later). An event is
recomputed when that digest differs from the stored one, so a late or corrected upload recomputes exactly the
events whose look-back, adjustment window or event window it touches. Digests are only taken where something
may have changed (see `stale_events`), so an hourly run with nothing new costs one filtered scan of the load
times. Each event is written in one transaction, so a crash leaves it either fully old or fully new; a re-run
finishes the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import NamedTuple

import duckdb

from leap_orchestration.settlement.calendars import holidays_version
from leap_orchestration.settlement.engine import EventResult, EventSpec, compute_event, reading_range
from leap_orchestration.settlement.presets import preset_for
from leap_orchestration.warehouse.duck import atomically, run

# Bump when a change to the engine or the presets changes results: every event is then recomputed once.
ENGINE_VERSION = "3"
WATERMARK_MARGIN = dt.timedelta(minutes=10)


@dataclass
class SettleReport:
    computed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_ended: list[str] = field(default_factory=list)
    removed: int = 0


def event_specs(con: duckdb.DuckDBPyConnection) -> list[EventSpec]:
    """Every configured event with its program's preset (overrides applied), channel and holiday calendar."""
    rows = con.execute("""SELECT e.event_id, e.program_id, e.start_utc, e.end_utc, p.baseline_preset,
                                 coalesce(p.overrides, '{}'), p.channel, p.holiday_calendar
                          FROM dr_events e JOIN programs p USING (program_id) ORDER BY e.start_utc, e.event_id""").fetchall()
    return [
        EventSpec(
            event_id,
            program_id,
            start.astimezone(dt.UTC),
            end.astimezone(dt.UTC),
            preset_for(preset, json.loads(overrides)),
            channel,
            calendar,
        )
        for event_id, program_id, start, end, preset, overrides, channel, calendar in rows
    ]


def _config_digest(con) -> str:
    """A hash of the configuration rows the engine reads (not the files' fingerprint: the same files loaded into
    tables that now hold more, after an upgrade, must count as a change)."""
    return con.execute("""SELECT md5(coalesce(string_agg(row, '|' ORDER BY row), '')) FROM (
        SELECT concat_ws(',', 'p', program_id, baseline_preset, channel, holiday_calendar,
                         coalesce(overrides::VARCHAR, '-'), coalesce(clip, '-')) AS row FROM programs
        UNION ALL SELECT concat_ws(',', 'e', event_id, program_id, epoch_us(start_utc), epoch_us(end_utc)) FROM dr_events
        UNION ALL SELECT concat_ws(',', 'n', meter_id, program_id, epoch_us(valid_from), coalesce(epoch_us(valid_to), -1))
                  FROM meter_enrollments
        UNION ALL SELECT concat_ws(',', 'm', meter_id, coalesce(timezone, '-')) FROM meters)""").fetchall()[
        0
    ][0]


def inputs_digests(con: duckdb.DuckDBPyConnection, events: list[EventSpec]) -> dict[str, str]:
    if not events:
        return {}
    config = _config_digest(con)
    ranges = [(e.event_id, e.program_id, e.start_utc, *reading_range(e), e.channel) for e in events]
    run(
        con,
        "CREATE OR REPLACE TEMP TABLE _digest_events (event_id VARCHAR, program_id VARCHAR, start_utc TIMESTAMPTZ, "
        "lo TIMESTAMPTZ, hi TIMESTAMPTZ, channel VARCHAR)",
    )
    con.executemany("INSERT INTO _digest_events VALUES (?, ?, ?, ?, ?, ?)", ranges)
    stats = dict(
        (
            (event_id, (n, latest))
            for event_id, n, latest in con.execute("""
        SELECT e.event_id, count(r.meter_id), epoch_us(max(r.loaded_at))
        FROM _digest_events e
        LEFT JOIN meter_enrollments en ON en.program_id = e.program_id AND en.valid_from <= e.start_utc
             AND (en.valid_to IS NULL OR en.valid_to > e.start_utc)
        LEFT JOIN interval_readings r ON r.meter_id = en.meter_id AND r.interval_start_utc >= e.lo AND r.interval_start_utc < e.hi
        GROUP BY e.event_id""").fetchall()
        )
    )
    return {
        e.event_id: hashlib.sha256(
            json.dumps(
                [ENGINE_VERSION, holidays_version(), config, repr(e), stats.get(e.event_id)], default=str
            ).encode()
        ).hexdigest()
        for e in events
    }


def _state_key(con) -> str:
    return json.dumps([ENGINE_VERSION, holidays_version(), _config_digest(con)])


class Staleness(NamedTuple):
    events: list[EventSpec]  # every configured event
    ended: list[EventSpec]
    stale: list[EventSpec]  # ended, and the stored digest is missing or differs
    digests: dict[str, str]  # current digests of the events looked at
    stored: dict[str, str]  # event id -> digest as stored
    state_key: str  # configuration, engine and holidays versions as of this look


def stale_events(con: duckdb.DuckDBPyConnection, now: dt.datetime, force: bool = False) -> Staleness:
    """Which ended events need recomputing.

    A digest costs a pass over the event's readings, so it is only taken where inputs may have changed: for every
    event after a configuration, engine or `holidays` change, else for events never settled and events whose
    reading range overlaps readings loaded since the last settlement (`settlement_state`'s watermark)."""
    events = event_specs(con)
    ended = [e for e in events if e.end_utc <= now]
    stored = dict(con.execute("SELECT event_id, inputs_digest FROM settled_events").fetchall())
    state = con.execute("SELECT state_key, readings_watermark FROM settlement_state").fetchall()
    key = _state_key(con)
    candidates = ended
    if not force and state and state[0][0] == key:
        lo, hi = con.execute(
            """SELECT min(interval_start_utc), max(interval_start_utc) FROM interval_readings
                                WHERE loaded_at > ?""",
            [state[0][1]],
        ).fetchall()[0]

        def touched(e: EventSpec) -> bool:
            first, last = reading_range(e)
            return lo is not None and first <= hi and lo < last

        candidates = [e for e in ended if e.event_id not in stored or touched(e)]
    digests = inputs_digests(con, candidates)
    stale = [e for e in candidates if force or stored.get(e.event_id) != digests[e.event_id]]
    return Staleness(events, ended, stale, digests, stored, key)


def settle(
    con: duckdb.DuckDBPyConnection, now: dt.datetime, run_id: str | None = None, force: bool = False, log=None
) -> SettleReport:
    """Recompute every ended event whose inputs changed (all of them with force); drop what no longer exists."""
    # readings loaded from here on are looked at next time; the margin covers a load still committing now
    watermark = dt.datetime.now(dt.UTC) - WATERMARK_MARGIN
    look = stale_events(con, now, force)
    keep = [e.event_id for e in look.ended]
    report = SettleReport(
        not_ended=[e.event_id for e in look.events if e.end_utc > now],
        unchanged=[e.event_id for e in look.ended if e not in look.stale],
        removed=len(set(look.stored) - set(keep)),
    )

    def drop_removed() -> None:
        for table in (*EVENT_TABLES, "settled_events"):
            run(con, f"DELETE FROM {table} WHERE NOT list_contains(?, event_id)", [keep])

    atomically(con, drop_removed)
    if (
        look.stale
    ):  # until this run ends, the next one must not trust the fast path (a crash may leave mixed inputs)
        run(con, "DELETE FROM settlement_state")
    for event in look.stale:
        _store(con, event, compute_event(con, event), look.digests[event.event_id], now, run_id)
        report.computed.append(event.event_id)
        if log:
            log(event.event_id)
    run(con, "DELETE FROM settlement_state")
    run(
        con,
        "INSERT INTO settlement_state (state_key, readings_watermark, settled_at) VALUES (?, ?, ?)",
        [look.state_key, watermark, now],
    )
    return report


# what _store keeps of each frame of the engine's result: table, the frame's columns, the event's own columns
_BY_EVENT = ("event_id", "program_id", "method")
_STORED = {
    "baselines": (
        "baselines",
        "meter_id, interval_start_utc, baseline_kwh, adjusted_baseline_kwh, actual_kwh, final",
        _BY_EVENT,
    ),
    "status": (
        "baseline_status",
        "meter_id, status, selected_days, adjustment, intervals_expected, intervals_present, actual_kwh",
        _BY_EVENT,
    ),
    "days": (
        "baseline_days",
        "meter_id, day, day_type, outcome, slots_missing, event_window_mean_kwh",
        ("event_id",),
    ),
    "explanations": (
        "baseline_explanations",
        "meter_id, event_day, day_type, days_wanted, selection, days_kept, lookback_days, adjustment_kind, "
        "adjustment_cap, adjustment_slots_expected, adjustment_slots_present, adjustment_window_actual_kwh, "
        "adjustment_window_baseline_kwh, adjustment_raw, adjustment_applied",
        ("event_id",),
    ),
    "missing": ("missing_intervals", "meter_id, interval_start_utc, window_kind", ("event_id",)),
}
# tables that hold one event's results, replaced together
EVENT_TABLES = tuple(table for table, _, _ in _STORED.values())


def _store(
    con, event: EventSpec, result: EventResult, digest: str, now: dt.datetime, run_id: str | None
) -> None:
    own = {
        "event_id": event.event_id,
        "program_id": event.program_id,
        "method": event.preset.name,
        "now": now,
    }

    def replace() -> None:
        for table in (*EVENT_TABLES, "settled_events"):
            run(con, f"DELETE FROM {table} WHERE event_id = ?", [event.event_id])
        for attribute, (table, columns, keys) in _STORED.items():
            con.register("engine_frame", getattr(result, attribute))
            try:
                run(
                    con,
                    f"""INSERT INTO {table} ({columns}, {", ".join(keys)}, computed_at)
                    SELECT {columns}, {", ".join("$" + k for k in keys)}, $now FROM engine_frame""",
                    {k: own[k] for k in (*keys, "now")},
                )
            finally:
                con.unregister("engine_frame")
        run(
            con,
            """INSERT INTO settled_events (event_id, inputs_digest, meters, computed_at, run_id)
            VALUES (?, ?, ?, ?, ?)""",
            [event.event_id, digest, result.status.height, now, run_id],
        )

    atomically(con, replace)

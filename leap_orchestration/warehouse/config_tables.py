"""Load a validated configuration into the warehouse, all or nothing."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import polars as pl

from leap_orchestration.config.models import Configuration
from leap_orchestration.intake.meters import ownership_frame
from leap_orchestration.warehouse.duck import run, transaction

PROGRAM_COLUMNS = (
    "program_id",
    "name",
    "baseline_preset",
    "channel",
    "holiday_calendar",
    "overrides",
    "clip",
    "data_deadline",
)


def replace_configuration(con: duckdb.DuckDBPyConnection, cfg: Configuration) -> dict[str, int]:
    now = dt.datetime.now(dt.UTC)
    meters = [
        (
            m.meter_id,
            m.owner_at(now),
            m.meter_type,
            m.timezone,
            m.config_uri,
            m.meter_number,
            m.source,
            m.device_type,
            m.customer_class,
            m.region,
        )
        for m in cfg.meters
    ]
    ownership = [
        (m.meter_id, o.partner_id, o.valid_from, o.valid_to) for m in cfg.meters for o in m.ownerships
    ]
    enrollments = [
        (m.meter_id, e.program_id, e.valid_from, e.valid_to) for m in cfg.meters for e in m.enrollments
    ]
    programs = [
        (
            p.program_id,
            p.name,
            p.baseline_preset,
            p.channel,
            p.holiday_calendar,
            json.dumps(p.override_dict),
            p.clip,
            p.data_deadline,
        )
        for p in cfg.programs
    ]
    seasons = [(p.program_id, s.season_id, s.start_utc, s.end_utc) for p in cfg.programs for s in p.seasons]
    events = [(e.event_id, e.program_id, e.start_utc, e.end_utc, e.event_type) for e in cfg.events]
    with transaction(con):
        for table, rows, columns in (
            ("meters", meters, 10),
            ("meter_ownership", ownership, 4),
            ("meter_enrollments", enrollments, 4),
            ("programs", programs, PROGRAM_COLUMNS),
            ("program_seasons", seasons, 4),
            ("dr_events", events, 5),
        ):
            run(con, f"DELETE FROM {table}")
            if rows and isinstance(columns, tuple):  # by column name
                con.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})",
                    rows,
                )
            elif rows:
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join(['?'] * columns)})", rows)
        run(
            con,
            "INSERT INTO config_loads VALUES (?, ?, ?, ?, ?)",
            [cfg.fingerprint, now, len(meters), len(programs), len(events)],
        )
    return {
        "meters": len(meters),
        "ownership_windows": len(ownership),
        "enrollments": len(enrollments),
        "programs": len(programs),
        "dr_events": len(events),
    }


def ownership_from_configuration(cfg: Configuration) -> pl.DataFrame:
    """The same frame the warehouse gives, straight from the XML files (for pre-flight validation)."""
    return ownership_frame(
        [
            (m.meter_id, o.partner_id, m.source, o.valid_from, o.valid_to)
            for m in cfg.meters
            for o in m.ownerships
        ]
    )

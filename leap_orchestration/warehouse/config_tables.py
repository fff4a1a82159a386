"""Load a validated configuration into the warehouse, all or nothing."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import polars as pl

from leap_orchestration.config.models import Configuration
from leap_orchestration.config.ownership import ownership_frame
from leap_orchestration.warehouse.duck import atomically, run

# Each table's columns, in the order of the rows built below: inserts name them, so a column added to a table
# (schema.sql) never shifts a value into the wrong place.
COLUMNS = {
    "meters": (
        "meter_id",
        "partner_id",
        "meter_type",
        "timezone",
        "config_uri",
        "meter_number",
        "source",
        "device_type",
        "customer_class",
        "region",
    ),
    "meter_ownership": ("meter_id", "partner_id", "valid_from", "valid_to"),
    "meter_enrollments": ("meter_id", "program_id", "valid_from", "valid_to"),
    "programs": (
        "program_id",
        "name",
        "baseline_preset",
        "channel",
        "holiday_calendar",
        "overrides",
        "clip",
        "data_deadline",
    ),
    "program_seasons": ("program_id", "season_id", "start_utc", "end_utc"),
    "dr_events": ("event_id", "program_id", "start_utc", "end_utc", "event_type"),
}


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

    def replace() -> None:
        for table, rows in (
            ("meters", meters),
            ("meter_ownership", ownership),
            ("meter_enrollments", enrollments),
            ("programs", programs),
            ("program_seasons", seasons),
            ("dr_events", events),
        ):
            run(con, f"DELETE FROM {table}")
            if rows:
                columns = COLUMNS[table]
                con.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})",
                    rows,
                )
        run(
            con,
            "INSERT INTO config_loads (fingerprint, loaded_at, meters, programs, events) VALUES (?, ?, ?, ?, ?)",
            [cfg.fingerprint, now, len(meters), len(programs), len(events)],
        )

    atomically(con, replace)
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

"""Review findings on settlement: the fast path of `stale_events` must not keep results computed from inputs
that are no longer in force, and a warehouse migrated from before `programs.overrides/clip` must settle right."""

import datetime as dt
import json

import duckdb
import pytest
from test_settlement import NOW, add_event, add_meter, add_program, load, local, settle_dying_at_second_event

from leap_orchestration.settlement import settle as settle_module
from leap_orchestration.settlement.performance import rebuild_event_performance
from leap_orchestration.settlement.settle import settle
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import run

JULY, SEPT = dt.date(2025, 7, 16), dt.date(2025, 9, 17)


@pytest.fixture
def con(blank_warehouse):
    with blank_warehouse.connect() as c:
        run(c, "INSERT INTO config_loads VALUES ('fp-1', now(), 0, 0, 0)")
        yield c


def _two_events(con):
    add_meter(con, "m", "p")
    # the day's load is its day of month / 10, so which days a baseline used shows in its value
    load(con, "m", dt.date(2025, 6, 1), dt.date(2025, 9, 30), lambda d, lt: d.day / 10)
    add_event(con, "a", "p", local(JULY, 16), local(JULY, 17))
    add_event(con, "b", "p", local(SEPT, 16), local(SEPT, 17))


def _baseline(con, event_id):
    return con.execute(
        "SELECT DISTINCT round(baseline_kwh, 9) FROM baselines WHERE event_id = ?", [event_id]
    ).fetchall()


def _load_config(con, fingerprint, overrides):
    """What replace_configuration does: the programs row replaced and a config_loads row appended."""
    run(con, "UPDATE programs SET overrides = ? WHERE program_id = 'p'", [json.dumps(overrides)])
    ((n,),) = con.execute("SELECT count(*) FROM config_loads").fetchall()
    run(
        con,
        "INSERT INTO config_loads VALUES (?, ?, 0, 0, 0)",
        [fingerprint, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=n)],
    )


def test_config_reverted_after_a_crashed_settlement_recomputes_what_the_crashed_run_wrote(con, monkeypatch):
    monkeypatch.setattr(settle_module, "WATERMARK_MARGIN", dt.timedelta(0))
    add_program(con, "p")
    _two_events(con)
    settle(con, NOW)  # configuration A, 10 weekdays
    expected = _baseline(con, "a")
    # configuration B (5 days) is loaded; its settlement dies after storing event a
    _load_config(con, "fp-B", {"days": "5"})
    settle_dying_at_second_event(con, monkeypatch)
    assert _baseline(con, "a") != expected  # a was stored under B
    # the operator reverts to A (same bytes, same fingerprint): a must go back to its A baseline
    _load_config(con, "fp-1", {})
    settle(con, NOW)
    assert _baseline(con, "a") == expected


@pytest.fixture
def migrated(tmp_path):
    """A warehouse created before this change (programs without overrides/clip, as a2ea112's schema and
    replace_configuration wrote it), opened by the current code: schema.sql adds the columns, NULL. The
    configuration sensor does not reload unchanged files (its cursor is their fingerprint), so they stay NULL."""
    path = tmp_path / "w.duckdb"
    old = duckdb.connect(str(path))
    old.execute("""CREATE TABLE programs (program_id VARCHAR PRIMARY KEY, name VARCHAR, baseline_preset VARCHAR,
                                          channel VARCHAR, holiday_calendar VARCHAR)""")
    old.execute("INSERT INTO programs VALUES ('p', 'p', 'caiso_10in10', 'net', 'NERC')")
    old.close()
    with Warehouse(path).connect() as c:
        run(c, "INSERT INTO config_loads VALUES ('fp-1', now(), 0, 0, 0)")
        yield c


def test_a_migrated_warehouse_builds_event_performance(migrated):
    _two_events(migrated)
    settle(migrated, NOW)
    assert rebuild_event_performance(migrated, NOW) == 2  # NOT NULL constraint failed: event_performance.clip


def test_reloading_an_unchanged_configuration_into_migrated_tables_recomputes(migrated, monkeypatch):
    monkeypatch.setattr(settle_module, "WATERMARK_MARGIN", dt.timedelta(0))
    _two_events(migrated)
    settle(migrated, NOW)  # the program's override (days=5) is not in the warehouse yet: 10 days are used
    # the same files are loaded again (an operator materializes meter_configuration): the row now holds them
    _load_config(migrated, "fp-1", {"days": "5"})
    run(migrated, "UPDATE programs SET clip = 'none'")
    assert settle(migrated, NOW).computed == ["a", "b"]

"""Settlement end to end below Dagster and through it: stored baselines, event performance and roll-ups,
recomputation on changed readings, crash recovery, the assets, checks, metadata and the sensor."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest

from leap_orchestration.settlement import settle as settle_module
from leap_orchestration.settlement import views
from leap_orchestration.settlement.performance import (
    rebuild_event_performance,
    rebuild_hourly,
    rebuild_program_events,
    rebuild_seasons,
)
from leap_orchestration.settlement.settle import settle
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import run

LA = ZoneInfo("America/Los_Angeles")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EVENT_DAY = dt.date(2025, 8, 20)  # a Wednesday


def local(day: dt.date, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, h, mi, tzinfo=LA).astimezone(dt.UTC)


@pytest.fixture
def con(blank_warehouse):
    with blank_warehouse.connect() as c:
        run(c, "INSERT INTO config_loads VALUES ('fp-1', now(), 0, 0, 0)")
        yield c


def add_program(con, program_id, preset="caiso_10in10", channel="net", clip="none", overrides=None):
    run(
        con,
        """INSERT INTO programs (program_id, name, baseline_preset, channel, holiday_calendar, overrides, clip)
           VALUES (?, ?, ?, ?, 'NERC', ?, ?)""",
        [program_id, program_id, preset, channel, json.dumps(overrides or {}), clip],
    )


def add_meter(con, meter_id, *programs):
    run(con, "INSERT INTO meters (meter_id, timezone) VALUES (?, 'America/Los_Angeles')", [meter_id])
    for p in programs:
        run(con, "INSERT INTO meter_enrollments VALUES (?, ?, '2025-01-01', NULL)", [meter_id, p])


def add_event(con, event_id, program_id, start, end):
    run(con, "INSERT INTO dr_events VALUES (?, ?, ?, ?, 'x')", [event_id, program_id, start, end])


def load(con, meter_id, first: dt.date, last: dt.date, value, generated=None, final=True):
    """Every interval of local days first..last; value(day, local time) -> net kWh (consumed = net)."""
    rows, t = [], local(first, 0)
    stop = local(last + dt.timedelta(days=1), 0)
    while t < stop:
        lt = t.astimezone(LA)
        v = value(lt.date(), lt)
        g = generated(lt.date(), lt) if generated else 0.0
        rows.append((meter_id, t, t + dt.timedelta(minutes=15), v + g, g, v, final))
        t += dt.timedelta(minutes=15)
    con.register("frame", pl.DataFrame(rows, schema=["m", "s", "e", "c", "g", "n", "f"], orient="row"))
    run(
        con,
        """INSERT INTO interval_readings SELECT m, s, e, c, g, n, f, 'CA', 'job', now(), now() FROM frame""",
    )
    con.unregister("frame")


def rebuild(con):
    rebuild_event_performance(con, NOW)
    rebuild_hourly(con)
    rebuild_program_events(con)
    rebuild_seasons(con)


def perf(con, event_id):
    return {
        r[0]: r[1:]
        for r in con.execute(
            """
        SELECT meter_id, baseline_kwh, actual_kwh, reduction_kwh, avg_reduction_kw, intervals_expected, intervals_present, status
        FROM event_performance WHERE event_id = ?""",
            [event_id],
        ).fetchall()
    }


def in_event(lt: dt.datetime) -> bool:
    return lt.date() == EVENT_DAY and 16 <= lt.hour < 17


def test_reduction_sign_clip_and_rollups(con):
    # flat 1.0 kWh per interval; during the event (16:00-17:00) 0.4 => reduction 0.6 per interval, 2.4 kWh, 2.4 kW
    add_program(con, "net_prog")
    add_program(con, "battery_prog", preset="no_baseline", channel="generated")
    add_program(con, "clipped", clip="interval")
    add_meter(con, "m-net", "net_prog")
    add_meter(con, "m-bat", "battery_prog")
    add_meter(con, "m-up", "clipped")
    first = EVENT_DAY - dt.timedelta(days=40)
    load(con, "m-net", first, EVENT_DAY, lambda d, lt: 0.4 if in_event(lt) else 1.0)
    load(
        con,
        "m-bat",
        first,
        EVENT_DAY,
        lambda d, lt: 1.0,
        generated=lambda d, lt: 1.25 if in_event(lt) else 0.0,
    )
    # two intervals below and two above the baseline of 1.0: clipped per interval only the savings count
    load(
        con, "m-up", first, EVENT_DAY, lambda d, lt: (0.5 if lt.minute < 30 else 1.5) if in_event(lt) else 1.0
    )
    for event_id, program in (("e-net", "net_prog"), ("e-bat", "battery_prog"), ("e-up", "clipped")):
        add_event(con, event_id, program, local(EVENT_DAY, 16), local(EVENT_DAY, 17))
    # the adjustment window [12:00, 15:00) is flat 1.0 on the event day: ratio 1
    report = settle(con, NOW)
    assert sorted(report.computed) == ["e-bat", "e-net", "e-up"]
    rebuild(con)
    assert perf(con, "e-net")["m-net"] == pytest.approx((4.0, 1.6, 2.4, 2.4, 4, 4, "OK"))
    # generated channel: actual − baseline, baseline 0; 4 × 1.25 kWh = 5 kWh over 1 h = 5 kW
    assert perf(con, "e-bat")["m-bat"] == pytest.approx((0.0, 5.0, 5.0, 5.0, 4, 4, "OK"))
    # interval clip: 2 × 0.5 saved, 2 × −0.5 clipped to 0 => 1.0 kWh (unclipped it would be 0)
    assert perf(con, "e-up")["m-up"][2] == pytest.approx(1.0)
    hourly = con.execute(
        "SELECT meter_id, hour_start_utc, reduction_kwh FROM event_performance_hourly ORDER BY 1"
    ).fetchall()
    assert [(m, h, round(r, 6)) for m, h, r in hourly] == [
        ("m-bat", local(EVENT_DAY, 16), 5.0),
        ("m-net", local(EVENT_DAY, 16), 2.4),
        ("m-up", local(EVENT_DAY, 16), 1.0),
    ]
    events = dict(con.execute("SELECT event_id, avg_reduction_kw FROM program_event_performance").fetchall())
    assert events == pytest.approx({"e-net": 2.4, "e-bat": 5.0, "e-up": 1.0})


def test_event_clip_and_incomplete_hour_dropped(con):
    add_program(con, "p", clip="event")
    add_meter(con, "m", "p")
    load(con, "m", EVENT_DAY - dt.timedelta(days=40), EVENT_DAY, lambda d, lt: 1.5 if in_event(lt) else 1.0)
    run(con, "DELETE FROM interval_readings WHERE interval_start_utc = ?", [local(EVENT_DAY, 16, 45)])
    add_event(con, "e", "p", local(EVENT_DAY, 16), local(EVENT_DAY, 17))
    settle(con, NOW)
    rebuild(con)
    baseline, actual, reduction, kw, expected, present, status = perf(con, "e")["m"]
    # three present intervals at 1.5 against 1.0: −1.5 kWh, clipped at the event level to 0
    assert (baseline, actual, reduction, kw, expected, present, status) == pytest.approx(
        (3.0, 4.5, 0.0, 0.0, 4, 3, "MISSING_ACTUALS")
    )
    assert con.execute("SELECT count(*) FROM event_performance_hourly").fetchall() == [
        (0,)
    ]  # 3 of 4 intervals


def test_season_average_counts_a_missed_event_as_zero(con):
    add_program(con, "cs", preset="no_baseline", channel="generated")
    run(con, "INSERT INTO program_seasons VALUES ('cs', 'summer', '2025-06-01', '2025-10-01')")
    add_meter(con, "b1", "cs")
    add_meter(con, "b2", "cs")
    days = [EVENT_DAY, EVENT_DAY + dt.timedelta(days=1)]
    # b1 discharges 1 kWh per interval in both 1-hour events (4 kW); b2 only in the first; the second event is 2 h
    load(
        con,
        "b1",
        days[0],
        days[1],
        lambda d, lt: 0.5,
        generated=lambda d, lt: 1.0 if 16 <= lt.hour < 18 else 0.0,
    )
    load(
        con,
        "b2",
        days[0],
        days[1],
        lambda d, lt: 0.5,
        generated=lambda d, lt: 1.0 if d == days[0] and lt.hour == 16 else 0.0,
    )
    add_event(con, "ev1", "cs", local(days[0], 16), local(days[0], 17))
    add_event(con, "ev2", "cs", local(days[1], 16), local(days[1], 18))
    add_event(con, "winter", "cs", local(dt.date(2025, 12, 1), 16), local(dt.date(2025, 12, 1), 17))
    settle(con, NOW)
    rebuild(con)
    seasons = {
        (s, m): (n, h, kw)
        for s, m, n, h, kw in con.execute(
            "SELECT season_id, meter_id, events, event_hours, avg_reduction_kw FROM season_performance"
        ).fetchall()
    }
    # b1: (4 + 8) kWh / 3 h = 4 kW; b2: (4 + 0) / 3 h; the December event has no readings: zero, in season '2025'
    assert seasons[("summer", "b1")] == pytest.approx((2, 3.0, 4.0))
    assert seasons[("summer", "b2")] == pytest.approx((2, 3.0, 4 / 3))
    assert seasons[("2025", "b1")] == pytest.approx((1, 1.0, 0.0))


def test_changed_readings_recompute_exactly_the_affected_events(con, monkeypatch):
    # readings loaded within the margin before a settlement are looked at again by the next: none here
    monkeypatch.setattr(settle_module, "WATERMARK_MARGIN", dt.timedelta(0))
    add_program(con, "p")
    add_meter(con, "m", "p")
    load(con, "m", dt.date(2025, 6, 1), dt.date(2025, 9, 30), lambda d, lt: 1.0)
    add_event(con, "july", "p", local(dt.date(2025, 7, 16), 16), local(dt.date(2025, 7, 16), 17))
    add_event(con, "sept", "p", local(dt.date(2025, 9, 17), 16), local(dt.date(2025, 9, 17), 17))
    add_event(con, "future", "p", local(dt.date(2026, 7, 1), 16), local(dt.date(2026, 7, 1), 17))
    first = settle(con, NOW)
    assert sorted(first.computed) == ["july", "sept"] and first.not_ended == ["future"]
    assert settle(con, NOW).computed == []  # nothing changed: nothing recomputed
    digested = []
    real_digests = settle_module.inputs_digests
    monkeypatch.setattr(
        settle_module,
        "inputs_digests",
        lambda c, events: digested.append(sorted(e.event_id for e in events)) or real_digests(c, events),
    )
    settle(con, NOW)
    assert digested == [[]]  # nothing loaded since the last settlement: not even a digest is taken
    # a corrected upload for 10 September (in September's look-back only) replaces those readings
    run(
        con,
        """UPDATE interval_readings SET energy_net_kwh = 2.0, loaded_at = now() + INTERVAL 1 SECOND
                WHERE interval_start_utc >= ? AND interval_start_utc < ?""",
        [local(dt.date(2025, 9, 10), 0), local(dt.date(2025, 9, 11), 0)],
    )
    again = settle(con, NOW)
    assert again.computed == ["sept"] and "july" in again.unchanged
    assert digested[-1] == ["sept"]  # July's reading range does not reach 10 September: no digest taken
    rows = con.execute(
        "SELECT count(*), count(DISTINCT (meter_id, interval_start_utc)) FROM baselines WHERE event_id = 'sept'"
    ).fetchall()
    assert rows == [(4, 4)]  # replaced, not duplicated
    # the 10th is one of the 10 weekdays: the baseline is (9 × 1.0 + 2.0) / 10
    assert con.execute(
        "SELECT DISTINCT round(baseline_kwh, 9) FROM baselines WHERE event_id = 'sept'"
    ).fetchall() == [(1.1,)]
    run(con, "INSERT INTO config_loads VALUES ('fp-2', now() + INTERVAL 1 MINUTE, 0, 0, 0)")
    assert (
        settle(con, NOW).computed == []
    )  # the same configuration loaded again (say, a touched file): no change
    run(con, """UPDATE programs SET overrides = '{"days": "5"}'""")  # a new configuration: every event, once
    assert settle(con, NOW).computed == ["july", "sept"] and digested[-1] == ["july", "sept"]
    # an event removed from the configuration takes its rows with it
    run(con, "DELETE FROM dr_events WHERE event_id = 'july'")
    assert settle(con, NOW).removed == 1
    assert con.execute("SELECT count(*) FROM baselines WHERE event_id = 'july'").fetchall() == [(0,)]


def settle_dying_at_second_event(con, monkeypatch) -> None:
    """settle(), killed inside the second event's transaction, after its baselines were written."""
    real_run, stores = settle_module.run, []

    def dying_run(c, sql, params=None):
        if sql.startswith("INSERT INTO settled_events"):
            stores.append(params[0])
            if len(stores) == 2:
                raise RuntimeError("worker killed")
        real_run(c, sql, params)

    monkeypatch.setattr(settle_module, "run", dying_run)
    with pytest.raises(RuntimeError):
        settle(con, NOW)
    monkeypatch.setattr(settle_module, "run", real_run)


def test_a_crash_between_events_is_finished_by_the_next_run(con, monkeypatch):
    add_program(con, "p")
    add_meter(con, "m", "p")
    load(con, "m", dt.date(2025, 6, 1), dt.date(2025, 9, 30), lambda d, lt: 1.0)
    add_event(con, "a", "p", local(dt.date(2025, 7, 16), 16), local(dt.date(2025, 7, 16), 17))
    add_event(con, "b", "p", local(dt.date(2025, 9, 17), 16), local(dt.date(2025, 9, 17), 17))
    settle_dying_at_second_event(con, monkeypatch)
    assert con.execute("SELECT event_id FROM settled_events").fetchall() == [("a",)]
    assert con.execute("SELECT count(*) FROM baselines WHERE event_id = 'b'").fetchall() == [
        (0,)
    ]  # rolled back
    assert settle(con, NOW).computed == ["b"]
    counts = con.execute("SELECT event_id, count(*) FROM baselines GROUP BY 1 ORDER BY 1").fetchall()
    assert counts == [("a", 4), ("b", 4)]


# ---- through Dagster ----


def _demo_history_warehouse(leap_home):
    """The demo configuration and the demo history loaded straight into the warehouse (intake is tested elsewhere)."""
    from leap_orchestration.config.loader import load_configuration
    from leap_orchestration.demo_history import history_files
    from leap_orchestration.warehouse.config_tables import replace_configuration

    wh = Warehouse(leap_home / "warehouse.duckdb")
    lines = [line.rstrip("\n").split(",") for rows in history_files().values() for line in rows]
    frame = pl.DataFrame(lines, schema=["m", "s", "e", "n", "c", "g", "f", "r"], orient="row")
    with wh.connect() as c:
        replace_configuration(c, load_configuration(leap_home / "config"))
        c.register("frame", frame)
        run(
            c,
            """INSERT INTO interval_readings SELECT m, s::TIMESTAMPTZ, e::TIMESTAMPTZ, c::DOUBLE, g::DOUBLE, n::DOUBLE,
                  f = 'true', r, 'demo', now(), now() FROM frame""",
        )
    return wh


@pytest.mark.slow
def test_settlement_assets_checks_and_metadata(leap_home):
    from test_dagster import resources

    from assets.settlement import SETTLEMENT_ASSETS, SETTLEMENT_CHECKS

    _demo_history_warehouse(leap_home)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*SETTLEMENT_ASSETS, *SETTLEMENT_CHECKS], resources=resources(leap_home), instance=instance
    )
    assert result.success
    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    assert len(mats["baselines"]["events_recomputed"].value) == 8
    performance = mats["event_performance"]
    report = performance["chart details caiso_dsgs-2025-08-20"].value
    assert "data:image/png;base64," in report and "| best |" in report and "INSUFFICIENT_DAYS 1" in report
    # the UI shows Markdown inline only under 1,000 characters: every event's own chart fits, image and scale
    inline = {k: v.value for k, v in performance.items() if k.startswith("chart ") and "details" not in k}
    assert len(inline) == 8 and all(
        len(md) < 1000 and "data:image/png;base64," in md for md in inline.values()
    )
    assert "sum of 19 meters" in inline["chart caiso_dsgs-2025-08-20"]
    assert "2025-08-20 16:00–19:00 PDT" in inline["chart caiso_dsgs-2025-08-20"]
    # every event on its own: an inline table of every enrolled meter, with why a meter lacks numbers
    events = [r.data for r in performance["events"].value.records]
    assert len(events) == 8 and all(f"event {e['event']}" in performance for e in events)
    meters = [r.data for r in performance["event caiso_dsgs-2025-08-20"].value.records]
    event = next(e for e in events if e["event"] == "caiso_dsgs-2025-08-20")
    assert len(meters) == event["meters"] and event["start"] == "2025-08-20 16:00 PDT, 23:00 UTC"
    late = [m for m in meters if m["status"] == "INSUFFICIENT_DAYS"]
    assert len(late) == 1 and late[0]["reduction_kwh"] is None and late[0]["why"] == "too few eligible days"
    # why each baseline is what it is: the late joiner has too few look-back days, the others their 10 days
    explained = {
        r.data["meter"]: r.data
        for r in performance["baseline explanation caiso_dsgs-2025-08-20"].value.records
    }
    assert set(explained) == {m["meter"] for m in meters}
    assert explained[late[0]["meter"]]["used"] == 0 and "too few" in explained[late[0]["meter"]]["not_used"]
    ok = next(e for m, e in explained.items() if m != late[0]["meter"])
    assert ok["used"] == 10 and ok["rule"] == "10 weekday days" and ok["window"] == "12/12"
    assert "older" in ok["not_used"] and "other day type" in ok["not_used"]
    assert ok["adjustment"] == "multiplicative" and ok["raw"] is not None and 0.8 <= ok["applied"] <= 1.2
    # totals per program only (programs have different rules), rounded
    programs = {r.data["program"]: r.data for r in performance["programs"].value.records}
    assert len(programs) == 4 and all(p["events"] == 2 for p in programs.values())
    lacking = [r.data for r in performance["meters_lacking_data"].value.records]
    assert {row["status"] for row in lacking} == {"INSUFFICIENT_DAYS", "MISSING_ACTUALS"}
    seasons = [r.data for r in mats["season_performance"]["seasons"].value.records]
    assert {row["program"] for row in seasons} == set(programs)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["baselines_cover_events"].passed
    # the demo's late joiner and its gap are in summer 2025, long closed: history, listed but not a warning
    sufficiency = checks["event_performance_sufficiency"]
    assert sufficiency.passed and sufficiency.metadata["older_events_lacking_data"].value == 2
    assert "history" in sufficiency.description
    # delivery apart from data quality: the demo battery that missed an event has numbers and no reduction
    delivery = checks["event_performance_delivery"]
    assert delivery.passed and delivery.metadata["older_events_not_delivering"].value >= 1
    assert sum(e["not_delivered"] for e in events) == delivery.metadata["older_events_not_delivering"].value
    # the configuration's content did not change (same fingerprint) and neither did the readings: nothing recomputed,
    # and nothing below baselines materialized
    again = dg.materialize(SETTLEMENT_ASSETS, resources=resources(leap_home), instance=instance)
    recomputed = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in again.get_asset_materialization_events()
    }
    assert list(recomputed) == ["baselines"] and recomputed["baselines"]["events_unchanged"].value == 8


@pytest.mark.slow
def test_sufficiency_names_the_meters_of_recent_events_and_what_clears_it(leap_home, monkeypatch):
    from test_dagster import resources

    import assets.settlement as settlement_assets
    from assets.settlement import SETTLEMENT_ASSETS, SETTLEMENT_CHECKS

    _demo_history_warehouse(leap_home)
    monkeypatch.setattr(settlement_assets, "ACTIONABLE_DAYS", 100_000)  # as if the demo's events were recent
    result = dg.materialize([*SETTLEMENT_ASSETS, *SETTLEMENT_CHECKS], resources=resources(leap_home))
    sufficiency = {c.check_name: c for c in result.get_asset_check_evaluations()}[
        "event_performance_sufficiency"
    ]
    assert not sufficiency.passed and sufficiency.severity == dg.AssetCheckSeverity.WARN
    rows = [r.data for r in sufficiency.metadata["meters_lacking_data"].value.records]
    assert {r["status"] for r in rows} == {"INSUFFICIENT_DAYS", "MISSING_ACTUALS"} and all(
        r["to_clear_it"] for r in rows
    )
    assert "INSUFFICIENT_DAYS" in sufficiency.description and "To clear" in sufficiency.description
    delivery = {c.check_name: c for c in result.get_asset_check_evaluations()}["event_performance_delivery"]
    idle = [r.data for r in delivery.metadata["meters_not_delivering"].value.records]
    assert not delivery.passed and delivery.severity == dg.AssetCheckSeverity.WARN
    assert idle and all(r["reduction_kwh"] <= 0 and r["status"] not in views.LACKING for r in idle)
    assert idle[0]["meter"][:8] in delivery.description


def _tick(instance, at: dt.datetime, cursor=None):
    """One evaluation of the project's automation conditions at `at`: (requested assets, checks, cursor)."""
    from leap_orchestration.definitions import defs

    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at, cursor=cursor
    )
    requested = [r.key for r in result.results if r.true_subset.size]
    assets = {k.to_user_string() for k in requested if isinstance(k, dg.AssetKey)}
    checks = {k.name for k in requested if isinstance(k, dg.AssetCheckKey)}
    return assets, checks, result.cursor


def _run(leap_home, instance, assets: set) -> tuple[set, set]:
    """Execute what a tick requested (the assets with their checks): (assets materialized, checks evaluated)."""
    from test_dagster import resources

    from assets.settlement import SETTLEMENT_ASSETS, SETTLEMENT_CHECKS
    from assets.statements import performance_statements

    result = dg.materialize(
        [*SETTLEMENT_ASSETS, performance_statements, *SETTLEMENT_CHECKS],
        resources=resources(leap_home),
        instance=instance,
        selection=dg.AssetSelection.assets(*assets),
    )
    assert result.success
    return (
        {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()},
        {c.check_name for c in result.get_asset_check_evaluations()},
    )


@pytest.mark.slow
def test_settlement_runs_by_declarative_automation(leap_home):
    """New readings or configuration settle once; the hourly tick at minute 30 looks again and, with nothing
    changed, materializes baselines only; a run that did nothing new triggers nothing."""
    _demo_history_warehouse(leap_home)
    instance = dg.DagsterInstance.ephemeral()
    everything = {"baselines", "event_performance", "event_performance_hourly", "program_event_performance"}
    everything |= {"season_performance", "performance_statements"}
    checks = {"baselines_cover_events", "event_performance_sufficiency", "event_performance_delivery"}
    hour = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)

    assets, _, cursor = _tick(instance, hour + dt.timedelta(minutes=1))
    assert assets == set()  # no readings and no configuration yet, and not minute 30
    for key in ("meter_configuration", "interval_readings"):  # as the intake and configuration jobs do
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    assets, requested_checks, cursor = _tick(instance, hour + dt.timedelta(minutes=2), cursor)
    assert assets == everything and requested_checks == {"baselines_cover_events"}  # the others are in-op
    assert _run(leap_home, instance, assets) == (everything, checks)
    assets, _, cursor = _tick(instance, hour + dt.timedelta(minutes=3), cursor)
    assert assets == set()  # settled: nothing more

    assets, _, cursor = _tick(instance, hour + dt.timedelta(minutes=31), cursor)
    assert {
        "baselines",
        "performance_statements",
    } <= assets  # the hourly look (statements: a deadline may pass)
    # nothing changed: only baselines and the statements' look materialize (same data version), and every check
    # still reports its state
    assert _run(leap_home, instance, assets) == ({"baselines", "performance_statements"}, checks)
    versions = [
        r.asset_materialization.tags["dagster/data_version"]
        for r in instance.fetch_materializations(dg.AssetKey("baselines"), limit=2).records
    ]
    assert len(versions) == 2 and versions[0] == versions[1]
    assets, _, cursor = _tick(instance, hour + dt.timedelta(minutes=32), cursor)
    assert assets == set()

    instance.report_runless_asset_event(dg.AssetMaterialization("interval_readings"))  # new readings
    assets, _, cursor = _tick(instance, hour + dt.timedelta(minutes=40), cursor)
    assert assets == everything

"""The day-matching engine against hand-computed vectors (docs/baselines.md)."""

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from leap_orchestration.settlement.engine import EventSpec, compute_event
from leap_orchestration.settlement.presets import preset_for
from leap_orchestration.warehouse.duck import run

LA = ZoneInfo("America/Los_Angeles")
METER = "m-1"


def local(y, mo, d, h, mi=0):
    return dt.datetime(y, mo, d, h, mi, tzinfo=LA).astimezone(dt.UTC)


@pytest.fixture
def con(blank_warehouse):
    with blank_warehouse.connect() as c:
        run(c, "INSERT INTO meters (meter_id, timezone) VALUES (?, 'America/Los_Angeles')", [METER])
        run(c, "INSERT INTO meter_enrollments VALUES (?, 'p', '2025-01-01', NULL)", [METER])
        yield c


def load_days(con, values_by_day: dict[dt.date, float], event_day_values=None):
    """Every 15-minute interval of each local day at the day's value; event_day_values: {(h, m): v} overrides."""
    rows = []
    for day, value in values_by_day.items():
        t = dt.datetime(day.year, day.month, day.day, tzinfo=LA).astimezone(dt.UTC)
        end = (dt.datetime(day.year, day.month, day.day, tzinfo=LA) + dt.timedelta(days=1)).astimezone(dt.UTC)
        while t < end:
            lt = t.astimezone(LA)
            v = (
                (event_day_values or {}).get((lt.hour, lt.minute), value)
                if day == max(values_by_day)
                else value
            )
            rows.append((METER, t, t + dt.timedelta(minutes=15), v, True))
            t += dt.timedelta(minutes=15)
    con.register(
        "frame", pl.DataFrame(rows, schema=["meter_id", "start", "end", "net", "final"], orient="row")
    )
    run(
        con,
        """INSERT INTO interval_readings SELECT meter_id, start, "end", NULL, NULL, net, final, 'CA', 'job', now(), now()
                FROM frame""",
    )
    con.unregister("frame")


def event(start, end, preset="caiso_10in10", **overrides):
    return EventSpec("e", "p", start, end, preset_for(preset, overrides))


def result(con):
    rows = con.execute("""SELECT interval_start_utc, baseline_kwh, adjusted_baseline_kwh, actual_kwh
                          FROM _event_baselines ORDER BY 1""").fetchall()
    (status,) = con.execute("SELECT status FROM _event_status").fetchall()
    return rows, status[0]


def summer_days():
    # July 1 .. August 20, 2025; each day's load is its day of month / 10 (so a day's identity shows in a mean)
    d, days = dt.date(2025, 7, 1), {}
    while d <= dt.date(2025, 8, 20):
        days[d] = d.day / 10
        d += dt.timedelta(days=1)
    return days


def test_caiso_10in10_excludes_an_earlier_event_day_and_adjusts(con):
    # an earlier event of the meter on Wednesday 13 August: that day is not a candidate
    run(
        con,
        "INSERT INTO dr_events VALUES ('earlier', 'p', ?, ?, 'x')",
        [local(2025, 8, 13, 16), local(2025, 8, 13, 17)],
    )
    days = summer_days()
    # event day (Wed 20 Aug): 1.265 in the adjustment window 12:00-15:00, 0.5 during the event 16:00-17:00
    overrides = {(h, m): 1.265 for h in (12, 13, 14) for m in (0, 15, 30, 45)} | {
        (16, m): 0.5 for m in (0, 15, 30, 45)
    }
    load_days(con, days, overrides)
    compute_event(con, event(local(2025, 8, 20, 16), local(2025, 8, 20, 17)))
    rows, status = result(con)
    # 10 most recent weekdays before the 20th, skipping the 13th (event): 19 18 15 14 12 11 8 7 6 5 -> mean 1.15
    assert status == "OK" and len(rows) == 4
    for _, baseline, adjusted, actual in rows:
        assert baseline == pytest.approx(1.15) and adjusted == pytest.approx(1.265) and actual == 0.5


def test_caiso_adjustment_is_capped_at_20_percent(con):
    overrides = {(h, m): 2.0 for h in (12, 13, 14) for m in (0, 15, 30, 45)}
    load_days(con, summer_days(), overrides)
    compute_event(con, event(local(2025, 8, 20, 16), local(2025, 8, 20, 17)))
    rows, status = result(con)
    # 19 18 15 14 13 12 11 8 7 6 -> mean 1.23; ratio 2 / 1.23 capped at 1.2
    assert status == "OK"
    assert rows[0][1] == pytest.approx(1.23) and rows[0][2] == pytest.approx(1.23 * 1.2)


def test_not_enough_days_gives_a_status_and_no_numbers(con):
    days = {
        d: v for d, v in summer_days().items() if d >= dt.date(2025, 8, 11)
    }  # 7 weekdays before the event
    load_days(con, days)
    compute_event(con, event(local(2025, 8, 20, 16), local(2025, 8, 20, 17)))
    rows, status = result(con)
    assert rows == [] and status == "INSUFFICIENT_DAYS"


def test_constant_load_gives_zero_reduction_for_every_day_matching_preset(con):
    load_days(con, dict.fromkeys(summer_days(), 0.8))
    for name in (
        "caiso_10in10",
        "caiso_res_5in10",
        "pjm_high4of5",
        "pjm_same_day_3p2",
        "nyiso_avg_day",
        "nyiso_weather_sensitive",
        "miso_10day",
        "ercot_middle8of10",
    ):
        compute_event(con, event(local(2025, 8, 20, 16), local(2025, 8, 20, 17), preset=name))
        rows, status = result(con)
        assert status == "OK", name
        assert all(adj == pytest.approx(actual) for _, _, adj, actual in rows) and len(rows) == 4, name


def test_no_baseline_is_zero_and_missing_actuals_are_reported(con):
    days = summer_days()
    load_days(con, days)
    run(con, "DELETE FROM interval_readings WHERE interval_start_utc = ?", [local(2025, 8, 20, 16, 30)])
    compute_event(con, event(local(2025, 8, 20, 16), local(2025, 8, 20, 17), preset="no_baseline"))
    rows, status = result(con)
    assert status == "MISSING_ACTUALS" and [r[2] for r in rows] == [0.0] * 4
    assert [r[3] for r in rows].count(None) == 1


@pytest.mark.parametrize("year", range(2020, 2031))
def test_nerc_calendar_has_its_six_holidays_every_year(year):
    # NERC's holidays are picked from holidays.US by name: a renamed holiday in a new package version must fail here
    from leap_orchestration.settlement.calendars import holiday_dates

    days = holiday_dates("NERC", year)
    assert len(days) == 6
    assert dt.date(year, 7, 4) in days or (dt.date(year, 7, 4).weekday() == 6 and dt.date(year, 7, 5) in days)

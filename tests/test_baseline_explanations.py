"""Why each baseline is what it is: every look-back day's outcome, the rule and the adjustment window, and the
missing intervals that matter, on the hand-computed vectors of test_baseline_presets.py (docs/baselines.md,
"Explanations")."""

import datetime as dt

import polars as pl
import pytest

from leap_orchestration.settlement.engine import DAY_OUTCOMES, compute_event
from leap_orchestration.warehouse.duck import run
from tests.test_baseline_presets import (
    LA,
    NY,
    POISON,
    RECENT,
    WED,
    D,
    M,
    at,
    event,
    hours,
    load,
    meter,
    shaped,
    span,
)


@pytest.fixture
def con(blank_warehouse):
    with blank_warehouse.connect() as c:
        yield c


def outcomes(result, meter_id=M) -> dict[dt.date, str]:
    rows = result.days.filter(pl.col("meter_id") == meter_id).select("day", "outcome").rows()
    assert len(rows) == len({d for d, _ in rows}), "one row per day"
    return dict(rows)


def explanation(result, meter_id=M) -> dict:
    (row,) = result.explanations.filter(pl.col("meter_id") == meter_id).rows(named=True)
    return row


def weekends(first, last):
    return {first + dt.timedelta(n) for n in range((last - first).days + 1)} & {
        d for d in span(first, last) if d.isoweekday() >= 6
    }


def test_every_look_back_day_once_with_the_selected_days_those_of_the_status(con):
    # caiso_10in10 on Mon 14 Jul 2025 (test_caiso_10in10_weekday_skips_a_holiday): 45 days back, Jul 4 a holiday
    meter(con)
    used = [D(2025, 7, d) for d in (11, 10, 9, 8, 7, 3, 2, 1)] + [D(2025, 6, 30), D(2025, 6, 27)]
    days = span(D(2025, 5, 1), D(2025, 7, 14)) | dict.fromkeys(used, 1.0) | {D(2025, 7, 4): 9.0}
    load(con, days, slots={D(2025, 7, 14): hours(12, 15, 1.1)})
    result = compute_event(con, event(D(2025, 7, 14), 16, 17, "caiso_10in10"))
    got = outcomes(result)
    first = D(2025, 7, 14) - dt.timedelta(45)
    assert sorted(got) == [first + dt.timedelta(n) for n in range(45)]
    assert set(got.values()) <= set(DAY_OUTCOMES)
    assert {d for d, o in got.items() if o == "SELECTED"} == set(used)
    assert got[D(2025, 7, 4)] == "HOLIDAY"
    assert {d for d, o in got.items() if o == "WRONG_DAY_TYPE"} == weekends(first, D(2025, 7, 13))
    # weekdays older than the 10 taken: eligible but beyond Y
    assert {d for d, o in got.items() if o == "BEYOND_Y"} == {
        d for d in span(first, D(2025, 6, 26)) if d.isoweekday() < 6
    }
    e = explanation(result)
    assert (e["event_day"], e["day_type"], e["days_wanted"], e["selection"], e["lookback_days"]) == (
        D(2025, 7, 14),
        "weekday",
        10,
        "all",
        45,
    )
    # the adjustment window [12:00, 15:00): 12 slots of 1.1 against a baseline of 1.0 -> 13.2 / 12 = 1.1
    assert e["adjustment_kind"] == "multiplicative" and e["adjustment_cap"] == pytest.approx(0.2)
    assert (e["adjustment_slots_expected"], e["adjustment_slots_present"]) == (12, 12)
    assert e["adjustment_window_actual_kwh"] == pytest.approx(13.2)
    assert e["adjustment_window_baseline_kwh"] == pytest.approx(12.0)
    assert e["adjustment_raw"] == pytest.approx(1.1) and e["adjustment_applied"] == pytest.approx(1.1)
    assert result.missing.height == 0  # every slot that matters is there


@pytest.mark.parametrize("before, raw, applied", [(3.0, 0.375, 0.6), (14.0, 1.75, 1.4)])
def test_the_ratio_before_and_after_the_cap(con, before, raw, applied):
    # caiso_res_5in10 (test_caiso_res_5in10_highest_5_two_windows_and_both_caps): baseline 8 in both windows
    meter(con)
    load(
        con,
        span(D(2025, 7, 1), WED, override=dict(zip(RECENT, range(1, 11), strict=True))),
        slots={WED: hours(12, 15, before) | hours(18, 20, before) | hours(16, 17, 2.0)},
    )
    result = compute_event(con, event(WED, 16, 17, "caiso_res_5in10"))
    got = outcomes(result)
    assert [d for d in RECENT if got[d] == "SELECTED"] == RECENT[5:]
    assert [d for d in RECENT if got[d] == "NOT_SELECTED"] == RECENT[:5]  # among the 10, ranked out
    e = explanation(result)
    assert (e["selection"], e["days_kept"], e["adjustment_slots_expected"]) == ("highest", 5, 20)
    assert e["adjustment_window_actual_kwh"] == pytest.approx(20 * before)
    assert e["adjustment_window_baseline_kwh"] == pytest.approx(20 * 8.0)
    assert e["adjustment_raw"] == pytest.approx(raw) and e["adjustment_applied"] == pytest.approx(applied)
    assert result.missing.height == 0


def test_low_usage_day_replaced_and_the_additive_delta(con):
    # pjm_high4of5 (test_pjm_high4of5_low_usage_replacement_and_negative_additive_delta)
    meter(con)
    values = {
        D(2025, 8, 19): 4.0,
        D(2025, 8, 18): 0.5,
        D(2025, 8, 15): 5.0,
        D(2025, 8, 14): 6.0,
        D(2025, 8, 13): 4.5,
        D(2025, 8, 12): 7.0,
    }
    load(
        con,
        span(D(2025, 7, 1), WED, override={d: shaped(v) for d, v in values.items()}),
        slots={WED: hours(12, 15, 2.3125) | hours(16, 17, 3.0)},
    )
    result = compute_event(con, event(WED, 16, 17, "pjm_high4of5"))
    got = outcomes(result)
    assert got[D(2025, 8, 18)] == "LOW_USAGE"
    assert got[D(2025, 8, 19)] == "NOT_SELECTED"  # 4.0: the lowest of the five kept
    assert {d for d, o in got.items() if o == "SELECTED"} == {D(2025, 8, d) for d in (12, 13, 14, 15)}
    assert got[D(2025, 8, 11)] == "BEYOND_Y"
    assert got[D(2025, 8, 17)] == got[D(2025, 8, 16)] == "WRONG_DAY_TYPE"
    mean = result.days.filter(pl.col("day") == D(2025, 8, 18))["event_window_mean_kwh"][0]
    assert mean == pytest.approx(0.5)
    e = explanation(result)
    assert e["adjustment_kind"] == "additive" and e["adjustment_cap"] is None
    assert e["adjustment_raw"] == pytest.approx(-0.5) == e["adjustment_applied"]


def test_other_event_days_and_missing_slots_and_what_is_owed(con):
    # caiso_10in10: Aug 13 is an event day of program q; Aug 19 lacks 16:30 (event window), Aug 18 lacks 13:15
    # (adjustment window), Aug 15 lacks 03:00 (not needed: stays eligible, nothing owed)
    meter(con, programs=("p", "q"))
    run(
        con,
        "INSERT INTO dr_events VALUES ('q1', 'q', ?, ?, 'x')",
        [at(D(2025, 8, 13), 18), at(D(2025, 8, 13), 19)],
    )
    load(
        con,
        span(D(2025, 7, 1), WED, 1.0, override={D(2025, 8, 19): POISON, D(2025, 8, 18): POISON}),
        slots={
            D(2025, 8, 19): {"16:30": None},
            D(2025, 8, 18): {"13:15": None},
            D(2025, 8, 15): {"03:00": None},
            WED: hours(12, 15, 1.1) | {"16:15": None},
        },
    )
    result = compute_event(con, event(WED, 16, 17, "caiso_10in10"))
    got = outcomes(result)
    assert got[D(2025, 8, 13)] == "EVENT_DAY"
    assert got[D(2025, 8, 19)] == got[D(2025, 8, 18)] == "MISSING_SLOTS"
    assert got[D(2025, 8, 15)] == "SELECTED"
    missing = result.days.filter(pl.col("outcome") == "MISSING_SLOTS")["slots_missing"].to_list()
    assert missing == [1, 1]
    owed = sorted(result.missing.select("interval_start_utc", "window_kind").rows())
    assert [(t.astimezone(dt.UTC), k) for t, k in owed] == sorted(
        [
            (at(D(2025, 8, 18), 13, 15), "lookback"),
            (at(D(2025, 8, 19), 16, 30), "lookback"),
            (at(WED, 16, 15), "event"),
        ]
    )


def test_a_rule_that_starts_at_d_minus_2_and_too_few_days(con):
    # nyiso_avg_day: D-1 is outside the look-back; with only 3 weekdays loaded there are too few days
    meter(con)
    load(con, {D(2025, 8, 19): 1.0, D(2025, 8, 18): 1.0, D(2025, 8, 15): 1.0, D(2025, 8, 14): 1.0})
    result = compute_event(con, event(WED, 16, 17, "nyiso_avg_day"))
    got = outcomes(result)
    assert got[D(2025, 8, 19)] == "OUTSIDE_LOOKBACK"
    assert [got[D(2025, 8, d)] for d in (18, 15, 14)] == ["TOO_FEW_DAYS"] * 3
    assert got[D(2025, 8, 13)] == "MISSING_SLOTS"
    # owed: the event hour, and the event-hour slots (nyiso_avg_day has no adjustment window) of the 7 missing
    # days among the 10 most recent weekdays from D-2
    kinds = dict(result.missing.group_by("window_kind").len().rows())
    assert kinds == {"event": 4, "lookback": 7 * 4}


def test_same_day_and_zero_baselines_explain_their_window(con):
    meter(con)
    load(
        con,
        span(D(2025, 8, 1), WED),
        slots={WED: hours(12, 15, 2.0) | hours(18, 20, 4.5) | hours(16, 17, 1.0)},
    )
    e = explanation(compute_event(con, event(WED, 16, 17, "pjm_same_day_3p2")))
    assert (e["adjustment_kind"], e["adjustment_slots_expected"], e["adjustment_slots_present"]) == (
        "same_day",
        20,
        20,
    )
    assert e["adjustment_window_actual_kwh"] == pytest.approx(60.0) and e[
        "adjustment_applied"
    ] == pytest.approx(3.0)
    result = compute_event(con, event(WED, 16, 17, "no_baseline"))
    assert explanation(result)["adjustment_kind"] == "zero" and result.days.height == 0


def test_an_adjustment_window_reaching_the_previous_day_owes_nothing_there(con):
    # an event at 01:00 local: caiso's window [21:00, 24:00) of the day before is never read (NO_ADJUSTMENT_DATA,
    # docs/baselines.md); uploading those intervals changes nothing, so they are not owed
    meter(con)
    load(con, span(D(2025, 7, 1), WED, 1.0))
    result = compute_event(con, event(WED, 1, 2, "caiso_10in10"))
    assert result.status["status"][0] == "NO_ADJUSTMENT_DATA"
    assert result.missing.height == 0
    e = explanation(result)
    assert (e["adjustment_slots_expected"], e["adjustment_slots_present"], e["adjustment_applied"]) == (
        12,
        0,
        None,
    )
    assert LA.key == "America/Los_Angeles"


def test_same_day_window_over_a_repeated_hour_is_averaged_per_slot(con):
    # New York, Sun 2 Nov 2025 (25 hours), pjm_same_day_3p2, event 04:00-05:00 EST (09:00-10:00 UTC). Window
    # [05:00, 08:00) UTC = 01:00-01:45 EDT (2.0), 01:00-01:45 EST (4.0), 02:00-02:45 EST (3.0); [11:00, 13:00) UTC =
    # 06:00-07:45 EST (5.0). Per slot: 01:xx = mean(2, 4) = 3 -> (4*3 + 4*3 + 8*5) / 16 slots = 4.0
    # (a mean over the 20 readings would give 3.8)
    meter(con, zone=NY)
    load(
        con,
        {D(2025, 11, 2): 1.0},
        zone=NY,
        slots={
            D(2025, 11, 2): hours(1, 2, 2.0, fold=0)
            | hours(1, 2, 4.0, fold=1)
            | hours(2, 3, 3.0)
            | hours(6, 8, 5.0)
        },
    )
    result = compute_event(con, event(D(2025, 11, 2), 4, 5, "pjm_same_day_3p2", zone=NY))
    assert result.status["status"][0] == "OK"
    assert result.baselines["baseline_kwh"].to_list() == pytest.approx([4.0] * 4)
    e = explanation(result)
    assert (e["adjustment_slots_expected"], e["adjustment_slots_present"]) == (16, 16)
    assert e["adjustment_applied"] == pytest.approx(4.0)

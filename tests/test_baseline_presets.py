"""Hand-computed vectors for every baseline preset and the hard cases (docs/baselines.md is the specification).

Every expected number is worked out in the comment beside it from the preset rules in docs/baselines.md, not from
the engine. A "day value" v means
every 15-minute reading of that local day is v unless a slot is overridden; days that must not be used carry
POISON (50), so a wrongly chosen day shows in the mean. Events run 16:00-17:00 local unless said otherwise.
"""

import datetime as dt
import random
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from leap_orchestration.settlement.engine import DAY_OUTCOMES, EventSpec, compute_event
from leap_orchestration.settlement.presets import preset_for
from leap_orchestration.warehouse.duck import run

LA, NY = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York")
M, D, POISON = "m-1", dt.date, 50.0
WED, SAT, SUN = D(2025, 8, 20), D(2025, 8, 23), D(2025, 8, 24)
RECENT = [
    D(2025, 8, d) for d in (19, 18, 15, 14, 13, 12, 11, 8, 7, 6)
]  # the 10 weekdays before WED, newest first
DAY_MATCHING = [
    "caiso_10in10",
    "caiso_res_5in10",
    "pjm_high4of5",
    "nyiso_avg_day",
    "nyiso_weather_sensitive",
    "miso_10day",
    "ercot_middle8of10",
]


@pytest.fixture
def con(blank_warehouse):
    with blank_warehouse.connect() as c:
        yield c


def meter(con, meter_id=M, zone=LA, programs=("p",), valid=("2025-01-01", None)):
    run(con, "INSERT INTO meters (meter_id, timezone) VALUES (?, ?)", [meter_id, zone.key])
    for program in programs:
        run(con, "INSERT INTO meter_enrollments VALUES (?, ?, ?, ?)", [meter_id, program, *valid])


def span(first, last, value=POISON, override=None):
    """Every local day of [first, last] at `value`, with `override` {day: value} on top."""
    return {first + dt.timedelta(n): value for n in range((last - first).days + 1)} | (override or {})


def hours(h0, h1, value, fold=None):
    """{"HH:MM": value} (or {("HH:MM", fold): value}) for the slots of local hours [h0, h1)."""
    return {
        (f"{h:02d}:{m:02d}" if fold is None else (f"{h:02d}:{m:02d}", fold)): value
        for h in range(h0, h1)
        for m in (0, 15, 30, 45)
    }


def at(day, h, mi=0, zone=LA):
    return dt.datetime(day.year, day.month, day.day, h, mi, tzinfo=zone).astimezone(dt.UTC)


def load(con, days, meter_id=M, zone=LA, slots=None, scale=None, nonfinal=()):
    """A reading per 15 minutes of each local day of `zone` (23 or 25 hours on DST days). days: {day: value or
    f(hhmm, fold)}; slots: {day: {"HH:MM" or ("HH:MM", fold): value; None = no reading}}; scale: {column:
    factor} (default: net only); nonfinal: {(day, "HH:MM")} loaded with final = false."""
    rows, scale = [], scale or {"net": 1.0}
    for day, value in days.items():
        t, end = (
            at(day, 0, zone=zone),
            (dt.datetime(day.year, day.month, day.day, tzinfo=zone) + dt.timedelta(days=1)),
        )
        over = (slots or {}).get(day, {})
        while t < end:
            lt = t.astimezone(zone)
            hm = f"{lt.hour:02d}:{lt.minute:02d}"
            v = (
                over[(hm, lt.fold)]
                if (hm, lt.fold) in over
                else over[hm]
                if hm in over
                else (value(hm, lt.fold) if callable(value) else value)
            )
            if v is not None:
                rows.append(
                    (
                        meter_id,
                        t,
                        t + dt.timedelta(minutes=15),
                        *(
                            None if c not in scale else float(v) * scale[c]
                            for c in ("consumed", "generated", "net")
                        ),
                        (day, hm) not in nonfinal,
                    )
                )
            t += dt.timedelta(minutes=15)
    schema = {
        "meter_id": pl.String,
        "start": pl.Datetime("us", "UTC"),
        "end": pl.Datetime("us", "UTC"),
        "consumed": pl.Float64,
        "generated": pl.Float64,
        "net": pl.Float64,
        "final": pl.Boolean,
    }
    con.register("frame", pl.DataFrame(rows, schema=schema, orient="row"))
    run(
        con,
        """INSERT INTO interval_readings SELECT meter_id, start, "end", consumed, generated, net, final, 'CA',
                'job', now(), now() FROM frame""",
    )
    con.unregister("frame")


def event(day, h0, h1, preset, zone=LA, program="p", channel="net", **overrides):
    return EventSpec(
        "e",
        program,
        at(day, h0, zone=zone),
        at(day, h1, zone=zone),
        preset_for(preset, overrides),
        channel=channel,
    )


def rows_of(result, meter_id=M):
    rows = result.baselines.filter(pl.col("meter_id") == meter_id).sort("interval_start_utc")
    columns = ["baseline_kwh", "adjusted_baseline_kwh", "actual_kwh", "final", "no_adjustment_data"]
    return rows.select(columns).rows()


def status_of(result, meter_id=M):  # exactly one status row per enrolled meter
    columns = [
        "status",
        "selected_days",
        "adjustment",
        "intervals_expected",
        "intervals_present",
        "actual_kwh",
    ]
    (row,) = result.status.filter(pl.col("meter_id") == meter_id).select(columns).rows()
    return row


def explain(result, meter_id, selected_days):
    """Every vector's explanation: each look-back day once, with a known outcome, the SELECTED ones exactly the
    days the baseline used, and a day is MISSING_SLOTS exactly when it lacks a slot."""
    days = result.days.filter(pl.col("meter_id") == meter_id)
    assert days["day"].n_unique() == days.height
    assert set(days["outcome"]) <= set(DAY_OUTCOMES)
    assert set(days.filter(pl.col("outcome") == "SELECTED")["day"]) == set(selected_days or [])
    missing = days.filter(pl.col("outcome") == "MISSING_SLOTS")
    assert (missing["slots_missing"] > 0).all()
    (explained,) = result.explanations.filter(pl.col("meter_id") == meter_id).rows(named=True)
    assert explained["adjustment_slots_present"] <= explained["adjustment_slots_expected"]


def check(result, status, baseline=None, adjusted=None, days=None, adjustment=None, n=4, meter_id=M):
    rows, st = rows_of(result, meter_id), status_of(result, meter_id)
    assert st[0] == status and len(rows) == n
    each = lambda x: x if isinstance(x, list) else [x] * n  # noqa: E731
    if baseline is not None:
        assert [r[0] for r in rows] == pytest.approx(each(baseline))
    if adjusted is not None:
        assert [r[1] for r in rows] == pytest.approx(each(adjusted))
    if days is not None:
        assert sorted(st[1]) == sorted(days)
    explain(result, meter_id, st[1])
    if adjustment is not None:
        assert st[2] == pytest.approx(adjustment)
    return rows, st


def test_caiso_10in10_weekday_skips_a_holiday(con):
    # event Mon 14 Jul; Fri 4 Jul (Independence Day) is not a weekday. 10 most recent weekdays: Jul 11 10 9 8 7,
    # Jul 3 2 1, Jun 30 (1.0 each), Jun 27 (2.0) -> (9 + 2) / 10 = 1.1. (With Jul 4 = 9.0 counted: 1.8.)
    # ratio over [12:00, 15:00): 1.21 / 1.1 = 1.1 (within 20 %) -> adjusted 1.21
    meter(con)
    used = [D(2025, 7, d) for d in (11, 10, 9, 8, 7, 3, 2, 1)] + [D(2025, 6, 30)]
    days = (
        span(D(2025, 6, 1), D(2025, 7, 14))
        | dict.fromkeys(used, 1.0)
        | {D(2025, 6, 27): 2.0, D(2025, 7, 4): 9.0}
    )
    load(con, days, slots={D(2025, 7, 14): hours(12, 15, 1.21) | hours(16, 17, 0.4)})
    result = compute_event(con, event(D(2025, 7, 14), 16, 17, "caiso_10in10"))
    rows, _ = check(result, "OK", 1.1, 1.21, days=used + [D(2025, 6, 27)], adjustment=1.1)
    assert [r[2] for r in rows] == pytest.approx([0.4] * 4)


@pytest.mark.parametrize(
    "day, values, adj_actual, ratio",
    [
        # Fri 4 Jul (a holiday) -> weekend/holiday 4-in-4: Jun 29, 28, 22, 21 = 1, 2, 3, 4 -> 2.5; 2.25/2.5 = 0.9
        (
            D(2025, 7, 4),
            {D(2025, 6, 29): 1.0, D(2025, 6, 28): 2.0, D(2025, 6, 22): 3.0, D(2025, 6, 21): 4.0},
            2.25,
            0.9,
        ),
        # Sat 6 Sep: Mon 1 Sep (Labor Day) is a weekend/holiday day: Sep 1, Aug 31, 30, 24 = 2, 1, 3, 4 -> 2.5; 2.75 -> 1.1
        (
            D(2025, 9, 6),
            {D(2025, 9, 1): 2.0, D(2025, 8, 31): 1.0, D(2025, 8, 30): 3.0, D(2025, 8, 24): 4.0},
            2.75,
            1.1,
        ),
    ],
)
def test_caiso_10in10_weekend_holiday_4in4(con, day, values, adj_actual, ratio):
    meter(con)
    load(con, span(D(2025, 6, 1), day, override=values), slots={day: hours(12, 15, adj_actual)})
    result = compute_event(con, event(day, 16, 17, "caiso_10in10"))
    check(result, "OK", 2.5, 2.5 * ratio, days=list(values), adjustment=ratio)


@pytest.mark.parametrize("before, after, ratio", [(6.0, 9.0, 0.9), (3.0, 3.0, 0.6), (14.0, 14.0, 1.4)])
def test_caiso_res_5in10_highest_5_two_windows_and_both_caps(con, before, after, ratio):
    # RECENT = 1..10 (newest lowest): highest 5 = Aug 12 11 8 7 6 = 6..10 -> baseline 8. Ratio over [12, 15) (12 slots)
    # and [18, 20) (8 slots); 15:00 and 17:00 hours carry 50: (12*6 + 8*9) / (20*8) = 144/160 = 0.9 (before only:
    # 0.75); 3/8 = 0.375 -> lower cap 0.6; 14/8 = 1.75 -> upper cap 1.4
    meter(con)
    load(
        con,
        span(D(2025, 7, 1), WED, override=dict(zip(RECENT, range(1, 11), strict=True))),
        slots={WED: hours(12, 15, before) | hours(18, 20, after) | hours(16, 17, 2.0)},
    )
    result = compute_event(con, event(WED, 16, 17, "caiso_res_5in10"))
    check(result, "OK", 8.0, 8.0 * ratio, days=RECENT[5:], adjustment=ratio)


def shaped(v, a=None, b=None, rest=None):
    """v in the event hour 16:00-17:00 (a at 16:00/16:15 and b at 16:30/16:45 if given), `rest` (v/2) elsewhere."""
    return lambda hm, fold: (
        (v if a is None else a if hm < "16:30" else b)
        if "16:00" <= hm < "17:00"
        else (v / 2 if rest is None else rest)
    )


def test_pjm_high4of5_low_usage_replacement_and_negative_additive_delta(con):
    # days: 16:00-17:00 at v, every other slot at v/2. First 5 weekdays: Aug 19 18 15 14 13 = 4, 0.5, 5, 6, 4.5;
    # mean 4, 25 % = 1.0 -> Aug 18 (0.5) dropped, replaced by Aug 12 = 7. Highest 4 of 4, 5, 6, 4.5, 7 ->
    # 7 6 5 4.5: event slots (22.5/4) = 5.625, other slots 2.8125. (Without the exclusion: 4.875.)
    # delta = mean actual [12, 15) 2.3125 - 2.8125 = -0.5 -> adjusted 5.125
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
    check(result, "OK", 5.625, 5.125, days=[D(2025, 8, d) for d in (12, 13, 14, 15)], adjustment=-0.5)


@pytest.mark.parametrize(
    "day, values, adj_actual, baseline",
    [
        # Saturday rule: Sat Aug 16, 9, 2 = 3, 5, 4 (Sun Aug 17, Sat Jul 26 poisoned): highest 2 -> 4.5; delta -0.5
        (SAT, {D(2025, 8, 16): 3.0, D(2025, 8, 9): 5.0, D(2025, 8, 2): 4.0}, 4.0, 4.5),
        # Sunday/holiday rule: Sun Jul 6 <- Jul 4 (holiday), Jun 29, Jun 22 = 2, 6, 4: highest 2 -> 5; delta +0.75
        (D(2025, 7, 6), {D(2025, 7, 4): 2.0, D(2025, 6, 29): 6.0, D(2025, 6, 22): 4.0}, 5.75, 5.0),
    ],
)
def test_pjm_high4of5_saturday_and_sunday_holiday_rules(con, day, values, adj_actual, baseline):
    meter(con)
    load(con, span(D(2025, 6, 1), day, override=values), slots={day: hours(12, 15, adj_actual)})
    result = compute_event(con, event(day, 16, 17, "pjm_high4of5"))
    top2 = sorted(values, key=values.get)[1:]
    check(result, "OK", baseline, adj_actual, days=top2, adjustment=adj_actual - baseline)


def test_pjm_same_day_3p2_and_a_missing_window_slot(con):
    # baseline = mean of the event day over [12, 15) (12 slots of 2.0) and [18, 20) (8 of 4.5): (24 + 36)/20 = 3.0;
    # 15:00 and 17:00 hours and every other day carry 50
    meter(con)
    load(
        con,
        span(D(2025, 8, 1), WED),
        slots={WED: hours(12, 15, 2.0) | hours(18, 20, 4.5) | hours(16, 17, 1.0)},
    )
    result = compute_event(con, event(WED, 16, 17, "pjm_same_day_3p2"))
    rows, st = check(result, "OK", 3.0, 3.0)
    assert [r[2] for r in rows] == pytest.approx([1.0] * 4) and st[3:] == (4, 4, pytest.approx(4.0))
    run(con, "DELETE FROM interval_readings WHERE interval_start_utc = ?", [at(WED, 18, 30)])
    result = compute_event(con, event(WED, 16, 17, "pjm_same_day_3p2"))
    check(result, "NO_ADJUSTMENT_DATA", n=0)


@pytest.mark.parametrize(
    "preset, adj_actual, adjusted, ratio",
    [
        ("nyiso_avg_day", 13.2, 12.0, None),
        ("nyiso_weather_sensitive", 13.2, 13.2, 1.1),  # 13.2 / 12 over [12, 14) (14:00-16:00 carry 50)
        ("nyiso_weather_sensitive", 6.0, 9.6, 0.8),  # 0.5 -> lower cap 0.8
        ("nyiso_weather_sensitive", 30.0, 14.4, 1.2),  # 2.5 -> upper cap 1.2
    ],
)
def test_nyiso_starts_at_d_minus_2(con, preset, adj_actual, adjusted, ratio):
    # Aug 19 (D-1) = 100 must not be used. From D-2: Aug 18 15 14 13 12 11 8 7 6 5 = 5..14 (mean 9.5, none below
    # 2.375); highest 5 = Aug 5 6 7 8 11 = 14 13 12 11 10 -> 12. (With D-1: 29.2.)
    meter(con)
    values = dict(zip(RECENT[1:] + [D(2025, 8, 5)], range(5, 15), strict=True)) | {D(2025, 8, 19): 100.0}
    load(con, span(D(2025, 7, 1), WED, override=values), slots={WED: hours(12, 14, adj_actual)})
    result = compute_event(con, event(WED, 16, 17, preset))
    _, st = check(
        result, "OK", 12.0, adjusted, days=[D(2025, 8, d) for d in (5, 6, 7, 8, 11)], adjustment=ratio
    )
    assert ratio is not None or st[2] is None


def test_miso_10day_window_up_to_start_and_no_weekend_rule(con):
    # RECENT = 1..10, all kept -> 5.5. Window [13, 16): 8 slots of 5.5 and 4 (15:00-16:00) of 7.15, 12:00 hour 50:
    # (44 + 28.6) / (12 * 5.5) = 72.6 / 66 = 1.1 -> adjusted 6.05
    meter(con)
    load(
        con,
        span(D(2025, 7, 1), SAT, override=dict(zip(RECENT, range(1, 11), strict=True))),
        slots={WED: hours(13, 15, 5.5) | hours(15, 16, 7.15)},
    )
    result = compute_event(con, event(WED, 16, 17, "miso_10day"))
    check(result, "OK", 5.5, 6.05, days=RECENT, adjustment=1.1)
    result = compute_event(con, event(SAT, 16, 17, "miso_10day"))
    assert check(result, "INSUFFICIENT_DAYS", n=0)[1][3:5] == (4, 4)


def test_ercot_middle8of10(con):
    # RECENT = 10, 1, 2..9: drop Aug 19 (10) and Aug 18 (1) -> mean of 2..9 = 5.5; [13, 15): 4.95 -> ratio 0.9
    # (12:00 and 15:00 hours carry 50)
    meter(con)
    load(
        con,
        span(D(2025, 7, 1), WED, override=dict(zip(RECENT, [10, 1, 2, 3, 4, 5, 6, 7, 8, 9], strict=True))),
        slots={WED: hours(13, 15, 4.95)},
    )
    result = compute_event(con, event(WED, 16, 17, "ercot_middle8of10"))
    check(result, "OK", 5.5, 4.95, days=RECENT[2:], adjustment=0.9)


@pytest.mark.parametrize(
    "preset, values, slots, baseline, adjusted, days",
    [
        # caiso_res: Aug 13 (16:00/16:15 = 6, 16:30/16:45 = 4) and Aug 6 (4 then 6) both have event mean 5, rest 5.
        # Highest 5: Aug 7 8 11 12 (9 8 7 6) + Aug 13 (tie, more recent): 16:00 slots (30+6)/5 = 7.2, 16:30 slots
        # (30+4)/5 = 6.8; window slots (30+5)/5 = 7.0, event-day windows 7.7 -> ratio 1.1
        (
            "caiso_res_5in10",
            [1, 2, 3, 4, shaped(5, 6, 4, 5), 6, 7, 8, 9, shaped(5, 4, 6, 5)],
            hours(12, 15, 7.7) | hours(18, 20, 7.7),
            [7.2, 7.2, 6.8, 6.8],
            [7.92, 7.92, 7.48, 7.48],
            RECENT[4:9],
        ),
        # ercot: Aug 19 (12 12 8 8, rest 10) and Aug 6 (8 8 12 12, rest 10) tie at 10; Aug 19 ranks higher and is the
        # single highest dropped; Aug 18 (1) is the lowest. Kept: Aug 15..7 = 2..8 (sum 35) + Aug 6: 16:00 slots
        # (35+8)/8 = 5.375, 16:30 slots (35+12)/8 = 5.875; [13, 15) baseline (35+10)/8 = 5.625, actual 6.1875 -> 1.1
        (
            "ercot_middle8of10",
            [shaped(10, 12, 8, 10), 1, 2, 3, 4, 5, 6, 7, 8, shaped(10, 8, 12, 10)],
            hours(13, 15, 6.1875),
            [5.375, 5.375, 5.875, 5.875],
            [5.9125, 5.9125, 6.4625, 6.4625],
            RECENT[2:],
        ),
    ],
)
def test_ties_go_to_the_more_recent_day(con, preset, values, slots, baseline, adjusted, days):
    meter(con)
    load(con, span(D(2025, 7, 1), WED, override=dict(zip(RECENT, values, strict=True))), slots={WED: slots})
    result = compute_event(con, event(WED, 16, 17, preset))
    check(result, "OK", baseline, adjusted, days=days, adjustment=1.1)


def test_event_days_of_other_programs_are_excluded_in_local_time(con):
    # the meter is also in q; q's event 23:30-23:45 PT Wed Aug 13 (06:30 UTC Aug 14) excludes Aug 13 (21.0); r's
    # event on Aug 12 is not the meter's (r enrolls m-2 only). Days: Aug 19 18 15 14 12 11 8 7 6 (1.0) + Aug 5
    # (3.0) -> 1.2; ratio 1.32 / 1.2 = 1.1. (UTC-day exclusion: 3.2; r's day excluded too: 2.2 with Aug 4 = 11.)
    meter(con, programs=("p", "q"))
    meter(con, "m-2", programs=("r",))
    run(
        con,
        "INSERT INTO dr_events VALUES ('q1', 'q', ?, ?, 'x'), ('r1', 'r', ?, ?, 'x')",
        [
            at(D(2025, 8, 13), 23, 30),
            at(D(2025, 8, 13), 23, 45),
            at(D(2025, 8, 12), 16),
            at(D(2025, 8, 12), 17),
        ],
    )
    values = {D(2025, 8, 13): 21.0, D(2025, 8, 5): 3.0, D(2025, 8, 4): 11.0}
    load(con, span(D(2025, 7, 1), WED, 1.0, override=values), slots={WED: hours(12, 15, 1.32)})
    result = compute_event(con, event(WED, 16, 17, "caiso_10in10"))
    check(result, "OK", 1.2, 1.32, days=[d for d in RECENT if d.day != 13] + [D(2025, 8, 5)], adjustment=1.1)


def test_a_day_missing_a_needed_slot_is_skipped(con):
    # Aug 19 lacks 16:30 (event), Aug 18 lacks 13:15 (adjustment window): both 50 and not eligible; Aug 15 lacks
    # 03:00 (not needed) and stays. Days: Aug 15 (2.0), 14 13 12 11 8 7 6 5 (1.0), Aug 4 (3.0) -> 13/10 = 1.3;
    # ratio 1.43 / 1.3 = 1.1
    meter(con)
    values = {
        D(2025, 8, 19): POISON,
        D(2025, 8, 18): POISON,
        D(2025, 8, 15): 2.0,
        D(2025, 8, 4): 3.0,
        D(2025, 8, 1): POISON,
    }
    load(
        con,
        span(D(2025, 7, 1), WED, 1.0, override=values),
        slots={
            D(2025, 8, 19): {"16:30": None},
            D(2025, 8, 18): {"13:15": None},
            D(2025, 8, 15): {"03:00": None},
            WED: hours(12, 15, 1.43),
        },
    )
    result = compute_event(con, event(WED, 16, 17, "caiso_10in10"))
    check(result, "OK", 1.3, 1.43, days=RECENT[2:] + [D(2025, 8, 5), D(2025, 8, 4)], adjustment=1.1)


@pytest.mark.parametrize("with_jul_9", [False, True])
def test_look_back_is_45_days_inclusive(con, with_jul_9):
    # event Fri Aug 22, D-45 = Tue Jul 8 (2.0, eligible), D-46 = Mon Jul 7 (50, out). Loaded weekdays in range:
    # Aug 21 20 19 18 15 14 13 12 (1.0) + Jul 8 = 9 -> INSUFFICIENT_DAYS; with Jul 9 (3.0): (8 + 2 + 3)/10 = 1.3
    meter(con)
    fri = D(2025, 8, 22)
    days = dict.fromkeys([D(2025, 8, d) for d in (21, 20, 19, 18, 15, 14, 13, 12)], 1.0) | {
        D(2025, 7, 8): 2.0,
        D(2025, 7, 7): POISON,
        D(2025, 7, 3): POISON,
        fri: 1.0,
    }
    load(con, days | ({D(2025, 7, 9): 3.0} if with_jul_9 else {}), slots={fri: hours(12, 15, 1.3)})
    result = compute_event(con, event(fri, 16, 17, "caiso_10in10"))
    if with_jul_9:
        check(
            result,
            "OK",
            1.3,
            1.3,
            days=[d for d in days if d.month == 8 and d != fri] + [D(2025, 7, 8), D(2025, 7, 9)],
        )
    else:
        check(result, "INSUFFICIENT_DAYS", n=0)


@pytest.mark.parametrize(
    "zone, day, h0, values, slots, baseline, days",
    [
        # New York, event Sun Nov 9 01:00-02:00. Sun Nov 2 has 01:00-01:45 twice: 2.0 (EDT) and 6.0 (EST) -> 4.0;
        # Oct 26 = 3, Oct 19 = 1: highest 2 -> (4 + 3)/2 = 3.5 (first reading only: 2.5; their sum: 5.5)
        (
            NY,
            D(2025, 11, 9),
            1,
            {D(2025, 11, 2): 4.0, D(2025, 10, 26): 3.0, D(2025, 10, 19): 1.0},
            {D(2025, 11, 2): hours(1, 2, 2.0, fold=0) | hours(1, 2, 6.0, fold=1)},
            3.5,
            [D(2025, 10, 26), D(2025, 11, 2)],
        ),
        # Los Angeles, event Sun Mar 16 02:00-03:00: Sun Mar 9 has no 02:xx slot (100 elsewhere), so Mar 2, Feb 23,
        # Feb 16 = 3, 5, 4: highest 2 -> 4.5
        (
            LA,
            D(2025, 3, 16),
            2,
            {D(2025, 3, 9): 100.0, D(2025, 3, 2): 3.0, D(2025, 2, 23): 5.0, D(2025, 2, 16): 4.0},
            {},
            4.5,
            [D(2025, 2, 16), D(2025, 2, 23)],
        ),
    ],
)
def test_25_and_23_hour_candidate_days(con, zone, day, h0, values, slots, baseline, days):
    # nyiso_avg_day, Sunday/holiday rule (3 days, highest 2), no adjustment
    meter(con, zone=zone)
    load(con, span(day - dt.timedelta(days=50), day, override=values | {day: 1.0}), zone=zone, slots=slots)
    result = compute_event(con, event(day, h0, h0 + 1, "nyiso_avg_day", zone=zone))
    check(result, "OK", baseline, baseline, days=days)


def test_an_adjustment_window_over_the_repeated_hour_of_a_25_hour_event_day(con):
    # New York, Sun Nov 2, event 04:00-05:00 EST (09:00-10:00 UTC), caiso weekend 4-in-4: Nov 1, Oct 26, 25, 19
    # = 1, 2, 3, 4 -> 2.5. Window [05:00, 08:00) UTC = slots 01:00-01:45 (EDT 2.0 and EST 3.0 -> 2.5) and 02:00-02:45
    # (3.0): 8 slots, ratio (4*2.5 + 4*3.0) / (8*2.5) = 22/20 = 1.1 -> adjusted 2.75
    meter(con, zone=NY)
    values = {D(2025, 11, 1): 1.0, D(2025, 10, 26): 2.0, D(2025, 10, 25): 3.0, D(2025, 10, 19): 4.0}
    load(
        con,
        span(D(2025, 9, 20), D(2025, 11, 2), override=values),
        zone=NY,
        slots={
            D(2025, 11, 2): hours(1, 2, 2.0, fold=0)
            | hours(1, 2, 3.0, fold=1)
            | hours(2, 3, 3.0)
            | hours(4, 5, 0.5)
        },
    )
    result = compute_event(con, event(D(2025, 11, 2), 4, 5, "caiso_10in10", zone=NY))
    check(result, "OK", 2.5, 2.75, days=list(values), adjustment=1.1)


def test_an_adjustment_window_over_the_skipped_hour_of_a_23_hour_event_day(con):
    # Los Angeles, Sun Mar 9, event 05:00-06:00 PDT (12:00-13:00 UTC), pjm Sunday rule: Mar 2, Feb 23, Feb 16 = 2,
    # 4, 6 -> highest 2 = 5. Window [08:00, 11:00) UTC = 00:00-01:45 PST (8 slots of 4.0) and 03:00-03:45 PDT
    # (4 of 5.5), 04:00 hour 50: delta = (32 + 22)/12 - 5 = -0.5 -> adjusted 4.5
    meter(con)
    values = {D(2025, 3, 2): 2.0, D(2025, 2, 23): 4.0, D(2025, 2, 16): 6.0}
    load(
        con,
        span(D(2025, 2, 1), D(2025, 3, 9), override=values),
        slots={D(2025, 3, 9): hours(0, 2, 4.0) | hours(3, 4, 5.5) | hours(5, 6, 3.0)},
    )
    result = compute_event(con, event(D(2025, 3, 9), 5, 6, "pjm_high4of5"))
    check(result, "OK", 5.0, 4.5, days=[D(2025, 2, 23), D(2025, 2, 16)], adjustment=-0.5)


@pytest.mark.parametrize(
    "missing, nonfinal, status, adjusted, present",
    [
        ((), (), "OK", 1.1, 4),
        ([(WED, "16:30")], (), "MISSING_ACTUALS", 1.1, 3),
        ((), [(D(2025, 8, 19), "16:15")], "PROVISIONAL", 1.1, 4),  # a reading of a selected day
        ((), [(WED, "16:30")], "PROVISIONAL", 1.1, 4),  # an event actual
        ((), [(WED, "13:00")], "PROVISIONAL", 1.1, 4),  # an adjustment-window actual
        (
            (),
            [(D(2025, 8, 5), "16:15"), (D(2025, 8, 19), "03:00"), (WED, "09:00")],
            "OK",
            1.1,
            4,
        ),  # readings not used
        ([(WED, "13:15")], (), "NO_ADJUSTMENT_DATA", 1.0, 4),  # unadjusted baseline
        ([(WED, "13:15"), (WED, "16:30")], [(D(2025, 8, 19), "16:15")], "NO_ADJUSTMENT_DATA", 1.0, 3),
        ([(WED, "16:30")], [(D(2025, 8, 19), "16:15")], "MISSING_ACTUALS", 1.1, 3),
    ],
)
def test_statuses_and_their_order(con, missing, nonfinal, status, adjusted, present):
    # caiso_10in10, every day 1.0 -> baseline 1.0; event day [12, 15) 1.1 -> ratio 1.1; event actuals 0.5
    meter(con)
    slots = {WED: hours(12, 15, 1.1) | hours(16, 17, 0.5)}
    for day, hm in missing:
        slots[day][hm] = None
    load(con, span(D(2025, 7, 1), WED, 1.0), slots=slots, nonfinal=set(nonfinal))
    result = compute_event(con, event(WED, 16, 17, "caiso_10in10"))
    rows, st = check(result, status, 1.0, adjusted)
    assert st[3:] == (4, present, pytest.approx(0.5 * present))
    assert sum(r[2] is not None for r in rows) == present and all(
        r[4] == (status == "NO_ADJUSTMENT_DATA") for r in rows
    )


CASES = [
    (p, d)
    for p in DAY_MATCHING + ["pjm_same_day_3p2"]
    for d in (WED, SAT, SUN)
    if not (p == "miso_10day" and d != WED)
]


@pytest.mark.parametrize("preset, day", CASES)
def test_constant_load_gives_zero_reduction(con, preset, day):
    c = round(random.Random(f"{preset}{day}").uniform(0.2, 5.0), 3)
    meter(con)
    load(con, span(D(2025, 6, 1), SUN, c))
    result = compute_event(con, event(day, 16, 17, preset))
    rows, _ = check(result, "OK", c, c)
    assert all(r[1] - r[2] == pytest.approx(0.0) for r in rows)


@pytest.mark.parametrize("preset, day", CASES)
def test_scaling_every_load_scales_the_baselines(con, preset, day):
    rng, k = random.Random(f"scale {preset} {day}"), 2.5
    shapes = {d: [rng.uniform(0.3, 3.0) for _ in range(100)] for d in span(D(2025, 6, 1), SUN)}
    meter(con)
    meter(con, "m-k")
    load(con, {d: (lambda hm, fold, s=s: s[int(hm[:2]) * 4 + int(hm[3:]) // 15]) for d, s in shapes.items()})
    load(
        con,
        {d: (lambda hm, fold, s=s: k * s[int(hm[:2]) * 4 + int(hm[3:]) // 15]) for d, s in shapes.items()},
        "m-k",
    )
    result = compute_event(con, event(day, 16, 17, preset))
    one, scaled = rows_of(result), rows_of(result, "m-k")
    assert len(one) == len(scaled) == 4 and status_of(result)[0] == status_of(result, "m-k")[0] == "OK"
    assert [r[0] * k for r in one] == pytest.approx([r[0] for r in scaled])
    assert [r[1] * k for r in one] == pytest.approx([r[1] for r in scaled])
    assert status_of(result)[1] == status_of(result, "m-k")[1]


def test_an_event_without_enrolled_meters_gives_no_rows(con):
    meter(con)
    meter(con, "m-late", programs=("q",), valid=("2025-09-01", None))  # enrolled after the event
    meter(con, "m-gone", programs=("q",), valid=("2025-01-01", "2025-08-01"))  # left before it
    for m in (M, "m-late", "m-gone"):
        load(con, span(D(2025, 7, 1), WED, 1.0), meter_id=m)
    for program in ("q", "nobody"):
        result = compute_event(con, event(WED, 16, 17, "caiso_10in10", program=program))
        assert result.baselines.height == result.status.height == 0


@pytest.mark.parametrize("preset", ["caiso_10in10", "no_baseline"])
@pytest.mark.parametrize("channel, k", [("net", 1.0), ("consumed", 2.0), ("generated", 3.0)])
def test_the_channel_column_is_used(con, preset, channel, k):
    # columns net / consumed / generated = 1x / 2x / 3x. caiso: days 1.0 -> baseline k, [12, 15) 1.1 k -> ratio 1.1;
    # no_baseline: baseline 0, no adjustment. Event actuals 0.5 k per interval, 2.0 k in all
    meter(con)
    load(
        con,
        span(D(2025, 7, 1), WED, 1.0),
        slots={WED: hours(12, 15, 1.1) | hours(16, 17, 0.5)},
        scale={"net": 1.0, "consumed": 2.0, "generated": 3.0},
    )
    result = compute_event(con, event(WED, 16, 17, preset, channel=channel))
    b = 0.0 if preset == "no_baseline" else k
    rows, st = check(result, "OK", b, 1.1 * b)
    assert [r[2] for r in rows] == pytest.approx([0.5 * k] * 4) and st[5] == pytest.approx(2.0 * k)
    assert (st[2] is None) == (preset == "no_baseline")

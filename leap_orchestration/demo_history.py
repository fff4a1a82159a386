"""Demo history: a summer of 15-minute readings for every enrolled demo meter, so settlement has its 45 days of
look-back before each demo event and the UI shows event performance right after the demo starts.

Shapes (kW, in the meter's local time): a residential base with a morning bump and an evening peak that grows
with the day's heat; weekends and NERC holidays (4 July, Labor Day) have a midday plateau instead of the
morning rush; thermostats add air-conditioning, EV chargers an evening charging session on weekdays,
commercial meters a business-hours load. On its program's event days a device responds: a thermostat sheds half
its air-conditioning, an EV charger pauses (and catches up after), a battery discharges, a commercial site sheds
a quarter. Deliberate imperfections show the statuses: one thermostat joined late (not enough history for the
August event), one of sunrise-energy's EV chargers lost two readings during the August event, one ConnectedSolutions battery missed an event,
and September's readings are not final yet.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from zoneinfo import ZoneInfo

from leap_orchestration.config.demo_config import DemoMeter, demo_events, demo_meters

FIRST_DAY, LAST_DAY = dt.date(2025, 6, 10), dt.date(2025, 9, 5)  # ≥ 45 days before 29 July, past 3 September
HOLIDAYS = {dt.date(2025, 7, 4), dt.date(2025, 9, 1)}
NOT_FINAL_FROM = dt.date(2025, 9, 1)
STEP = dt.timedelta(minutes=15)


@functools.cache
def _heat(day: dt.date) -> float:
    """The day's heat factor (0.6-1.5): a slow summer curve with heat waves every ~9 days and some noise."""
    n = day.toordinal()
    summer = 1.0 + 0.25 * math.sin((day.timetuple().tm_yday - 120) / 365 * 2 * math.pi)
    return max(0.6, summer + 0.2 * math.sin(n / 9 * 2 * math.pi) + random.Random(n).uniform(-0.1, 0.1))


def _quirks(meters: list[DemoMeter]) -> dict[str, str]:
    by_kind: dict[tuple[str, str], list[str]] = {}
    for m in meters:
        by_kind.setdefault((m.programs[0], m.device_type), []).append(m.meter_id)
    return {
        by_kind[("caiso_dsgs", "thermostat")][0]: "late_join",
        # the demo partner's (sunrise-energy, the one the demo logs in as): its missing-intervals.csv names it
        by_kind[("caiso_dsgs", "ev_charger")][0]: "gap_in_event",
        by_kind[("ma_connected_solutions", "battery")][-1]: "missed_event",
    }


def _kw(
    meter: DemoMeter,
    lt: dt.datetime,
    heat: float,
    scale: float,
    in_event: bool,
    after_event: bool,
    quirk: str,
    event_index: int,
) -> tuple[float, float]:
    """(consumed kW, generated kW) at local time lt."""
    h = lt.hour + lt.minute / 60
    day_off = lt.weekday() >= 5 or lt.date() in HOLIDAYS
    if meter.customer_class == "commercial" and meter.device_type == "none":
        base = 14.0 if day_off else (40.0 * (0.8 + 0.3 * heat) if 8 <= h < 18 else 12.0)
        return base * scale * (0.75 if in_event else 1.0), 0.0
    house = 0.45 + (0.5 if day_off and 10 <= h < 16 else 0.0) + (0.6 if not day_off and 6.5 <= h < 9 else 0.0)
    house += 1.1 * heat * math.exp(-((h - 19) ** 2) / 6)  # evening peak
    consumed, generated = house, 0.0
    if meter.device_type == "thermostat":
        ac = 2.2 * max(0.0, heat - 0.7) * math.exp(-((h - 17) ** 2) / 10)
        consumed += ac * (0.5 if in_event else 1.0) + (0.6 * ac if after_event else 0.0)  # pre-cool payback
    elif meter.device_type == "ev_charger" and not day_off and 18 <= h < 22:
        consumed += 0.0 if in_event else (3.3 * (1.5 if after_event else 1.0))
    elif meter.device_type == "battery" and in_event and not (quirk == "missed_event" and event_index == 1):
        generated = 4.0 if meter.customer_class == "residential" else 12.0
    return consumed * scale, generated * scale


@functools.cache
def _iso(t: dt.datetime) -> str:  # shared by every meter: strftime per row was most of the generation time
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def history_rows(meters: list[DemoMeter]) -> dict[str, list[str]]:
    """CSV lines (no header) per current owner, for every demo meter enrolled in a program."""
    events = demo_events()
    quirks = _quirks([m for m in meters if m.programs])
    out: dict[str, list[str]] = {}
    for meter in (m for m in meters if m.programs):
        tz = ZoneInfo(meter.timezone)
        rng = random.Random(meter.meter_number)
        scale = rng.uniform(0.7, 1.4)
        windows = [(s, e) for p, _, s, e in events if p in meter.programs]
        quirk = quirks.get(meter.meter_id, "")
        t = dt.datetime.combine(FIRST_DAY, dt.time(), tz).astimezone(dt.UTC)
        stop = dt.datetime.combine(LAST_DAY + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        if quirk == "late_join":
            t = dt.datetime(2025, 8, 13, 7, tzinfo=dt.UTC)
        lines = out.setdefault(meter.owner, [])
        while t < stop:
            lt = t.astimezone(tz)
            index = next((i for i, (s, e) in enumerate(windows) if s <= t < e), -1)
            after = any(e <= t < e + dt.timedelta(hours=2) for _, e in windows)
            if not (
                quirk == "gap_in_event"
                and index == 0
                and t in (windows[0][0] + STEP, windows[0][0] + 2 * STEP)
            ):
                consumed, generated = _kw(meter, lt, _heat(lt.date()), scale, index >= 0, after, quirk, index)
                consumed = round(consumed / 4 * rng.uniform(0.92, 1.08), 3)
                generated = round(generated / 4, 3)
                final = "true" if lt.date() < NOT_FINAL_FROM else "false"
                lines.append(
                    f"{meter.meter_id},{_iso(t)},{_iso(t + STEP)},"
                    f"{consumed - generated:.3f},{consumed:.3f},{generated:.3f},{final},{meter.region}\n"
                )
            t += STEP
    return out


def history_files() -> dict[str, list[str]]:
    return history_rows(demo_meters())

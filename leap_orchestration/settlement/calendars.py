"""Holiday calendars for baseline day types, from the maintained `holidays` package.

- `NERC`: the six NERC off-peak holidays (New Year's Day, Memorial Day, Independence Day, Labor Day,
  Thanksgiving, Christmas); one falling on a Sunday is observed the Monday after, one on a Saturday is not moved
  (NERC's rule). The dates come from `holidays.US`; only the observance rule is ours.
- `US`: US federal holidays as observed (`holidays.US`).
- any other name: a country or subdivision code `holidays.country_holidays` knows (e.g. `CA`, `US-NY`).
"""

from __future__ import annotations

import datetime as dt
import functools

NERC_HOLIDAYS = (
    "New Year's Day",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Thanksgiving Day",
    "Christmas Day",
)


@functools.cache
def holiday_dates(calendar: str, year: int) -> frozenset[dt.date]:
    import holidays  # 0.35 s of imports: only where settlement computes, not in every run process's start

    if calendar.upper() == "NERC":
        federal = holidays.US(years=year, observed=False)
        days = {d for d, name in federal.items() if name in NERC_HOLIDAYS}
        return frozenset(d + dt.timedelta(days=1) if d.weekday() == 6 else d for d in days)
    if calendar.upper() == "US":
        return frozenset(holidays.US(years=year))
    country, _, subdivision = calendar.partition("-")
    return frozenset(holidays.country_holidays(country.upper(), subdiv=subdivision or None, years=year))


def holidays_version() -> str:
    """The `holidays` package's version (part of settlement's inputs digest: new dates mean new baselines)."""
    import holidays

    return holidays.__version__


def holidays_between(calendar: str, first: dt.date, last: dt.date) -> list[dt.date]:
    return sorted(
        d for y in range(first.year, last.year + 1) for d in holiday_dates(calendar, y) if first <= d <= last
    )

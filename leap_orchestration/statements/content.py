"""What a partner's statement of one event holds, built from the settled baselines (docs/statements.md).

A partner sees its own meters only, by ownership at each interval's time: a meter that changed partner during an
event or a season is in each partner's statement for the intervals it owned. Per statement: a summary, one row
per meter (status and why, baseline, adjusted baseline, actual, reduction, average kW, intervals), one row per
meter and interval, and the explanation of each meter's baseline day by day. Numbers follow the settlement's
definitions (channel sign, clip rule, sums over intervals with an actual) over the partner's intervals.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import duckdb
import polars as pl

from leap_orchestration.config.models import DEFAULT_DATA_DEADLINE
from leap_orchestration.settlement.engine import DAY_OUTCOMES
from leap_orchestration.settlement.views import STATUS_REASONS, local_time
from leap_orchestration.statements.render import utc
from leap_orchestration.warehouse.duck import frame

DECIMALS = 6  # kWh and kW in statements: what a digest compares, so float noise never issues a version
STATUSES = ("PRELIMINARY", "FINAL")

# One row per partner, event, meter and event interval the partner owned; actuals from the baselines (what
# settlement used) where the meter has a baseline, else from the readings.
_LINES = """
WITH ev AS (
    SELECT e.event_id, e.start_utc, e.end_utc, p.channel, p.clip
    FROM dr_events e JOIN programs p USING (program_id) JOIN settled_events s USING (event_id)
    WHERE list_contains($events, e.event_id)),
slots AS (
    SELECT ev.event_id, ev.channel, ev.clip, st.meter_id,
           unnest(generate_series(ev.start_utc, ev.end_utc - INTERVAL 15 MINUTE, INTERVAL 15 MINUTE)) AS ts
    FROM ev JOIN baseline_status st USING (event_id)),
with_baseline AS (SELECT DISTINCT event_id, meter_id FROM baselines WHERE list_contains($events, event_id))
SELECT o.partner_id, sl.event_id, sl.meter_id, sl.ts AS interval_start_utc,
       b.baseline_kwh, b.adjusted_baseline_kwh,
       CASE WHEN w.meter_id IS NOT NULL THEN b.actual_kwh
            WHEN sl.channel = 'consumed' THEN r.energy_consumed_kwh
            WHEN sl.channel = 'generated' THEN r.energy_generated_kwh ELSE r.energy_net_kwh END AS actual_kwh,
       CASE WHEN w.meter_id IS NOT NULL THEN b.final ELSE coalesce(r.final, true) END AS final,
       sl.channel, sl.clip
FROM slots sl
JOIN meter_ownership o ON o.meter_id = sl.meter_id AND o.valid_from <= sl.ts
     AND (o.valid_to IS NULL OR o.valid_to > sl.ts)
LEFT JOIN with_baseline w ON w.event_id = sl.event_id AND w.meter_id = sl.meter_id
LEFT JOIN baselines b ON b.event_id = sl.event_id AND b.meter_id = sl.meter_id AND b.interval_start_utc = sl.ts
LEFT JOIN interval_readings r ON r.meter_id = sl.meter_id AND r.interval_start_utc = sl.ts
"""


@dataclass(frozen=True)
class EventStatement:
    """One partner's statement of one event, without what issuing it adds (version, status, time)."""

    partner_id: str
    event_id: str
    program_id: str
    summary: dict  # program, window, method, meters by status, totals
    meters: pl.DataFrame
    intervals: pl.DataFrame
    explanation: pl.DataFrame  # meter x look-back day
    inputs_final: bool  # every reading the partner's numbers used is final
    deadline_utc: dt.datetime  # the event's end + the program's data deadline

    @property
    def statement_id(self) -> str:
        return f"event/{self.program_id}/{self.event_id}"

    def status(self, now: dt.datetime) -> str:
        return "FINAL" if self.inputs_final and now >= self.deadline_utc else "PRELIMINARY"


def _round(column: str) -> pl.Expr:
    return no_negative_zero(pl.col(column).round(DECIMALS)).alias(column)


def no_negative_zero(value: pl.Expr) -> pl.Expr:
    """-0.0 as 0.0: sums of the same values in another order land on either side of zero, and "-0.0" in a file
    would issue a version that changes nothing. (polars folds `x + 0.0` away, so it is said explicitly.)"""
    return pl.when(value == 0).then(pl.lit(0.0)).otherwise(value)


def _signed_reduction() -> pl.Expr:
    """Per interval: adjusted baseline − actual (actual − adjusted baseline for `generated`), clipped at zero
    where the program clips per interval (settlement/performance.py)."""
    raw = (
        pl.when(pl.col("channel") == "generated")
        .then(pl.col("actual_kwh") - pl.col("adjusted_baseline_kwh"))
        .otherwise(pl.col("adjusted_baseline_kwh") - pl.col("actual_kwh"))
    )
    return pl.when(pl.col("clip") == "interval").then(raw.clip(lower_bound=0)).otherwise(raw)


def event_statements(
    con: duckdb.DuckDBPyConnection, event_ids: list[str], partners: list[str] | None = None
) -> list[EventStatement]:
    """Every partner's statement of each settled event in `event_ids` (only `partners`' if given)."""
    if not event_ids:
        return []
    lines = frame(con, _LINES, {"events": event_ids})
    if partners is not None:
        lines = lines.filter(pl.col("partner_id").is_in(partners))
    if lines.is_empty():
        return []
    lines = lines.with_columns(
        pl.col("interval_start_utc").dt.convert_time_zone("UTC"),
        reduction_kwh=pl.when(
            pl.col("actual_kwh").is_not_null() & pl.col("adjusted_baseline_kwh").is_not_null()
        )
        .then(_signed_reduction())
        .otherwise(None),
    ).with_columns(
        # the meter's event total over every owner's intervals: where the program clips per event, it decides
        meter_reduction_kwh=pl.col("reduction_kwh").sum().over("event_id", "meter_id")
    )
    events = _events(con, event_ids)
    status = frame(
        con,
        """SELECT s.event_id, s.meter_id, s.status, s.selected_days, x.* EXCLUDE (event_id, meter_id, computed_at)
           FROM baseline_status s LEFT JOIN baseline_explanations x USING (event_id, meter_id)
           WHERE list_contains(?, s.event_id)""",
        [event_ids],
    )
    days = frame(
        con,
        """SELECT d.event_id, d.meter_id, d.day, d.day_type, d.outcome, d.slots_missing, d.event_window_mean_kwh,
                  -- who owned the meter the whole local day: only they see that day's load
                  coalesce(list(o.partner_id) FILTER (WHERE o.valid_from <= timezone(m.timezone, d.day::TIMESTAMP)
                      AND (o.valid_to IS NULL OR o.valid_to >= timezone(m.timezone, (d.day + 1)::TIMESTAMP))),
                      []) AS day_owners
           FROM baseline_days d JOIN meters m USING (meter_id)
           LEFT JOIN meter_ownership o ON o.meter_id = d.meter_id
           WHERE list_contains(?, d.event_id) GROUP BY ALL ORDER BY d.meter_id, d.day""",
        [event_ids],
    )
    zones = dict(con.execute("SELECT meter_id, timezone FROM meters").fetchall())
    out = []
    for (partner_id, event_id), own in lines.group_by("partner_id", "event_id", maintain_order=True):
        event = events[event_id]
        meters = _meter_rows(own, status.filter(pl.col("event_id") == event_id), days, event_id)
        out.append(
            EventStatement(
                partner_id=partner_id,
                event_id=event_id,
                program_id=event["program_id"],
                summary=_summary(partner_id, event, meters, zones),
                meters=meters,
                intervals=_interval_rows(own, zones),
                explanation=_explanation_rows(days, event_id, meters["meter_id"].to_list(), partner_id),
                inputs_final=bool(own["final"].all()),
                deadline_utc=event["end_utc"] + event["data_deadline"],
            )
        )
    return sorted(out, key=lambda s: (s.partner_id, s.event_id))


def _events(con, event_ids: list[str]) -> dict[str, dict]:
    rows = con.execute(
        """SELECT e.event_id, e.program_id, p.name AS program_name, e.start_utc, e.end_utc, p.baseline_preset,
                  p.channel, p.clip, p.data_deadline
           FROM dr_events e JOIN programs p USING (program_id) WHERE list_contains(?, e.event_id)""",
        [event_ids],
    ).fetchall()
    keys = ("event_id", "program_id", "program_name", "start_utc", "end_utc", "method", "channel", "clip")
    return {
        r[0]: dict(zip(keys, r[:8], strict=True))
        | {
            "start_utc": r[3].astimezone(dt.UTC),
            "end_utc": r[4].astimezone(dt.UTC),
            "data_deadline": _as_timedelta(r[8]),
        }
        for r in rows
    }


def _as_timedelta(value) -> dt.timedelta:
    # DuckDB returns INTERVAL as timedelta (the loader allows whole days only); NULL: a warehouse older than it
    return value if isinstance(value, dt.timedelta) else DEFAULT_DATA_DEADLINE


def _meter_rows(own: pl.DataFrame, status: pl.DataFrame, days: pl.DataFrame, event_id: str) -> pl.DataFrame:
    """Per meter: its numbers over the partner's intervals, its status and why, and its baseline's rule and
    adjustment (the same for every partner of a meter: a baseline is the meter's, not a share).

    Where the program clips per event, the clip is the meter's (as settlement's): a meter whose event total is
    not positive gives every owner zero, otherwise each owner its own sum, so the shares add up to settlement's
    number. The status is the share's: MISSING_ACTUALS and PROVISIONAL are judged on the partner's intervals."""
    clip_event = own["clip"][0] == "event"
    numbered = pl.col("adjusted_baseline_kwh").is_not_null() & pl.col("actual_kwh").is_not_null()
    sums = own.group_by("meter_id").agg(
        has_baseline=pl.col("adjusted_baseline_kwh").is_not_null().any(),
        baseline_kwh=pl.col("baseline_kwh").filter(numbered).sum(),
        adjusted_baseline_kwh=pl.col("adjusted_baseline_kwh").filter(numbered).sum(),
        actual_kwh=pl.col("actual_kwh").sum(),
        reduction_kwh=pl.col("reduction_kwh").sum(),
        meter_reduction_kwh=pl.col("meter_reduction_kwh").first(),
        share_final=pl.col("final").all(),
        intervals_expected=pl.len().cast(pl.Int64),
        intervals_present=pl.col("actual_kwh").is_not_null().sum().cast(pl.Int64),
    )
    with_numbers = pl.col("has_baseline") & (pl.col("intervals_present") > 0)
    reduction = (
        pl.when(pl.col("meter_reduction_kwh") > 0).then(pl.col("reduction_kwh")).otherwise(0.0)
        if clip_event
        else pl.col("reduction_kwh")
    )
    sums = sums.with_columns(
        baseline_kwh=pl.when(with_numbers).then(pl.col("baseline_kwh")),
        adjusted_baseline_kwh=pl.when(with_numbers).then(pl.col("adjusted_baseline_kwh")),
        actual_kwh=pl.when(pl.col("intervals_present") > 0).then(pl.col("actual_kwh")),
        reduction_kwh=pl.when(with_numbers).then(reduction),
    ).with_columns(
        avg_reduction_kw=pl.when(with_numbers).then(
            pl.col("reduction_kwh") / (pl.col("intervals_present") * 0.25)
        ),
    )
    joined = sums.join(status.drop("event_id"), on="meter_id", how="left").sort("meter_id")
    meter_level = pl.col("status").is_in(["INSUFFICIENT_DAYS", "NO_ADJUSTMENT_DATA"])
    joined = joined.with_columns(
        status=pl.when(meter_level)
        .then(pl.col("status"))
        .when(pl.col("intervals_present") < pl.col("intervals_expected"))
        .then(pl.lit("MISSING_ACTUALS"))
        .when(~pl.col("share_final"))
        .then(pl.lit("PROVISIONAL"))
        .otherwise(pl.lit("OK"))
    )
    meter_days = days.filter(pl.col("event_id") == event_id)
    reasons = [_reason(row, meter_days) for row in joined.iter_rows(named=True)]
    return joined.select(
        "meter_id",
        "status",
        pl.Series("reason", reasons, dtype=pl.String),
        _round("baseline_kwh"),
        _round("adjusted_baseline_kwh"),
        _round("actual_kwh"),
        _round("reduction_kwh"),
        _round("avg_reduction_kw"),
        "intervals_expected",
        "intervals_present",
        pl.col("selected_days").list.eval(pl.element().cast(pl.String)).list.join(" ").alias("selected_days"),
        "day_type",
        "days_wanted",
        "selection",
        "days_kept",
        "adjustment_kind",
        "adjustment_cap",
        "adjustment_slots_expected",
        "adjustment_slots_present",
        _round("adjustment_window_actual_kwh"),
        _round("adjustment_window_baseline_kwh"),
        _round("adjustment_raw"),
        _round("adjustment_applied"),
    )


def _reason(row: dict, days: pl.DataFrame) -> str:
    """Why the meter has the numbers it has, in words, from its status and explanation."""
    status = row["status"]
    if status == "INSUFFICIENT_DAYS":
        if row["days_wanted"] is None and row["adjustment_kind"] not in ("same_day", "zero"):
            return f"the program's baseline has no rule for {row['day_type']} event days"
        mine = days.filter(pl.col("meter_id") == row["meter_id"])
        counts = Counter(mine["outcome"].to_list())
        excluded = ", ".join(f"{n} {code}" for code, n in sorted(counts.items()) if code != "TOO_FEW_DAYS")
        return (
            f"{counts['TOO_FEW_DAYS']} usable days of the {row['days_wanted']} needed in the look-back"
            + (f" (excluded: {excluded})" if excluded else "")
            + "; the missing readings of earlier days are in the missing-intervals.csv of whoever owned the "
            "meter on those days"
        )
    if status == "NO_ADJUSTMENT_DATA":
        return (
            f"{row['adjustment_slots_present']} of {row['adjustment_slots_expected']} adjustment-window readings "
            "on the event day; upload the missing ones (missing-intervals.csv)"
        )
    if status == "MISSING_ACTUALS":
        missing = row["intervals_expected"] - row["intervals_present"]
        return (
            f"{missing} of {row['intervals_expected']} event intervals missing: sums cover the present ones"
        )
    return STATUS_REASONS.get(status, "")


def _local_column(zones: dict[str, str]) -> pl.Expr:
    """interval_start_utc in its meter's local time ('2025-08-20 16:30 PDT', as `local_time`), one conversion per
    time zone rather than a Python call per row."""
    known = {meter: zone for meter, zone in zones.items() if zone}
    zone = pl.col("meter_id").replace_strict(known, default="UTC", return_dtype=pl.String)
    text = pl.lit(None, dtype=pl.String)
    for name in sorted(set(known.values()) | {"UTC"}):
        local = pl.col("interval_start_utc").dt.convert_time_zone(name).dt.strftime("%Y-%m-%d %H:%M %Z")
        text = pl.when(zone == name).then(local).otherwise(text)
    return text


def _interval_rows(own: pl.DataFrame, zones: dict[str, str]) -> pl.DataFrame:
    return own.sort("meter_id", "interval_start_utc").select(
        "meter_id",
        pl.col("interval_start_utc").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("interval_start_utc"),
        _local_column(zones).alias("interval_start_local"),
        _round("baseline_kwh"),
        _round("adjusted_baseline_kwh"),
        _round("actual_kwh"),
        _round("reduction_kwh"),
        "final",
    )


def _explanation_rows(days: pl.DataFrame, event_id: str, meters: list[str], partner_id: str) -> pl.DataFrame:
    """Every look-back day of the partner's meters with its outcome; a day's load only where the partner owned
    the meter that whole day (another owner's consumption is not the partner's to see)."""
    mine = days.filter((pl.col("event_id") == event_id) & pl.col("meter_id").is_in(meters))
    return mine.with_columns(
        event_window_mean_kwh=pl.when(pl.col("day_owners").list.contains(partner_id)).then(
            pl.col("event_window_mean_kwh")
        )
    ).select(
        "meter_id",
        pl.col("day").cast(pl.String),
        "day_type",
        "outcome",
        pl.col("outcome").replace_strict(DAY_OUTCOMES, return_dtype=pl.String).alias("reason"),
        "slots_missing",
        _round("event_window_mean_kwh"),
    )


def _summary(partner_id: str, event: dict, meters: pl.DataFrame, zones: dict[str, str]) -> dict:
    zone_counts = Counter(zones.get(m) for m in meters["meter_id"].to_list())
    zone = zone_counts.most_common(1)[0][0] if zone_counts else None
    hours = (event["end_utc"] - event["start_utc"]).total_seconds() / 3600
    with_numbers = meters.filter(pl.col("reduction_kwh").is_not_null())
    reduction = with_numbers["reduction_kwh"].sum() if with_numbers.height else None
    return {
        "partner": partner_id,
        "program": event["program_id"],
        "program_name": event["program_name"],
        "event": event["event_id"],
        "window": {
            "start_utc": utc(event["start_utc"]),
            "end_utc": utc(event["end_utc"]),
            "start_local": local_time(event["start_utc"], zone),
            "end_local": local_time(event["end_utc"], zone),
            "time_zone": zone or "UTC",
            "hours": hours,
        },
        "method": event["method"],
        "channel": event["channel"],
        "clip": event["clip"],
        "data_deadline_utc": utc(event["end_utc"] + event["data_deadline"]),
        "meters": meters.height,
        "meters_by_status": dict(sorted(Counter(meters["status"].to_list()).items())),
        "totals": {
            "meters_with_numbers": with_numbers.height,
            "baseline_kwh": _r(with_numbers["adjusted_baseline_kwh"].sum()) if with_numbers.height else None,
            "actual_kwh": _r(meters["actual_kwh"].sum()),
            "reduction_kwh": _r(reduction),
            "avg_reduction_kw": _r(reduction / hours) if reduction is not None and hours else None,
        },
    }


def _r(value) -> float | None:
    return None if value is None else round(float(value), DECIMALS) + 0.0

"""Season statements: per partner, program and season, the average kW over all event hours, a missed event
counting as zero, built from the latest version of each of the partner's event statements (so a season's numbers
are always those of the event statements it lists)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from leap_orchestration.statements.content import DECIMALS, no_negative_zero
from leap_orchestration.statements.render import utc
from leap_orchestration.warehouse.duck import frame

_SEASON_LINES = """
WITH latest AS (
    SELECT partner_id, statement_id, program_id, subject_id AS event_id, version, status FROM statement_versions
    WHERE kind = 'event'
    QUALIFY row_number() OVER (PARTITION BY partner_id, statement_id ORDER BY version DESC) = 1),
lines AS (
    SELECT v.*, l.line_key AS meter_id,
           CAST(l.line_values->>'reduction_kwh' AS DOUBLE) AS reduction_kwh,
           CAST(l.line_values->>'intervals_expected' AS INTEGER) AS intervals_expected
    FROM statement_lines l JOIN latest v USING (partner_id, statement_id)
    WHERE NOT contains(l.line_key, '@'))
SELECT l.*, e.start_utc, date_diff('second', e.start_utc, e.end_utc) / 3600.0 AS event_hours,
       coalesce(s.season_id, strftime(e.start_utc AT TIME ZONE 'UTC', '%Y')) AS season_id,
       coalesce(s.end_utc, (date_trunc('year', e.start_utc AT TIME ZONE 'UTC') + INTERVAL 1 YEAR) AT TIME ZONE 'UTC')
           AS season_end_utc
FROM lines l JOIN dr_events e USING (event_id)
LEFT JOIN program_seasons s ON s.program_id = l.program_id AND e.start_utc >= s.start_utc AND e.start_utc < s.end_utc
"""


@dataclass(frozen=True)
class SeasonStatement:
    partner_id: str
    program_id: str
    season_id: str
    summary: dict
    meters: pl.DataFrame
    events_final: bool  # every event statement it is built from is FINAL
    season_end_utc: dt.datetime

    @property
    def statement_id(self) -> str:
        return f"season/{self.program_id}/{self.season_id}"

    def status(self, now: dt.datetime) -> str:
        return "FINAL" if self.events_final and now >= self.season_end_utc else "PRELIMINARY"


def season_statements(con: duckdb.DuckDBPyConnection) -> list[SeasonStatement]:
    lines = frame(con, _SEASON_LINES)
    out = []
    for (partner_id, program_id, season_id), rows in lines.group_by(
        "partner_id", "program_id", "season_id", maintain_order=True
    ):
        meters = (
            rows.group_by("meter_id")
            .agg(
                events=pl.len().cast(pl.Int64),
                events_with_numbers=pl.col("reduction_kwh").is_not_null().sum().cast(pl.Int64),
                event_hours=(pl.col("intervals_expected").sum() * 0.25),
                reduction_kwh=pl.col("reduction_kwh").fill_null(0).sum(),
            )
            .with_columns(avg_reduction_kw=pl.col("reduction_kwh") / pl.col("event_hours"))
            .with_columns(
                no_negative_zero(pl.col(c).round(DECIMALS)).alias(c)
                for c in ("reduction_kwh", "avg_reduction_kw")
            )
            .sort("meter_id")
        )
        events = rows.unique("event_id").sort("start_utc", "event_id")
        hours = float(events["event_hours"].sum())
        reduction = float(meters["reduction_kwh"].sum())
        summary = {
            "partner": partner_id,
            "program": program_id,
            "season": season_id,
            "season_end_utc": utc(rows["season_end_utc"].max()),
            "events": [
                {"event": e, "statement_version": v, "status": s}
                for e, v, s in events.select("event_id", "version", "status").rows()
            ],
            "meters": meters.height,
            "totals": {
                "event_hours": hours,
                "reduction_kwh": round(reduction, DECIMALS) + 0.0,
                "avg_reduction_kw": round(reduction / hours, DECIMALS) + 0.0 if hours else None,
            },
            "rule": "average kW = reduction kWh over all event hours; an event without numbers counts as zero",
        }
        out.append(
            SeasonStatement(
                partner_id,
                program_id,
                season_id,
                summary,
                meters,
                bool((rows["status"] == "FINAL").all()),
                rows["season_end_utc"].max().astimezone(dt.UTC),
            )
        )
    return sorted(out, key=lambda s: (s.partner_id, s.statement_id))

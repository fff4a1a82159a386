"""Issue partners' statements: build, compare with the latest version, write new versions, then the pointers.

Order (crash-safe by re-running): a new version's files are written first, then the version is recorded (with
its lines, in one transaction), then the partner's pointers (`latest.json`, `index.csv`) are rewritten and the
version marked delivered. A crash before the record leaves unannounced files that the re-run rewrites under the
same version number; a crash after it leaves the pointers to the next run (`delivered_at` is NULL).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import duckdb
import polars as pl

from leap_orchestration.settlement.engine import reading_range
from leap_orchestration.settlement.settle import ENGINE_VERSION, event_specs
from leap_orchestration.statements import versions
from leap_orchestration.statements.content import EventStatement, event_statements
from leap_orchestration.statements.deliver import Destinations
from leap_orchestration.statements.missing import COLUMNS as MISSING_COLUMNS
from leap_orchestration.statements.missing import owed_windows
from leap_orchestration.statements.render import frame_csv, pointer_files, version_files
from leap_orchestration.statements.seasons import SeasonStatement, season_statements
from leap_orchestration.warehouse.duck import frame, run

log = logging.getLogger(__name__)
MISSING_REPORT = "missing-intervals.csv"


@dataclass
class IssueReport:
    issued: list[dict] = field(default_factory=list)  # partner, statement, version, status, values changed
    unchanged: int = 0
    events_built: list[str] = field(default_factory=list)
    reports_written: list[str] = field(default_factory=list)  # partners whose missing-intervals.csv changed


def _build_keys(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> dict[str, str]:
    """Per settled event, what its statements depend on besides time: its settlement, ownership, the deadline
    having passed, and the statement code's version (the engine's)."""
    return dict(
        con.execute(
            """SELECT s.event_id, md5(concat_ws('|', s.inputs_digest, CAST(s.computed_at AS VARCHAR), $engine,
                          (SELECT md5(coalesce(string_agg(row, '|' ORDER BY row), '')) FROM (
                              SELECT concat_ws(',', meter_id, partner_id, epoch_us(valid_from),
                                               coalesce(epoch_us(valid_to), -1)) AS row FROM meter_ownership)),
                          CAST(e.end_utc + p.data_deadline <= $now AS VARCHAR)))
               FROM settled_events s JOIN dr_events e USING (event_id) JOIN programs p USING (program_id)""",
            {"engine": ENGINE_VERSION, "now": now},
        ).fetchall()
    )


def issue_statements(
    con: duckdb.DuckDBPyConnection,
    destinations: Destinations,
    now: dt.datetime,
    run_id: str | None = None,
    force: bool = False,
) -> IssueReport:
    report = IssueReport()
    keys = _build_keys(con, now)
    built = dict(con.execute("SELECT event_id, build_key FROM statement_builds").fetchall())
    todo = sorted(e for e, k in keys.items() if force or built.get(e) != k)
    latest = versions.latest_versions(con)
    ranges = {e.event_id: reading_range(e) for e in event_specs(con)}
    for statement in event_statements(con, todo):
        _issue_event(con, destinations, statement, latest, ranges, now, run_id, report)
    report.events_built = todo
    if todo:
        run(con, "DELETE FROM statement_builds WHERE list_contains(?, event_id)", [todo])
        run(
            con,
            "INSERT INTO statement_builds (event_id, build_key, built_at) SELECT unnest($e), unnest($k), $now",
            {"e": todo, "k": [keys[e] for e in todo], "now": now},
        )
    for season in season_statements(con):
        _issue_season(con, destinations, season, latest, now, run_id, report)
    _deliver_pointers(con, destinations, now)
    _write_missing_reports(con, destinations, now, report)
    return report


def _event_lines(statement: EventStatement) -> versions.Lines:
    meter_fields = (
        "status",
        "baseline_kwh",
        "adjusted_baseline_kwh",
        "actual_kwh",
        "reduction_kwh",
        "avg_reduction_kw",
        "intervals_expected",
        "intervals_present",
    )
    lines = {r["meter_id"]: {f: r[f] for f in meter_fields} for r in statement.meters.iter_rows(named=True)}
    for r in statement.intervals.iter_rows(named=True):
        lines[f"{r['meter_id']}@{r['interval_start_utc']}"] = {
            f: r[f] for f in ("baseline_kwh", "adjusted_baseline_kwh", "actual_kwh", "reduction_kwh", "final")
        }
    return lines


def _issue_event(con, destinations, statement: EventStatement, latest, ranges, now, run_id, report) -> None:
    status = statement.status(now)
    tables = {
        "meters": statement.meters,
        "intervals": statement.intervals,
        "explanation": statement.explanation,
    }
    digest = versions.digest_of(status, statement.summary, *(frame_csv(t).decode() for t in tables.values()))
    previous = latest.get((statement.partner_id, statement.statement_id))
    if previous is not None and previous.digest == digest:
        report.unchanged += 1
        return
    lines = _event_lines(statement)
    if previous is None:
        causes, changes = [{"kind": "first_statement"}], []
    else:
        changes = versions.diff(
            versions.stored_lines(con, statement.partner_id, statement.statement_id), lines
        )
        changed = sorted({c["line"].partition("@")[0] for c in changes})  # only uploads for these are causes
        causes = (
            versions.upload_causes(
                con, statement.partner_id, changed, ranges[statement.event_id], previous.issued_at
            )
            + versions.configuration_causes(con, previous.issued_at)
            + versions.status_cause(previous.status, status, statement.deadline_utc, now)
        )
    _issue(
        con,
        destinations,
        statement.partner_id,
        statement.statement_id,
        ("event", statement.program_id, statement.event_id),
        status,
        digest,
        statement.summary,
        tables,
        causes,
        changes,
        lines,
        previous,
        now,
        run_id,
        report,
    )


def _issue_season(con, destinations, season: SeasonStatement, latest, now, run_id, report) -> None:
    status = season.status(now)
    digest = versions.digest_of(status, season.summary, frame_csv(season.meters).decode())
    previous = latest.get((season.partner_id, season.statement_id))
    if previous is not None and previous.digest == digest:
        report.unchanged += 1
        return
    fields = ("events", "events_with_numbers", "event_hours", "reduction_kwh", "avg_reduction_kw")
    lines = {r["meter_id"]: {f: r[f] for f in fields} for r in season.meters.iter_rows(named=True)}
    if previous is None:
        causes, changes = [{"kind": "first_statement"}], []
    else:
        changes = versions.diff(versions.stored_lines(con, season.partner_id, season.statement_id), lines)
        events = [e["event"] for e in season.summary["events"]]
        reissued = con.execute(
            """SELECT subject_id, version, status FROM statement_versions WHERE partner_id = ? AND kind = 'event'
               AND list_contains(?, subject_id) AND issued_at > ? ORDER BY subject_id, version""",
            [season.partner_id, events, previous.issued_at],
        ).fetchall()
        causes = [
            {"kind": "event_statement", "event": e, "version": v, "status": st} for e, v, st in reissued
        ] + versions.status_cause(previous.status, status, None, now)
    _issue(
        con,
        destinations,
        season.partner_id,
        season.statement_id,
        ("season", season.program_id, season.season_id),
        status,
        digest,
        season.summary,
        {"meters": season.meters},
        causes,
        changes,
        lines,
        previous,
        now,
        run_id,
        report,
    )


def _issue(
    con,
    destinations: Destinations,
    partner_id: str,
    statement_id: str,
    subject: tuple[str, str, str],
    status: str,
    digest: str,
    summary: dict,
    tables: dict[str, pl.DataFrame],
    causes: list[dict],
    changes: list[dict],
    lines: versions.Lines,
    previous: versions.Latest | None,
    now: dt.datetime,
    run_id: str | None,
    report: IssueReport,
) -> None:
    version = previous.version + 1 if previous else 1
    files = version_files(
        statement_id,
        version,
        status,
        now,
        summary,
        tables,
        causes,
        changes,
        (previous.version, previous.status) if previous else None,
    )
    destinations.write(partner_id, files)
    versions.record(
        con,
        partner_id,
        statement_id,
        *subject,
        version,
        status,
        digest,
        now,
        run_id,
        causes,
        len(changes),
        lines,
    )
    report.issued.append(
        {
            "partner": partner_id,
            "statement": statement_id,
            "version": version,
            "status": status,
            "values_changed": len(changes),
        }
    )


def _deliver_pointers(con, destinations: Destinations, now: dt.datetime) -> None:
    """Rewrite latest.json and index.csv of every partner with an undelivered version, then mark them."""
    partners = [
        p
        for (p,) in con.execute(
            "SELECT DISTINCT partner_id FROM statement_versions WHERE delivered_at IS NULL ORDER BY 1"
        ).fetchall()
    ]
    for partner_id in partners:
        rows = frame(
            con,
            """SELECT * FROM statement_versions WHERE partner_id = ?
               QUALIFY row_number() OVER (PARTITION BY statement_id ORDER BY version DESC) = 1""",
            [partner_id],
        )
        destinations.write(partner_id, pointer_files(rows.to_dicts()))
        run(
            con,
            "UPDATE statement_versions SET delivered_at = ? WHERE partner_id = ? AND delivered_at IS NULL",
            [now, partner_id],
        )


def _write_missing_reports(con, destinations: Destinations, now: dt.datetime, report: IssueReport) -> None:
    """Each partner's missing-intervals.csv, rewritten when its content changed (an empty one once nothing is
    owed, so an old list never stays behind)."""
    owed = owed_windows(con, now)
    partners = set(owed["partner_id"].to_list()) | {
        p
        for (p,) in con.execute(
            "SELECT partner_id FROM partner_reports WHERE report = ?", [MISSING_REPORT]
        ).fetchall()
    }
    partners |= {p for (p,) in con.execute("SELECT DISTINCT partner_id FROM statement_versions").fetchall()}
    stored = dict(
        con.execute(
            "SELECT partner_id, digest FROM partner_reports WHERE report = ?", [MISSING_REPORT]
        ).fetchall()
    )
    for partner_id in sorted(partners):
        data = frame_csv(owed.filter(pl.col("partner_id") == partner_id).select(MISSING_COLUMNS))
        digest = versions.digest_of(data.decode())
        if stored.get(partner_id) == digest:
            continue
        destinations.write(partner_id, {MISSING_REPORT: data})
        run(
            con,
            """INSERT OR REPLACE INTO partner_reports (partner_id, report, digest, written_at)
               VALUES (?, ?, ?, ?)""",
            [partner_id, MISSING_REPORT, digest, now],
        )
        report.reports_written.append(partner_id)

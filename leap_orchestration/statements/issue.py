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

from leap_orchestration.config.models import DEFAULT_DATA_DEADLINE
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
WITHDRAWN = "WITHDRAWN"  # a statement that no longer applies (docs/statements.md, "Statuses and versions")
WITHDRAWN_NOTE = "none of your meters is in this statement any more: its earlier versions no longer apply"


@dataclass
class IssueReport:
    issued: list[dict] = field(default_factory=list)  # partner, statement, version, status, values changed
    unchanged: int = 0
    events_built: list[str] = field(default_factory=list)
    undeliverable: set[str] = field(default_factory=set)  # partners without an SFTP login or a connector
    owed: pl.DataFrame | None = None  # every partner's owed windows as of this run (missing.owed_windows)
    reports_written: list[str] = field(default_factory=list)  # partners whose missing-intervals.csv changed


def _build_keys(con: duckdb.DuckDBPyConnection, now: dt.datetime, channels: str) -> dict[str, str]:
    """Per settled event, what its statements depend on besides time: its settlement, ownership, the program's
    name and data deadline (and whether it has passed), the partners' channels, and the statement code's version
    (the engine's)."""
    return dict(
        con.execute(
            """SELECT s.event_id, md5(concat_ws('|', s.inputs_digest, CAST(s.computed_at AS VARCHAR), $engine,
                          $channels, p.name, CAST(coalesce(p.data_deadline, $default) AS VARCHAR),
                          (SELECT md5(coalesce(string_agg(row, '|' ORDER BY row), '')) FROM (
                              SELECT concat_ws(',', meter_id, partner_id, epoch_us(valid_from),
                                               coalesce(epoch_us(valid_to), -1)) AS row FROM meter_ownership)),
                          CAST(e.end_utc + coalesce(p.data_deadline, $default) <= $now AS VARCHAR)))
               FROM settled_events s JOIN dr_events e USING (event_id) JOIN programs p USING (program_id)""",
            {"engine": ENGINE_VERSION, "now": now, "channels": channels, "default": DEFAULT_DATA_DEADLINE},
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
    keys = _build_keys(con, now, destinations.channels_digest())
    built = dict(con.execute("SELECT event_id, build_key FROM statement_builds").fetchall())
    todo = sorted(e for e, k in keys.items() if force or built.get(e) != k)
    latest = versions.latest_versions(con)
    ranges = {e.event_id: reading_range(e) for e in event_specs(con)}
    in_force = set()
    for statement in event_statements(con, todo):
        if not destinations.places(statement.partner_id):
            report.undeliverable.add(statement.partner_id)  # no channel: nothing issued until it has one
            continue
        in_force.add((statement.partner_id, statement.statement_id))
        _issue_event(con, destinations, statement, latest, ranges, now, run_id, report)
    # a statement whose event was rebuilt without the partner (ownership corrected), or is no longer settled
    gone = [
        key
        for key, previous in latest.items()
        if key[1].startswith("event/")
        and previous.status != WITHDRAWN
        and key not in in_force
        and (key[1].split("/")[2] in todo or key[1].split("/")[2] not in keys)
    ]
    for partner_id, statement_id in gone:
        _withdraw(con, destinations, partner_id, statement_id, latest, now, run_id, report)
    report.events_built = todo
    if todo:
        run(con, "DELETE FROM statement_builds WHERE list_contains(?, event_id)", [todo])
        run(
            con,
            "INSERT INTO statement_builds (event_id, build_key, built_at) SELECT unnest($e), unnest($k), $now",
            {"e": todo, "k": [keys[e] for e in todo], "now": now},
        )
    seasons = [s for s in season_statements(con) if destinations.places(s.partner_id)]
    for season in seasons:
        _issue_season(con, destinations, season, latest, now, run_id, report)
    current = {(s.partner_id, s.statement_id) for s in seasons}
    for key, previous in latest.items():
        if key[1].startswith("season/") and previous.status != WITHDRAWN and key not in current:
            _withdraw(con, destinations, *key, latest, now, run_id, report)
    _deliver_pointers(con, destinations, now)
    _write_missing_reports(con, destinations, now, report)
    return report


def _withdraw(con, destinations, partner_id: str, statement_id: str, latest, now, run_id, report) -> None:
    """Issue a version saying the statement no longer applies: none of the partner's meters is in it any more
    (ownership was corrected, the event left the configuration, a season lost its last event)."""
    kind, program_id, subject_id = statement_id.split("/")
    draft = Draft(
        partner_id,
        statement_id,
        (kind, program_id, subject_id),
        WITHDRAWN,
        {"partner": partner_id, "program": program_id, kind: subject_id, "meters": 0, "note": WITHDRAWN_NOTE},
        {"meters": pl.DataFrame(schema={"meter_id": pl.String})},
        {},
    )

    def causes(previous: versions.Latest, changes: list[dict]) -> list[dict]:
        return versions.configuration_causes(con, previous.issued_at) + versions.status_cause(
            previous.status, WITHDRAWN, None, previous.issued_at, now
        )

    _issue_if_changed(con, destinations, draft, latest, causes, now, run_id, report)


@dataclass(frozen=True)
class Draft:
    """A statement as built now: issued as the next version if its digest differs from the latest one's."""

    partner_id: str
    statement_id: str
    subject: tuple[str, str, str]  # kind (event | season), program, event or season
    status: str
    summary: dict
    tables: dict[str, pl.DataFrame]  # <name>.csv of the version
    lines: versions.Lines  # what the next version's diff compares

    @property
    def digest(self) -> str:
        return versions.digest_of(
            self.status, self.summary, *(frame_csv(t).decode() for t in self.tables.values())
        )


_METER_FIELDS = (
    "status",
    "baseline_kwh",
    "adjusted_baseline_kwh",
    "actual_kwh",
    "reduction_kwh",
    "avg_reduction_kw",
    "intervals_expected",
    "intervals_present",
)
_INTERVAL_FIELDS = ("baseline_kwh", "adjusted_baseline_kwh", "actual_kwh", "reduction_kwh", "final")
_SEASON_FIELDS = ("events", "events_with_numbers", "event_hours", "reduction_kwh", "avg_reduction_kw")


def _event_draft(statement: EventStatement, now: dt.datetime) -> Draft:
    lines = {r["meter_id"]: {f: r[f] for f in _METER_FIELDS} for r in statement.meters.iter_rows(named=True)}
    for r in statement.intervals.iter_rows(named=True):
        lines[f"{r['meter_id']}@{r['interval_start_utc']}"] = {f: r[f] for f in _INTERVAL_FIELDS}
    return Draft(
        statement.partner_id,
        statement.statement_id,
        ("event", statement.program_id, statement.event_id),
        statement.status(now),
        statement.summary,
        {"meters": statement.meters, "intervals": statement.intervals, "explanation": statement.explanation},
        lines,
    )


def _season_draft(season: SeasonStatement, now: dt.datetime) -> Draft:
    lines = {r["meter_id"]: {f: r[f] for f in _SEASON_FIELDS} for r in season.meters.iter_rows(named=True)}
    return Draft(
        season.partner_id,
        season.statement_id,
        ("season", season.program_id, season.season_id),
        season.status(now),
        season.summary,
        {"meters": season.meters},
        lines,
    )


def _issue_event(con, destinations, statement: EventStatement, latest, ranges, now, run_id, report) -> None:
    draft = _event_draft(statement, now)

    def causes(previous: versions.Latest, changes: list[dict]) -> list[dict]:
        changed = sorted({c["line"].partition("@")[0] for c in changes})  # only uploads for these are causes
        return (
            versions.upload_causes(
                con, draft.partner_id, changed, ranges[statement.event_id], previous.issued_at
            )
            + versions.configuration_causes(con, previous.issued_at)
            + versions.status_cause(
                previous.status, draft.status, statement.deadline_utc, previous.issued_at, now
            )
        )

    _issue_if_changed(con, destinations, draft, latest, causes, now, run_id, report)


def _issue_season(con, destinations, season: SeasonStatement, latest, now, run_id, report) -> None:
    draft = _season_draft(season, now)

    def causes(previous: versions.Latest, changes: list[dict]) -> list[dict]:
        events = [e["event"] for e in season.summary["events"]]
        reissued = con.execute(
            """SELECT subject_id, version, status FROM statement_versions WHERE partner_id = ? AND kind = 'event'
               AND list_contains(?, subject_id) AND issued_at > ? ORDER BY subject_id, version""",
            [draft.partner_id, events, previous.issued_at],
        ).fetchall()
        return [
            {"kind": "event_statement", "event": e, "version": v, "status": st} for e, v, st in reissued
        ] + versions.status_cause(previous.status, draft.status, None, previous.issued_at, now)

    _issue_if_changed(con, destinations, draft, latest, causes, now, run_id, report)


def _issue_if_changed(
    con, destinations: Destinations, draft: Draft, latest, causes_since, now, run_id, report
):
    """Write and record `draft` as the next version, with its changes and causes, unless its content is the
    latest version's."""
    digest = draft.digest
    previous = latest.get((draft.partner_id, draft.statement_id))
    if previous is not None and previous.digest == digest:
        report.unchanged += 1
        return
    if previous is None:
        changes, causes = [], [{"kind": "first_statement"}]
    else:
        changes = versions.diff(versions.stored_lines(con, draft.partner_id, draft.statement_id), draft.lines)
        causes = causes_since(previous, changes)
    version = previous.version + 1 if previous else 1
    files = version_files(
        draft.statement_id,
        version,
        draft.status,
        now,
        draft.summary,
        draft.tables,
        causes,
        changes,
        (previous.version, previous.status) if previous else None,
    )
    destinations.write(draft.partner_id, files)
    versions.record(
        con,
        draft.partner_id,
        draft.statement_id,
        *draft.subject,
        version,
        draft.status,
        digest,
        now,
        run_id,
        causes,
        len(changes),
        draft.lines,
    )
    report.issued.append(
        {
            "partner": draft.partner_id,
            "statement": draft.statement_id,
            "version": version,
            "status": draft.status,
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
    owed = report.owed = owed_windows(con, now)
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
            """MERGE INTO partner_reports r
               USING (SELECT ?::VARCHAR AS partner_id, ?::VARCHAR AS report, ?::VARCHAR AS digest,
                             ?::TIMESTAMPTZ AS written_at) s USING (partner_id, report)
               WHEN MATCHED THEN UPDATE SET digest = s.digest, written_at = s.written_at
               WHEN NOT MATCHED THEN INSERT BY NAME""",
            [partner_id, MISSING_REPORT, digest, now],
        )
        report.reports_written.append(partner_id)

"""Statement versions: V1, V2, … issued only when a statement's content changes, each with what changed and why.

A statement's lines (one per meter, one per meter and interval) are kept for its latest version in
`statement_lines`, so the next version's diff is a comparison of lines; the cause is read from what happened
since the previous version was issued: uploads that loaded readings of its meters in the event's reading range
(a reading that replaced another is a correction), configuration loads, the data deadline passing or readings
becoming final. A partner is only told the job ids and file names of its own uploads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import duckdb

from leap_orchestration.statements.render import utc
from leap_orchestration.warehouse.duck import atomically, run, serialize_with

Lines = dict[str, dict]  # line key ("<meter>" or "<meter>@<interval start UTC>") -> its values


@dataclass(frozen=True)
class Latest:
    version: int
    status: str
    digest: str
    issued_at: dt.datetime


def digest_of(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def latest_versions(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], Latest]:
    """(partner, statement id) -> its latest issued version."""
    rows = con.execute(
        """SELECT partner_id, statement_id, version, status, digest, issued_at FROM statement_versions
           QUALIFY row_number() OVER (PARTITION BY partner_id, statement_id ORDER BY version DESC) = 1"""
    ).fetchall()
    return {(p, s): Latest(v, st, d, t) for p, s, v, st, d, t in rows}


def stored_lines(con: duckdb.DuckDBPyConnection, partner_id: str, statement_id: str) -> Lines:
    rows = con.execute(
        "SELECT line_key, line_values FROM statement_lines WHERE partner_id = ? AND statement_id = ?",
        [partner_id, statement_id],
    ).fetchall()
    return {key: json.loads(values) for key, values in rows}


def diff(old: Lines, new: Lines) -> list[dict]:
    """Every line added, removed or with a changed value: {line, field, old, new} (a whole line added or
    removed has field None and its values as new or old)."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None or after is None:
            changes.append({"line": key, "field": None, "old": before, "new": after})
            continue
        for field in sorted(before.keys() | after.keys()):
            if before.get(field) != after.get(field):
                changes.append(
                    {"line": key, "field": field, "old": before.get(field), "new": after.get(field)}
                )
    return changes


def upload_causes(
    con: duckdb.DuckDBPyConnection,
    partner_id: str,
    meters: list[str],
    reading_range: tuple[dt.datetime, dt.datetime],
    since: dt.datetime,
) -> list[dict]:
    """Uploads that loaded readings of `meters` in `reading_range` after `since`: a correction when a reading
    replaced one loaded before, else a late upload. Another party's uploads are named only as such."""
    rows = con.execute(
        """SELECT r.job_id, u.tenant, u.file_name, u.run_id, min(r.loaded_at) AS loaded_at, count(*) AS readings,
                  count(s.meter_id) AS replaced, list(DISTINCT r.meter_id ORDER BY r.meter_id) AS meters
           FROM interval_readings r LEFT JOIN uploads u ON u.job_id = r.job_id
           LEFT JOIN interval_readings_superseded s ON s.meter_id = r.meter_id
                AND s.interval_start_utc = r.interval_start_utc AND s.superseded_by_job_id = r.job_id
           WHERE list_contains($meters, r.meter_id) AND r.interval_start_utc >= $lo AND r.interval_start_utc < $hi
             AND r.loaded_at > $since
           GROUP BY ALL ORDER BY loaded_at, r.job_id""",
        {"meters": meters, "lo": reading_range[0], "hi": reading_range[1], "since": since},
    ).fetchall()
    causes = []
    for job_id, tenant, file_name, run_id, loaded_at, readings, replaced, cause_meters in rows:
        kind = "corrected_readings" if replaced else "late_upload"
        cause = {"kind": kind, "loaded_at": utc(loaded_at), "readings": readings, "meters": cause_meters}
        if tenant == partner_id:
            cause |= {"job_id": job_id, "file": file_name, "run_id": run_id}
        else:
            cause["source"] = "another party (the meter's other owner or the utility)"
        causes.append(cause)
    return causes


def configuration_causes(con: duckdb.DuckDBPyConnection, since: dt.datetime) -> list[dict]:
    rows = con.execute(
        "SELECT fingerprint, loaded_at FROM config_loads WHERE loaded_at > ? ORDER BY loaded_at", [since]
    ).fetchall()
    return [{"kind": "configuration_change", "fingerprint": f, "loaded_at": utc(t)} for f, t in rows]


def status_cause(
    old: str, new: str, deadline: dt.datetime | None, previous_issue: dt.datetime, now: dt.datetime
) -> list[dict]:
    """The status changed: named with the data deadline when it passed since the previous version."""
    if old == new:
        return []
    cause = {"kind": "status_change", "old": old, "new": new}
    if new == "FINAL" and deadline is not None and previous_issue < deadline <= now:
        cause["data_deadline_utc"] = utc(deadline)
    return [cause]


class StatementRaced(RuntimeError):
    """Another run issued the same version first: this run's drafts are stale."""


def record(
    con: duckdb.DuckDBPyConnection,
    partner_id: str,
    statement_id: str,
    kind: str,
    program_id: str,
    subject_id: str,
    version: int,
    status: str,
    digest: str,
    now: dt.datetime,
    run_id: str | None,
    causes: list[dict],
    changes: int,
    lines: Lines,
) -> None:
    """The version issued, and its lines as the next version's reference, in one transaction."""

    def issue() -> None:
        # two builds of one statement at once (a manual run beside the automatic one) must not both issue it
        serialize_with(con, "statements")
        taken = con.execute(
            "SELECT count(*) FROM statement_versions WHERE partner_id = ? AND statement_id = ? AND version >= ?",
            [partner_id, statement_id, version],
        ).fetchall()[0][0]
        if taken:
            raise StatementRaced(
                f"{partner_id}'s {statement_id} V{version} was issued by another run meanwhile: materialize again"
            )
        run(
            con,
            """INSERT INTO statement_versions (partner_id, statement_id, kind, program_id, subject_id, version,
                   status, digest, issued_at, run_id, causes, changed_values)
               VALUES ($partner, $statement, $kind, $program, $subject, $version, $status, $digest, $now, $run_id,
                       $causes, $changes)""",
            {
                "partner": partner_id,
                "statement": statement_id,
                "kind": kind,
                "program": program_id,
                "subject": subject_id,
                "version": version,
                "status": status,
                "digest": digest,
                "now": now,
                "run_id": run_id,
                "causes": json.dumps(causes),
                "changes": changes,
            },
        )
        run(
            con,
            "DELETE FROM statement_lines WHERE partner_id = ? AND statement_id = ?",
            [partner_id, statement_id],
        )
        if lines:
            keys = sorted(lines)
            run(
                con,
                """INSERT INTO statement_lines (partner_id, statement_id, line_key, line_values)
                   SELECT $partner, $statement, unnest($keys), unnest($values)""",
                {
                    "partner": partner_id,
                    "statement": statement_id,
                    "keys": keys,
                    "values": [json.dumps(lines[k], sort_keys=True) for k in keys],
                },
            )

    atomically(con, issue)

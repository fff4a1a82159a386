"""The files of a statement version and the pointers beside them (docs/statements.md lists every column).

performance/README.txt                                   what this folder is
performance/index.csv                                    every statement's latest version (rewritten)
performance/missing-intervals.csv                        readings still owed, with deadlines (rewritten)
performance/<program>/events/<event>/latest.json         the latest version of the event's statement
performance/<program>/events/<event>/V<n>/summary.json   never rewritten once issued
                                         .../meters.csv, intervals.csv, explanation.csv, changes.json, changes.csv
performance/<program>/seasons/<season>/latest.json, V<n>/summary.json, meters.csv, changes.json, changes.csv
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import polars as pl

README = """Performance statements (leap-orchestration)

Every event of your programs and every season has a statement here, versioned V1, V2, ...:
  <program>/events/<event>/latest.json     names the latest version and its status
  <program>/events/<event>/V<n>/           summary.json, meters.csv, intervals.csv, explanation.csv,
                                           changes.json and changes.csv (what changed since V<n-1>, and why)
  <program>/seasons/<season>/V<n>/         summary.json, meters.csv, changes.json, changes.csv
  index.csv                                every statement's latest version
  missing-intervals.csv                    readings you still owe, the events they affect and the deadline

A statement is PRELIMINARY until every reading it uses is final and the program's data deadline has passed,
then FINAL; WITHDRAWN when none of your meters is in it any more. A version is never rewritten: a
recomputation that changes a number issues the next version.
Values cover your meters for the intervals you owned them. Times are UTC unless a column says local.
"""


def folder(statement_id: str) -> str:
    """`event/<program>/<event>` -> `<program>/events/<event>`; `season/<program>/<season>` likewise."""
    kind, program, subject = statement_id.split("/")
    return f"{program}/{kind}s/{subject}"


def utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def frame_csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv(float_precision=None).encode()


def _json(value) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=False, default=str) + "\n").encode()


def changes_files(header: dict, changes: list[dict]) -> dict[str, bytes]:
    """changes.json (header + every change) and changes.csv (one row per changed value)."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["meter_id", "interval_start_utc", "field", "old", "new"])
    for change in changes:
        meter, _, interval = change["line"].partition("@")
        writer.writerow(
            [meter, interval, change["field"] or "(whole line)", _cell(change["old"]), _cell(change["new"])]
        )
    return {
        "changes.json": _json(header | {"changes": changes}),
        "changes.csv": rows.getvalue().encode(),
    }


def _cell(value) -> str:
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def version_files(
    statement_id: str,
    version: int,
    status: str,
    issued_at: dt.datetime,
    summary: dict,
    tables: dict[str, pl.DataFrame],
    causes: list[dict],
    changes: list[dict],
    previous: tuple[int, str] | None,
) -> dict[str, bytes]:
    """Every file of version `version`, keyed by its path below `performance/`."""
    base = f"{folder(statement_id)}/V{version}"
    header = {
        "statement": statement_id,
        "version": version,
        "previous_version": previous[0] if previous else None,
        "status": {"old": previous[1] if previous else None, "new": status},
        "issued_at_utc": utc(issued_at),
        "causes": causes,
        "values_changed": len(changes),
    }
    files = {f"{base}/{name}.csv": frame_csv(frame) for name, frame in tables.items()}
    files |= {f"{base}/{name}": data for name, data in changes_files(header, changes).items()}
    files[f"{base}/summary.json"] = _json(
        {
            "statement": statement_id,
            "version": version,
            "status": status,
            "issued_at_utc": utc(issued_at),
            "previous_version": header["previous_version"],
            **summary,
            "changes": {k: header[k] for k in ("causes", "values_changed")},
            "files": sorted(p.rsplit("/", 1)[1] for p in files) + ["summary.json"],
        }
    )
    return files


def pointer_files(latest: list[dict], readme: bool = True) -> dict[str, bytes]:
    """latest.json of each statement in `latest` (rows of statement_versions) and index.csv over all of them."""
    files = {}
    index = io.StringIO()
    writer = csv.writer(index, lineterminator="\n")
    writer.writerow(["statement", "kind", "program", "subject", "version", "status", "issued_at_utc", "path"])
    for row in sorted(latest, key=lambda r: r["statement_id"]):
        path = f"{folder(row['statement_id'])}/V{row['version']}/"
        files[f"{folder(row['statement_id'])}/latest.json"] = _json(
            {
                "statement": row["statement_id"],
                "version": row["version"],
                "status": row["status"],
                "issued_at_utc": utc(row["issued_at"]),
                "path": path,
            }
        )
        writer.writerow(
            [
                row["statement_id"],
                row["kind"],
                row["program_id"],
                row["subject_id"],
                row["version"],
                row["status"],
                utc(row["issued_at"]),
                path,
            ]
        )
    files["index.csv"] = index.getvalue().encode()
    if readme:
        files["README.txt"] = README.encode()
    return files

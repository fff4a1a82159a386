"""errors.csv and feedback (the partner-facing contract: README.md, docs/error-codes.md), and the status object partners poll."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from leap_orchestration.intake.codes import CATALOGUE, ERROR

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """A spreadsheet would execute a cell starting with these; a leading quote makes it plain text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def errors_csv(rows: Iterable[tuple[int, str, str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "column", "code", "message"])
    for line, column, code, message in rows:
        writer.writerow([line, neutralise(column or ""), code, neutralise(message)])
    return out.getvalue().encode("utf-8")


def feedback_text(
    lines_parsed: int, elapsed_ms: int, error_count: int, error_lines: int, summary: list
) -> str:
    """First line as the platform's guide shows it, then one line per (column, code) with its exact count."""
    out = [
        f"Parsed {lines_parsed} lines in {elapsed_ms} milliseconds, found {error_count} errors on {error_lines} lines"
    ]
    for column, code, count in sorted(summary, key=lambda s: (CATALOGUE[s[1]].severity != ERROR, s[1], s[0])):
        entry = CATALOGUE[code]
        kind = "errors" if entry.severity == ERROR else "warnings"
        where = f"column {column}" if column else "line"
        out.append(f"{code} {where}: {count} {kind} ({entry.summary})")
    return "\n".join(out) + "\n"


def status_json(
    *, file: str, job_id: str, status: str, rows, errors, received_at, processed_at, result_keys
) -> bytes:
    body = {
        "file": file,
        "job_id": job_id,
        "status": status,
        "rows": rows,
        "errors": errors,
        "received_at": received_at.isoformat() if received_at else None,
        "processed_at": processed_at.isoformat() if processed_at else None,
        "result_keys": list(result_keys or []),
    }
    return json.dumps(body, indent=2).encode("utf-8")

"""What operators see of uploads: recent outcomes, and why a batch's failed uploads failed (warehouse reads).

Plain rows (lists of dicts) for the UI wiring in `assets/intake.py` to turn into tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import duckdb

RECENT_UPLOADS = 50  # the rolling table on the `uploads` asset
FIRST_ERRORS = 20  # error rows shown per batch (the rest: errors.csv and upload_errors)


def _top_codes(summary: str | None, n: int = 3) -> str:
    """'MTR_0003 ×4, CON_0002 ×1' from an upload's exact per-(column, code) counts."""
    counts: Counter = Counter()
    for _column, code, count in json.loads(summary or "[]"):
        counts[code] += count
    return ", ".join(f"{code} ×{count}" for code, count in counts.most_common(n))


def recent_uploads(con: duckdb.DuckDBPyConnection, limit: int = RECENT_UPLOADS) -> list[dict]:
    """The latest uploads of every partner and connector, newest first."""
    rows = con.execute(
        """SELECT coalesce(connector_id, tenant) AS source, file_name, received_at, processed_at, status,
                  rows_total, error_count, summary, run_id
           FROM uploads WHERE status IN ('COMPLETED', 'FAILED')
           ORDER BY processed_at DESC, file_name LIMIT ?""",
        [limit],
    ).fetchall()
    return [
        {
            "source": source,
            "file": name,
            "received_utc": _when(received),
            "processed_utc": _when(processed),
            "status": status,
            "rows": rows_total or 0,
            "errors": errors or 0,
            "top_codes": _top_codes(summary) if status == "FAILED" else "",
            "run": (run_id or "")[:8],
        }
        for source, name, received, processed, status, rows_total, errors, summary, run_id in rows
    ]


def failed_uploads(con: duckdb.DuckDBPyConnection, job_ids: list[str]) -> list[dict]:
    """The failed uploads among `job_ids`: who, which file, how many errors, and the main codes."""
    if not job_ids:
        return []
    rows = con.execute(
        """SELECT coalesce(connector_id, tenant), file_name, job_id, error_count, summary FROM uploads
           WHERE status = 'FAILED' AND list_contains(?, job_id) ORDER BY tenant, file_name""",
        [job_ids],
    ).fetchall()
    return [
        {
            "source": source,
            "file": name,
            "job_id": job,
            "errors": errors or 0,
            "top_codes": _top_codes(summary),
        }
        for source, name, job, errors, summary in rows
    ]


def code_counts(con: duckdb.DuckDBPyConnection, job_ids: list[str]) -> list[dict]:
    """Exact error counts per code over the failed uploads among `job_ids` (from each upload's summary)."""
    if not job_ids:
        return []
    counts: Counter = Counter()
    for (summary,) in con.execute(
        "SELECT summary FROM uploads WHERE status = 'FAILED' AND list_contains(?, job_id)", [job_ids]
    ).fetchall():
        for column, code, count in json.loads(summary or "[]"):
            counts[(code, column)] += count
    return [
        {"code": code, "column": column, "count": count}
        for (code, column), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def first_errors(con: duckdb.DuckDBPyConnection, job_ids: list[str], limit: int = FIRST_ERRORS) -> list[dict]:
    """The first error rows of the failed uploads among `job_ids`, as in their errors.csv."""
    if not job_ids:
        return []
    rows = con.execute(
        """SELECT u.file_name, e.line, e."column", e.code, e.message
           FROM upload_errors e JOIN uploads u USING (job_id)
           WHERE e.severity = 'error' AND list_contains(?, e.job_id)
           ORDER BY u.file_name, e.line, e."column" LIMIT ?""",
        [job_ids, limit],
    ).fetchall()
    return [
        {"file": name, "line": line, "column": column or "", "code": code, "message": message}
        for name, line, column, code, message in rows
    ]


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value is not None else ""  # short: no wrap

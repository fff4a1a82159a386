"""Partner health: is every configured SFTP partner and GCS connector uploading as often as expected, and are its
uploads accepted? Plain functions over the warehouse's `uploads` table and the parsed properties.xml (no Dagster);
`assets/health.py` turns the rows into the `partner_health` check on the `uploads` asset.

One row per configured source (SFTP partner, or connector), with a state:

- `never`: configured, but no upload of it was ever recorded;
- `failing`: its latest processed upload failed, or more than half of its uploads of the last 7 days did;
- `silent`: nothing received for longer than its `expectedUploadEvery` plus half of it (the grace);
- `ok`: otherwise.

When several apply, the first in this order wins (a partner whose last file failed and who then went quiet is
`failing`: the rejection is what to tell them about), and the reason mentions the silence too.

Times are the warehouse's: `received_at` (when the file arrived: the SFTP server's publish, the GCS object's
generation) measures silence and the 7-day window, so a backlog processed late is not taken for silence;
`processed_at` is shown. Files still waiting in an inbox have no row yet, so they don't count until processed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb

from leap_orchestration.config.models import Properties
from leap_orchestration.intake.layout import FAILED
from leap_orchestration.intake.outcomes import _top_codes

STATES = ("ok", "silent", "failing", "never")
# The order the check's description lists them: what broke (rejected uploads, then silence) before partners and
# connectors that never started.
NEEDS_ATTENTION = ("failing", "silent", "never")
WINDOW = dt.timedelta(days=7)
GRACE = 0.5  # silent after the cadence plus this fraction of it (daily: 36 h)

# Per source (an SFTP partner's uploads have no connector_id): its latest upload of any status (one being
# processed was received), its latest finished one, and its finished uploads and failures received since ?.
_SQL = """
WITH sourced AS (
    SELECT *, CASE WHEN connector_id IS NULL THEN 'sftp/' || tenant ELSE 'gcs/' || connector_id END AS source,
           status IN ('COMPLETED', 'FAILED') AS finished
    FROM uploads
), latest AS (
    SELECT source, status, file_name, summary FROM sourced WHERE finished
    QUALIFY row_number() OVER (PARTITION BY source ORDER BY received_at DESC, processed_at DESC, file_name) = 1
)
SELECT s.source, max(s.received_at), max(s.processed_at) FILTER (WHERE s.finished),
       count(*) FILTER (WHERE s.finished AND s.received_at >= ?),
       count(*) FILTER (WHERE s.status = 'FAILED' AND s.received_at >= ?),
       count(*), any_value(l.status), any_value(l.file_name), any_value(l.summary)
FROM sourced s LEFT JOIN latest l USING (source)
GROUP BY s.source
"""


def partner_health(
    con: duckdb.DuckDBPyConnection,
    properties: Properties,
    now: dt.datetime | None = None,
    grace: float = GRACE,
) -> list[dict]:
    """One row per configured SFTP partner, then per connector (in properties.xml's order); uploads of sources no
    longer configured are left out.

    Keys: source (partner or connector id), kind (sftp/gcs), state, reason (what is wrong and what clears it;
    '' when ok), expected (timedelta), last_received, last_processed (datetime or None), silent_for (timedelta
    since the last upload was received, or None), uploads_7d, failed_7d (finished uploads received in the last
    7 days, and those that failed), last_status, last_file (the latest finished upload).
    """
    now = now or dt.datetime.now(dt.UTC)
    since = now - WINDOW
    found = {row[0]: row[1:] for row in con.execute(_SQL, [since, since]).fetchall()}
    sources = [("sftp", p.partner_id, p.expected_upload_every) for p in properties.sftp_partners]
    sources += [("gcs", c.connector_id, c.expected_upload_every) for c in properties.connectors]
    rows = []
    for kind, source, expected in sources:
        received, processed, uploads_7d, failed_7d, total, last_status, last_file, summary = found.get(
            f"{kind}/{source}", (None, None, 0, 0, 0, None, None, None)
        )
        row = {
            "source": source,
            "kind": kind,
            "expected": expected,
            "last_received": received,
            "last_processed": processed,
            "silent_for": max(now - received, dt.timedelta(0)) if received is not None else None,
            "uploads_7d": uploads_7d,
            "failed_7d": failed_7d,
            "last_status": last_status,
            "last_file": last_file,
        }
        row["state"], row["reason"] = _judge(row, total, summary, grace)
        rows.append(row)
    return rows


def _judge(row: dict, total: int, summary: str | None, grace: float) -> tuple[str, str]:
    source, kind, expected = row["source"], row["kind"], row["expected"]
    cadence = describe_every(expected)
    if total == 0:
        how = (
            f"make sure they have an API key (leap-orchestration partners add {source}) and upload into "
            "interval-data/"
            if kind == "sftp"
            else "make sure the connector is provisioned and uploads to its prefix (docs/landing-zone.md)"
        )
        return "never", f"{source} never uploaded (expected {cadence}): {how}; clears with the first upload"
    silent = row["silent_for"] is not None and row["silent_for"] > expected * (1 + grace)
    quiet = f", and nothing came since, for {describe_span(row['silent_for'])}" if silent else ""
    if row["last_status"] == "FAILED":
        codes = _top_codes(summary) or "see its errors.csv"
        return "failing", (
            f"the latest upload from {source}, {row['last_file']}, failed ({codes}){quiet}: ask them to upload a "
            f"corrected file (errors.csv in their {FAILED}/{row['last_file']}/, codes in docs/error-codes.md); "
            "clears once their uploads are accepted again"
        )
    if row["failed_7d"] * 2 > row["uploads_7d"]:
        return "failing", (
            f"{row['failed_7d']} of {row['uploads_7d']} uploads from {source} in the last 7 days failed{quiet}: "
            f"ask them to fix what fails (errors.csv in their {FAILED}/<file>/, codes in docs/error-codes.md); "
            "clears once most of a week's uploads are accepted"
        )
    if silent:
        return "silent", (
            f"no upload from {source} for {describe_span(row['silent_for'])} (expected {cadence}): ask them to "
            "upload; clears with their next upload"
        )
    return "ok", ""


def needing_attention(rows: Iterable[dict]) -> list[dict]:
    """The rows that are not ok, in NEEDS_ATTENTION's order (each state in configuration order)."""
    rows = list(rows)
    return [r for state in NEEDS_ATTENTION for r in rows if r["state"] == state]


def summary(rows: list[dict], limit: int = 10) -> str:
    """For the UI: what needs attention and what would clear it, one line per source (the first `limit`; the
    table has them all), or that all is well."""
    bad = needing_attention(rows)
    if not rows:
        return "no SFTP partner or connector is configured in properties.xml"
    if not bad:
        return (
            f"all {len(rows)} partners and connectors uploaded within their expected cadence, and their latest "
            "uploads were accepted"
        )
    lines = [f"{len(bad)} of {len(rows)} partners and connectors need attention:"]
    lines += [f"- {r['reason']}" for r in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"- and {len(bad) - limit} more (see the partners table)")
    return "\n".join(lines)


def describe_every(every: dt.timedelta) -> str:
    """'daily', 'hourly', 'weekly', 'every 12 h', 'every 2 days', 'every 1 day 6 h', 'every 90 min'."""
    named = {dt.timedelta(hours=1): "hourly", dt.timedelta(days=1): "daily", dt.timedelta(days=7): "weekly"}
    if every in named:
        return named[every]
    minutes = int(every.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days and not rest:
        return f"every {days} days"
    if not days and not minutes:
        return f"every {hours} h"
    if not days and not hours:
        return f"every {minutes} min"
    parts = [f"{days} day{'s' if days > 1 else ''}" if days else "", f"{hours} h" if hours else ""]
    parts.append(f"{minutes} min" if minutes else "")
    return "every " + " ".join(p for p in parts if p)


def describe_span(span: dt.timedelta) -> str:
    """A silence, rounded down: '40 min', '36 h' (under 2 days), '3 days'."""
    minutes = int(span.total_seconds()) // 60
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"

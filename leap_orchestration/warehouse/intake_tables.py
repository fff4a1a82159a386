"""Warehouse writes for intake: the uploads journal, errors, and the readings load (one transaction)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import polars as pl

from leap_orchestration.config.ownership import OWNERSHIP_SCHEMA
from leap_orchestration.warehouse.duck import atomically, run, serialize_with


class ConfigurationNotLoaded(RuntimeError):
    """No meter configuration in the warehouse yet: uploads wait rather than fail for our fault."""


def configuration_loaded(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT count(*) FROM config_loads").fetchall()[0][0] > 0


def partner_ownership(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    if not configuration_loaded(con):
        raise ConfigurationNotLoaded(
            "the meter configuration has not been loaded: materialize meter_configuration first"
        )
    frame = con.sql(
        """SELECT o.meter_id, o.partner_id, m.source, o.valid_from, o.valid_to
           FROM meter_ownership o JOIN meters m USING (meter_id)"""
    ).pl()
    return frame.cast(OWNERSHIP_SCHEMA)


def get_upload(con: duckdb.DuckDBPyConnection, upload_id: str) -> dict | None:
    cur = con.execute("SELECT * FROM uploads WHERE upload_id = ?", [upload_id])
    rows = cur.fetchall()
    row = rows[0] if rows else None
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def start_job(
    con, *, upload_id, tenant, name, key, version, size, job_id, received_at, run_id, connector_id=None
) -> None:
    run(
        con,
        """MERGE INTO uploads u
           USING (SELECT ?::VARCHAR AS upload_id, ?::VARCHAR AS tenant, ?::VARCHAR AS file_name,
                         ?::VARCHAR AS source_key, ?::VARCHAR AS version, ?::BIGINT AS size_bytes,
                         ?::VARCHAR AS job_id, ?::TIMESTAMPTZ AS received_at, ?::VARCHAR AS run_id,
                         ?::VARCHAR AS connector_id) s
           USING (upload_id)
           WHEN MATCHED THEN UPDATE SET status = 'PROCESSING', run_id = s.run_id,
                                        attempts = coalesce(u.attempts, 0) + 1
           WHEN NOT MATCHED THEN INSERT (upload_id, tenant, file_name, source_key, version, size_bytes, job_id,
                                         status, received_at, run_id, connector_id, attempts)
               VALUES (s.upload_id, s.tenant, s.file_name, s.source_key, s.version, s.size_bytes, s.job_id,
                       'PROCESSING', s.received_at, s.run_id, s.connector_id, 1)""",
        [upload_id, tenant, name, key, version, size, job_id, received_at, run_id, connector_id],
    )


def undo_attempt(con, upload_id: str) -> None:
    """A start that ended in an infrastructure fault (the process lived on) is not an interrupted attempt."""
    run(con, "UPDATE uploads SET attempts = attempts - 1 WHERE upload_id = ? AND attempts > 0", [upload_id])


def finish_job(con, *, upload_id, job_id, received_at, report, sha256, result_keys, processed_at) -> str:
    """Load the staged rows (if valid) and record the outcome atomically; returns the final status."""
    status = "COMPLETED" if report.valid else "FAILED"
    summary = [[column, code, n] for (column, code), n in sorted(report.counts.items())]
    warnings = sum(n for (_, code), n in report.counts.items()) - report.error_count

    def record() -> None:
        run(con, "DELETE FROM upload_errors WHERE job_id = ?", [job_id])
        _insert_findings(con, job_id, report.details + report.warnings)
        loaded = 0
        if report.valid:
            # loads commit one after the other (on a multi-writer backend too): two uploads of one meter
            # committing at once would each see the other's rows as absent and both insert them
            serialize_with(con, "interval_readings")
            loaded = _load_readings(con, report.staged_table, job_id, received_at, processed_at)
        run(
            con,
            """UPDATE uploads SET status = ?, sha256 = ?, rows_total = ?, rows_loaded = ?, error_count = ?,
                      error_lines = ?, warning_count = ?, processed_at = ?, result_keys = ?, elapsed_ms = ?,
                      summary = ? WHERE upload_id = ?""",
            [
                status,
                sha256,
                report.lines_parsed,
                loaded,
                report.error_count,
                report.error_lines,
                warnings,
                processed_at,
                result_keys,
                report.elapsed_ms,
                json.dumps(summary),
                upload_id,
            ],
        )

    atomically(con, record)
    return status


def _insert_findings(con, job_id: str, findings: list) -> None:
    if not findings:
        return
    # one columnar insert: executemany goes row by row (seconds for the 10,000-row cap)
    rows = pl.DataFrame(
        {
            "job_id": job_id,
            "line": [f.line for f in findings],
            "column": [f.column for f in findings],
            "code": [f.code for f in findings],
            "message": [f.message for f in findings],
            "severity": [f.severity for f in findings],
        },
        schema={
            "job_id": pl.String,
            "line": pl.Int64,
            "column": pl.String,
            "code": pl.String,
            "message": pl.String,
            "severity": pl.String,
        },
    )
    con.register("_findings", rows)
    try:
        run(con, "INSERT INTO upload_errors BY NAME SELECT * FROM _findings")
    finally:
        con.unregister("_findings")


def _load_readings(con, staged: str, job_id: str, received_at: dt.datetime, now: dt.datetime) -> int:
    """Latest received upload wins per (meter, interval); whatever loses goes to the superseded table. `staged`:
    the temp table validation left the upload's rows in (`ValidationReport.staged_table`)."""
    cols = (
        "meter_id, interval_start_utc, interval_end_utc, energy_consumed_kwh, energy_generated_kwh, "
        "energy_net_kwh, final, region"
    )
    s_cols = ", ".join(f"s.{c.strip()}" for c in cols.split(","))
    first, last, low_meter, high_meter = con.execute(
        f"SELECT min(interval_start_utc), max(interval_start_utc), min(meter_id), max(meter_id) FROM {staged}"
    ).fetchall()[0]
    if first is None:
        return 0
    # Only stored readings inside the upload's key span can match it. Saying so as constants lets the scan skip
    # row groups (files on DuckLake) by their min/max; without it the anti join below read every stored
    # reading, so one small upload cost time in proportion to the warehouse (BENCHMARKS.md, scale curves).
    span = "{r}interval_start_utc BETWEEN $first AND $last AND {r}meter_id BETWEEN $low_meter AND $high_meter"
    readings = f"(SELECT * FROM interval_readings WHERE {span.format(r='')})"
    bounds = {"first": first, "last": last, "low_meter": low_meter, "high_meter": high_meter}
    load = {"job": job_id, "received": received_at, "now": now}
    params = {**load, **bounds}
    new_rows = f"SELECT {s_cols}, $job AS job_id, $received AS received_at, $now AS loaded_at FROM {staged} s"
    held = con.execute(
        f"SELECT count(*) FROM {readings} r SEMI JOIN {staged} s USING (meter_id, interval_start_utc)", bounds
    ).fetchall()[0][0]
    if not held:  # the usual upload, of intervals not stored yet: one scan instead of four
        return con.execute(f"INSERT INTO interval_readings BY NAME {new_rows}", load).fetchall()[0][0]
    # current rows that this upload replaces
    run(
        con,
        f"""INSERT INTO interval_readings_superseded BY NAME
           SELECT r.*, $job AS superseded_by_job_id, $now AS superseded_at FROM {readings} r
           JOIN {staged} s USING (meter_id, interval_start_utc) WHERE r.received_at <= $received""",
        params,
    )
    run(
        con,
        f"""DELETE FROM interval_readings r USING {staged} s
           WHERE r.meter_id = s.meter_id AND r.interval_start_utc = s.interval_start_utc
             AND r.received_at <= $received AND {span.format(r="r.")}""",
        {"received": received_at, **bounds},
    )
    # rows of this upload that a later-received upload already replaced (processed out of order)
    run(
        con,
        f"""INSERT INTO interval_readings_superseded BY NAME
            SELECT {s_cols}, $job AS job_id, $received AS received_at, $now AS loaded_at,
                   r.job_id AS superseded_by_job_id, $now AS superseded_at FROM {staged} s
            JOIN {readings} r USING (meter_id, interval_start_utc)""",
        params,
    )
    return con.execute(
        f"""INSERT INTO interval_readings BY NAME
            {new_rows} ANTI JOIN {readings} r USING (meter_id, interval_start_utc)""",
        params,
    ).fetchall()[0][0]


def abandon_job(con, upload_id: str, job_id: str) -> None:
    """The file changed while it was read: forget this version, the new one is a new upload."""
    run(con, "DELETE FROM upload_errors WHERE job_id = ?", [job_id])
    run(con, "DELETE FROM uploads WHERE upload_id = ?", [upload_id])


def previous_job_at(con, tenant: str, name: str, job_id: str, key: str) -> str | None:
    """The job whose original currently sits at `key` (to archive it before a re-upload takes its place)."""
    row = con.execute(
        """SELECT job_id FROM uploads WHERE tenant = ? AND file_name = ? AND job_id <> ?
             AND list_contains(result_keys, ?) ORDER BY processed_at DESC LIMIT 1""",
        [tenant, name, job_id, key],
    ).fetchall()
    return row[0][0] if row else None


def error_rows(con, job_id: str) -> list[tuple]:
    return con.execute(
        """SELECT line, "column", code, message FROM upload_errors WHERE job_id = ? AND severity = 'error'
           ORDER BY line, "column", code""",
        [job_id],
    ).fetchall()

"""The typed rows of the upload being validated, in a DuckDB temp table; cross-row rules run here in SQL."""

from __future__ import annotations

import duckdb
import polars as pl

from leap_orchestration.intake.codes import Finding
from leap_orchestration.warehouse.duck import run

STAGE = "stage_rows"


def create(con: duckdb.DuckDBPyConnection) -> None:
    run(con, 
        f"""CREATE OR REPLACE TEMP TABLE {STAGE} (
            line BIGINT, meter_id VARCHAR, interval_start_utc TIMESTAMPTZ, interval_end_utc TIMESTAMPTZ,
            energy_consumed_kwh DOUBLE, energy_generated_kwh DOUBLE, energy_net_kwh DOUBLE,
            final BOOLEAN, region VARCHAR)"""
    )


def append(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    """Stage every row that names a meter and a start time (enough to find duplicates and to load)."""
    rows = frame.filter(pl.col("_meter").is_not_null() & pl.col("_start").is_not_null()).select(
        "line",
        pl.col("_meter").alias("meter_id"),
        pl.col("_start").alias("interval_start_utc"),
        pl.col("_end").alias("interval_end_utc"),
        pl.col("_consumed").alias("energy_consumed_kwh"),
        pl.col("_generated").alias("energy_generated_kwh"),
        # net alone, or derived from consumed - generated when only those two were given
        pl.coalesce("_net", pl.col("_consumed") - pl.col("_generated")).alias("energy_net_kwh"),
        # a file without `final` makes no claim that its data is provisional: it is final
        pl.col("_final").fill_null(True).alias("final"),
        pl.col("region"),
    )
    con.register("_chunk_rows", rows)
    try:
        run(con, f"INSERT INTO {STAGE} SELECT * FROM _chunk_rows")
    finally:
        con.unregister("_chunk_rows")


def duplicate_findings(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """DUP_0001 for a (meter, interval) repeated with other values, DUP_0002 for an identical repeat.

    Identical repeats are removed from the stage so that the load sees each (meter, interval) once.
    """
    dups = con.execute(
        f"""WITH d AS (SELECT meter_id, interval_start_utc FROM {STAGE} GROUP BY ALL HAVING count(*) > 1),
            v AS (
              SELECT line, meter_id, interval_start_utc,
                     (interval_end_utc, energy_consumed_kwh, energy_generated_kwh, energy_net_kwh, final, region) AS vals,
                     count(*) OVER w AS n, first_value(line) OVER w AS first_line,
                     first_value((interval_end_utc, energy_consumed_kwh, energy_generated_kwh, energy_net_kwh, final, region)) OVER w AS first_vals
              FROM {STAGE} SEMI JOIN d USING (meter_id, interval_start_utc) WINDOW w AS (PARTITION BY meter_id, interval_start_utc ORDER BY line
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))
            SELECT line, first_line, vals IS DISTINCT FROM first_vals, meter_id,
                   strftime(interval_start_utc, '%Y-%m-%dT%H:%M:%SZ')
            FROM v WHERE n > 1 AND line <> first_line ORDER BY line"""
    ).fetchall()
    findings = []
    for line, first, conflicting, meter, start in dups:
        if conflicting:
            findings.append(Finding(line, "", "DUP_0001", f"Meter '{meter}' interval {start} is also on line {first} with different values."))
        else:
            findings.append(Finding(line, "", "DUP_0002", f"Meter '{meter}' interval {start} repeats line {first} exactly; kept once."))
    if findings:
        run(con, 
            f"""DELETE FROM {STAGE} WHERE line IN (
                  SELECT line FROM (SELECT line, row_number() OVER (PARTITION BY meter_id, interval_start_utc ORDER BY line) AS k
                                    FROM {STAGE}) WHERE k > 1)"""
        )
    return findings


def count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]

"""The typed rows of the upload being validated, in a DuckDB temp table; cross-row rules run here in SQL.

The table is the connection's (rows of a 10M-line file don't fit in a return value); its name is handed on as
a value (`ValidationReport.staged_table`) to whoever loads it (`warehouse/intake_tables.finish_job`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from leap_orchestration.intake.codes import Finding
from leap_orchestration.warehouse.duck import run

STAGE = "stage_rows"


def create(con: duckdb.DuckDBPyConnection) -> None:
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE {STAGE} (
            line BIGINT, meter_id VARCHAR, interval_start_utc TIMESTAMPTZ, interval_end_utc TIMESTAMPTZ,
            energy_consumed_kwh DOUBLE, energy_generated_kwh DOUBLE, energy_net_kwh DOUBLE,
            final BOOLEAN, region VARCHAR)""",
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
        run(con, f"INSERT INTO {STAGE} BY NAME SELECT * FROM _chunk_rows")
    finally:
        con.unregister("_chunk_rows")


@dataclass
class Duplicates:
    counts: Counter  # ("", code) -> exact number
    error_lines: np.ndarray  # the line of every DUP_0001
    findings: list[Finding]  # the first `keep`, by line


def duplicates(con: duckdb.DuckDBPyConnection, keep: int) -> Duplicates:
    """DUP_0001 for a (meter, interval) repeated with other values, DUP_0002 for an identical repeat.

    Identical repeats are removed from the stage so that the load sees each (meter, interval) once. Only the
    first `keep` findings are fetched with their messages: a file of ten million repeats stays in DuckDB.
    """
    run(
        con,
        f"""CREATE OR REPLACE TEMP TABLE stage_duplicates AS
            WITH d AS (SELECT meter_id, interval_start_utc FROM {STAGE} GROUP BY ALL HAVING count(*) > 1),
            v AS (
              SELECT line, meter_id, interval_start_utc,
                     (interval_end_utc, energy_consumed_kwh, energy_generated_kwh, energy_net_kwh, final, region) AS vals,
                     first_value(line) OVER w AS first_line,
                     first_value((interval_end_utc, energy_consumed_kwh, energy_generated_kwh, energy_net_kwh, final, region)) OVER w AS first_vals
              FROM {STAGE} SEMI JOIN d USING (meter_id, interval_start_utc) WINDOW w AS (PARTITION BY meter_id, interval_start_utc ORDER BY line
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))
            SELECT line, first_line, vals IS DISTINCT FROM first_vals AS conflicting, meter_id, interval_start_utc
            FROM v WHERE line <> first_line""",
    )
    try:
        counts = Counter(
            {
                ("", "DUP_0001" if conflicting else "DUP_0002"): n
                for conflicting, n in con.execute(
                    "SELECT conflicting, count(*) FROM stage_duplicates GROUP BY ALL"
                ).fetchall()
            }
        )
        error_lines = con.execute("SELECT line FROM stage_duplicates WHERE conflicting").fetchnumpy()["line"]
        first = con.execute(
            """SELECT line, first_line, conflicting, meter_id, strftime(interval_start_utc, '%Y-%m-%dT%H:%M:%SZ')
               FROM stage_duplicates ORDER BY line LIMIT ?""",
            [keep],
        ).fetchall()
    finally:
        run(con, "DROP TABLE stage_duplicates")
    findings = []
    for line, first_line, conflicting, meter, start in first:
        if conflicting:
            findings.append(
                Finding(
                    line,
                    "",
                    "DUP_0001",
                    f"Meter '{meter}' interval {start} is also on line {first_line} with different values.",
                )
            )
        else:
            findings.append(
                Finding(
                    line,
                    "",
                    "DUP_0002",
                    f"Meter '{meter}' interval {start} repeats line {first_line} exactly; kept once.",
                )
            )
    if counts:
        run(
            con,
            f"""DELETE FROM {STAGE} WHERE line IN (
                  SELECT line FROM (SELECT line, row_number() OVER (PARTITION BY meter_id, interval_start_utc ORDER BY line) AS k
                                    FROM {STAGE}) WHERE k > 1)""",
        )
    return Duplicates(counts, np.asarray(error_lines, dtype=np.int64), findings)


def count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]

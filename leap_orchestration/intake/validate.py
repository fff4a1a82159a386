"""Validate one upload: every rule, every error, exact counts; stage the typed rows for loading.

The same function serves the pipeline and the `validate` CLI (pre-flight), so both give the same answer.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

import duckdb
import numpy as np
import pandera.errors
import polars as pl

from leap_orchestration.intake import staging
from leap_orchestration.intake.codes import CATALOGUE, ERROR, FileLevelError, Finding
from leap_orchestration.intake.header import REQUIRED, parse_header
from leap_orchestration.intake.limits import DEFAULT_LIMITS, MAX_NAME_BYTES, IntakeLimits
from leap_orchestration.intake.messages import render
from leap_orchestration.intake.meters import PartnerMeters
from leap_orchestration.intake.reader import Chunk, check_deadline, iter_chunks, open_upload, read_header
from leap_orchestration.intake.rules import IntervalDataModel, prepare

ERRORS_CAP = 10_000  # rows kept in errors.csv / upload_errors; counts stay exact
ACCEPTED_SUFFIXES = (".csv", ".csv.gz")


@dataclass
class ValidationReport:
    lines_parsed: int = 0  # data lines after the header
    rows_staged: int = 0  # distinct (meter, interval) rows ready to load
    staged_table: str | None = None  # the temp table of the validating connection that holds them
    counts: Counter = field(default_factory=Counter)  # (column, code) -> exact number, errors and warnings
    details: list[Finding] = field(default_factory=list)  # errors, capped at ERRORS_CAP, by line
    warnings: list[Finding] = field(default_factory=list)  # capped
    error_lines: int = 0
    elapsed_ms: int = 0

    @property
    def error_count(self) -> int:
        return sum(n for (_, code), n in self.counts.items() if CATALOGUE[code].severity == ERROR)

    @property
    def valid(self) -> bool:
        return self.error_count == 0


class _Collector:
    def __init__(self, report: ValidationReport, cap: int):
        self.report, self.cap = report, cap
        self.error_line_sets: list[
            pl.Series
        ] = []  # one per batch, never per finding: a bad file has millions

    def add(
        self, findings: list[Finding], counts: Counter | None = None, error_lines: np.ndarray | None = None
    ) -> None:
        """Findings with messages; `counts` and `error_lines` are exact when `findings` holds only the first few."""
        if counts is None:
            counts = Counter((f.column, f.code) for f in findings)
            error_lines = np.array([f.line for f in findings if f.severity == ERROR], dtype=np.int64)
        self.report.counts.update(counts)
        if error_lines is not None and error_lines.size:
            self.error_line_sets.append(pl.Series(error_lines, dtype=pl.Int64))
        for f in findings:
            kept = self.report.details if f.severity == ERROR else self.report.warnings
            if (
                len(kept) < self.cap or f.line == 0
            ):  # a file-level finding is kept even past the cap (sorted first)
                kept.append(f)

    def add_frame(self, failures: pl.DataFrame, rows: pl.DataFrame) -> None:
        """failures: line, column, code (all errors). Counts from the frame; messages only for kept rows."""
        for column, code, n in failures.group_by("column", "code").len().iter_rows():
            self.report.counts[(column or "", code)] += n
        self.error_line_sets.append(failures["line"].unique())  # a line failing 8 rules counts once
        room = self.cap - len(self.report.details)
        if room > 0:
            kept = failures.sort("line").head(room).join(rows, on="line", how="left")
            for rec in kept.iter_rows(named=True):
                column = rec["column"] or ""
                self.report.details.append(
                    Finding(rec["line"], column, rec["code"], render(rec["code"], rec, column))
                )

    def finish(self) -> None:
        self.report.details.sort(key=lambda f: (f.line, f.column))
        del self.report.details[self.cap :]
        if self.error_line_sets:
            self.report.error_lines = pl.concat(self.error_line_sets).n_unique()


def validate_upload(
    stream: BinaryIO,
    file_name: str,
    meters: PartnerMeters,
    *,
    now: dt.datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    cap: int = ERRORS_CAP,
    limits: IntakeLimits = DEFAULT_LIMITS,
) -> ValidationReport:
    """Run every rule on the upload; its rows are left in a temp table of `con`, named by the report's
    `staged_table`, for the load.

    Without `con`, a private in-memory DuckDB capped at the limits' memory (spilling to a temporary folder).
    """
    if con is None:
        with tempfile.TemporaryDirectory(prefix="leap-validate-") as spill:
            scratch = duckdb.connect(config={"memory_limit": limits.duckdb_memory, "temp_directory": spill})
            try:
                return validate_upload(
                    stream, file_name, meters, now=now, con=scratch, cap=cap, limits=limits
                )
            finally:
                scratch.close()
    started = time.perf_counter()
    deadline = time.monotonic() + limits.max_seconds
    now = now or dt.datetime.now(dt.UTC)
    report = ValidationReport()
    collect = _Collector(report, cap)
    staging.create(con)
    report.staged_table = staging.STAGE
    if not file_name.lower().endswith(ACCEPTED_SUFFIXES):
        collect.add([Finding(0, "", "FIL_0005", f"File name '{file_name}' must end in .csv or .csv.gz.")])
    if len(file_name.encode()) > MAX_NAME_BYTES:
        collect.add(
            [
                Finding(
                    0,
                    "",
                    "FIL_0009",
                    f"The file name '{file_name}' is {len(file_name.encode())} bytes long; "
                    f"names may be at most {MAX_NAME_BYTES} bytes.",
                )
            ]
        )
    try:
        data = open_upload(stream, limits)
        raw_header = read_header(data, limits)
        header = parse_header(raw_header)
        collect.add(header.findings)
        skip_codes = {code for column, code in REQUIRED.items() if not header.has(column)}
        for chunk in _read_ahead(iter_chunks(data, header, limits=limits, deadline=deadline)):
            collect.add(chunk.findings, chunk.counts, chunk.error_lines)
            report.lines_parsed += chunk.lines
            if chunk.frame.height:
                frame = prepare(chunk.frame, meters, now)
                failures = _run_model(frame, skip_codes)
                if failures.height:
                    collect.add_frame(failures, chunk.frame)
                staging.append(con, frame)
            check_deadline(deadline, limits)
        if report.lines_parsed == 0 and report.error_count == 0:
            collect.add([Finding(0, "", "FIL_0006", "The file has a header but no data rows.")])
        dups = staging.duplicates(con, cap)
        collect.add(dups.findings, dups.counts, dups.error_lines)
        report.rows_staged = staging.count(con)
    except FileLevelError as exc:
        collect.add([exc.finding])
    collect.finish()
    report.elapsed_ms = round((time.perf_counter() - started) * 1000)
    return report


def _read_ahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Read and parse the next chunk on a second thread while this one is checked and staged (both cores busy)."""
    with ThreadPoolExecutor(1, thread_name_prefix="upload-reader") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _run_model(frame: pl.DataFrame, skip_codes: set[str]) -> pl.DataFrame:
    try:
        IntervalDataModel.validate(frame, lazy=True)
        return pl.DataFrame(schema={"line": pl.Int64, "column": pl.String, "code": pl.String})
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    unexpected = cases.filter(~pl.col("check").is_in(list(CATALOGUE)))
    if unexpected.height:  # a schema-level failure is a bug in this project, not in the upload
        raise RuntimeError(f"interval-data model failed unexpectedly: {unexpected.head(5)}")
    cases = cases.filter(~pl.col("check").is_in(list(skip_codes)))
    lines = frame["line"].gather(cases["index"].cast(pl.Int64))
    # dataframe-level checks (NRG_*) concern the whole line: their column is left empty
    columns = pl.when(cases["schema_context"] == "Column").then(cases["column"]).otherwise(pl.lit(""))
    return pl.DataFrame({"line": lines, "column": cases.select(columns)[:, 0], "code": cases["check"]})

"""The DuckDB warehouse file: schema on first use, and writers that wait for the file lock.

Dagster's `duckdb` pool (limit 1) already serialises writer steps; waiting on the lock here as well covers
processes outside that pool (a CLI, an operator's notebook) so a collision queues instead of failing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

LOCK_WAIT_SECONDS = 600  # default; LEAP_DUCKDB_LOCK_WAIT_SECONDS overrides (0 = fail at once, as tests use)


class Warehouse:
    def __init__(self, path: str | Path, memory_limit: str = "1GB"):
        self.path = Path(path)
        self.memory_limit = memory_limit

    @contextmanager
    def connect(
        self, read_only: bool = False, wait_seconds: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        if wait_seconds is None:
            wait_seconds = float(os.environ.get("LEAP_DUCKDB_LOCK_WAIT_SECONDS", LOCK_WAIT_SECONDS))
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path}: run the pipeline first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = _open_waiting(self.path, read_only, wait_seconds, self.memory_limit)
        try:
            if not read_only:
                run(con, resources.files(__package__).joinpath("schema.sql").read_text())
            yield con
        finally:
            con.close()


def _open_waiting(
    path: Path, read_only: bool, wait_seconds: float, memory_limit: str
) -> duckdb.DuckDBPyConnection:
    deadline, delay = time.monotonic() + wait_seconds, 0.05
    config = {"memory_limit": memory_limit}
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def run(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> None:
    """Execute a statement and consume its result (DuckDB 2 refuses new work while a result is pending)."""
    (con.execute(sql, params) if params is not None else con.execute(sql)).fetchall()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All statements of the block, or none of them."""
    run(con, "BEGIN TRANSACTION")
    try:
        yield
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise


def frame(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """A query's result as a polars DataFrame (through Arrow)."""
    return con.sql(sql, params=params).pl()

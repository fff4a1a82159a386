"""The warehouse's connections and the few helpers every module writes through.

`Warehouse` is the embedded default: one DuckDB file, one writer at a time. Dagster's `duckdb` pool (limit 1)
serialises writer steps; waiting on the file lock here as well covers processes outside that pool (a CLI, an
operator's notebook) so a collision queues instead of failing. `lake.DuckLakeWarehouse` is the multi-writer
backend; both hand out DuckDB connections, so every module keeps one SQL dialect.

Writes go through `run` and `atomically`, which make a commit that lost a race to another writer (only possible
on a multi-writer backend) roll back and do its work again on the new state.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

LOCK_WAIT_SECONDS = 600  # default; LEAP_DUCKDB_LOCK_WAIT_SECONDS overrides (0 = fail at once, as tests use)
CONFLICT_ATTEMPTS = 30  # a writer that loses this many commits in a row is stuck, not unlucky: raise
T = TypeVar("T")
log = logging.getLogger(__name__)


def schema_sql() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text()


class Warehouse:
    """The DuckDB file. `multi_writer`: whether several processes may write at once."""

    multi_writer = False

    def __init__(self, path: str | Path, memory_limit: str = "1GB"):
        self.path = Path(path)
        self.memory_limit = memory_limit

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """Whether anything was ever written (a read-only connect needs it)."""
        return self.path.exists()

    @contextmanager
    def connect(
        self, read_only: bool = False, wait_seconds: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        if wait_seconds is None:
            wait_seconds = float(os.environ.get("LEAP_DUCKDB_LOCK_WAIT_SECONDS", LOCK_WAIT_SECONDS))
        if read_only and not self.exists():
            raise FileNotFoundError(f"no warehouse at {self}: run the pipeline first")
        con = self._open(read_only, wait_seconds)
        try:
            if not read_only:
                self._ensure_schema(con)
            yield con
        finally:
            con.close()

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """While inside, no other process holds `name`: the work on one upload is one process's at a time. On
        the file, a write connection already excludes every other process, so there is nothing more to do."""
        yield

    def maintain(self, snapshot_retention: str = "", file_grace: str = "") -> dict[str, float]:
        """Upkeep, run by the daily `warehouse_maintenance` job. The file needs little: its write-ahead log is
        written into it (DuckDB reuses freed blocks by itself). The arguments are the lake's (lake.py)."""
        with self.connect() as con:
            run(con, "CHECKPOINT")
        return {"file_mb": round(self.path.stat().st_size / 1e6, 1)}

    def _open(self, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + wait_seconds, 0.05
        config = {"memory_limit": self.memory_limit}
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        run(con, schema_sql())


def is_write_conflict(exc: BaseException) -> bool:
    """A commit refused because another writer's commit came first (DuckLake's optimistic concurrency)."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def _pause(attempt: int) -> None:
    log.info("a commit lost to another writer's; doing its work again (attempt %d)", attempt + 2)
    time.sleep(min(0.02 * 1.5**attempt, 1.0) * random.uniform(0.5, 1.5))  # jitter: losers don't collide again


def run(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> None:
    """Execute a statement and consume its result. A statement on its own (not inside `atomically`) is its own
    transaction: if its commit loses to another writer's, it runs again."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            (con.execute(sql, params) if params is not None else con.execute(sql)).fetchall()
            return
        except duckdb.TransactionException as exc:
            # inside a transaction a conflict surfaces at COMMIT, which `atomically` retries as a whole
            if (
                not is_write_conflict(exc)
                or attempt == CONFLICT_ATTEMPTS - 1
                or sql.strip().upper() == "COMMIT"
            ):
                raise
            _pause(attempt)


def atomically(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """Run `work` (statements on `con`) as one transaction: all of it or none. On a multi-writer backend a commit
    can lose to another writer's: it is rolled back and `work` runs again, so `work` must read what it depends
    on itself, inside (it then sees the other writer's rows)."""
    for attempt in range(CONFLICT_ATTEMPTS):
        run(con, "BEGIN TRANSACTION")
        try:
            result = work()
            run(con, "COMMIT")
            return result
        except BaseException as exc:
            _rollback(con)
            if not is_write_conflict(exc) or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            _pause(attempt)
    raise AssertionError("unreachable")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK").fetchall()
    except duckdb.TransactionException:
        pass  # a failed COMMIT already ended the transaction


def serialize_with(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Inside `atomically`: make this transaction and any other that serializes on `name` commit one after the
    other. Both update the same row, which no two concurrent commits can do, so on a multi-writer backend the
    second one retries and sees the first one's rows. Needed where two writers could otherwise both insert the
    same key (the multi-writer backend has no unique constraints); free on the single-writer file."""
    updated = con.execute("UPDATE write_serials SET commits = commits + 1 WHERE name = ?", [name]).fetchall()
    if updated[0][0] != 1:
        raise ValueError(f"no write serial {name!r}: add it to schema.sql's write_serials rows")


def frame(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """A query's result as a polars DataFrame (through Arrow)."""
    return con.sql(sql, params=params).pl()

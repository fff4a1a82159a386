"""The multi-writer warehouse: DuckLake, a catalog in PostgreSQL and the data as Parquet files in a folder or a
bucket, so workers on several machines write at once.

The same SQL runs on it as on the DuckDB file: a connection is an in-memory DuckDB with the lake attached as its
default catalog (temporary tables stay in memory, per connection). What differs:
- DuckLake has no PRIMARY KEY or UNIQUE constraints: the schema is applied without them, every upsert is a
  MERGE (the same statement on both backends), and writers that could insert the same key serialize on a row
  of `write_serials` (duck.serialize_with).
- Writers are optimistic: a commit that conflicts with another writer's (one deleted from a table the other
  writes) fails, and duck.run / duck.atomically do that work again on the new state.
- The schema is applied once per version of schema.sql (recorded in `warehouse_schema`), not on every connect:
  a DDL statement would make concurrent writers conflict.
The `ducklake` and `postgres_scanner` extensions come from PyPI wheels (the `ducklake` extra), loaded from their
files so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from leap_orchestration.warehouse.duck import Warehouse, atomically, is_write_conflict, run, schema_sql

SNAPSHOT_RETENTION = "7 days"  # time travel reaches this far back (what a settlement read, for an inquiry)
FILE_GRACE = "1 day"  # longer than any query runs: a file replaced by maintenance may still be being read
MAINTENANCE_ATTEMPTS = 30  # a checkpoint runs again when a writer commits first (seconds apart)
log = logging.getLogger(__name__)
LAKE = "lake"  # the attached catalog's name; USE makes it the default, so the SQL never names it
# per process: the in-memory DuckDB databases with a lake attached, and the schema versions known applied
_DATABASES: dict[tuple, duckdb.DuckDBPyConnection] = {}
_SCHEMA_APPLIED: set[tuple[str, str]] = set()
_LOCK = threading.Lock()
HOLD_WAIT_SECONDS = 600  # as long as a writer waits for the DuckDB file's lock
_KEYS = re.compile(r"\s+PRIMARY KEY\b(?!\s*\()|,(\s*--[^\n]*)?\s*PRIMARY KEY\s*\([^)]*\)", re.IGNORECASE)
# DuckLake adds a column only without a default (that would be an expression to fill old rows with); the
# default for new rows is set after, as a literal
_ADDED_DEFAULT = re.compile(
    r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+) (\w+) DEFAULT ([^;]*);", re.IGNORECASE
)


def _extension(name: str) -> str:
    module = importlib.import_module(f"duckdb_extension_{name}")
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"no {name} extension for DuckDB {duckdb.__version__} at {path}")
    return str(path)


def lake_schema_sql() -> str:
    """schema.sql as DuckLake takes it: without key constraints (the keys stay documented in its comments), and
    added columns' defaults set in a statement of their own."""
    without_keys = _KEYS.sub(lambda m: m.group(1) or "", schema_sql())
    return _ADDED_DEFAULT.sub(
        r"ALTER TABLE \1 ADD COLUMN IF NOT EXISTS \2 \3; ALTER TABLE \1 ALTER \2 SET DEFAULT \4;",
        without_keys,
    )


class DuckLakeWarehouse(Warehouse):
    """`catalog`: DuckLake's metadata database, e.g. `postgres:dbname=lake host=db user=leap` (libpq reads the
    password from PGPASSWORD or ~/.pgpass). `data_path`: where the Parquet files go (a folder, or gs://bucket/...
    with DuckDB's httpfs credentials)."""

    multi_writer = True

    def __init__(self, catalog: str, data_path: str | Path, memory_limit: str = "1GB"):
        super().__init__(Path(str(data_path)), memory_limit)
        self.catalog = catalog
        self.data_path = str(data_path)

    def __str__(self) -> str:
        return f"ducklake:{_without_password(self.catalog)} (data in {self.data_path})"

    def exists(self) -> bool:
        try:
            con = self._open(read_only=True, wait_seconds=0)
        except duckdb.Error:
            return False
        try:
            return _has_table(con, "uploads")
        finally:
            con.close()

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """A PostgreSQL advisory lock on the catalog's server, held by a connection of its own: it is released
        when the block ends or when this process dies, however it dies (as the DuckDB file's lock is)."""
        import psycopg2

        if not self.catalog.startswith("postgres:"):
            raise ValueError("holding a name across workers needs a PostgreSQL catalog (postgres:...)")
        con = psycopg2.connect(self.catalog.removeprefix("postgres:"))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("SET lock_timeout = %s", [f"{HOLD_WAIT_SECONDS}s"])
                cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [name])
            yield
        finally:
            con.close()

    def maintain(
        self, snapshot_retention: str = SNAPSHOT_RETENTION, file_grace: str = FILE_GRACE
    ) -> dict[str, float]:
        """DuckLake's CHECKPOINT: rows the catalog holds inline are written to Parquet, adjacent small files
        merged, files with many deleted rows rewritten, snapshots older than `snapshot_retention` expired and
        files unreferenced for `file_grace` deleted (a query may still be reading them until then). Every upload
        writes small files and every statement a snapshot: without this, reads slow down as they pile up.
        Writers go on meanwhile; when one commits first, the checkpoint fails as a whole and runs again."""
        for attempt in range(MAINTENANCE_ATTEMPTS):
            try:
                return self._checkpoint(snapshot_retention, file_grace)
            except duckdb.Error as exc:
                if not _lost_to_a_writer(exc) or attempt == MAINTENANCE_ATTEMPTS - 1:
                    raise
                log.info("the lake's checkpoint lost to a writer (attempt %d): %s", attempt + 1, exc)
                self.release()  # a failed catalog transaction can leave the attachment refusing every statement
                time.sleep(random.uniform(0.5, 2.0))
        raise AssertionError("unreachable")

    def _checkpoint(self, snapshot_retention: str, file_grace: str) -> dict[str, float]:
        with self.connect() as con:
            before = _lake_counts(con)
            for option, value in (
                ("expire_older_than", snapshot_retention),
                ("delete_older_than", file_grace),
            ):
                run(con, f"CALL {LAKE}.set_option({_quote(option)}, {_quote(value)})")
            run(con, f"CHECKPOINT {LAKE}")
            after = _lake_counts(con)
        return {
            **{f"{name}_before": n for name, n in before.items()},
            **{f"{name}_after": n for name, n in after.items()},
        }

    def _open(self, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        """A new connection to this process's database with the lake attached (attaching costs a few hundred
        ms of catalog reads: once per process, not per connection). Temporary tables stay per connection."""
        con = self._database(read_only).cursor()
        try:
            run(con, f"USE {LAKE}")
        except BaseException:
            con.close()
            raise
        return con

    def release(self) -> None:
        """Close this process's attachments of the lake (each holds PostgreSQL connections)."""
        with _LOCK:
            for key in [k for k in _DATABASES if k[0] == self.catalog]:
                _DATABASES.pop(key).close()

    def _database(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        key = (self.catalog, self.data_path, self.memory_limit, read_only, os.getpid())
        with _LOCK:
            if key not in _DATABASES:
                _DATABASES[key] = self._attach(read_only)
            return _DATABASES[key]

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if "://" not in self.data_path:
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config={"memory_limit": self.memory_limit})
        try:
            run(con, f"LOAD '{_extension('postgres_scanner')}'")
            run(con, f"LOAD '{_extension('ducklake')}'")
            if (
                "://" in self.data_path
            ):  # a bucket: DuckDB's credentials for it come from a secret (deployment.md)
                run(con, f"LOAD '{_extension('httpfs')}'")
            data_path = self.data_path.rstrip("/") + "/"
            options = "READ_ONLY" if read_only else f"DATA_PATH {_quote(data_path)}"
            run(con, f"ATTACH {_quote('ducklake:' + self.catalog)} AS {LAKE} ({options})")
        except BaseException:
            con.close()
            raise
        return con

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        sql = lake_schema_sql()
        digest = hashlib.sha256(sql.encode()).hexdigest()
        if (self.catalog, digest) in _SCHEMA_APPLIED or _applied(con, digest):
            _SCHEMA_APPLIED.add((self.catalog, digest))
            return

        def apply() -> None:
            if not _applied(con, digest):  # another worker may have applied it meanwhile
                run(con, sql)
                run(
                    con,
                    "CREATE TABLE IF NOT EXISTS warehouse_schema (digest VARCHAR, applied_at TIMESTAMPTZ)",
                )
                run(con, "INSERT INTO warehouse_schema (digest, applied_at) VALUES (?, now())", [digest])

        atomically(con, apply)
        _SCHEMA_APPLIED.add((self.catalog, digest))


def _lost_to_a_writer(exc: BaseException) -> bool:
    """A checkpoint that raced a writer: DuckLake's own conflict, or PostgreSQL refusing the catalog update (its
    flush of inlined rows deletes catalog rows that a writer's commit has just updated), which can also surface
    as the catalog transaction being aborted."""
    text = str(exc).lower()
    raced = ("could not serialize", "concurrent update", "current transaction is aborted")
    return is_write_conflict(exc) or any(words in text for words in raced)


def _lake_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """What maintenance changes, from the lake's catalog: snapshots kept, data files in use, files awaiting
    deletion."""
    meta = f"__ducklake_metadata_{LAKE}"
    queries = {
        "snapshots": f"SELECT count(*) FROM {meta}.ducklake_snapshot",
        "data_files": f"SELECT count(*) FROM {meta}.ducklake_data_file WHERE end_snapshot IS NULL",
        "files_to_delete": f"SELECT count(*) FROM {meta}.ducklake_files_scheduled_for_deletion",
    }
    return {name: con.execute(sql).fetchall()[0][0] for name, sql in queries.items()}


def _applied(con: duckdb.DuckDBPyConnection, digest: str) -> bool:
    # looked up in the catalog, not by catching the error: an error would abort the enclosing transaction
    if not _has_table(con, "warehouse_schema"):
        return False
    return bool(
        con.execute("SELECT count(*) FROM warehouse_schema WHERE digest = ?", [digest]).fetchall()[0][0]
    )


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?", [LAKE, name]
    ).fetchall()
    return bool(found[0][0])


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _without_password(catalog: str) -> str:
    return re.sub(r"password=\S+", "password=***", catalog)

"""What the hourly landing-zone schedule records in the warehouse: the objects in connectors' prefixes that are
not uploads (each reported once per version).

The schedule runs outside Dagster's `duckdb` pool, so it waits only a few seconds for the file lock (a run may
hold it) and then does without: `None` means "the warehouse is busy, ask again next hour".
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from leap_orchestration.intake.process import Upload
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import atomically, run

LOCK_WAIT_SECONDS = 5.0


def _wait(seconds: float | None) -> float:
    return LOCK_WAIT_SECONDS if seconds is None else seconds


def _is_lock_error(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def record_ignored(
    wh: Warehouse, objects: list[Upload], wait_seconds: float | None = None
) -> list[Upload] | None:
    """Record the objects (tenant, inbox, object) not recorded yet; returns those, i.e. the ones to report now.

    An object is keyed by its key and version, so a new object under the same name is reported again. None if
    the warehouse is busy: nothing is recorded, and the next hour reports them.
    """
    if not objects:
        return []
    now = dt.datetime.now(dt.UTC)
    rows = pl.DataFrame(
        {
            "object_key": [u.obj.key for u in objects],
            "version": [u.obj.version for u in objects],
            "tenant": [u.tenant for u in objects],
            "size_bytes": [u.obj.size for u in objects],
            "updated_at": [u.received_at for u in objects],
            "reported_at": [now] * len(objects),
        },
        schema={
            "object_key": pl.String,
            "version": pl.String,
            "tenant": pl.String,
            "size_bytes": pl.Int64,
            "updated_at": pl.Datetime("us", "UTC"),
            "reported_at": pl.Datetime("us", "UTC"),
        },
    )

    def record(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
        con.register("_seen", rows)
        try:
            run(
                con,
                "CREATE OR REPLACE TEMP TABLE _fresh AS FROM _seen ANTI JOIN landing_zone_ignored USING (object_key, version)",
            )
            run(con, "INSERT INTO landing_zone_ignored BY NAME FROM _fresh")
            return set(con.execute("SELECT object_key, version FROM _fresh").fetchall())
        finally:
            con.unregister("_seen")

    try:
        with wh.connect(wait_seconds=_wait(wait_seconds)) as con:
            new = atomically(con, lambda: record(con))
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            return None
        raise
    return [u for u in objects if (u.obj.key, u.obj.version) in new]

"""What the hourly landing-zone schedule records in the warehouse: the objects in connectors' prefixes that are
not uploads (each reported once per version).

The schedule runs outside Dagster's `duckdb` pool, so it waits only a few seconds for the file lock (a run may
hold it) and then does without: `None` means "the warehouse is busy, ask again next hour".
"""

from __future__ import annotations

import datetime as dt

import duckdb

from leap_orchestration.intake.process import Upload
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import transaction

LOCK_WAIT_SECONDS = 5.0
_RECORD = """INSERT INTO landing_zone_ignored (object_key, version, tenant, size_bytes, updated_at, reported_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING object_key, version"""


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
    rows = [(u.obj.key, u.obj.version, u.tenant, u.obj.size, u.received_at, now) for u in objects]
    try:
        with wh.connect(wait_seconds=_wait(wait_seconds)) as con, transaction(con):
            new = {key for row in rows for key in con.execute(_RECORD, row).fetchall()}
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            return None
        raise
    return [u for u in objects if (u.obj.key, u.obj.version) in new]

"""What the hourly landing-zone schedule reads in the warehouse: whether a meter configuration was ever loaded.

The schedule runs outside Dagster's `duckdb` pool, so it waits only a few seconds for the file lock (a run may
hold it) and then does without: `None` means "the warehouse is busy, ask again next hour".
"""

from __future__ import annotations

import duckdb

from leap_orchestration.warehouse import Warehouse

LOCK_WAIT_SECONDS = 5.0


def _wait(seconds: float | None) -> float:
    return LOCK_WAIT_SECONDS if seconds is None else seconds


def _is_lock_error(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def configuration_loaded(wh: Warehouse, wait_seconds: float | None = None) -> bool | None:
    """True once `meter_configuration` has loaded a configuration into this warehouse; None if busy."""
    try:
        with wh.connect(read_only=True, wait_seconds=_wait(wait_seconds)) as con:
            return con.execute("SELECT count(*) FROM config_loads").fetchall()[0][0] > 0
    except FileNotFoundError:  # no warehouse yet
        return False
    except duckdb.CatalogException:  # a warehouse without the schema yet
        return False
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            return None
        raise

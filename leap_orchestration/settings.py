"""Where things live: LEAP_HOME and the paths derived from it (embedded defaults, one machine)."""

from __future__ import annotations

import os
from pathlib import Path


def leap_home() -> Path:
    return Path(os.environ.get("LEAP_HOME", ".leap")).resolve()


def landing_root() -> Path:
    return leap_home() / "landing"


def warehouse_path() -> Path:
    return leap_home() / "warehouse.duckdb"


def settle_seconds() -> float:
    """How long a file dropped outside the SFTP server must keep the same size and mtime before it is taken."""
    return float(os.environ.get("LEAP_SETTLE_SECONDS", "2"))

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


def credentials_path() -> Path:
    """Partner API keys (hashes only)."""
    return leap_home() / "partners.sqlite"


def sftp_dir() -> Path:
    """The SFTP server's host keys."""
    return leap_home() / "sftp"


def sftp_audit_log() -> Path:
    return leap_home() / "logs" / "sftp-audit.log"

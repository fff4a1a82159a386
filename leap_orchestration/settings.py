"""Where things live: LEAP_HOME and the paths derived from it (embedded defaults, one machine)."""

from __future__ import annotations

import os
from pathlib import Path


def leap_home() -> Path:
    return Path(os.environ.get("LEAP_HOME", ".leap")).resolve()


def landing_root() -> Path:
    return leap_home() / "landing"


def buckets_root() -> Path:
    """Stand-in for GCS on one machine: a folder per bucket (the landing zone and participant buckets)."""
    return leap_home() / "buckets"


def landing_zone_backend() -> str:
    """`local` (default: folders under buckets_root) or `gcs` (google-cloud-storage; honours STORAGE_EMULATOR_HOST)."""
    backend = os.environ.get("LEAP_LANDING_ZONE", "local").strip().lower()
    if backend not in ("local", "gcs"):
        raise ValueError(f"LEAP_LANDING_ZONE must be 'local' or 'gcs', not {backend!r}")
    return backend


def landing_zone_bucket() -> str:
    return os.environ.get("LEAP_LANDING_ZONE_BUCKET", "landing_zone")


def gcs_project() -> str | None:
    """The GCP project of the client (google-cloud-storage infers it from the credentials when unset)."""
    return os.environ.get("LEAP_GCS_PROJECT") or None


def warehouse_path() -> Path:
    return leap_home() / "warehouse.duckdb"


WAREHOUSE_BACKENDS = ("duckdb", "ducklake")
# writer steps at once (the `duckdb` pool) on DuckLake: two workers measured at BENCHMARKS.md's multi-writer
# figures; the file backend stays at dagster.yaml's 1
DUCKLAKE_WRITER_SLOTS = 2


def warehouse_backend() -> str:
    """LEAP_WAREHOUSE: `duckdb` (default: the file $LEAP_HOME/warehouse.duckdb, one writer at a time) or `ducklake`
    (several writers at once: catalog LEAP_DUCKLAKE_CATALOG, data files in LEAP_DUCKLAKE_DATA_PATH)."""
    backend = os.environ.get("LEAP_WAREHOUSE", "duckdb").strip().lower()
    if backend not in WAREHOUSE_BACKENDS:
        raise ValueError(f"LEAP_WAREHOUSE must be one of {', '.join(WAREHOUSE_BACKENDS)}, not {backend!r}")
    return backend


def ducklake_catalog() -> str:
    """DuckLake's metadata database, e.g. `postgres:dbname=lake host=db.internal user=leap`."""
    catalog = os.environ.get("LEAP_DUCKLAKE_CATALOG", "").strip()
    if not catalog:
        raise ValueError(
            "LEAP_WAREHOUSE=ducklake needs LEAP_DUCKLAKE_CATALOG (e.g. postgres:dbname=lake host=...)"
        )
    return catalog


def ducklake_data_path() -> str:
    return os.environ.get("LEAP_DUCKLAKE_DATA_PATH") or str(leap_home() / "lake")


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


def dagster_instance_file() -> str:
    """The instance settings the demo copies into $DAGSTER_HOME: `dagster.yaml` (SQLite under DAGSTER_HOME, the
    default) or, with LEAP_DAGSTER_STORAGE=postgres, `dagster.postgres.yaml` (PostgreSQL named by the
    DAGSTER_PG_* variables; docs/deployment.md)."""
    storage = os.environ.get("LEAP_DAGSTER_STORAGE", "sqlite").strip().lower()
    if storage not in ("sqlite", "postgres"):
        raise ValueError(f"LEAP_DAGSTER_STORAGE must be sqlite or postgres, not {storage!r}")
    return "dagster.yaml" if storage == "sqlite" else "dagster.postgres.yaml"

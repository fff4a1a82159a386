"""A real PostgreSQL server for tests: Debian's binaries (scripts/system-packages installs `postgresql`), a
fresh cluster in a temporary folder, listening on 127.0.0.1 and a free port, stopped at the end. As root (CI),
the server runs as the `postgres` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gcs_support import free_port


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (scripts/system-packages installs postgresql)"
        )
    return found


@contextlib.contextmanager
def postgres_server(database: str = "dagster"):
    """Yields the DAGSTER_PG_* variables of a running server with an empty `database`."""
    import psycopg2

    as_root = os.getuid() == 0
    # as root the server runs as `postgres`, which must reach the folder: not under a private TMPDIR
    folder = Path(tempfile.mkdtemp(prefix="leap-pg-", dir="/tmp" if as_root else None))
    as_server: list[str] = []
    if as_root:
        as_server = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    folder.chmod(0o755)
    data, port = folder / "data", free_port()
    run = lambda *cmd: subprocess.run([*as_server, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "leap", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
        )
        run(_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
        try:
            con = psycopg2.connect(host="127.0.0.1", port=port, user="leap", dbname="postgres")
            con.autocommit = True
            con.cursor().execute(f"CREATE DATABASE {database}")
            con.close()
            yield {
                "DAGSTER_PG_HOST": "127.0.0.1",
                "DAGSTER_PG_PORT": str(port),
                "DAGSTER_PG_USERNAME": "leap",
                "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it",
                "DAGSTER_PG_DB": database,
            }
        finally:
            run(_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def lake_catalogs(env: dict, prefix: str = "lake"):
    """A function that creates an empty database on the server of `env` (postgres_server's variables) and
    returns it as a DuckLake catalog (`postgres:dbname=... host=... port=... user=leap`), a new one each call."""
    import itertools

    import psycopg2

    numbers = itertools.count()
    port = env["DAGSTER_PG_PORT"]

    def new_catalog() -> str:
        name = f"{prefix}_{next(numbers)}"
        con = psycopg2.connect(host="127.0.0.1", port=port, user="leap", dbname="postgres")
        con.autocommit = True
        con.cursor().execute(f"CREATE DATABASE {name}")
        con.close()
        return f"postgres:dbname={name} host=127.0.0.1 port={port} user=leap"

    return new_catalog

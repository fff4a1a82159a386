"""The Dagster instance on a real PostgreSQL server (dagster.postgres.yaml): runs from the CLI are stored there,
not in SQLite under DAGSTER_HOME, with the project's pools and run queue."""

import shutil
import subprocess

import pytest
from pg_support import postgres_server
from test_end_to_end import REPO, materialize

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_env(cli_env):
    with postgres_server() as pg:
        dagster_home = cli_env["DAGSTER_HOME"]
        shutil.copy(REPO / "dagster.postgres.yaml", f"{dagster_home}/dagster.yaml")
        yield {**cli_env, **pg}


def test_runs_are_stored_in_postgres(pg_env):
    import psycopg2

    done = materialize(pg_env)
    assert done.returncode == 0, done.stderr[-3000:]
    con = psycopg2.connect(
        host=pg_env["DAGSTER_PG_HOST"],
        port=int(pg_env["DAGSTER_PG_PORT"]),
        user=pg_env["DAGSTER_PG_USERNAME"],
        dbname=pg_env["DAGSTER_PG_DB"],
    )
    with con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs")
        assert [s for (s,) in cur.fetchall()] == ["SUCCESS"]
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] >= 8  # configuration, intake, standardized output, settlement, statements
        cur.execute("SELECT count(*) FROM concurrency_limits WHERE concurrency_key = 'duckdb'")
        assert cur.fetchone()[0] <= 1
    con.close()
    # nothing went to SQLite
    assert not list((REPO / pg_env["DAGSTER_HOME"]).glob("history/runs.db"))
    info = subprocess.run(
        [str(REPO / ".venv/bin/dagster"), "instance", "info"], env=pg_env, capture_output=True, text=True
    )
    assert "PostgresRunStorage" in info.stdout, info.stdout[-2000:]

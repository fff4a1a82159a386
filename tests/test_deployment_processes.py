"""The standard OSS deployment, on one machine: a code server, the daemon and the webserver as separate
processes on a PostgreSQL instance (dagster.postgres.yaml), the warehouse on DuckLake with the `duckdb` pool
raised to 2. Partners' uploads (sensor runs), a connector run and settlement (automation) run at once; then a
run worker killed outright is failed and run again by the instance's run retries."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import psycopg2
import pytest
from gcs_support import free_port
from pg_support import lake_catalogs, postgres_server
from test_end_to_end import BIN, REPO

sys.path.insert(0, str(REPO / "bench"))
import multi_writer as mw  # noqa: E402

from leap_orchestration import settings  # noqa: E402
from leap_orchestration.stores import LocalLandingStore  # noqa: E402

pytestmark = pytest.mark.slow
LOCATION = "leap_orchestration.definitions"


@contextlib.contextmanager
def process(cmd: list[str], env: dict, log: Path):
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(check, timeout: float, what: str, logs: list[Path], state=lambda: None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}: {state()}\n{tails}")


def instance_rows(pg: dict, sql: str) -> list[tuple]:
    """A query's rows from the Dagster instance's PostgreSQL database."""
    con = psycopg2.connect(
        host=pg["DAGSTER_PG_HOST"], port=pg["DAGSTER_PG_PORT"], user="leap", dbname=pg["DAGSTER_PG_DB"]
    )
    with con, con.cursor() as cur:
        cur.execute(sql)
        found = cur.fetchall()
    con.close()
    return found


def runs(pg: dict) -> list[tuple]:
    """(job, status, start, end, whether it is a settlement run) of every run in the instance's storage."""
    return instance_rows(
        pg,
        """SELECT pipeline_name, status, start_time, end_time,
                  EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.run_id AND t.key = 'leap/settlement')
           FROM runs r ORDER BY start_time""",
    )


def test_webserver_daemon_and_code_server_run_concurrent_writers(cli_env, leap_home, tmp_path):
    with postgres_server() as pg:
        env = {
            **cli_env,
            **pg,
            "LEAP_WAREHOUSE": "ducklake",
            "LEAP_DUCKLAKE_CATALOG": lake_catalogs(pg)(),
            "LEAP_DUCKLAKE_DATA_PATH": str(tmp_path / "lake"),
            "LEAP_SENSOR_INTERVAL": "1",
        }
        shutil.copy(REPO / "dagster.postgres.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
        dagster = str(BIN / "dagster")
        # DuckLake takes concurrent writers: two writer steps at a time instead of the file's one
        subprocess.run(
            [dagster, "instance", "concurrency", "set", "duckdb", str(settings.DUCKLAKE_WRITER_SLOTS)],
            env=env,
            check=True,
        )
        loaded = subprocess.run(
            [dagster, "asset", "materialize", "--select", "meter_configuration", "-m", LOCATION],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert loaded.returncode == 0, loaded.stderr[-3000:]

        grpc, web = free_port(), free_port()
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {grpc}\n      location_name: {LOCATION}\n"
        )
        logs = [tmp_path / f"{name}.log" for name in ("code-server", "daemon", "webserver")]
        with (
            process(
                [dagster, "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc), "-m", LOCATION],
                env,
                logs[0],
            ) as code_server,
            process([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, logs[1]),
            process(
                [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web)],
                env,
                logs[2],
            ),
        ):

            def healthy() -> bool:
                check = [dagster, "api", "grpc-health-check", "-p", str(grpc)]
                return subprocess.run(check, env=env, capture_output=True).returncode == 0

            wait_for(healthy, 120, "the code server", logs)
            # a connector's year of readings for a run launched by hand; once it is loading, two partners'
            # uploads for the inbox sensor's runs, which then write while it does
            warehouse = mw.open_warehouse(
                ("ducklake", env["LEAP_DUCKLAKE_CATALOG"], env["LEAP_DUCKLAKE_DATA_PATH"])
            )
            zone = leap_home / "buckets" / "landing_zone" / "ext_conn1" / "connector.csv"
            zone.parent.mkdir(parents=True, exist_ok=True)
            zone.write_bytes(mw.upload_text(mw.partner_meters("participant_1", 4), mw.FIRST_DAY, 365, 0.5))
            launch = [
                dagster,
                "job",
                "launch",
                "-j",
                "landing_zone_connector",
                "-w",
                str(workspace),
                "-l",
                LOCATION,
            ]
            launched = subprocess.run(launch, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
            assert launched.returncode == 0, launched.stderr[-3000:]

            def loading(name: str):
                with warehouse.connect(read_only=True) as con:
                    return con.execute(
                        "SELECT run_id FROM uploads WHERE file_name = ? AND status = 'PROCESSING'", [name]
                    ).fetchall()

            wait_for(lambda: loading("connector.csv"), 120, "the connector run to load", logs, every=0.1)
            store = LocalLandingStore(leap_home / "landing")
            keys = mw.drop_uploads(store, files=3, meters=10, days=20)

            def all_done():
                found = runs(pg)
                jobs = {job for job, *_ in found}
                busy = [r for r in found if r[1] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")]
                settled = any(is_settlement for *_, is_settlement in found)
                wanted = {"process_uploads", "landing_zone_connector"} <= jobs and settled
                return found if wanted and not busy else None

            found = wait_for(all_done, 420, "the intake, connector and settlement runs", logs)
            assert all(status == "SUCCESS" for _, status, *_ in found), found
            # at least two writer runs were going at the same moment
            spans = [(start, end) for _, _, start, end, _ in found]
            assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]), (
                spans
            )

            # the webserver serves the same instance: its GraphQL lists the runs
            query = json.dumps(
                {"query": "{ runsOrError { ... on Runs { results { jobName status } } } }"}
            ).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{web}/graphql", data=query, headers={"Content-Type": "application/json"}
            )
            wait_for(lambda: _answers(request), 120, "the webserver", logs)
            served = json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]["runsOrError"][
                "results"
            ]
            assert len(served) == len(found) and {r["status"] for r in served} == {"SUCCESS"}

            first = 2 * 3 * 10 * 20 * 96 + 4 * 365 * 96
            assert warehouse_counts(warehouse) == ([("COMPLETED", 7)], first)
            with warehouse.connect(read_only=True) as con:
                assert con.execute("SELECT count(*) FROM settled_events").fetchall()[0][0] > 0
            assert sorted(keys) == sorted(mw.PARTNERS)

            # a run worker killed outright: the run is failed, its slot freed, and it is run again (run retries)
            big = 19 * 120 * 96  # large enough to be caught mid-run
            mw.drop(
                store,
                mw.PARTNERS[0],
                "big.csv",
                mw.upload_text(
                    mw.partner_meters(mw.PARTNERS[0], 19), mw.FIRST_DAY + dt.timedelta(100), 120, 3.0
                ),
                age_seconds=60,
            )

            [(victim,)] = wait_for(lambda: loading("big.csv"), 120, "big.csv's run to start", logs, every=0.1)
            # the run's worker: the code server's process holding the run's liveness lock (run_liveness.py;
            # the daemon's reaper opens the lock too, to test it)
            lock = str(Path(env["DAGSTER_HOME"]) / "leap-run-locks" / f"{victim}.lock")

            def holder():
                for proc in psutil.Process(code_server.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if any(f.path == lock for f in proc.open_files()):
                            return proc
                return None

            wait_for(holder, 60, f"the worker of run {victim}", logs, every=0.1).kill()

            def retried():
                found = {run_id: (status, parent) for run_id, status, parent in retries(pg)}
                return (
                    found
                    if found.get(victim, ("",))[0] == "FAILURE"
                    and any(parent == victim and status == "SUCCESS" for status, parent in found.values())
                    else None
                )

            wait_for(
                retried, 240, f"the killed run {victim} to be failed and run again", logs, lambda: retries(pg)
            )
            with warehouse.connect(read_only=True) as con:
                assert con.execute(
                    "SELECT status, attempts, rows_loaded FROM uploads WHERE file_name = 'big.csv'"
                ).fetchall() == [("COMPLETED", 2, big)]
            counts = warehouse_counts(warehouse)
            assert counts == ([("COMPLETED", 8)], first + big)


def warehouse_counts(warehouse) -> tuple[list, int]:
    """Uploads by status, and readings (asserting one current row per meter and interval)."""
    with warehouse.connect(read_only=True) as con:
        uploads = con.execute("SELECT status, count(*) FROM uploads GROUP BY ALL").fetchall()
        [(rows, keys)] = con.execute(
            "SELECT count(*), count(DISTINCT (meter_id, interval_start_utc)) FROM interval_readings"
        ).fetchall()
    assert rows == keys
    return uploads, rows


def retries(pg: dict) -> list[tuple]:
    """(run id, status, parent run id) of every run."""
    return instance_rows(
        pg,
        """SELECT r.run_id, r.status, t.value FROM runs r
           LEFT JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'dagster/parent_run_id'""",
    )


def _answers(request) -> bool:
    try:
        urllib.request.urlopen(request, timeout=10).read()
        return True
    except OSError:
        return False

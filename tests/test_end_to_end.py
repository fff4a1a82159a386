"""End to end through the real CLIs: `dagster asset materialize --select '*'` and `leap-orchestration`."""

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
from conftest import csv_text, good_row, partner_meter

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def drop(home, partner, name, data):
    path = home / "landing" / partner / "interval-data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - 30,) * 2)


MATERIALIZE_ALL = [
    str(BIN / "dagster"),
    "asset",
    "materialize",
    "--select",
    "*",
    "-m",
    "leap_orchestration.definitions",
]


def materialize(env, *extra):
    return subprocess.run(
        [*MATERIALIZE_ALL, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_materialize_everything_from_the_cli(leap_home, cli_env):
    a, b = partner_meter("sunrise-energy").meter_id, partner_meter("gridflex").meter_id
    drop(leap_home, "sunrise-energy", "good.csv", csv_text(good_row(a)))
    drop(leap_home, "sunrise-energy", "bad.csv", csv_text(good_row(a, consumed="-1"), good_row(b)))
    drop(leap_home, "gridflex", "good.csv.gz", __import__("gzip").compress(csv_text(good_row(b))))
    proc = materialize(cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sun = leap_home / "landing" / "sunrise-energy" / "interval-data"
    assert (sun / "accepted" / "good.csv" / "good.csv").exists()
    failed = sun / "failed" / "bad.csv"
    status = json.loads((sun / "status" / "bad.csv.json").read_text())
    assert status["status"] == "FAILED" and status["errors"] == 2
    errors = (failed / f"{status['job_id']}.errors.csv").read_text().splitlines()
    assert errors[0] == "line,column,code,message"
    assert {e.split(",")[2] for e in errors[1:]} == {"CON_0003", "MTR_0003"}
    assert (leap_home / "landing/gridflex/interval-data/accepted/good.csv.gz/good.csv.gz").exists()
    assert [p.name for p in sun.iterdir() if p.is_file()] == []
    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interval_readings").fetchall() == [(2,)]
        assert con.execute("SELECT count(*) FROM upload_errors WHERE severity = 'error'").fetchall() == [(2,)]
        assert con.execute("SELECT count(*) FROM meters").fetchall()[0][0] >= 50
    # the status CLI reads the same object
    out = subprocess.run(
        [str(BIN / "leap-orchestration"), "status", "--tenant", "sunrise-energy", "bad.csv"],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["job_id"] == status["job_id"]


def test_concurrent_runs_queue_on_the_duckdb_pool(leap_home, cli_env):
    assert materialize(cli_env).returncode == 0  # configuration in place
    # no waiting on DuckDB's file lock: if two writers overlapped, one would fail, so only the pool serialises
    cli_env = {**cli_env, "LEAP_DUCKDB_LOCK_WAIT_SECONDS": "0"}
    meter = partner_meter("voltstream").meter_id
    for i in range(3):
        drop(leap_home, "voltstream", f"f{i}.csv", csv_text(good_row(meter, consumed=str(i + 1))))
    entry = "voltstream/interval-data/{0}|{1}"

    def version(name):
        st = os.stat(leap_home / "landing/voltstream/interval-data" / name)
        return f"{st.st_size}-{st.st_mtime_ns}"

    def job(name):
        config = leap_home / f"{name}.run.json"  # JSON is YAML: the run config a sensor request carries
        config.write_text(
            json.dumps(
                {"ops": {"interval_intake": {"config": {"uploads": [entry.format(name, version(name))]}}}}
            )
        )
        return subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "leap_orchestration.definitions",
                "-j",
                "process_uploads",
                "-c",
                str(config),
            ],
            cwd=REPO,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(job, "f0.csv"), pool.submit(job, "f1.csv"), pool.submit(materialize, cli_env)]
        results = [r.result() for r in runs]
    failures = [
        line
        for r in results
        if r.returncode
        for line in r.stderr.splitlines()
        if "Error" in line or "error" in line
    ]
    assert all(r.returncode == 0 for r in results), failures[-20:]
    inbox = leap_home / "landing/voltstream/interval-data/accepted"
    assert sorted(p.name for p in inbox.iterdir()) == ["f0.csv", "f1.csv", "f2.csv"]
    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM uploads WHERE status = 'COMPLETED'").fetchall() == [(3,)]
    from dagster import DagsterInstance  # the runs claimed slots of the 'duckdb' pool, whose limit is 1

    with DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        info = instance.event_log_storage.get_concurrency_info("duckdb")
        assert info.slot_count == 1 and info.active_slot_count == 0


def test_validate_cli_exit_codes(leap_home, cli_env, tmp_path):
    meter = partner_meter("sunrise-energy").meter_id
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(csv_text(good_row(meter)))
    bad.write_bytes(csv_text(good_row(meter, region="cal")))
    cli = str(BIN / "leap-orchestration")
    ok = subprocess.run(
        [cli, "validate", str(good), "--partner", "sunrise-energy"],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "line,column,code,message"
    assert ok.stderr.startswith("Parsed 1 lines in ")
    ko = subprocess.run(
        [cli, "validate", str(bad), "--partner", "sunrise-energy"],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert ko.returncode == 1 and "REG_0003" in ko.stdout and "found 1 errors on 1 lines" in ko.stderr
    usage = subprocess.run(
        [cli, "validate", str(tmp_path / "missing.csv"), "--partner", "x"],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_demo_no_serve_writes_config_and_uploads(leap_home, cli_env):
    shutil.rmtree(leap_home / "config")
    out = subprocess.run(
        [str(BIN / "leap-orchestration"), "demo", "--no-serve"], env=cli_env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert (leap_home / "config" / "properties.xml").exists()
    assert len(list((leap_home / "demo-uploads").rglob("*.csv"))) == 7
    waiting = sorted(p.name for p in (leap_home / "buckets" / "landing_zone" / "ext_conn1").glob("*.csv"))
    assert (
        len(waiting) == 2
        and waiting[0] == "ext_conn1-history-2025-summer.csv"
        and waiting[1].startswith("ext_conn1-readings-")
    )
    for partner in (
        "sunrise-energy",
        "voltstream",
        "gridflex",
    ):  # the summer history waits in each owner's inbox
        assert (
            leap_home / "landing" / partner / "interval-data" / f"{partner}-history-2025-summer.csv"
        ).exists()


def test_hourly_landing_zone_job_on_gcs_from_the_cli(
    leap_home, cli_env, gcs_endpoint, gcs_client, landing_bucket
):
    """The guide's connector flow through the dagster CLI, with google-cloud-storage pointed at the emulator."""
    from test_landing_zone import HOUR_KEY, METER_3, PARTICIPANT, PREFIX, ensure_bucket, quarter_rows

    from leap_orchestration.standardized import meter_data

    env = {
        **cli_env,
        "LEAP_LANDING_ZONE": "gcs",
        "LEAP_LANDING_ZONE_BUCKET": landing_bucket,
        "STORAGE_EMULATOR_HOST": gcs_endpoint,
        "LEAP_GCS_PROJECT": "leap-test",
    }
    ensure_bucket(gcs_client, PARTICIPANT)
    name = f"cli-{os.getpid()}-{time.time_ns()}.csv"  # connectors can't overwrite: unique names
    # `gsutil cp` equivalent: create the object under the connector's prefix
    gcs_client.bucket(landing_bucket).blob(PREFIX + name).upload_from_string(
        csv_text(*quarter_rows(METER_3.meter_id, "2021-11-08T14", [0.75, 0.75, 0.75, 1.0])),
        if_generation_match=0,
    )
    dagster = [str(BIN / "dagster")]
    config = subprocess.run(
        dagster
        + ["asset", "materialize", "--select", "meter_configuration", "-m", "leap_orchestration.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert config.returncode == 0, config.stderr[-3000:]
    job = subprocess.run(
        dagster + ["job", "execute", "-m", "leap_orchestration.definitions", "-j", "landing_zone_connector"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    status = json.loads(
        gcs_client.bucket(landing_bucket).blob(f"{PREFIX}status/{name}.json").download_as_bytes()
    )
    assert status["status"] == "COMPLETED" and status["rows"] == 4
    assert gcs_client.bucket(landing_bucket).blob(f"{PREFIX}accepted/{name}/{name}").exists()
    doc = meter_data.parse(gcs_client.bucket(PARTICIPANT).blob(HOUR_KEY).download_as_bytes())
    assert (
        doc["usage"] == "1.25" and doc["startTime"] == "2021-11-08T14:00:00Z"
    )  # 3.25 consumed - 4 x 0.5 generated
    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM interval_readings WHERE meter_id = ?", [METER_3.meter_id]
        ).fetchall() == [(4,)]
        assert con.execute("SELECT connector_id FROM uploads WHERE file_name = ?", [name]).fetchall() == [
            ("ext_conn1",)
        ]
        assert con.execute("SELECT count(*) FROM standardized_hours").fetchall() == [(1,)]


def test_demo_history_settles_every_demo_event_from_the_cli(leap_home, cli_env):
    from leap_orchestration.config.demo_config import demo_events
    from leap_orchestration.demo import write_demo

    write_demo(leap_home)  # configuration, uploads, and the summer history in the owners' inboxes
    proc = materialize({**cli_env, "LEAP_SETTLE_SECONDS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        per_event = dict(
            con.execute(
                """SELECT event_id, count(reduction_kwh) FROM event_performance GROUP BY 1"""
            ).fetchall()
        )
        statuses = dict(con.execute("SELECT status, count(*) FROM event_performance GROUP BY 1").fetchall())
        battery_kw = con.execute("""SELECT min(avg_reduction_kw) FROM event_performance
                                    WHERE event_id = 'ma_cs-2025-07-29'""").fetchall()[0][0]
        seasons = con.execute("SELECT count(DISTINCT program_id) FROM season_performance").fetchall()[0][0]
    assert set(per_event) == {event_id for _, event_id, _, _ in demo_events()}
    assert all(n > 0 for n in per_event.values())
    # the demo's deliberate imperfections each show their status; the rest are settled
    assert (
        statuses["INSUFFICIENT_DAYS"] == 1
        and statuses["MISSING_ACTUALS"] == 1
        and statuses["PROVISIONAL"] == 20
    )
    assert statuses["OK"] == sum(statuses.values()) - 22
    assert battery_kw > 2.5  # every battery discharged in the first ConnectedSolutions event
    assert seasons == 4

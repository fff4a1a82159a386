"""The landing-zone connector on a home where the meter configuration was never loaded into the warehouse:
intake loads it first, so a run works at once (it failed with ConfigurationNotLoaded)."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from test_dagster import resources as local_resources
from test_landing_zone import METER_3, drop_connector_file, quarter_rows

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tick(home, hour, instance=None):
    from sensors.landing_zone import landing_zone_schedule

    resources = {k: v for k, v in local_resources(home).items() if k in ("landing_zone", "warehouse")}
    when = dt.datetime(2026, 11, 21, hour, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        resources=resources, scheduled_execution_time=when, instance=instance
    ) as ctx:
        return landing_zone_schedule(ctx)


def run_request(home, request):
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from assets.landing_zone import standardized_meter_hours

    return dg.materialize(
        [meter_configuration, interval_intake, standardized_meter_hours],
        resources=local_resources(home),
        run_config=request.run_config,
        selection=request.asset_selection
        or ["uploads", "upload_errors", "interval_readings", "standardized_meter_hours"],
    )


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.mark.slow
def test_job_from_the_cli_on_a_fresh_home(tmp_path):
    """The README's command on a LEAP_HOME that has nothing yet (configuration: the repo's): a connector file is
    taken and published, with no `ConfigurationNotLoaded`."""
    home = tmp_path / "fresh"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAP_")}
    env.update(LEAP_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), LEAP_SETTLE_SECONDS="0.2")
    upload = drop_connector_file(
        home, "first.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 2, 3, 4])
    )
    os.utime(upload, (time.time() - 30,) * 2)

    def job():
        return subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "leap_orchestration.definitions",
                "-j",
                "landing_zone_connector",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    proc = job()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "RUN_SUCCESS" in output, output[-3000:]
    assert "ConfigurationNotLoaded" not in output and "RUN_FAILURE" not in output
    inbox = home / "buckets/landing_zone/ext_conn1"
    assert json.loads((inbox / "status/first.csv.json").read_text())["status"] == "COMPLETED"
    assert (inbox / "accepted/first.csv/first.csv").exists()
    assert (home / "buckets/participant_1/ext_conn1/standardized/3/2021-11-08T14:00:00").exists()
    again = job()  # and again, now that it is loaded
    assert again.returncode == 0 and "RUN_SUCCESS" in again.stdout + again.stderr


def test_intake_loads_the_configuration_first_on_a_fresh_home(leap_home):
    """Any intake run on a home whose warehouse never had a configuration loads it first (once), so the hourly
    schedule's runs need no meter_configuration step and never parse every meter file."""
    assert not (leap_home / "warehouse.duckdb").exists()
    drop_connector_file(leap_home, "a.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1]))
    time.sleep(0.25)
    (first,) = tick(leap_home, 10)
    assert first.asset_selection is None  # the job's own selection: intake and standardized output
    result = run_request(leap_home, first)
    assert result.success and "meter_configuration" not in materialized(result)
    status = json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/a.csv.json").read_text())
    assert status["status"] == "COMPLETED"
    assert loads(leap_home) == 1
    drop_connector_file(leap_home, "b.csv", quarter_rows(METER_3.meter_id, "2021-11-08T15", [1, 1, 1, 1]))
    time.sleep(0.25)
    (second,) = tick(leap_home, 11)
    assert run_request(leap_home, second).success and loads(leap_home) == 1  # loaded now: not again


def loads(home) -> int:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM config_loads").fetchall()[0][0]


def test_a_broken_configuration_on_a_fresh_home_fails_the_run_in_one_line(leap_home):
    (leap_home / "config" / "properties.xml").write_text("<not-properties/>")
    drop_connector_file(leap_home, "a.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1]))
    result = dg.materialize(
        [__import__("assets.intake", fromlist=["interval_intake"]).interval_intake],
        resources=local_resources(leap_home),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "No meter configuration was ever loaded" in failure.step_failure_data.error.message

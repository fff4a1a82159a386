"""The landing-zone connector on a home where the meter configuration was never loaded into the warehouse:
the job loads it first (so a run works at once), and the hourly schedule asks for that only while no
configuration was ever loaded (hourly runs don't parse every meter file)."""

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
CONFIGURATION = dg.AssetKey("meter_configuration")


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
        selection=request.asset_selection,
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


def test_schedule_loads_the_configuration_only_while_none_was_ever_loaded(leap_home):
    assert not (leap_home / "warehouse.duckdb").exists()
    drop_connector_file(leap_home, "a.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1]))
    time.sleep(0.25)
    (first,) = tick(leap_home, 10)
    assert CONFIGURATION in first.asset_selection
    result = run_request(leap_home, first)
    assert result.success and "meter_configuration" in materialized(result)
    assert (
        json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/a.csv.json").read_text())["status"]
        == "COMPLETED"
    )

    # from now on the hourly runs leave the configuration alone (configuration_sensor reloads it on change)
    drop_connector_file(leap_home, "b.csv", quarter_rows(METER_3.meter_id, "2021-11-08T15", [1, 1, 1, 1]))
    time.sleep(0.25)
    (second,) = tick(leap_home, 11)
    assert CONFIGURATION not in second.asset_selection
    assert set(second.asset_selection) == {
        dg.AssetKey(k) for k in ("uploads", "upload_errors", "interval_readings", "standardized_meter_hours")
    }
    result = run_request(leap_home, second)
    assert result.success and "meter_configuration" not in materialized(result)
    assert (
        json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/b.csv.json").read_text())["status"]
        == "COMPLETED"
    )
    (idle,) = tick(leap_home, 12)  # the publish-only run too
    assert idle.run_key.endswith("-publish") and CONFIGURATION not in idle.asset_selection


def test_schedule_consults_dagster_while_a_run_holds_the_warehouse(leap_home, monkeypatch):
    """A run writing the warehouse holds DuckDB's lock: the schedule then goes by Dagster's record of
    meter_configuration instead of waiting."""
    from leap_orchestration.intake import zone_state

    monkeypatch.setattr(zone_state, "LOCK_WAIT_SECONDS", 0.2)
    wh = local_resources(leap_home)["warehouse"].warehouse()
    with wh.connect() as con:
        con.execute("SELECT 1").fetchall()  # the file and its schema, with no configuration in it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
            "sys.stdin.read()",
            str(leap_home / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert zone_state.configuration_loaded(wh) is None
        with dg.instance_for_test() as instance:
            (never,) = tick(leap_home, 10, instance=instance)
            assert CONFIGURATION in never.asset_selection
            instance.report_runless_asset_event(dg.AssetMaterialization(CONFIGURATION))
            (loaded,) = tick(leap_home, 11, instance=instance)
            assert CONFIGURATION not in loaded.asset_selection
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert zone_state.configuration_loaded(wh) is False

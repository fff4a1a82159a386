"""The `dg` command line from the repo root ([tool.dg] in pyproject.toml): `dg check defs`, `dg launch`."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import csv_text, good_row, partner_meter

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"
pytestmark = pytest.mark.slow


def dg(env, *args, timeout=300):
    return subprocess.run(
        [str(DG), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_dg_check_defs(cli_env):
    proc = dg(cli_env, "check", "defs")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_dg_launch_processes_a_dropped_upload(leap_home, cli_env):
    inbox = leap_home / "landing" / "sunrise-energy" / "interval-data"
    inbox.mkdir(parents=True)
    upload = inbox / "good.csv"
    upload.write_bytes(csv_text(good_row(partner_meter("sunrise-energy").meter_id)))
    os.utime(upload, (time.time() - 30,) * 2)  # settled: unchanged for longer than LEAP_SETTLE_SECONDS

    proc = dg(cli_env, "launch", "--assets", "*")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SupersessionWarning" not in proc.stderr
    assert (inbox / "accepted" / "good.csv" / "good.csv").exists()
    assert json.loads((inbox / "status" / "good.csv.json").read_text())["status"] == "COMPLETED"
    assert not upload.exists()


@pytest.mark.parametrize("landing_zone", ["local", "gcs"])
def test_loading_the_code_location_imports_no_gcs_client(cli_env, landing_zone):
    """Every run (dg launch, the daemon's runs) imports the code location again in a fresh process: the GCS
    client (and dagster_gcp's BigQuery and pandas) is imported only when a GCS store is used."""
    heavy = ("dagster_gcp", "google.cloud.storage", "google.cloud.bigquery")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, leap_orchestration.definitions; print([m for m in {heavy!r} if m in sys.modules])",
        ],
        cwd=REPO,
        env={**cli_env, "LEAP_LANDING_ZONE": landing_zone},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


def test_the_demo_ui_starts_without_misleading_warnings(cli_env):
    """`dg dev` as the demo starts it (leap_orchestration.cli.ui_command, in DAGSTER_HOME): the code location
    loads, with no "dagster.yaml will not be used" (the repo's template is not the instance's) and no
    SupersessionWarning."""
    from leap_orchestration.cli import code_location_loaded, ui_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(cli_env["LEAP_HOME"]) / "dg-dev.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            ui_command(port), cwd=cli_env["DAGSTER_HOME"], env=cli_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 240
        while not code_location_loaded(port):
            assert ui.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        ui.terminate()  # dg dev takes SIGTERM as Ctrl-C: webserver, daemon and code server stop
        ui.wait(timeout=90)
    output = log.read_text()
    assert "Serving dagster-webserver" in output
    assert "will not be used" not in output and "SupersessionWarning" not in output, output[-3000:]

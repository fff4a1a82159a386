"""A run killed outright (SIGKILL, OOM) never keeps the `duckdb` pool slot: the next run goes on by itself."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import good_row, partner_meter
from hostile_files import repeated_lines
from test_end_to_end import MATERIALIZE_ALL

from leap_orchestration import run_liveness

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    # not instance_for_test: it leaves Dagster's context pointing at a dead instance for later tests of the worker
    with dg.DagsterInstance.from_config(str(home)) as inst:
        inst.event_log_storage.set_concurrency_slots("duckdb", 1)
        yield inst


def _run_holding_slot(instance: dg.DagsterInstance, job_name: str) -> str:
    """A STARTED run holding the pool's slot, as a run process leaves it while its step runs."""
    run = instance.add_run(dg.DagsterRun(job_name=job_name, status=dg.DagsterRunStatus.STARTED))
    claim = instance.event_log_storage.claim_concurrency_slot("duckdb", run.run_id, "step", priority=0)
    assert claim.is_claimed == (job_name == "dead")  # limit 1: the second waits for the slot
    return run.run_id


def test_dead_run_is_failed_and_its_slot_freed_a_live_one_is_not(instance):
    dead, live = _run_holding_slot(instance, "dead"), _run_holding_slot(instance, "live")
    locks = Path(instance.root_directory) / "leap-run-locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / f"{dead}.lock").touch()  # its process is gone: nobody holds the lock
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)"
            ),
            str(locks / f"{live}.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_liveness.reap_dead_runs(instance) == [dead]
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live).status == dg.DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_run_ids() == {live}
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_materialize_killed_mid_step_does_not_block_the_next_run(leap_home, cli_env):
    """The finding's repro: `dagster asset materialize --select '*'` killed with SIGKILL while its intake step
    holds the slot; the next run used to wait forever ("Step blocked by limit for pool duckdb")."""
    env, dagster_home = cli_env, leap_home / "dagster"
    inbox = leap_home / "landing" / "sunrise-energy" / "interval-data"
    inbox.mkdir(parents=True)
    meter = partner_meter("sunrise-energy").meter_id
    repeated_lines(inbox / "big.csv.gz", (good_row(meter) + "\n").encode(), 3_000_000)  # keeps intake busy
    command = MATERIALIZE_ALL
    log = leap_home / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while 'Started execution of step "interval_intake"' not in log.read_text():
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    started = time.monotonic()
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "blocked by limit for pool duckdb" not in second.stderr
    assert time.monotonic() - started < 240
    assert (inbox / "accepted" / "big.csv.gz" / "big.csv.gz").exists()
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        statuses = sorted(r.status.value for r in inst.get_runs())
    assert statuses == ["FAILURE", "SUCCESS"]

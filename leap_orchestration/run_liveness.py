"""A run that dies (SIGKILL, OOM) never keeps the `duckdb` pool slot, so later runs never wait on it for long.

Dagster frees a run's pool slots when the run ends, but a run process killed outright never reports its end:
the run stays STARTED and holds its slot forever, and every later writer waits ("Step blocked by limit for pool
duckdb"). Dagster's run monitoring can't tell: the default run launcher has no worker health check, and runs
of `dagster asset materialize` have no launcher at all.

So the project owns a liveness lock. Every run executed by `in_process_with_liveness` holds an exclusive
`flock` on `<instance root>/leap-run-locks/<run_id>.lock` for as long as its process lives; the kernel drops
it the moment the process dies, however it dies. `reap_dead_runs` looks at the runs that hold or wait for pool
slots: one whose lock can be taken is dead, so it is marked failed and its slots are freed. Reaping runs when
any run starts, every few seconds while it runs (so a run already waiting is unblocked), and on every tick of
the inbox sensor (daemon). Locks are per machine, which is where the default instance's runs live; with runs on
other machines (k8s), Dagster's run monitoring of that launcher does this job.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._core.executor.base import Executor
from dagster._core.storage.dagster_run import FINISHED_STATUSES

log = logging.getLogger(__name__)
REAP_EVERY_SECONDS = 5.0


def _lock_dir(instance: dg.DagsterInstance) -> Path:
    return Path(instance.root_directory) / "leap-run-locks"


@contextlib.contextmanager
def alive(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """Hold the run's liveness lock, reaping dead runs now and every few seconds until the run ends."""
    folder = _lock_dir(instance)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # taken before any step claims a slot, so a run with slots always holds it
    stop = threading.Event()
    reaper = threading.Thread(target=_reap_until, args=(instance, stop), name="leap-run-reaper", daemon=True)
    try:
        reap_safely(instance)
        reaper.start()
        yield
    finally:
        stop.set()
        if reaper.is_alive():
            reaper.join(timeout=30)
        path.unlink(missing_ok=True)
        os.close(fd)


def _reap_until(instance: dg.DagsterInstance, stop: threading.Event) -> None:
    while not stop.wait(REAP_EVERY_SECONDS):
        reap_safely(instance)


def reap_safely(instance: dg.DagsterInstance) -> None:
    """`reap_dead_runs`, never failing its caller (a run's start, a sensor tick): the next sweep retries."""
    try:
        reap_dead_runs(instance)
    except Exception:  # noqa: BLE001
        log.exception("could not look for dead runs")


def _is_dead(instance: dg.DagsterInstance, run_id: str) -> bool:
    """True when the run's lock file exists, is still the one at its path, and nobody holds it."""
    path = _lock_dir(instance) / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # not a run of this executor, or not started yet: not ours to judge
    except OSError:
        log.warning("can't open the liveness lock %s; the run is taken to be alive", path, exc_info=True)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A run ending normally unlinks its lock and then closes it: a lock taken on an unlinked file means
        # the run finished just now, not that it died.
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except (BlockingIOError, FileNotFoundError):
        return False
    finally:
        os.close(fd)  # also releases the lock if we got it


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail runs whose process died and free the pool slots they held or waited for; returns their ids."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    reaped = []
    for run_id in storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status not in FINISHED_STATUSES:
            if not _is_dead(instance, run_id):
                continue
            run = instance.get_run_by_id(run_id)  # it may have reported its end meanwhile
        if run is not None and run.status not in FINISHED_STATUSES:
            instance.report_run_failed(
                run,
                "The run's process died (killed or out of memory) without reporting its "
                "end; its pool slots were freed so later runs can go on.",
            )
        storage.free_concurrency_slots_for_run(run_id)
        (_lock_dir(instance) / f"{run_id}.lock").unlink(missing_ok=True)
        log.warning("freed the pool slots of run %s (%s)", run_id, "dead" if run else "deleted")
        reaped.append(run_id)
    return reaped


class _LivenessExecutor(Executor):
    """Dagster's in-process executor, run while holding the run's liveness lock."""

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        with alive(plan_context.instance, plan_context.dagster_run.run_id):
            yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=dg.in_process_executor.config_schema)
def in_process_with_liveness(init_context: dg.InitExecutorContext) -> Executor:
    """All steps in the run's process (a step subprocess costs seconds of imports, and the `duckdb` pool runs the
    steps one at a time anyway), holding a liveness lock so a killed run never keeps its pool slot."""
    return _LivenessExecutor(dg.in_process_executor.executor_creation_fn(init_context))

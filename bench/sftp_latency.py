"""Latency of the SFTP front door: from the client's close to the file's result.

With the demo running: start the demo (`scripts/demo`) in another terminal, then:

    .venv/bin/python bench/sftp_latency.py [--uploads 5] [--port 2222]

It uploads demo files under new names with paramiko, as the guide does. For each one it polls
`interval-data/accepted/<name>/` and `failed/<name>/` over SFTP until the original is there, and prints the
seconds from the `close` of the upload to the result. It finds the demo's server on 127.0.0.1:--port and its
files in LEAP_HOME (--home, default $LEAP_HOME or .leap): the partner's API key in demo-api-key.txt, the file
to upload in demo-uploads/<partner>/.

Under load (the demo's figure that matters: partners upload while settlement and the hourly connector run):

    .venv/bin/python bench/sftp_latency.py --under-load [--uploads 10]

makes each upload while a forced settlement run (every event recomputed: the longest settlement there is) and
the hourly connector's publish run are active: both are launched through the demo's webserver as the UI
launches runs (queued, with settlement's automation priority: real runs taking the same `duckdb` pool), the
upload follows once both have started, and both end before the next upload. It prints the percentiles of
close -> result and how long each load run took.

Self-contained, without the demo (tests/test_bench.py runs it so, with `--uploads 2 --gap 0 --tick 0.5`):

    .venv/bin/python bench/sftp_latency.py --self-contained [--tick 5]

In a temporary folder laid out as a LEAP_HOME it writes the demo configuration, loads it into a fresh
warehouse, creates an API key for the partner and starts the project's SFTP server (asyncssh, in a thread, on
a free port of 127.0.0.1). There is no Dagster: a thread stands in for the pipeline. Every --tick seconds it
plans what the inbox sensor would take (`plan_tick`) and processes those uploads as the intake job does
(`process_upload`). The upload is the demo's valid file. So this mode measures the server's publish on close,
the wait for the next tick (half of --tick on average), validation, load and publication of the results, and
their visibility over SFTP. It does not measure Dagster's part, which is most of the figure with the demo: the
daemon evaluating the sensor, the run queue, launching the run process and loading the code. At the end it
stops the server and the stand-in and removes the temporary home.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("LEAP_HOME", ".leap")))
    parser.add_argument("--partner", default="sunrise-energy")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument(
        "--gap", type=float, default=7.0, help="seconds between uploads (catch every sensor phase)"
    )
    parser.add_argument(
        "--self-contained",
        action="store_true",
        help="start a server and a pipeline stand-in in a temporary LEAP_HOME (no demo, no Dagster)",
    )
    parser.add_argument(
        "--tick",
        type=float,
        default=5.0,
        help="--self-contained: seconds between the stand-in's ticks (the inbox sensor's default: 5)",
    )
    parser.add_argument("--ui-port", type=int, default=3000, help="--under-load: the demo's Dagster UI")
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="with the demo: forced settlement and hourly connector runs going during the measurement",
    )
    args = parser.parse_args()
    if args.uploads < 1:
        parser.error("--uploads must be at least 1")
    if args.self_contained:
        with self_contained(args.partner, args.tick) as (port, password, sample, pipeline):
            print(
                f"self-contained: SFTP server on 127.0.0.1:{port}, a pipeline stand-in every {args.tick:g} s "
                "(no Dagster)"
            )
            measure(port, args.partner, password, sample, args.uploads, args.gap, pipeline.check)
    else:
        password = (args.home / "demo-api-key.txt").read_text().strip()
        sample = sorted((args.home / "demo-uploads" / args.partner).glob("*-interval-data-*.csv"))[
            0
        ].read_bytes()
        if not args.under_load:
            measure(args.port, args.partner, password, sample, args.uploads, args.gap)
            return
        load = Load(f"http://127.0.0.1:{args.ui_port}/graphql")
        measure(args.port, args.partner, password, sample, args.uploads, args.gap, load=load)
        print(load.summary())


def measure(
    port: int,
    partner: str,
    password: str,
    sample: bytes,
    uploads: int,
    gap: float,
    check: Callable[[], None] = lambda: None,
    load: Load | None = None,
) -> None:
    """Upload `sample` under new names and time each close -> result; `check` raises if the pipeline died.
    With `load`, each upload is made while the load's runs are active, and they end before the next one."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        port=port,
        username=partner,
        password=password,
        allow_agent=False,
        look_for_keys=False,
        timeout=30,
        banner_timeout=30,
        auth_timeout=30,
    )
    try:
        ftp = client.open_sftp()
        latencies = []
        for i in range(uploads):
            name = f"latency-{uuid.uuid4().hex[:8]}.csv"
            if load:
                load.start_and_wait_until_running()
            with ftp.open(f"interval-data/{name}", "wb") as fh:
                fh.write(sample)
            closed = time.monotonic()
            while True:
                found = [
                    folder
                    for folder in ("accepted", "failed")
                    if _exists(ftp, f"interval-data/{folder}/{name}/{name}")
                ]
                if found:
                    break
                check()
                if time.monotonic() - closed > 120:
                    raise SystemExit(f"{name}: no result after 120 s")
                time.sleep(0.25)
            latencies.append(time.monotonic() - closed)
            print(f"{name}: {found[0]} after {latencies[-1]:.1f} s")
            if load:
                load.wait_until_done()
            if i + 1 < uploads:
                time.sleep(gap)
    finally:
        client.close()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"close -> result: median {statistics.median(latencies):.1f} s, p95 {p95:.1f} s, "
        f"max {max(latencies):.1f} s over {len(latencies)} uploads"
    )


def _exists(ftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        ftp.stat(path)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- --under-load


class Load:
    """Launches, back to back until stopped, a forced settlement of every event and the hourly connector job
    through the demo's webserver (GraphQL `launchRun`, as the UI does): queued runs, with the run tags that
    settlement's automation and the connector's schedule give theirs, taking the `duckdb` pool like them."""

    LOCATION = {
        "repositoryLocationName": "leap_orchestration.definitions",
        "repositoryName": "__repository__",
    }
    RUNS = {
        "settlement (forced)": {
            "selector": {
                **LOCATION,
                "jobName": "__ASSET_JOB",
                "assetSelection": [
                    {"path": [key]}
                    for key in (
                        "baselines",
                        "event_performance",
                        "event_performance_hourly",
                        "program_event_performance",
                        "season_performance",
                    )
                ],
            },
            "runConfigData": {"ops": {"baselines": {"config": {"force": True}}}},
            "executionMetadata": {"tags": [{"key": "dagster/priority", "value": "-1"}]},
        },
        # the hourly run when no connector file is new (the schedule's publish-only run): launched without a
        # selection the job would catch up on every inbox, partners' included, and take the measured uploads
        "landing_zone_connector (hourly publish)": {
            "selector": {
                **LOCATION,
                "jobName": "landing_zone_connector",
                "assetSelection": [{"path": ["standardized_meter_hours"]}],
                "assetCheckSelection": [{"assetKey": {"path": ["uploads"]}, "name": "partner_health"}],
            }
        },
    }
    LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
        ... on RunConfigValidationInvalid { errors { message } } } }"""
    STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"

    def __init__(self, url: str) -> None:
        self.url = url
        self.durations: dict[str, list[float]] = {name: [] for name in self.RUNS}
        self.active: dict[str, str] = {}  # name -> run id

    def _graphql(self, query: str, variables: dict) -> dict:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]

    def _status(self, run_id: str) -> dict:
        return self._graphql(self.STATUS, {"id": run_id})["runOrError"]

    def start_and_wait_until_running(self) -> None:
        """Launch one run of each kind and return once both have started (their process is up)."""
        for name, params in self.RUNS.items():
            launched = self._graphql(self.LAUNCH, {"p": params})["launchRun"]
            if launched["__typename"] != "LaunchRunSuccess":
                raise SystemExit(f"{name} not launched: {launched}")
            self.active[name] = launched["run"]["runId"]
        deadline = time.monotonic() + 120
        while any(
            self._status(r)["status"] in ("QUEUED", "NOT_STARTED", "STARTING") for r in self.active.values()
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the load's runs did not start within 120 s")
            time.sleep(0.2)

    def wait_until_done(self) -> None:
        for name, run_id in self.active.items():
            while (run := self._status(run_id))["status"] not in ("SUCCESS", "FAILURE", "CANCELED"):
                time.sleep(0.5)
            if run["status"] != "SUCCESS":
                raise SystemExit(f"{name} run {run_id}: {run['status']}")
            self.durations[name].append(run["endTime"] - run["startTime"])
        self.active = {}

    def summary(self) -> str:
        return "load (run start to end): " + "; ".join(
            f"{name}: {len(d)} runs, median {statistics.median(d):.1f} s" if d else f"{name}: no run finished"
            for name, d in self.durations.items()
        )


# ---------------------------------------------------------------- --self-contained


@contextlib.contextmanager
def self_contained(partner: str, tick: float) -> Iterator[tuple[int, str, bytes, PipelineStandIn]]:
    """(port, API key, file to upload, stand-in): server and a pipeline stand-in on a temporary LEAP_HOME."""
    from leap_orchestration.config.demo_config import write_demo_configuration
    from leap_orchestration.config.loader import load_configuration
    from leap_orchestration.sftp import hostkeys
    from leap_orchestration.sftp.credentials import PartnerCredentials
    from leap_orchestration.sftp.server import SftpService, SftpSettings, running_in_thread
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.stores.local import SFTP_INBOX
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import replace_configuration

    with tempfile.TemporaryDirectory(prefix="leap-bench-sftp-") as tmp:
        home = Path(tmp)
        configuration = load_configuration(write_demo_configuration(home / "config"))
        warehouse = Warehouse(home / "warehouse.duckdb")
        with warehouse.connect() as con:
            replace_configuration(con, configuration)
        store = LocalLandingStore(home / "landing")
        store.path(f"{partner}/{SFTP_INBOX}").mkdir(parents=True)  # as `partners add` does
        credentials = PartnerCredentials(home / "partners.sqlite")
        _, api_key = credentials.add(partner)
        service = SftpService(
            store,
            credentials,
            hostkeys.load_or_create(home / "sftp"),
            SftpSettings(host="127.0.0.1", port=0),
            audit_log=home / "logs" / "sftp-audit.log",
        )
        sample = demo_upload(partner)
        with (
            running_in_thread(service) as port,
            PipelineStandIn(store, warehouse, tick).running() as pipeline,
        ):
            yield port, api_key, sample, pipeline


def demo_upload(partner: str) -> bytes:
    """The demo's valid upload of `partner` (leap_orchestration/demo.py): 3 meters x 96 intervals."""
    from leap_orchestration.config.demo_config import demo_meters
    from leap_orchestration.demo import HEADER, _rows

    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
    mine = [m for m in demo_meters() if m.owner == partner and m.source == "partner"]
    if not mine:
        raise SystemExit(f"{partner!r} has no meters of its own in the demo configuration")
    return (HEADER + "".join(r for m in mine[:3] for r in _rows(m.meter_id, m.region, start, 96))).encode()


class PipelineStandIn:
    """What the inbox sensor and the intake job do for SFTP uploads, in a thread, without Dagster."""

    # as sensors/landing.py (not imported: that would import Dagster)
    MAX_UPLOADS_PER_RUN, MAX_RUNS_PER_TICK, RETRY_SECONDS = 25, 4, 15 * 60

    def __init__(self, store, warehouse, tick: float):
        # imported before the measurement: with Dagster they are the run process's start-up, not measured here
        from leap_orchestration import settings
        from leap_orchestration.intake import discovery, process
        from leap_orchestration.intake import tick as ticks

        self.settle_seconds = settings.settle_seconds()
        self.pending_uploads, self.plan_tick = discovery.pending_uploads, ticks.plan_tick
        self.process_upload, self.write_pending_status = process.process_upload, process.write_pending_status
        self.store, self.warehouse, self.tick = store, warehouse, tick
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def check(self) -> None:
        if self.error is not None:
            raise SystemExit(f"the pipeline stand-in failed: {self.error!r}")

    def _loop(self) -> None:
        state: dict = {}
        try:
            while not self.stop.wait(self.tick):
                plan = self.plan_tick(
                    self.pending_uploads(self.store),
                    state,
                    time.time(),
                    settle_seconds=self.settle_seconds,
                    retry_seconds=self.RETRY_SECONDS,
                    max_per_run=self.MAX_UPLOADS_PER_RUN,
                    max_runs=self.MAX_RUNS_PER_TICK,
                )
                state = plan.state
                for batch in plan.batches:  # the sensor marks every requested upload QUEUED
                    for upload in batch:
                        self.write_pending_status(self.store, upload, "QUEUED")
                for batch in plan.batches:  # one "run" after another (the duckdb pool has one slot)
                    for upload in batch:
                        self.process_upload(self.store, self.warehouse, upload)
        except BaseException as exc:  # noqa: BLE001 - reported by running() once the measurement ends
            self.error = exc

    @contextlib.contextmanager
    def running(self) -> Iterator[PipelineStandIn]:
        thread = threading.Thread(target=self._loop, name="pipeline-stand-in", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=120)
        self.check()


if __name__ == "__main__":
    main()

"""Intake throughput on the multi-writer warehouse (DuckLake): one worker against two writing at once.

    .venv/bin/python bench/multi_writer.py [--files 12] [--meters 10] [--days 7] [--repeat 2]

Starts a PostgreSQL server (Debian's binaries, 127.0.0.1, a free port) for DuckLake's catalog, writes the demo
configuration into a fresh lake, and drops `--files` uploads for each of two SFTP partners (sunrise-energy and
gridflex), each `--meters` of the partner's meters × `--days` days of 15-minute readings. Then, each on a fresh
lake and landing store:
- 1 worker: one process takes every upload, partner by partner (the reference);
- 2 workers: two processes, one per partner, start together (a barrier) and write at once.
Each worker is a separate process that calls `process_upload` as a Dagster intake run does; the clock runs from
the barrier to the last worker's end. Also printed: the same 1-worker figure on the DuckDB file, for scale; the
CPU seconds the workers spent per upload; and how busy the whole machine was meanwhile (PostgreSQL included):
near 100 % means the cores, not the warehouse, set the pace.
The server and the scratch folder are gone at the end. tests/test_bench.py runs it tiny
(`--files 2 --meters 2 --days 1 --repeat 1`) so that it keeps working; its figures mean nothing then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PARTNERS = ("sunrise-energy", "gridflex")
HEADER = (
    "meter_uuid,interval_start_time_utc,interval_end_time_utc,energy_net_kwh,energy_consumed_kwh,"
    "energy_generated_kwh,final,region"
)
FIRST_DAY = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def partner_meters(partner: str, n: int) -> list[str]:
    from leap_orchestration.config.demo_config import demo_meters

    own = [
        m.meter_id
        for m in demo_meters()
        if m.owner == partner and m.source == "partner" and len(m.ownerships) == 1
    ]
    return own[:n]


def upload_text(meters: list[str], first: dt.datetime, days: int, consumed: float) -> bytes:
    lines = [HEADER]
    for step in range(days * 96):
        start = first + dt.timedelta(minutes=15 * step)
        end = start + dt.timedelta(minutes=15)
        s, e = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines += [f"{m},{s},{e},,{consumed:.3f},0,true,CA" for m in meters]
    return ("\n".join(lines) + "\n").encode()


def drop(store, partner: str, name: str, data: bytes, age_seconds: float) -> None:
    """An upload as the SFTP server publishes it, received `age_seconds` ago (received_at is its mtime)."""
    key = f"{partner}/interval-data/{name}"
    store.write_bytes(key, data)
    when = time.time() - age_seconds
    os.utime(store.path(key), (when, when))


def drop_uploads(store, files: int, meters: int, days: int) -> dict[str, list[str]]:
    """`files` uploads per partner on consecutive stretches of days; returns the keys per partner."""
    keys: dict[str, list[str]] = {}
    for partner in PARTNERS:
        mine = partner_meters(partner, meters)
        for i in range(files):
            name = f"bench-{i:04d}.csv"
            first = FIRST_DAY + dt.timedelta(days=i * days)
            drop(store, partner, name, upload_text(mine, first, days, 1.0 + i / 1000), 600 - i)
            keys.setdefault(partner, []).append(f"{partner}/interval-data/{name}")
    return keys


def load_configuration_into(warehouse) -> None:
    from leap_orchestration.config.loader import REPO_CONFIG_DIR, load_configuration
    from leap_orchestration.warehouse.config_tables import replace_configuration

    with warehouse.connect() as con:
        replace_configuration(con, load_configuration(REPO_CONFIG_DIR))


def open_warehouse(spec: tuple):
    """A warehouse from a picklable description: ("duckdb", path) or ("ducklake", catalog, data_path)."""
    from leap_orchestration.warehouse import warehouse_for

    if spec[0] == "duckdb":
        return warehouse_for("duckdb", path=spec[1])
    return warehouse_for("ducklake", catalog=spec[1], data_path=spec[2])


def intake_worker(spec: tuple, landing: str, keys: list[str], barrier, results) -> None:
    """One intake process: everything imported and the rules registered before the barrier, then `keys`."""
    from pandera.backends.polars.register import register_polars_backends

    from leap_orchestration.intake.discovery import pending_uploads
    from leap_orchestration.intake.process import process_upload
    from leap_orchestration.stores import LocalLandingStore

    register_polars_backends()  # once per process, as a Dagster run does before its batch
    store, warehouse = LocalLandingStore(landing), open_warehouse(spec)
    mine = [u for u in pending_uploads(store) if u.obj.key in set(keys)]
    barrier.wait()
    started, cpu = time.time(), os.times()
    statuses = [process_upload(store, warehouse, u).status for u in mine]
    used = os.times()
    results.put((started, time.time(), (statuses, used.user + used.system - cpu.user - cpu.system)))


def run_together(jobs: list[tuple]) -> tuple[float, list]:
    """Each job (function, *args) in a process of its own, started together: the function gets its args, then a
    barrier to wait on once it is ready and a queue to put (started, ended, result) on. Returns the seconds from
    the first start to the last end, and the results in the order of `jobs`."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
    workers = [
        ctx.Process(target=_job, args=(i, function, args, barrier, results))
        for i, (function, *args) in enumerate(jobs)
    ]
    for w in workers:
        w.start()
    try:
        done = [results.get(timeout=1800) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=60)
    failures = [trace for _, trace in done if isinstance(trace, str)]
    if failures:
        raise RuntimeError("a worker failed:\n" + "\n".join(failures))
    timed = [timing for _, timing in sorted(done)]  # in the order of `jobs`
    return max(end for _, end, _ in timed) - min(start for start, _, _ in timed), [r for *_, r in timed]


def _job(index: int, function, args, barrier, results) -> None:
    """Runs `function`, tagging what it puts with the job's index (or puts the traceback if it fails)."""

    class Tagged:
        def put(self, timing) -> None:
            results.put((index, timing))

    try:
        function(*args, barrier, Tagged())
    except BaseException:
        barrier.abort()  # the others stop waiting
        results.put((index, traceback.format_exc()))


def run_workers(spec: tuple, landing: str, groups: list[list[str]]) -> tuple[float, list[str], float]:
    """Intake workers, one per group of upload keys: seconds, every upload's final status, and the CPU seconds
    the workers used."""
    seconds, results = run_together([(intake_worker, spec, landing, keys) for keys in groups])
    return seconds, [s for statuses, _ in results for s in statuses], sum(cpu for _, cpu in results)


def _machine_ticks() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine since boot."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def measure(kind: str, workers: int, scratch: Path, args, catalogs) -> tuple[float, float, float]:
    """(seconds, CPU seconds in the workers, the machine's busy fraction meanwhile: PostgreSQL included)"""
    from leap_orchestration.stores import LocalLandingStore

    folder = Path(tempfile.mkdtemp(dir=scratch))
    spec = (
        ("duckdb", str(folder / "w.duckdb"))
        if kind == "duckdb"
        else ("ducklake", catalogs(), str(folder / "lake"))
    )
    load_configuration_into(open_warehouse(spec))
    keys = drop_uploads(LocalLandingStore(folder / "landing"), args.files, args.meters, args.days)
    groups = [keys[p] for p in PARTNERS] if workers == 2 else [[k for p in PARTNERS for k in keys[p]]]
    before = _machine_ticks()
    seconds, statuses, cpu = run_workers(spec, str(folder / "landing"), groups)
    after = _machine_ticks()
    if statuses.count("COMPLETED") != 2 * args.files:
        raise RuntimeError(f"not every upload was accepted: {statuses}")
    shutil.rmtree(folder)
    return seconds, cpu, 1 - (after[0] - before[0]) / max(after[1] - before[1], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="uploads per partner")
    parser.add_argument("--meters", type=int, default=10, help="meters per upload")
    parser.add_argument("--days", type=int, default=7, help="days of readings per upload")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept")
    args = parser.parse_args()

    import duckdb
    from pg_support import lake_catalogs, postgres_server

    rows = args.meters * args.days * 96
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, duckdb {duckdb.__version__}"
    )
    print(f"uploads: {len(PARTNERS)} partners × {args.files} files × {rows:,} rows")
    scratch = Path(tempfile.mkdtemp(prefix="leap-multi-writer-"))
    try:
        with postgres_server("postgres_bench") as env:
            catalogs = lake_catalogs(env, "bench")
            best = {
                (kind, n): min(measure(kind, n, scratch, args, catalogs) for _ in range(args.repeat))
                for kind, n in (("duckdb", 1), ("ducklake", 1), ("ducklake", 2))
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    uploads = len(PARTNERS) * args.files
    for (kind, n), (seconds, cpu, busy) in best.items():
        print(
            f"{kind:8} workers={n} seconds={seconds:.2f} uploads_per_second={uploads / seconds:.2f} "
            f"worker_cpu_seconds_per_upload={cpu / uploads:.3f} machine_busy={busy:.0%}"
        )
    speedup = best[("ducklake", 1)][0] / best[("ducklake", 2)][0]
    print(f"ducklake two workers ÷ one worker throughput: {speedup:.2f}× (target ≥ 1.6×)")


if __name__ == "__main__":
    main()

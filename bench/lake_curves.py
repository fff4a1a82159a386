"""Scale curves on the multi-writer backend (DuckLake), with one worker and with two writing at once.

    .venv/bin/python bench/lake_curves.py                                   # the real sizes
    .venv/bin/python bench/lake_curves.py --meters 20 --days 12 --uploads 2 --repeat 1   # tiny (CI)

A PostgreSQL server (Debian's binaries, 127.0.0.1, a free port) holds the lakes' catalogs; their Parquet files
go to a scratch folder, removed at the end with the server. Two curves, each figure one plain line:
- settlement: for each --meters, a lake built as bench/scale_curves.py builds its DuckDB file (--days of
  15-minute history, the CAISO 10-in-10 program) with two events on consecutive days. Each event is settled as
  `settle` settles one (the engine, then its results stored in one transaction), in worker processes started
  together on a barrier: 1 worker settles both events one after the other; 2 workers settle one each at
  once. The same two events settled by 1 worker on a DuckDB file holding the same data are the reference.
- intake: for each --uploads, that many small uploads (4 meters x 1 day, as in scale_curves) split between
  two SFTP partners; 1 worker processes all of them, 2 workers one partner's each (bench/multi_writer.py's
  measurement, on a fresh lake each time), and 1 worker on a DuckDB file for reference.
Best of --repeat. Throughput ratios are printed (two workers' against one's); the figures are only meaningful
with the machine's cores noted: every worker and PostgreSQL share them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE.parents[1] / "tests")]

from baseline_benchmark import EVENT_END, EVENT_START, build  # noqa: E402
from intake_benchmark import machine  # noqa: E402
from multi_writer import measure, open_warehouse, run_together  # noqa: E402
from scale_curves import sizes  # noqa: E402

EVENTS = ("bench-event", "bench-event-before")  # the second one a day earlier, the same hours


def build_warehouse(spec: tuple, meters: int, days: int) -> tuple[int, float]:
    """Readings and the two events in the warehouse `spec` names; (readings, seconds)."""
    from leap_orchestration.warehouse.duck import run

    started = time.perf_counter()
    warehouse = open_warehouse(spec)
    rows = build(warehouse, meters, days + 1)  # one day more: the earlier event needs its look-back too
    with warehouse.connect() as con:
        run(
            con,
            """INSERT INTO dr_events (event_id, program_id, start_utc, end_utc, event_type)
               VALUES (?, 'bench', ?, ?, 'bench')""",
            [EVENTS[1], EVENT_START - dt.timedelta(days=1), EVENT_END - dt.timedelta(days=1)],
        )
    return rows, time.perf_counter() - started


def settle_worker(spec: tuple, event_ids: list[str], barrier, results) -> None:
    """One settlement process: the events `event_ids`, one after the other, as `settle` settles each."""
    from leap_orchestration.settlement.engine import compute_event
    from leap_orchestration.settlement.settle import _store, event_specs, inputs_digests

    warehouse = open_warehouse(spec)
    with warehouse.connect() as con:
        events = [e for e in event_specs(con) if e.event_id in event_ids]
        digests = inputs_digests(con, events)
        compute_event(con, events[0])  # once-per-process imports (holidays) paid before the clock starts
        barrier.wait()
        started, cpu = time.time(), os.times()
        for event in events:
            _store(
                con, event, compute_event(con, event), digests[event.event_id], dt.datetime.now(dt.UTC), None
            )
        used = os.times()
        meters = con.execute(
            "SELECT event_id, count(*) FILTER (WHERE status = 'OK') FROM baseline_status GROUP BY event_id"
        ).fetchall()
    results.put((started, time.time(), (dict(meters), used.user + used.system - cpu.user - cpu.system)))


def settle_figures(spec: tuple, workers: int, meters: int) -> tuple[float, float]:
    """(seconds from the barrier to the last worker's end, the workers' CPU seconds) for both events."""
    groups = [[e] for e in EVENTS] if workers == 2 else [list(EVENTS)]
    seconds, results = run_together([(settle_worker, spec, group) for group in groups])
    settled = {event: ok for found, _ in results for event, ok in found.items()}
    if any(settled.get(event) != meters for event in EVENTS):  # a fast wrong answer must not pass
        raise RuntimeError(f"not every meter settled OK: {settled}")
    return seconds, sum(cpu for _, cpu in results)


def settlement_curve(scratch: Path, args: argparse.Namespace, catalogs) -> None:
    for meters in args.meters:
        folder = Path(tempfile.mkdtemp(dir=scratch))
        lake = ("ducklake", catalogs(), str(folder / "lake"))
        file = ("duckdb", str(folder / "w.duckdb"))
        built = {
            kind: build_warehouse(spec, meters, args.days) for kind, spec in (("lake", lake), ("file", file))
        }
        runs = {
            (kind, workers): min(settle_figures(spec, workers, meters) for _ in range(args.repeat))
            for kind, spec, workers in (("duckdb", file, 1), ("ducklake", lake, 1), ("ducklake", lake, 2))
        }
        for (kind, workers), (seconds, cpu) in runs.items():
            print(
                f"settlement backend={kind} workers={workers} meters={meters} events=2 "
                f"readings={built['lake'][0]} seconds={seconds:.2f} cpu_seconds={cpu:.1f} "
                f"per_event={seconds / 2:.2f}",
                flush=True,
            )
        ratio = runs[("ducklake", 1)][0] / runs[("ducklake", 2)][0]
        print(
            f"settlement meters={meters} ducklake two workers ÷ one worker throughput: {ratio:.2f}× "
            f"(lake build {built['lake'][1]:.0f} s, file build {built['file'][1]:.0f} s)",
            flush=True,
        )
        shutil.rmtree(folder)


def intake_curve(scratch: Path, args: argparse.Namespace, catalogs) -> None:
    for uploads in args.uploads:
        per_partner = argparse.Namespace(files=max(1, uploads // 2), meters=4, days=1)
        runs = {
            (kind, workers): min(
                measure(kind, workers, scratch, per_partner, catalogs) for _ in range(args.repeat)
            )
            for kind, workers in (("duckdb", 1), ("ducklake", 1), ("ducklake", 2))
        }
        total = 2 * per_partner.files
        for (kind, workers), (seconds, cpu, busy) in runs.items():
            print(
                f"intake backend={kind} workers={workers} uploads={total} seconds={seconds:.2f} "
                f"per_upload_ms={1000 * seconds / total:.0f} cpu_seconds={cpu:.1f} machine_busy={busy:.0%}",
                flush=True,
            )
        ratio = runs[("ducklake", 1)][0] / runs[("ducklake", 2)][0]
        print(
            f"intake uploads={total} ducklake two workers ÷ one worker throughput: {ratio:.2f}×", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--curves", default="settlement,intake", help="which curves to measure")
    parser.add_argument("--meters", type=sizes, default=[1_000, 10_000])
    parser.add_argument("--days", type=int, default=45, help="days of history before the events")
    parser.add_argument("--uploads", type=sizes, default=[2, 10, 100, 1_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept")
    args = parser.parse_args()

    from pg_support import lake_catalogs, postgres_server

    print(machine(), flush=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="leap-lake-curves-"))
    try:
        with postgres_server("postgres_lake_curves") as env:
            catalogs = lake_catalogs(env, "curves")
            if "settlement" in args.curves:
                settlement_curve(scratch, args, catalogs)
            if "intake" in args.curves:
                intake_curve(scratch, args, catalogs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

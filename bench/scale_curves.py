"""Scale curves on the default backend (one DuckDB file): how costs grow with meters, uploads and files.

    .venv/bin/python bench/scale_curves.py                      # the real sizes (about an hour on 2 cores)
    .venv/bin/python bench/scale_curves.py --meters 20,40 --uploads 1,3 --processed 200 --size-meters 5

Four curves, each figure one plain line after the machine's:
- settlement: for each --meters, a warehouse built by bench/baseline_benchmark.py's `build` (--days of
  15-minute history, one CAISO 10-in-10 event), then `settle(force=True)` of that event (digest, engine,
  storing the results) on a connection opened as a Dagster run opens it (the warehouse's default memory
  limit), --repeat times; the engine alone and the bare look-back aggregate for comparison. Then one small
  upload (4 meters x 1 new day) processed into that warehouse (`intake_into`). Building, settling and the
  upload run in child processes, so each peak RSS is that step's alone and an out-of-memory kill ends one
  size, not the script. --keep DIR keeps the warehouses there (and reuses them on the next run).
- intake: for each --uploads, that many small files (4 meters x 1 day) processed in one Dagster run of
  `interval_intake` (the asset the inbox sensor's runs execute), on a real local landing store and warehouse.
- sensor: `landing_inbox_sensor`'s tick with each --processed number of files already processed
  (accepted/<file>/ and their status objects) and as many rows in `uploads`: the idle tick (nothing new;
  target < 1 s) and a tick that finds a full tick's worth of new uploads (100).
- size: for each --size-meters, that many meters x --size-days daily uploads (one file a day, meter by meter)
  loaded by intake; the file's size after CHECKPOINT at half and at all the days; the growth between the two,
  per reading, is extrapolated to a meter-year (35,040 intervals).
Everything else lives in a scratch folder under the temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE.parents[1] / "tests")]
os.environ["LEAP_WAREHOUSE"] = "duckdb"  # these curves are the default backend's, whatever the shell says

from _synthetic import (  # noqa: E402
    FIRST_DAY,
    INBOX,
    add_partner_meters,
    new_home,
    write_day_file,
    write_processed,
)
from baseline_benchmark import EVENT_END, EVENT_START, build  # noqa: E402
from intake_benchmark import machine, peak_rss_mb  # noqa: E402
from test_dagster import resources  # noqa: E402  (the local resources every Dagster test uses)

INTERVALS_PER_YEAR = 35_040
UPLOAD_METERS = 4  # meters per small intake upload; each upload is one day of them
TICK_UPLOADS = 100  # what one sensor tick requests at most (4 runs x 25 uploads)


def sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def clocked(fn, *args, **kwargs) -> tuple[float, float, object]:
    """Wall seconds, this process's CPU seconds (all its threads) and the result of fn(*args, **kwargs): on a
    shared machine the CPU time shows the work itself, the wall time also the waits for a core."""
    usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = fn(*args, **kwargs)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime, result


def warm_up() -> None:
    """Once-per-process costs a long-running run has already paid: duckdb imports pandas (when installed) at
    its first datetime parameter (1.4 s); pandera registers its polars backend (0.2 s)."""
    from pandera.backends.polars.register import register_polars_backends

    duckdb.connect().execute("SELECT ?::TIMESTAMPTZ", [dt.datetime.now(dt.UTC)]).fetchall()
    register_polars_backends()


# ---------------------------------------------------------------- settlement (child processes)


def child_build(folder: Path, meters: int, days: int, memory: str) -> dict:
    from leap_orchestration.warehouse import Warehouse

    wh = Warehouse(folder / "warehouse.duckdb", memory_limit=memory)  # setup, not measured: plenty of memory
    started = time.perf_counter()
    rows = build(wh, meters, days)
    with wh.connect() as con:
        con.execute("CHECKPOINT").fetchall()
    return {"rows": rows, "seconds": time.perf_counter() - started, "bytes": wh.path.stat().st_size}


def child_settle(folder: Path, meters: int, repeat: int) -> dict:
    from leap_orchestration.settlement.engine import EventSpec, compute_event, reading_range
    from leap_orchestration.settlement.presets import preset_for
    from leap_orchestration.settlement.settle import settle
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.duck import run

    warm_up()
    wh = Warehouse(folder / "warehouse.duckdb")  # the default memory limit, as WarehouseResource opens it
    event = EventSpec("bench-event", "bench", EVENT_START, EVENT_END, preset_for("caiso_10in10"))
    lo, hi = reading_range(event)
    now = dt.datetime.now(dt.UTC)
    with wh.connect() as con:
        reference, _, _ = clocked(
            run,
            con,
            """SELECT meter_id, count(*), avg(energy_net_kwh) FROM interval_readings
               WHERE interval_start_utc >= ? AND interval_start_utc < ? GROUP BY meter_id""",
            [lo, hi],
        )
        runs = [clocked(settle, con, now, force=True)[:2] for _ in range(repeat)]
        engine, _, _ = clocked(compute_event, con, event)  # after settle: its one-time imports are paid
        statuses = dict(con.execute("SELECT status, count(*) FROM baseline_status GROUP BY ALL").fetchall())
    assert statuses == {"OK": meters}, statuses  # a fast wrong answer must not pass
    return {"reference": reference, "engine": engine, "runs": runs}


def child_upload(folder: Path, repeat: int) -> dict:
    """Small uploads (4 meters x 1 day each) into the built warehouse, one after the other."""
    from leap_orchestration.intake.discovery import pending_uploads
    from leap_orchestration.intake.process import process_upload
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.warehouse import Warehouse

    warm_up()
    wh = Warehouse(folder / "warehouse.duckdb")
    with wh.connect() as con:
        meter_ids = add_partner_meters(con, UPLOAD_METERS)
        loaded = con.execute(
            "SELECT count(*) FROM interval_readings WHERE list_contains(?, meter_id)", [meter_ids]
        ).fetchall()[0][0]
    # days inside the warehouse's time range, as a daily upload is once any partner has sent the day (DuckDB
    # can then not rule the load's joins out from the table's min/max alone); a kept warehouse takes new days
    first_day = (EVENT_START.date() - FIRST_DAY).days - 30 + loaded // (96 * UPLOAD_METERS)
    store = LocalLandingStore(folder / "landing")
    store.path(INBOX).mkdir(parents=True, exist_ok=True)
    runs = []
    with duckdb.connect() as writer:
        for day in range(first_day, first_day + repeat):
            write_day_file(writer, store.path(f"{INBOX}day-{day}.csv"), meter_ids, day)
            (upload,) = pending_uploads(store)
            wall, cpu, outcome = clocked(process_upload, store, wh, upload)
            assert outcome.status == "COMPLETED", outcome
            runs.append((wall, cpu))
    return {"runs": runs}


def in_child(task: str, **kwargs) -> dict | None:
    """Run one task in a fresh process; None (with the reason printed) if it died, e.g. out of memory."""
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", task, json.dumps(kwargs)], stdout=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        print(f"settlement meters={kwargs['meters']} {task} failed: exit {proc.returncode}", flush=True)
        return None
    return json.loads(proc.stdout.splitlines()[-1])


def settlement_curve(scratch: Path, args: argparse.Namespace) -> None:
    for meters in args.meters:
        folder = (args.keep or scratch) / f"settlement-{meters}-{args.days}d"
        figures = folder / "built.json"
        if not figures.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that did not finish
            folder.mkdir(parents=True)
            kwargs = {"folder": str(folder), "meters": meters, "days": args.days, "memory": args.build_memory}
            if built := in_child("build", **kwargs):
                figures.write_text(json.dumps(built))
        built = json.loads(figures.read_text()) if figures.exists() else None
        done = built and in_child("settle", folder=str(folder), meters=meters, repeat=args.repeat)
        if built and done:
            wall, cpu = min(done["runs"])
            print(
                f"settlement meters={meters} days={args.days} readings={built['rows']} seconds={wall:.3f} "
                f"cpu_seconds={cpu:.1f} runs={','.join(f'{w:.3f}' for w, _ in done['runs'])} "
                f"engine_seconds={done['engine']:.3f} reference_seconds={done['reference']:.3f} "
                f"peak_mb={done['peak_mb']:.0f} build_seconds={built['seconds']:.1f} "
                f"warehouse_mb={built['bytes'] / 1e6:.0f} "
                f"bytes_per_meter_year={built['bytes'] / built['rows'] * INTERVALS_PER_YEAR:.0f}",
                flush=True,
            )
        upload = built and in_child("upload", folder=str(folder), meters=meters, repeat=args.repeat)
        if upload:
            wall, cpu = min(upload["runs"])
            print(
                f"intake_into meters={meters} readings={built['rows']} rows={UPLOAD_METERS * 96} "
                f"seconds={wall:.3f} cpu_seconds={cpu:.2f} "
                f"runs={','.join(f'{w:.3f}' for w, _ in upload['runs'])} "
                f"peak_mb={upload['peak_mb']:.0f}",
                flush=True,
            )
        if not args.keep:
            shutil.rmtree(folder)  # up to ~11 GB at 100,000 meters


# ---------------------------------------------------------------- intake


def intake_run(home: Path, uploads: int, instance) -> tuple[float, float, int]:
    """Wall and CPU seconds of one Dagster run of `interval_intake` naming `uploads` new files; rows."""
    import dagster as dg

    from assets.intake import interval_intake

    groups = -(-uploads // 100)  # 100 days per group of meters, so every upload brings new readings
    store, wh, meter_ids = new_home(home, groups * UPLOAD_METERS)
    with duckdb.connect() as con:
        for k in range(uploads):
            group = meter_ids[UPLOAD_METERS * (k // 100) : UPLOAD_METERS * (k // 100 + 1)]
            write_day_file(con, store.path(f"{INBOX}upload-{k:04d}.csv"), group, k % 100)
    entries = [f"{o.key}|{o.version}" for o in store.list_files(INBOX)]  # as the sensor names them
    seconds, cpu, result = clocked(
        dg.materialize,
        [interval_intake],
        resources=resources(home),
        instance=instance,
        run_config={"ops": {"interval_intake": {"config": {"uploads": entries}}}},
    )
    with wh.connect(read_only=True) as con:
        accepted, rows = con.execute("SELECT count(*), sum(rows_loaded) FROM uploads").fetchall()[0]
    assert result.success and accepted == uploads, (accepted, uploads)
    return seconds, cpu, rows


def intake_curve(scratch: Path, args: argparse.Namespace, instance) -> None:
    warm_up()  # as a run pays it once for its whole batch
    intake_run(scratch / "intake-warmup", 1, instance)  # Dagster's and the project's first-use costs
    for uploads in args.uploads:
        seconds, cpu, rows = intake_run(scratch / f"intake-{uploads}", uploads, instance)
        print(
            f"intake uploads={uploads} rows={rows} seconds={seconds:.3f} cpu_seconds={cpu:.2f} "
            f"per_upload_ms={seconds / uploads * 1000:.1f}",
            flush=True,
        )
        shutil.rmtree(scratch / f"intake-{uploads}")


# ---------------------------------------------------------------- sensor


def sensor_curve(scratch: Path, args: argparse.Namespace, instance) -> None:
    for processed in args.processed:
        sensor_point(scratch / f"sensor-{processed}", processed, instance)


def sensor_point(home: Path, processed: int, instance) -> None:
    import dagster as dg

    from sensors.landing import landing_inbox_sensor

    new_home(home, UPLOAD_METERS)
    started = time.perf_counter()
    write_processed(home, processed)
    setup = time.perf_counter() - started
    res = resources(home)

    def tick(cursor: str | None):
        context = dg.build_sensor_context(instance=instance, resources=res, cursor=cursor)
        started = time.perf_counter()
        result = landing_inbox_sensor(context)
        return time.perf_counter() - started, result

    first, result = tick(None)
    idle = []
    for _ in range(5):
        seconds, result = tick(result.cursor)
        idle.append(seconds)
    assert not result.run_requests
    inbox = home / "landing" / INBOX
    hour_ago = time.time() - 3600  # settled by age: taken at once
    for i in range(TICK_UPLOADS):
        (inbox / f"new-{i:03d}.csv").write_bytes(b"x\n")
        os.utime(inbox / f"new-{i:03d}.csv", (hour_ago, hour_ago))
    busy, result = tick(result.cursor)
    print(
        f"sensor processed={processed} uploads_rows={processed} "
        f"idle_tick_seconds={statistics.median(idle):.4f} idle_ticks={','.join(f'{s:.4f}' for s in idle)} "
        f"first_tick_seconds={first:.4f} busy_tick_seconds={busy:.4f} pending={TICK_UPLOADS} "
        f"runs_requested={len(result.run_requests)} setup_seconds={setup:.1f}",
        flush=True,
    )
    shutil.rmtree(home)


# ---------------------------------------------------------------- warehouse size


def size_curve(scratch: Path, args: argparse.Namespace) -> None:
    for meters in args.size_meters:
        size_point(scratch / f"size-{meters}", meters, args.size_days)


def size_point(home: Path, meters: int, days: int) -> None:
    from leap_orchestration.intake.discovery import pending_uploads
    from leap_orchestration.intake.process import process_upload

    store, wh, meter_ids = new_home(home, meters)

    def mark() -> tuple[int, int, int]:
        with wh.connect() as con:
            con.execute("CHECKPOINT").fetchall()
            readings = con.execute("SELECT count(*) FROM interval_readings").fetchall()[0][0]
            used = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchall()[0][0]
        return readings, wh.path.stat().st_size, used

    marks = {0: mark()}  # days loaded -> (readings, file bytes, bytes in used blocks)
    with duckdb.connect() as writer:
        for day in range(days):
            write_day_file(writer, store.path(f"{INBOX}day-{day:03d}.csv"), meter_ids, day)
            (upload,) = pending_uploads(store)
            assert process_upload(store, wh, upload).status == "COMPLETED"
            if day + 1 in (days // 2, days):
                marks[day + 1] = mark()
    (_, empty, _), (half_readings, half_size, _) = marks[0], marks.get(days // 2, marks[0])
    readings, size, used = marks[days]
    # the growth from half to all the days, per reading: fixed parts (schema, configuration, first blocks of
    # each table) cancel out; the average over everything beyond the empty warehouse is shown too
    growth = (size - half_size) / max(readings - half_readings, 1)
    print(
        f"warehouse meters={meters} days={days} readings={readings} file_mb={size / 1e6:.1f} "
        f"used_mb={used / 1e6:.1f} half_mb={half_size / 1e6:.1f} empty_mb={empty / 1e6:.1f} "
        f"bytes_per_reading={growth:.2f} bytes_per_reading_average={(size - empty) / max(readings, 1):.2f} "
        f"mb_per_meter_year={growth * INTERVALS_PER_YEAR / 1e6:.2f}",
        flush=True,
    )
    shutil.rmtree(home)  # the uploads stay in accepted/: ~100 MB a day at 10,000 meters


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--curves", default="settlement,intake,sensor,size", help="which curves to measure")
    parser.add_argument("--meters", type=sizes, default=[1_000, 10_000, 50_000, 100_000])
    parser.add_argument("--days", type=int, default=45, help="days of history before the event")
    parser.add_argument("--repeat", type=int, default=2, help="settle runs and uploads into it per size")
    parser.add_argument("--build-memory", default="8GB", help="DuckDB memory for building (not measured)")
    parser.add_argument("--keep", type=Path, help="keep the settlement warehouses here (reused if present)")
    parser.add_argument("--uploads", type=sizes, default=[1, 10, 100, 1_000])
    parser.add_argument("--processed", type=sizes, default=[0, 10_000, 100_000])
    parser.add_argument("--size-meters", type=sizes, default=[1_000, 10_000])
    parser.add_argument("--size-days", type=int, default=8, help="daily uploads per size (one file each)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, kwargs = args.child[0], json.loads(args.child[1])
        kwargs["folder"] = Path(kwargs["folder"])
        if task == "upload":
            kwargs.pop("meters")  # named for in_child's message only
        result = {"build": child_build, "settle": child_settle, "upload": child_upload}[task](**kwargs)
        print(json.dumps({**result, "peak_mb": peak_rss_mb()}))
        return
    curves = set(args.curves.split(","))
    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="leap-bench-scale-"))
    try:
        if "settlement" in curves:
            settlement_curve(scratch, args)
        if curves & {"intake", "sensor"}:
            import dagster as dg

            (scratch / "dagster").mkdir()
            with dg.instance_for_test(temp_dir=str(scratch / "dagster")) as instance:
                if "intake" in curves:
                    intake_curve(scratch, args, instance)
                if "sensor" in curves:
                    sensor_curve(scratch, args, instance)
        if "size" in curves:
            size_curve(scratch, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Intake benchmark: this project's validate-and-load against DuckDB's bare load and a pandas/pandera version.

Run (from the repo root, after scripts/bootstrap):

    UV_PYTHON_DOWNLOADS=never .tools/bin/uv run --frozen --group bench python bench/intake_benchmark.py

It generates, in a scratch folder: a configuration (the demo one plus 1,000 benchmark meters of
sunrise-energy, --meters), a 1M-row valid file (~100 MB, --rows), the same file with 1 % bad rows, and a
10M-row valid file (--big-rows). --files measures only one of the first two.
Every measurement runs in its own child process, so each peak RSS (VmHWM) is that measurement's alone;
the ratios compare runs made in this one invocation on this machine, since absolute times drift. The scratch
folder is removed at the end (unless it was given with --scratch).

Without pandas (the `bench` group) the pandas comparison is skipped with a note. tests/test_bench.py runs a
tiny size (`--rows 400 --meters 20 --big-rows 0 --repeat 1 --files bad`) so that the script keeps working; its
figures mean nothing at that size.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

PARTNER = "sunrise-energy"
BENCH_METERS = 1000
FIRST_INTERVAL = "2024-01-01 00:00:00+00"
HERE = Path(__file__).resolve()


# ---------------------------------------------------------------- data


def bench_meter_ids(meters: int = BENCH_METERS) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"leap-bench-meter-{i}")) for i in range(meters)]


def write_configuration(target: Path, meters: int = BENCH_METERS) -> Path:
    from leap_orchestration.config.demo_config import START, DemoMeter, demo_files, meter_xml

    files = demo_files()
    for i, meter_id in enumerate(bench_meter_ids(meters)):
        meter = DemoMeter(
            f"bench_{i:04d}.xml",
            1000 + i,
            meter_id,
            PARTNER,
            "partner",
            "device",
            "battery",
            "residential",
            "CA",
            "America/Los_Angeles",
            programs=(),
            ownerships=((PARTNER, START, None),),
            enrolled_from=START,
        )
        files[f"meters/{meter.file_name}"] = meter_xml(meter)
    for rel, text in files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text, encoding="utf-8")
    return target


# Kinds of bad row, one per rule family; row k (k % 100 == 37) gets kind (k // 100) % len(BAD).
BAD = [
    ("meter_uuid", "'not-a-uuid'"),  # MTR_0002
    ("meter_uuid", "'00000000-0000-4000-8000-000000000000'"),  # MTR_0003
    ("interval_start_time_utc", "'2024-01-01T00:07:00Z'"),  # STM_0003 + DTR_0003
    ("energy_consumed_kwh", "'-1.5'"),  # CON_0003 + NRG_0003
    ("energy_generated_kwh", "'NaN'"),  # GEN_0002
    ("energy_net_kwh", "'1,5'"),  # field count: LIN_0002
    ("final", "'yes'"),  # FNL_0002
    ("region", "'ca'"),  # REG_0003
]


def write_interval_file(path: Path, rows: int, bad: bool, meters: int = BENCH_METERS) -> None:
    """Meter-major rows of 15-minute intervals from 2024-01-01, written by DuckDB (fast, deterministic)."""
    per_meter = rows // meters
    fields = {
        "meter_uuid": "id",
        "interval_start_time_utc": "strftime(t, '%Y-%m-%dT%H:%M:%SZ')",
        "interval_end_time_utc": "strftime(t + INTERVAL 15 MINUTE, '%Y-%m-%dT%H:%M:%SZ')",
        "energy_net_kwh": "printf('%.3f', c - g)",
        "energy_consumed_kwh": "printf('%.3f', c)",
        "energy_generated_kwh": "printf('%.3f', g)",
        "final": "'true'",
        "region": "'CA'",
    }
    if bad:
        for column in fields:
            cases = " ".join(f"WHEN {i} THEN {value}" for i, (col, value) in enumerate(BAD) if col == column)
            if cases:
                fields[column] = (
                    f"CASE WHEN k % 100 = 37 THEN CASE (k // 100) % {len(BAD)} {cases} ELSE {fields[column]} END ELSE {fields[column]} END"
                )
    select = ", ".join(f"{expr} AS {name}" for name, expr in fields.items())
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false").fetchall()
    con.execute(
        "CREATE TABLE m AS SELECT unnest(?) AS id, generate_subscripts(?, 1) AS n",
        [bench_meter_ids(meters)] * 2,
    ).fetchall()
    con.execute(
        f"""COPY (
              SELECT {select} FROM (
                SELECT m.id, TIMESTAMPTZ '{FIRST_INTERVAL}' + to_minutes(15 * i) AS t,
                       round(0.2 + ((i * 7 + m.n) % 97) / 50.0, 3) AS c, round(((i + m.n) % 5) / 40.0, 3) AS g,
                       (m.n - 1) * {per_meter} + i AS k
                FROM m, range({per_meter}) r(i) ORDER BY m.n, i)
            ) TO '{path}' (HEADER, DELIMITER ',', QUOTE '')"""
    ).fetchall()
    con.close()


# ---------------------------------------------------------------- measured tasks (run in a child process)


def task_duckdb(csv: Path, work: Path) -> dict:
    con = duckdb.connect(str(work / "bare.duckdb"))
    started = time.perf_counter()
    con.execute(f"CREATE TABLE readings AS SELECT * FROM read_csv('{csv}', ignore_errors = true)").fetchall()
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM readings").fetchall()[0][0]
    return {"seconds": seconds, "rows": rows}


def task_project(csv: Path, work: Path) -> dict:
    from leap_orchestration.config.loader import load_configuration
    from leap_orchestration.intake.discovery import pending_uploads
    from leap_orchestration.intake.process import process_upload
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import replace_configuration

    store = LocalLandingStore(work / "landing")
    target = store.path(f"{PARTNER}/interval-data/{csv.name}")
    target.parent.mkdir(parents=True)
    os.link(csv, target)  # same bytes, no copy; processing moves the link, the source stays
    warehouse = Warehouse(work / "warehouse.duckdb")
    with warehouse.connect() as con:
        replace_configuration(con, load_configuration(work.parent / "config"))
    # pandera registers its polars backend on first use (0.2 s, it imports hypothesis): a once-per-process
    # cost that a Dagster run pays once for its whole batch of uploads, so it is kept out of the per-file time
    from pandera.backends.polars.register import register_polars_backends

    register_polars_backends()
    (upload,) = pending_uploads(store)
    started = time.perf_counter()
    outcome = process_upload(store, warehouse, upload)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": outcome.rows, "errors": outcome.errors, "status": outcome.status}


def task_pandas(csv: Path, work: Path) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from pandas_reference import validate_with_pandas

    from leap_orchestration.config.loader import load_configuration
    from leap_orchestration.warehouse.config_tables import ownership_from_configuration

    ownership = ownership_from_configuration(load_configuration(work.parent / "config")).to_pandas()
    started = time.perf_counter()
    errors = validate_with_pandas(csv, ownership, PARTNER)
    return {"seconds": time.perf_counter() - started, "errors": errors}


TASKS = {"duckdb": task_duckdb, "project": task_project, "pandas": task_pandas}


def measure(task: str, csv: Path, scratch: Path) -> dict:
    """Run one task in a fresh child process and return its figures, including its own peak memory."""
    work = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{task}-"))
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", task, str(csv), str(work)], stdout=subprocess.PIPE
    )
    shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{task} on {csv.name} failed (exit {proc.returncode})")
    return json.loads(proc.stdout)


def peak_rss_mb() -> float:
    # VmHWM belongs to this process's own address space; ru_maxrss would also count the parent's RSS at fork
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


# ---------------------------------------------------------------- report


def have_pandas() -> bool:
    return importlib.util.find_spec("pandas") is not None


def version(package: str) -> str:
    # from the installed metadata: importing pandas, pandera and polars here would cost seconds for a version
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM; Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, polars {version('polars')}, pandera {version('pandera')}, "
        f"pandas {version('pandas')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0 skips the large-file memory run")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the 1M-row timings")
    parser.add_argument(
        "--meters",
        type=int,
        default=BENCH_METERS,
        help="benchmark meters in the configuration and the files (rows are spread over them)",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        choices=["valid", "bad"],
        default=["valid", "bad"],
        help="which of the two files to measure (both are written)",
    )
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, csv, work = args.child
        result = TASKS[task](Path(csv), Path(work))
        print(json.dumps({**result, "peak_mb": peak_rss_mb()}))
        return
    if not 1 <= args.meters <= args.rows:
        parser.error("--meters must be at least 1 and at most --rows")
    if args.big_rows and args.big_rows < args.meters:
        parser.error("--big-rows must be 0 or at least --meters")

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="leap-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        write_configuration(scratch / "config", args.meters)
        files = {"valid": scratch / "valid.csv", "1% bad": scratch / "bad.csv"}
        write_interval_file(files["valid"], args.rows, bad=False, meters=args.meters)
        write_interval_file(files["1% bad"], args.rows, bad=True, meters=args.meters)
        print(f"machine: {machine()}")
        tasks = ["duckdb", "project"]
        if have_pandas():
            tasks.append("pandas")
        else:
            print(
                "note: pandas is not installed, so the pandas comparison is skipped "
                "(run with: uv run --frozen --group bench)"
            )
        for label, csv in files.items():
            if label.split()[-1] not in args.files:
                continue
            print(f"\n{label}: {csv.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows")
            best: dict[str, dict] = {}
            for task in tasks:
                runs = [measure(task, csv, scratch) for _ in range(args.repeat if task != "pandas" else 1)]
                best[task] = min(runs, key=lambda r: r["seconds"])
                extra = {k: v for k, v in best[task].items() if k not in ("seconds", "peak_mb")}
                print(
                    f"  {task:8s} {best[task]['seconds']:7.2f} s  peak {best[task]['peak_mb']:6.0f} MB  {extra}"
                )
            base = best["duckdb"]["seconds"]
            print(f"  project / duckdb bare load: {best['project']['seconds'] / base:.2f}x   (target <= 2x)")
            if "pandas" in best:
                print(
                    f"  pandas / project:           {best['pandas']['seconds'] / best['project']['seconds']:.1f}x   (target >= 5x)"
                )
        if args.big_rows:
            big = scratch / "big.csv"
            write_interval_file(big, args.big_rows, bad=False, meters=args.meters)
            result = measure("project", big, scratch)
            print(
                f"\n{args.big_rows:,} rows ({big.stat().st_size / 1e9:.2f} GB): project {result['seconds']:.1f} s, "
                f"peak {result['peak_mb']:.0f} MB (target < 2048 MB), {result['status']}, {result['rows']:,} rows"
            )
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

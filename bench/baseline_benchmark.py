"""Baseline engine speed: 10,000 meters, 45 days of 15-minute readings, one event, CAISO 10-in-10 with its
day-of adjustment, against a bare DuckDB aggregate over the same look-back window of readings.

    .venv/bin/python bench/baseline_benchmark.py [--meters 10000] [--days 45] [--repeat 3] [--keep DIR]

Builds a real warehouse file (the project's schema) with synthetic readings: three time zones, a daily shape,
per-meter scale and noise, a weekend and the 4 July holiday inside the look-back. Then, in one process and on
the same connection, alternates:
- reference: `SELECT meter_id, count(*), avg(energy_net_kwh) ... GROUP BY meter_id` over exactly the rows the
  event's baselines may read (the engine's `reading_range`);
- engine: `compute_event` for the event over every enrolled meter (its result frames: baselines, statuses,
  explanations and missing intervals).
Then the whole settlement path once, and the partners' statements of the event (ten SFTP partners owning the
meters, files written to a local landing store): first issue, and an hourly look with nothing new.
Prints the median of each and their ratio (the target is ≤ 3×). The engine's result is sanity-checked (every
meter OK, baseline close to the synthetic load) so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leap_orchestration.config.models import Properties, SftpPartner  # noqa: E402
from leap_orchestration.settlement.engine import EventSpec, compute_event, reading_range  # noqa: E402
from leap_orchestration.settlement.performance import (  # noqa: E402
    rebuild_event_performance,
    rebuild_hourly,
    rebuild_program_events,
    rebuild_seasons,
)
from leap_orchestration.settlement.presets import preset_for  # noqa: E402
from leap_orchestration.settlement.settle import settle  # noqa: E402
from leap_orchestration.statements.deliver import Destinations  # noqa: E402
from leap_orchestration.statements.issue import issue_statements  # noqa: E402
from leap_orchestration.stores.local import LocalLandingStore  # noqa: E402
from leap_orchestration.warehouse import Warehouse  # noqa: E402
from leap_orchestration.warehouse.duck import run  # noqa: E402

# Wednesday 20 August 2025, 16:00-19:00 in Los Angeles (19:00-22:00 in New York)
EVENT_START = dt.datetime(2025, 8, 20, 23, tzinfo=dt.UTC)
EVENT_END = dt.datetime(2025, 8, 21, 2, tzinfo=dt.UTC)
ZONES = ("America/Los_Angeles", "America/New_York", "America/Chicago")


def build(wh: Warehouse, meters: int, days: int) -> int:
    first = EVENT_START.replace(hour=0) - dt.timedelta(days=days + 2)
    last = EVENT_END.replace(hour=0) + dt.timedelta(days=1)
    with wh.connect() as con:
        run(
            con,
            f"""INSERT INTO meters (meter_id, timezone)
            SELECT md5(i::VARCHAR)::UUID::VARCHAR, list_extract(?::VARCHAR[], 1 + i % 3)
            FROM range({meters}) t(i)""",
            [list(ZONES)],
        )
        run(
            con,
            """INSERT INTO meter_enrollments (meter_id, program_id, valid_from)
               SELECT meter_id, 'bench', '2025-01-01' FROM meters""",
        )
        run(
            con,
            "INSERT INTO programs (program_id, name, baseline_preset, channel, holiday_calendar, overrides, clip) "
            "VALUES ('bench', 'bench', 'caiso_10in10', 'net', 'NERC', '{}', 'none')",
        )
        run(
            con,
            """INSERT INTO dr_events (event_id, program_id, start_utc, end_utc, event_type)
               VALUES ('bench-event', 'bench', ?, ?, 'bench')""",
            [EVENT_START, EVENT_END],
        )
        run(
            con,
            """INSERT INTO config_loads (fingerprint, loaded_at, meters, programs, events)
               VALUES ('bench', now(), 0, 0, 0)""",
        )
        # a shape by local hour (evening peak), a per-meter scale, deterministic noise per reading
        run(
            con,
            """INSERT INTO interval_readings BY NAME
            WITH m AS (SELECT meter_id, timezone, 0.5 + (hash(meter_id) % 1000) / 1000.0 AS scale FROM meters),
            t AS (SELECT unnest(generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ - INTERVAL 15 MINUTE, INTERVAL 15 MINUTE)) AS ts)
            SELECT m.meter_id, t.ts AS interval_start_utc, t.ts + INTERVAL 15 MINUTE AS interval_end_utc,
                   round(m.scale * (0.25 + 0.2 * (hour(t.ts AT TIME ZONE m.timezone) BETWEEN 16 AND 21)::INT
                         + 0.05 * (isodow((t.ts AT TIME ZONE m.timezone)::DATE) >= 6)::INT
                         + (hash(m.meter_id, t.ts) % 100) / 1000.0), 3) AS energy_net_kwh,
                   true AS final, 'CA' AS region, 'bench' AS job_id, now() AS received_at, now() AS loaded_at
            FROM t CROSS JOIN m ORDER BY t.ts""",
            [first, last],
        )
        return con.execute("SELECT count(*) FROM interval_readings").fetchall()[0][0]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the warehouse here (reused if it exists)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="leap-bench-baselines-"))
    try:
        measure(folder, args)
    finally:
        if not args.keep:  # about 1 GB of DuckDB file
            shutil.rmtree(folder, ignore_errors=True)


def measure(folder: Path, args: argparse.Namespace) -> None:
    wh = Warehouse(folder / "warehouse.duckdb", memory_limit="12GB")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    exists = wh.path.exists()
    t0 = time.perf_counter()
    rows = build(wh, args.meters, args.days) if not exists else None
    if rows is not None:
        print(
            f"built {rows:,} readings for {args.meters:,} meters in {time.perf_counter() - t0:.1f} s ({wh.path})"
        )
    event = EventSpec("bench-event", "bench", EVENT_START, EVENT_END, preset_for("caiso_10in10"))
    lo, hi = reading_range(event)
    with wh.connect() as con:
        in_window = con.execute(
            "SELECT count(*) FROM interval_readings WHERE interval_start_utc >= ? AND interval_start_utc < ?",
            [lo, hi],
        ).fetchall()[0][0]
        print(f"readings in the event's reading range [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}): {in_window:,}")

        def reference():
            con.execute(
                """SELECT meter_id, count(*), avg(energy_net_kwh) FROM interval_readings
                           WHERE interval_start_utc >= ? AND interval_start_utc < ? GROUP BY meter_id""",
                [lo, hi],
            ).fetchall()

        ref, eng, results = [], [], []
        for _ in range(args.repeat):
            ref.append(timed(reference))
            eng.append(timed(lambda: results.append(compute_event(con, event))))
        result = results[-1]
        statuses = dict(result.status.group_by("status").len().rows())
        rows_out = result.baselines.height
        mean_ratio = (result.baselines["adjusted_baseline_kwh"] / result.baselines["actual_kwh"]).mean()
        # the whole settlement path: digest, engine, storing in one transaction, then performance and roll-ups
        now = dt.datetime.now(dt.UTC)
        settle_s = timed(lambda: settle(con, now, force=True))
        # an hourly run with nothing new (readings loaded in the last 10 minutes are still re-digested)
        idle_s = timed(lambda: settle(con, now))
        rollup_s = timed(
            lambda: (
                rebuild_event_performance(con, now),
                rebuild_hourly(con),
                rebuild_program_events(con),
                rebuild_seasons(con),
            )
        )
        # partner statements: ten partners own the meters; a first issue writes every file, a second has nothing new
        for table in (
            "meter_ownership",
            "statement_versions",
            "statement_lines",
            "statement_builds",
            "partner_reports",
        ):
            run(con, f"DELETE FROM {table}")  # a kept warehouse: statements issued from scratch again
        run(
            con,
            """INSERT INTO meter_ownership (meter_id, partner_id, valid_from)
               SELECT meter_id, 'partner-' || (hash(meter_id) % 10), '2025-01-01' FROM meters""",
        )
        partners = tuple(SftpPartner(f"partner-{i}", f"P{i}") for i in range(10))
        destinations = Destinations(LocalLandingStore(folder / "landing"), None, Properties(partners, ()))
        issue_s = timed(lambda: issue_statements(con, destinations, now))
        issue_idle_s = timed(lambda: issue_statements(con, destinations, now))
        versions = con.execute("SELECT count(*) FROM statement_versions").fetchall()[0][0]
    assert statuses == {"OK": args.meters}, statuses
    assert rows_out == args.meters * 12 and 0.8 < mean_ratio < 1.2, (rows_out, mean_ratio)
    r, e = statistics.median(ref), statistics.median(eng)
    print(f"reference aggregate: {r:.3f} s (median of {args.repeat}: {', '.join(f'{x:.3f}' for x in ref)})")
    print(f"engine (caiso_10in10): {e:.3f} s (median of {args.repeat}: {', '.join(f'{x:.3f}' for x in eng)})")
    print(
        f"ratio engine / reference: {e / r:.2f}x (target <= 3x); {rows_out:,} baseline rows, statuses {statuses}"
    )
    print(
        f"settle (digest + engine + store): {settle_s:.3f} s; again with nothing new: {idle_s:.3f} s; "
        f"event performance and roll-ups: {rollup_s:.3f} s"
    )
    print(
        f"statements for 10 partners ({versions} versions: event and season): {issue_s:.3f} s; "
        f"again with nothing new: {issue_idle_s:.3f} s"
    )


if __name__ == "__main__":
    main()

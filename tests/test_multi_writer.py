"""Several workers writing the DuckLake warehouse at once (separate processes, a real PostgreSQL catalog): no
row lost or duplicated, the latest upload still wins, and a worker killed mid-upload is recovered by running
again, as on the DuckDB file."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import multi_writer as mw  # noqa: E402

from leap_orchestration.intake.discovery import pending_uploads  # noqa: E402
from leap_orchestration.stores import LocalLandingStore  # noqa: E402
from leap_orchestration.warehouse.duck import atomically, run, serialize_with  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def lake(tmp_path, lake_catalogs):
    """(spec, warehouse, landing store) on a fresh lake with the demo configuration."""
    spec = ("ducklake", lake_catalogs(), str(tmp_path / "lake"))
    warehouse = mw.open_warehouse(spec)
    mw.load_configuration_into(warehouse)
    yield spec, warehouse, LocalLandingStore(tmp_path / "landing")
    warehouse.release()


def one(warehouse, sql: str, params=None):
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql, params).fetchall()


def assert_one_current_row_per_interval(warehouse) -> None:
    duplicates = one(
        warehouse,
        """SELECT count(*) FROM (SELECT meter_id, interval_start_utc FROM interval_readings
           GROUP BY ALL HAVING count(*) > 1)""",
    )
    assert duplicates == [(0,)]


def test_two_partners_load_at_once_without_lost_or_duplicated_rows(lake):
    spec, warehouse, store = lake
    keys = mw.drop_uploads(store, files=3, meters=3, days=2)
    _, statuses, _ = mw.run_workers(spec, str(store.root), [keys[p] for p in mw.PARTNERS])
    assert statuses == ["COMPLETED"] * 6
    assert one(warehouse, "SELECT count(*), count(DISTINCT upload_id) FROM uploads") == [(6, 6)]
    # 2 partners × 3 files × 3 meters × 2 days × 96 intervals, each file on days of its own
    assert one(warehouse, "SELECT count(*) FROM interval_readings") == [(2 * 3 * 3 * 2 * 96,)]
    assert one(warehouse, "SELECT count(*) FROM interval_readings_superseded") == [(0,)]
    assert_one_current_row_per_interval(warehouse)
    assert pending_uploads(store) == []
    for partner in mw.PARTNERS:
        for i in range(3):
            assert store.exists(f"{partner}/interval-data/accepted/bench-{i:04d}.csv/bench-{i:04d}.csv")


def test_one_meters_uploads_from_two_workers_keep_the_latest(lake):
    """Two uploads of the same meter-intervals committed by two workers at once: exactly one current row per
    interval (the upload received last), the other kept as superseded."""
    spec, warehouse, store = lake
    partner = mw.PARTNERS[0]
    meters = mw.partner_meters(partner, 3)
    for round_ in range(2):
        first = mw.FIRST_DAY + dt.timedelta(days=10 * round_)
        mw.drop(store, partner, f"old-{round_}.csv", mw.upload_text(meters, first, 1, 1.0), age_seconds=300)
        mw.drop(store, partner, f"new-{round_}.csv", mw.upload_text(meters, first, 1, 2.0), age_seconds=200)
        groups = [[f"{partner}/interval-data/{kind}-{round_}.csv"] for kind in ("old", "new")]
        _, statuses, _ = mw.run_workers(spec, str(store.root), groups)
        assert statuses == ["COMPLETED", "COMPLETED"]
    assert_one_current_row_per_interval(warehouse)
    assert one(
        warehouse,
        "SELECT count(*), min(energy_consumed_kwh), max(energy_consumed_kwh) FROM interval_readings",
    ) == [(2 * 3 * 96, 2.0, 2.0)]
    assert one(warehouse, "SELECT count(*), max(energy_consumed_kwh) FROM interval_readings_superseded") == [
        (2 * 3 * 96, 1.0)
    ]


@pytest.mark.parametrize("serialized", [True, False])
def test_a_write_serial_orders_two_inserts_of_one_key(lake, serialized):
    """Two transactions that each insert a key after seeing it absent, both reading before either commits.
    Appends never conflict in DuckLake, so without a write serial the key is there twice (the hazard, shown);
    with one, the second commit conflicts, runs again, sees the key and inserts nothing."""
    warehouse = lake[1]
    both_read = threading.Barrier(2)

    def writer() -> None:
        with warehouse.connect() as con:
            attempts = []

            def work() -> None:
                attempts.append(1)
                if serialized:
                    serialize_with(con, "standardized_hours")
                absent = not con.execute(
                    "SELECT count(*) FROM standardized_jobs WHERE job_id = 'j'"
                ).fetchall()[0][0]
                if len(attempts) == 1:
                    both_read.wait(timeout=60)
                if absent:
                    run(con, "INSERT INTO standardized_jobs (job_id, standardized_at) VALUES ('j', now())")

            atomically(con, work)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert one(warehouse, "SELECT count(*) FROM standardized_jobs WHERE job_id = 'j'") == [
        (1 if serialized else 2,)
    ]


def settle_worker(spec: tuple, barrier, results) -> None:
    from leap_orchestration.settlement.settle import settle

    warehouse = mw.open_warehouse(spec)
    barrier.wait()
    started = time.time()
    with warehouse.connect() as con:
        report = settle(con, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    results.put((started, time.time(), sorted(report.computed)))


def test_intake_during_a_settlement(lake):
    """A settlement of the demo's events and two partners' uploads, all at once: every upload loaded once,
    every event settled once, and the settlement then agrees with one recomputed from scratch."""
    from leap_orchestration.demo_history import history_files
    from leap_orchestration.settlement.settle import settle

    spec, warehouse, store = lake
    with (
        warehouse.connect() as con
    ):  # the demo history, straight into the warehouse (its intake is tested above)
        _load_history(con, history_files())
    before = one(warehouse, "SELECT count(*) FROM interval_readings")[0][0]
    keys = mw.drop_uploads(store, files=2, meters=2, days=1)
    _, results = mw.run_together(
        [(settle_worker, spec), *[(mw.intake_worker, spec, str(store.root), keys[p]) for p in mw.PARTNERS]]
    )
    settled, *statuses = results
    assert len(settled) == 8 and [s for st, _ in statuses for s in st] == ["COMPLETED"] * 4
    assert one(warehouse, "SELECT count(*) FROM interval_readings")[0][0] == before + 2 * 2 * 2 * 96
    assert_one_current_row_per_interval(warehouse)
    assert one(warehouse, "SELECT count(*), count(DISTINCT event_id) FROM settled_events") == [(8, 8)]
    stored = one(
        warehouse,
        "SELECT event_id, meter_id, round(sum(adjusted_baseline_kwh), 9) FROM baselines GROUP BY ALL ORDER BY ALL",
    )
    with warehouse.connect() as con:
        settle(con, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), force=True)
    again = one(
        warehouse,
        "SELECT event_id, meter_id, round(sum(adjusted_baseline_kwh), 9) FROM baselines GROUP BY ALL ORDER BY ALL",
    )
    assert stored == again
    assert one(
        warehouse,
        "SELECT count(*) FROM (SELECT event_id, meter_id, interval_start_utc FROM baselines GROUP BY ALL HAVING count(*) > 1)",
    ) == [(0,)]


def _load_history(con, files: dict[str, list[str]]) -> None:
    import polars as pl

    lines = [line.rstrip("\n").split(",") for rows in files.values() for line in rows]
    frame = pl.DataFrame(lines, schema=["m", "s", "e", "n", "c", "g", "f", "r"], orient="row")
    con.register("history", frame)
    con.execute(
        """INSERT INTO interval_readings BY NAME
           SELECT m AS meter_id, s::TIMESTAMPTZ AS interval_start_utc, e::TIMESTAMPTZ AS interval_end_utc,
                  c::DOUBLE AS energy_consumed_kwh, g::DOUBLE AS energy_generated_kwh, n::DOUBLE AS energy_net_kwh,
                  f = 'true' AS final, r AS region, 'demo' AS job_id, now() AS received_at, now() AS loaded_at
           FROM history"""
    ).fetchall()
    con.unregister("history")


def test_two_processes_on_one_inbox_take_each_upload_once(lake):
    """Both workers try every upload (as two runs on one home would): the advisory lock makes them take each
    in turn, and the second finds it moved."""
    spec, warehouse, store = lake
    keys = mw.drop_uploads(store, files=4, meters=1, days=1)
    every = [k for p in mw.PARTNERS for k in keys[p]]
    _, statuses, _ = mw.run_workers(spec, str(store.root), [every, every])
    assert sorted(statuses) == ["COMPLETED"] * 8 + ["SKIPPED"] * 8
    assert one(
        warehouse, "SELECT count(*), count(DISTINCT upload_id) FROM uploads WHERE status = 'COMPLETED'"
    ) == [(8, 8)]
    assert one(warehouse, "SELECT count(*) FROM interval_readings") == [(8 * 96,)]


def test_a_worker_killed_mid_upload_is_recovered_by_running_again(lake, tmp_path):
    """SIGKILL while a large upload is being validated or loaded: nothing of it is committed; the next run
    processes it to the end, with every row once."""
    spec, warehouse, store = lake
    partner = mw.PARTNERS[0]
    meters = mw.partner_meters(partner, 10)
    mw.drop(store, partner, "big.csv", mw.upload_text(meters, mw.FIRST_DAY, 60, 1.5), age_seconds=300)
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "bench")!r}]
        import multi_writer as mw
        from leap_orchestration.intake.discovery import pending_uploads
        from leap_orchestration.intake.process import process_upload
        from leap_orchestration.stores import LocalLandingStore
        store, wh = LocalLandingStore({str(store.root)!r}), mw.open_warehouse({spec!r})
        print("ready", flush=True)
        for u in pending_uploads(store):
            process_upload(store, wh, u)
    """)
    victim = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not one(warehouse, "SELECT count(*) FROM uploads WHERE status = 'PROCESSING'")[0][0]:
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert one(warehouse, "SELECT count(*) FROM interval_readings") == [(0,)]
    survivor = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert survivor.returncode == 0, survivor.stderr[-3000:]
    assert one(warehouse, "SELECT status, attempts, rows_loaded FROM uploads") == [
        ("COMPLETED", 2, 10 * 60 * 96)
    ]
    assert one(warehouse, "SELECT count(*) FROM interval_readings") == [(10 * 60 * 96,)]
    assert_one_current_row_per_interval(warehouse)
    assert store.exists(f"{partner}/interval-data/accepted/big.csv/big.csv")

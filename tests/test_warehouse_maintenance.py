"""The daily upkeep: on both backends it changes nothing a query sees; on DuckLake it folds the small files and
snapshots that many small writes leave behind."""

import datetime as dt
import subprocess
import sys
import time

import dagster as dg
import pytest

from leap_orchestration.resources import WarehouseResource
from leap_orchestration.warehouse.duck import run

START = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def small_writes(con, count: int) -> None:
    """As intake leaves a lake: one commit per upload, some replacing earlier rows."""
    for n in range(count):
        run(
            con,
            """INSERT INTO interval_readings BY NAME
               SELECT 'm-' || (i % 7) AS meter_id, ?::TIMESTAMPTZ + i * INTERVAL 15 MINUTE AS interval_start_utc,
                      ?::TIMESTAMPTZ + (i + 1) * INTERVAL 15 MINUTE AS interval_end_utc, i / 10 AS energy_net_kwh,
                      true AS final, ? AS job_id, now() AS received_at, now() AS loaded_at
               FROM range(?) t(i)""",
            [START + dt.timedelta(days=n), START + dt.timedelta(days=n), f"job-{n}", 200],
        )
        if n % 3 == 2:
            run(con, "DELETE FROM interval_readings WHERE job_id = ? AND meter_id = 'm-1'", [f"job-{n - 1}"])


def contents(con) -> list[tuple]:
    return con.execute("SELECT * FROM interval_readings ORDER BY meter_id, interval_start_utc").fetchall()


def test_maintenance_keeps_every_row_and_folds_the_lake(blank_warehouse):
    with blank_warehouse.connect() as con:
        small_writes(con, 12)
        before = contents(con)
    assert len(before) > 2000
    # retention 0: every snapshot but the latest (and the checkpoint's own) expires, every replaced file goes now
    figures = blank_warehouse.maintain(snapshot_retention="0 seconds", file_grace="0 seconds")
    with blank_warehouse.connect() as con:
        assert contents(con) == before
        small_writes(con, 1)  # and it takes writes as before
        assert len(contents(con)) == len(before) + 200
    if blank_warehouse.multi_writer:
        assert figures["snapshots_before"] >= 16 and figures["snapshots_after"] <= 2, figures
        assert figures["data_files_after"] < figures["data_files_before"], figures
        assert figures["files_to_delete_after"] == 0, figures
    else:
        assert figures["file_mb"] > 0


def test_maintenance_job_runs_and_shows_its_figures(tmp_path):
    from leap_orchestration.definitions import defs

    path = tmp_path / "warehouse.duckdb"
    result = defs.get_job_def("warehouse_maintenance").execute_in_process(
        resources={"warehouse": WarehouseResource(path=str(path))}
    )
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    assert set(output.step_output_data.metadata) == {"file_mb"}
    assert path.exists()


WRITER = """
import datetime as dt, sys
from leap_orchestration.warehouse.duck import atomically, run, serialize_with
from leap_orchestration.warehouse.lake import DuckLakeWarehouse

lake = DuckLakeWarehouse(sys.argv[1], sys.argv[2])
start = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
with lake.connect() as con:
    for n in range(int(sys.argv[3])):
        def load(n=n):  # as intake's load commits: serialized on its write_serials row
            serialize_with(con, "interval_readings")
            run(con, '''INSERT INTO interval_readings (meter_id, interval_start_utc, interval_end_utc, final, job_id,
                            received_at, loaded_at) VALUES ('w', ?, ?, true, 'writer', now(), now())''',
                [start + dt.timedelta(minutes=15 * n), start + dt.timedelta(minutes=15 * (n + 1))])
        atomically(con, load)
"""


@pytest.mark.slow
def test_lake_maintenance_while_a_writer_commits(tmp_path, lake_catalogs):
    """Each of the writer's commits updates a row the catalog holds inline, which the checkpoint's flush deletes:
    PostgreSQL refuses one of the two. The writer retries its own; the checkpoint must run again too."""
    from leap_orchestration.warehouse.lake import DuckLakeWarehouse

    catalog, data = lake_catalogs(), str(tmp_path / "lake")
    lake = DuckLakeWarehouse(catalog, data)
    with lake.connect() as con:
        small_writes(con, 3)
        before = len(contents(con))
    writes = 150
    writer = subprocess.Popen([sys.executable, "-c", WRITER, catalog, data, str(writes)])
    try:
        deadline = time.monotonic() + 60
        with lake.connect() as con:
            while not con.execute(
                "SELECT count(*) FROM interval_readings WHERE job_id = 'writer'"
            ).fetchall()[0][0]:
                assert time.monotonic() < deadline and writer.poll() is None, "the writer never committed"
                time.sleep(0.05)
        checkpoints = 0
        while writer.poll() is None:
            lake.maintain(snapshot_retention="0 seconds", file_grace="0 seconds")
            checkpoints += 1
        assert writer.wait(timeout=120) == 0
    finally:
        writer.kill()
    with lake.connect() as con:
        assert len(contents(con)) == before + writes  # every commit kept, none twice
    assert checkpoints >= 1
    lake.release()

"""The readings load against a model of its rule: per (meter, interval) the latest received upload is current,
every row it displaced (or that arrived already displaced) is kept as superseded, naming the job that won.

Random uploads overlap in meters and time and arrive out of order, so a load that looked at too few stored
readings (it bounds its scans to the upload's key span) would leave a duplicate or lose a replacement here."""

import datetime as dt
import random

import pytest

from leap_orchestration.intake.staging import STAGE, create
from leap_orchestration.warehouse.intake_tables import _load_readings

METERS = ["A-1", "m-01", "m-02", "m-10", "m-2", "z"]  # ids whose text order differs from their number order
DAY = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
QUARTER = dt.timedelta(minutes=15)


def random_upload(rng: random.Random) -> list[tuple]:
    meters = rng.sample(METERS, rng.randint(1, 3))
    first = rng.randrange(0, 40)
    starts = [DAY + QUARTER * q for q in range(first, first + rng.randint(1, 12))]
    return [(m, s, s + QUARTER, round(rng.random(), 3)) for m in meters for s in starts]


def load(con, rows: list[tuple], job: str, received: dt.datetime) -> int:
    create(con)
    con.executemany(
        f"""INSERT INTO {STAGE} (line, meter_id, interval_start_utc, interval_end_utc, energy_consumed_kwh,
                energy_generated_kwh, energy_net_kwh, final, region) VALUES (?, ?, ?, ?, ?, 0, ?, true, 'r')""",
        [(i + 2, m, s, e, v, v) for i, (m, s, e, v) in enumerate(rows)],
    )
    con.execute("BEGIN")
    loaded = _load_readings(con, STAGE, job, received, received)
    con.execute("COMMIT")
    return loaded


@pytest.mark.parametrize("seed", [1, 2])
def test_load_keeps_the_latest_received_per_key_and_every_displaced_row(blank_warehouse, seed):
    rng = random.Random(seed)
    current: dict[tuple, tuple] = {}  # key -> (job, received, value)
    superseded: set[tuple] = set()  # (job, meter, start, value, superseded_by)
    with blank_warehouse.connect() as con:
        for n in range(25):
            job, received = f"job-{n}", DAY + dt.timedelta(hours=rng.randrange(0, 100))
            rows = random_upload(rng)
            expected_loaded = 0
            for meter, start, _, value in rows:
                held = current.get((meter, start))
                if held is None or held[1] <= received:
                    if held:
                        superseded.add((held[0], meter, start, held[2], job))
                    current[(meter, start)] = (job, received, value)
                    expected_loaded += 1
                else:  # processed after a later-received upload of the same key
                    superseded.add((job, meter, start, value, held[0]))
            assert load(con, rows, job, received) == expected_loaded
        stored = con.execute(
            "SELECT meter_id, interval_start_utc, job_id, received_at, energy_net_kwh FROM interval_readings"
        ).fetchall()
        kept = con.execute(
            """SELECT job_id, meter_id, interval_start_utc, energy_net_kwh, superseded_by_job_id
               FROM interval_readings_superseded"""
        ).fetchall()
    assert len(stored) == len(current)
    assert {(m, s.astimezone(dt.UTC)): (j, r.astimezone(dt.UTC), v) for m, s, j, r, v in stored} == current
    assert len(kept) == len(superseded)
    assert {(j, m, s.astimezone(dt.UTC), v, by) for j, m, s, v, by in kept} == superseded
    assert superseded, "the random uploads must overlap, or this test proves nothing"

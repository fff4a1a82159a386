"""Synthetic uploads and homes for bench/scale_curves.py: partner files, a landing store and a warehouse with
the configuration loaded, and the leftovers of many processed uploads.

The benchmark meters and their configuration come from bench/intake_benchmark.py (`bench_meter_ids`,
`write_configuration`: the demo configuration plus N meters of sunrise-energy).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from intake_benchmark import bench_meter_ids, write_configuration

PARTNER = "sunrise-energy"  # the partner write_configuration gives the benchmark meters to
INBOX = f"{PARTNER}/interval-data/"
FIRST_DAY = dt.date(2024, 1, 1)  # day 0 of write_day_file


def write_day_file(con: duckdb.DuckDBPyConnection, path: Path, meter_ids: list[str], day: int) -> None:
    """One day (FIRST_DAY + day) of 15-minute readings of the meters, meter by meter. Values carry noise per
    reading, so the warehouse compresses them as it would real data rather than a repeating pattern."""
    con.execute("CREATE OR REPLACE TEMP TABLE m AS SELECT unnest(?::VARCHAR[]) AS id", [meter_ids]).fetchall()
    con.execute(
        f"""COPY (
              SELECT id AS meter_uuid, strftime(t, '%Y-%m-%dT%H:%M:%SZ') AS interval_start_time_utc,
                     strftime(t + INTERVAL 15 MINUTE, '%Y-%m-%dT%H:%M:%SZ') AS interval_end_time_utc,
                     printf('%.3f', c - g) AS energy_net_kwh, printf('%.3f', c) AS energy_consumed_kwh,
                     printf('%.3f', g) AS energy_generated_kwh, 'true' AS final, 'CA' AS region
              FROM (SELECT id, t, (hash(id, t) % 2000) / 1000.0 + 0.1 AS c, (hash(t, id) % 300) / 1000.0 AS g
                    FROM m, (SELECT TIMESTAMPTZ '{FIRST_DAY} 00:00:00+00' + to_days({int(day)})
                                    + to_minutes(15 * i) AS t FROM range(96) r(i))
                    ORDER BY id, t)
            ) TO '{path}' (HEADER, DELIMITER ',', QUOTE '')"""
    ).fetchall()


def new_home(folder: Path, meters: int):
    """A landing store with the partner's inbox and a warehouse with the demo configuration plus `meters`
    benchmark meters loaded; returns (store, warehouse, the benchmark meters' ids)."""
    from leap_orchestration.config.loader import load_configuration
    from leap_orchestration.stores import LocalLandingStore
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import replace_configuration

    write_configuration(folder / "config", meters)
    wh = Warehouse(folder / "warehouse.duckdb")
    with wh.connect() as con:
        replace_configuration(con, load_configuration(folder / "config"))
    store = LocalLandingStore(folder / "landing")
    store.path(INBOX).mkdir(parents=True)
    return store, wh, bench_meter_ids(meters)


def write_processed(home: Path, count: int) -> None:
    """`count` uploads as intake leaves them (accepted/<name>/<name>, its feedback, status/<name>.json) and
    their `uploads` rows. Contents are tiny: a listing sees names, not bytes."""
    from leap_orchestration.warehouse import Warehouse

    inbox = home / "landing" / INBOX
    (inbox / "status").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"processed-{i:06d}.csv"
        folder = inbox / "accepted" / name
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"x\n")
        (folder / f"job-{i:06d}.feedback").write_bytes(b"x\n")
        (inbox / "status" / f"{name}.json").write_bytes(b"{}")
    with Warehouse(home / "warehouse.duckdb").connect() as con:
        con.execute(
            """INSERT INTO uploads (upload_id, tenant, file_name, source_key, version, job_id, status,
                                    rows_total, rows_loaded, error_count, received_at, processed_at)
               SELECT ? || '/' || name || '@2-0', ?, name, ? || name, '2-0', md5(name)::UUID::VARCHAR,
                      'COMPLETED', 384, 384, 0, now(), now()
               FROM (SELECT printf('processed-%06d.csv', i) AS name FROM range(?) t(i))""",
            [PARTNER, PARTNER, INBOX, count],
        ).fetchall()


def add_partner_meters(con: duckdb.DuckDBPyConnection, count: int) -> list[str]:
    """`count` meters of the partner (the benchmark ids) added to a warehouse built by
    bench/baseline_benchmark.py's `build` (whose meters have no owner). They are enrolled in no program, so
    their uploads leave the event's figures as they are. Idempotent."""
    meter_ids = bench_meter_ids(count)
    con.execute(
        """INSERT INTO meters (meter_id, partner_id, timezone, source, region)
           SELECT id, ?, 'America/Los_Angeles', 'partner', 'CA' FROM unnest(?::VARCHAR[]) t(id)
           ON CONFLICT DO NOTHING""",
        [PARTNER, meter_ids],
    ).fetchall()
    con.execute(
        """INSERT INTO meter_ownership SELECT id, ?, '2024-01-01', NULL FROM unnest(?::VARCHAR[]) t(id)
           WHERE NOT EXISTS (SELECT 1 FROM meter_ownership o WHERE o.meter_id = t.id)""",
        [PARTNER, meter_ids],
    ).fetchall()
    return meter_ids

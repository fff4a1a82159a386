"""Objects per second when the landing-zone connector publishes standardized meter-hours to GCS (the emulator).

    .venv/bin/python bench/standardized_publish.py [--objects 2000] [--workers 1 8 16 32 64] [--latency-ms 0]

Starts fake-gcs-server (the test fixture's binary, in-memory backend) on 127.0.0.1 and measures, against it:
- serial: one `blob.upload_from_string` after another (how a naive loop publishes); the reference;
- put_many: `GcsBuckets.put_many` (transfer manager, thread pool, widened connection pool) at each worker count;
- publish: `publish_standardized` end to end (the change query on DuckDB, rendering, writing, bookkeeping) for a
  warehouse holding that many changed meter-hours, at the default worker count.
With --latency-ms, requests go through a forwarding proxy that waits that long first: the regime of a remote
GCS, where a request's round trip (not CPU) is the limit.
Every measurement writes the same number of objects into a fresh bucket: the emulator's in-memory backend slows
down as a bucket grows (about 740 objects/s for the first thousand, 280 for the fourth, serially), which real GCS
does not. The emulator runs on the same machine, so it competes with the client for the same cores.
--objects is a multiple of 4: one object per meter-hour of participant_1's 4 demo meters. The emulator, the
proxy and the scratch folder are gone at the end. tests/test_bench.py runs a tiny size
(`--objects 40 --workers 1 4 --latency-ms 1`) so that the script keeps working; its figures mean nothing then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from gcs_proxy import ForwardingProxy  # noqa: E402
from gcs_support import client_for, fake_gcs_server  # noqa: E402

from leap_orchestration.config.demo_config import demo_meters, write_demo_configuration  # noqa: E402
from leap_orchestration.config.loader import load_configuration  # noqa: E402
from leap_orchestration.standardized.meter_data import MeterHour, object_key, render  # noqa: E402
from leap_orchestration.standardized.publish import publish_standardized  # noqa: E402
from leap_orchestration.stores.buckets import GcsBuckets  # noqa: E402
from leap_orchestration.warehouse import Warehouse  # noqa: E402
from leap_orchestration.warehouse.config_tables import replace_configuration  # noqa: E402
from leap_orchestration.warehouse.duck import run  # noqa: E402

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PARTICIPANT = "participant_1"


def documents(n: int) -> list[tuple[str, bytes]]:
    now = dt.datetime.now(dt.UTC)
    return [
        (
            object_key("bench", 1 + i % 4, START + dt.timedelta(hours=i // 4)),
            render(
                MeterHour(
                    f"meters/m{i % 4}.xml", 1 + i % 4, START + dt.timedelta(hours=i // 4), 1.5, 2.0, 0.5, True
                ),
                "bench",
                now,
            ),
        )
        for i in range(n)
    ]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} objects/s ({seconds:.2f} s for {n:,})"


def warehouse_with_changed_hours(folder: Path, hours: int) -> tuple[Warehouse, list]:
    """Demo configuration; `hours` complete meter-hours over participant_1's 4 meters, from one connector upload."""
    config = load_configuration(write_demo_configuration(folder / "config"))
    wh = Warehouse(folder / "warehouse.duckdb")
    meters = participant_meters()
    with wh.connect() as con:
        replace_configuration(con, config)
        run(
            con,
            """INSERT INTO uploads (upload_id, tenant, file_name, source_key, version, job_id, status, connector_id)
                    VALUES ('u', 'participant_1', 'f.csv', 'ext_conn1/f.csv', '1', 'job-1', 'COMPLETED', 'ext_conn1')""",
        )
        run(
            con,
            """INSERT INTO interval_readings
                    SELECT meter_id, ts, ts + INTERVAL 15 MINUTE, 0.5, 0.5, 0.0, true, 'NY', 'job-1', now(), now()
                    FROM unnest(?::VARCHAR[]) AS t(meter_id),
                         generate_series(?::TIMESTAMPTZ, ?::TIMESTAMPTZ - INTERVAL 15 MINUTE, INTERVAL 15 MINUTE) AS s(ts)""",
            [meters, START, START + dt.timedelta(hours=hours // len(meters))],
        )
    return wh, list(config.properties.connectors)


def participant_meters() -> list[str]:
    return [m.meter_id for m in demo_meters() if m.owner == PARTICIPANT]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="add this round-trip time to every request (a proxy), as to a remote GCS",
    )
    args = parser.parse_args()
    per_hour = len(participant_meters())
    if args.objects < per_hour or args.objects % per_hour:
        # publish_standardized writes whole meter-hours of every meter: any other count could never match
        parser.error(f"--objects must be a positive multiple of {per_hour} ({PARTICIPANT}'s meters)")
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"added latency {args.latency_ms:g} ms"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_gcs_server(Path(tmp) / "log") as emulator,
        ForwardingProxy(emulator, delay=args.latency_ms / 1000).running() as proxied,
    ):
        endpoint = proxied if args.latency_ms else emulator
        client = client_for(endpoint)
        docs = documents(args.objects)
        t = time.perf_counter()
        documents(args.objects)
        print(f"render only:        {rate(args.objects, time.perf_counter() - t)}")

        bucket = client.create_bucket(f"serial-{uuid.uuid4().hex[:8]}")
        t = time.perf_counter()
        for key, data in docs:
            bucket.blob(key).upload_from_string(data, content_type="application/xml")
        serial = args.objects / (time.perf_counter() - t)
        print(f"serial:             {rate(args.objects, args.objects / serial)}  (reference)")

        for workers in args.workers:
            store = GcsBuckets(client_for(endpoint), max_workers=workers)
            name = client.create_bucket(f"many-{workers}-{uuid.uuid4().hex[:8]}").name
            t, cpu = time.perf_counter(), time.process_time()
            results = store.put_many(name, docs)
            seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
            assert all(r is None for r in results), [r for r in results if r is not None][:3]
            print(
                f"put_many {workers:>3} workers: {rate(args.objects, seconds)}  = {args.objects / seconds / serial:.1f}x serial;"
                f" client CPU {cpu / args.objects * 1000:.2f} ms/object"
            )

        client.create_bucket(PARTICIPANT)
        wh, connectors = warehouse_with_changed_hours(Path(tmp), args.objects)
        t = time.perf_counter()
        report = publish_standardized(wh, GcsBuckets(client_for(endpoint)), connectors)
        seconds = time.perf_counter() - t
        assert report.published == args.objects and report.failed == 0, report
        print(
            f"publish end to end: {rate(report.published, seconds)}  = {report.published / seconds / serial:.1f}x serial"
        )
        t = time.perf_counter()
        again = publish_standardized(wh, GcsBuckets(client_for(endpoint)), connectors)
        print(f"re-run, nothing changed: {again.published} objects in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()

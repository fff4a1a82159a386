"""Only `.csv`/`.csv.gz` objects directly under a connector's prefix are uploads. Anything else (the guide's own
example, `ext_conn1/readme.txt`, put there for the connector to download) stays where it is, gets no status
object, and is reported to operators once per version. SFTP partners' inboxes still take every name."""

import datetime as dt
import gzip
import json
import os
import time

import dagster as dg
import duckdb
from conftest import csv_text, good_row, partner_meter
from test_dagster import resources as local_resources
from test_landing_zone import (
    METER_3,
    PARTICIPANT,
    PREFIX,
    drop_connector_file,
    ensure_bucket,
    gcs_resources,
    quarter_rows,
    run_connector_job,
)

README = b"Upload .csv files under ext_conn1/; results appear under ext_conn1/status/.\n"


def schedule_tick(resources, hour: int):
    from sensors.landing_zone import landing_zone_schedule

    with dg.build_schedule_context(
        resources=resources, scheduled_execution_time=dt.datetime(2026, 11, 21, hour, tzinfo=dt.UTC)
    ) as ctx:
        return landing_zone_schedule(ctx)


def ignored_rows(home):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT object_key, tenant, size_bytes FROM landing_zone_ignored ORDER BY object_key, reported_at"
        ).fetchall()


def named_uploads(requests):
    return sorted(
        e.split("|")[0]
        for r in requests
        for e in r.run_config["ops"]["interval_intake"]["config"].get("connector_uploads", [])
    )


def ignored_tag(request) -> list[str]:
    return (
        sorted(request.tags["leap/ignored_objects"].split(", "))
        if "leap/ignored_objects" in request.tags
        else []
    )


def warnings_in(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if "is not an upload" in line]


def test_local_zone_takes_csv_in_any_case_and_reports_other_objects_once(leap_home, capfd):
    inbox = leap_home / "buckets/landing_zone/ext_conn1"
    rows = quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1])
    drop_connector_file(leap_home, "upper.CSV", rows)
    (inbox / "mixed.Csv.GZ").write_bytes(
        gzip.compress(csv_text(*quarter_rows(METER_3.meter_id, "2021-11-08T15", [2, 2, 2, 2])))
    )
    (inbox / "readme.txt").write_bytes(README)
    (inbox / "data.csv.zip").write_bytes(b"PK")
    (inbox / ".upload.csv.part").write_bytes(b"partial")  # a temporary name: neither taken nor reported
    for path in inbox.iterdir():
        os.utime(path, (time.time() - 30,) * 2)
    resources = local_resources(leap_home)
    schedule = {k: resources[k] for k in ("landing_zone", "warehouse")}

    capfd.readouterr()
    first = schedule_tick(schedule, 10)
    assert named_uploads(first) == ["ext_conn1/mixed.Csv.GZ", "ext_conn1/upper.CSV"]
    assert ignored_tag(first[0]) == ["ext_conn1/data.csv.zip", "ext_conn1/readme.txt"]
    assert len(warnings_in(capfd)) == 2  # a WARNING each in the tick's log
    assert [r[:2] for r in ignored_rows(leap_home)] == [
        ("ext_conn1/data.csv.zip", PARTICIPANT),
        ("ext_conn1/readme.txt", PARTICIPANT),
    ]
    # the next hour: nothing new to report (the same versions), no tag, no new row
    second = schedule_tick(schedule, 11)
    assert all(ignored_tag(r) == [] for r in second) and warnings_in(capfd) == []
    assert len(ignored_rows(leap_home)) == 2

    # the run the schedule requested: the uploads go through, the other objects stay as they were
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from assets.landing_zone import standardized_meter_hours

    for request in first:
        assert dg.materialize(
            [meter_configuration, interval_intake, standardized_meter_hours],
            resources=resources,
            run_config=request.run_config,
            selection=request.asset_selection,
        ).success
    assert json.loads((inbox / "status/upper.CSV.json").read_text())["status"] == "COMPLETED"
    assert json.loads((inbox / "status/mixed.Csv.GZ.json").read_text())["status"] == "COMPLETED"
    # the catch-up path (a run launched without config, as `dagster job execute` does) leaves them alone too
    assert run_connector_job(leap_home).success
    assert (inbox / "readme.txt").read_bytes() == README and (inbox / "data.csv.zip").exists()
    assert sorted(p.name for p in (inbox / "status").iterdir()) == ["mixed.Csv.GZ.json", "upper.CSV.json"]
    assert not (inbox / "failed").exists()

    # a new version of the same name is a new object: reported again, once
    (inbox / "readme.txt").write_bytes(README + b"Updated.\n")
    third = schedule_tick(schedule, 12)
    assert ignored_tag(third[0]) == ["ext_conn1/readme.txt"]
    assert [r[0] for r in ignored_rows(leap_home)] == [
        "ext_conn1/data.csv.zip",
        "ext_conn1/readme.txt",
        "ext_conn1/readme.txt",
    ]
    assert ignored_tag(schedule_tick(schedule, 13)[0]) == []


def test_busy_warehouse_postpones_the_report_instead_of_repeating_it(leap_home):
    """While another process holds the warehouse, nothing is recorded and nothing reported; the next tick does."""
    import subprocess
    import sys

    from leap_orchestration.intake import zone_state

    (leap_home / "buckets/landing_zone/ext_conn1").mkdir(parents=True)
    (leap_home / "buckets/landing_zone/ext_conn1/readme.txt").write_bytes(README)
    resources = local_resources(leap_home)
    schedule = {k: resources[k] for k in ("landing_zone", "warehouse")}
    assert dg.materialize(
        [__import__("assets.configuration").configuration.meter_configuration], resources=resources
    ).success
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()",
            str(leap_home / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        wh = resources["warehouse"].warehouse()
        assert zone_state.record_ignored(wh, [], wait_seconds=0) == []
        from leap_orchestration.intake.discovery import scan_inboxes

        others = scan_inboxes(resources["landing_zone"].store())[1]
        assert zone_state.record_ignored(wh, others, wait_seconds=0) is None
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    (request,) = schedule_tick(schedule, 10)
    assert request.tags["leap/ignored_objects"] == "ext_conn1/readme.txt"


def test_sftp_partner_inbox_still_takes_every_name(leap_home, warehouse):
    """A partner who uploads a wrong name hears of it: FIL_0005 in the results, as before."""
    from sftp_support import process_pending

    from leap_orchestration.stores import LocalLandingStore

    store = LocalLandingStore(leap_home / "landing")
    partner = "gridflex"
    store.write_bytes(
        f"{partner}/interval-data/readings.txt", csv_text(good_row(partner_meter(partner).meter_id))
    )
    (outcome,) = process_pending(store, warehouse)
    assert (outcome.upload.obj.name, outcome.status) == ("readings.txt", "FAILED")
    errors = store.read_bytes(
        f"{partner}/interval-data/failed/readings.txt/{outcome.upload.job_id}.errors.csv"
    ).decode()
    assert "FIL_0005" in errors


def test_gcs_zone_leaves_the_readme_for_the_connector_to_download(
    leap_home, gcs_endpoint, gcs_client, landing_bucket, monkeypatch
):
    """The guide's example on GCS: support puts readme.txt under the prefix, the connector reads it by name
    (create + read only, through the proxy) before and after the hourly run."""
    from gcs_proxy import ConnectorProxy
    from gcs_support import client_for

    from leap_orchestration.resources import WarehouseResource

    ensure_bucket(gcs_client, PARTICIPANT)
    bucket = gcs_client.bucket(landing_bucket)
    bucket.blob(PREFIX + "readme.txt").upload_from_string(README)  # the operator (full rights) puts it there
    rows = quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1])
    resources = {
        **gcs_resources(leap_home, gcs_endpoint, landing_bucket, monkeypatch),
        "warehouse": WarehouseResource(path=str(leap_home / "warehouse.duckdb")),
    }
    proxy = ConnectorProxy(gcs_endpoint, landing_bucket, PREFIX)
    with proxy.running() as proxied:
        inbox = client_for(proxied).bucket(landing_bucket)
        inbox.blob(PREFIX + "readings.CSV").upload_from_string(csv_text(*rows), if_generation_match=0)
        (request,) = schedule_tick({k: resources[k] for k in ("landing_zone", "warehouse")}, 10)
        assert named_uploads([request]) == ["ext_conn1/readings.CSV"]
        assert request.tags["leap/ignored_objects"] == "ext_conn1/readme.txt"
        assert (
            ignored_tag(schedule_tick({k: resources[k] for k in ("landing_zone", "warehouse")}, 11)[0]) == []
        )
        assert run_connector_job(
            leap_home, **gcs_resources(leap_home, gcs_endpoint, landing_bucket, monkeypatch)
        ).success
        assert (
            json.loads(inbox.blob(PREFIX + "status/readings.CSV.json").download_as_bytes())["status"]
            == "COMPLETED"
        )
        assert inbox.blob(PREFIX + "readme.txt").download_as_bytes() == README  # still there, unchanged
        assert proxy.refusals() == []
    names = sorted(b.name for b in gcs_client.list_blobs(landing_bucket))
    assert not [n for n in names if "readme" in n and n != PREFIX + "readme.txt"]  # no status, not moved
    generation = str(bucket.get_blob(PREFIX + "readme.txt").generation)
    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT object_key, version FROM landing_zone_ignored").fetchall() == [
            (PREFIX + "readme.txt", generation)
        ]


def test_a_name_the_store_refuses_never_blocks_the_hourly_run(leap_home):
    """`ext_conn1/bad\\name.csv` is a valid GCS name but not a key the store takes: listing it used to raise
    `unsafe store key` and stop the schedule for every connector until an operator deleted it."""
    drop_connector_file(
        leap_home, "bad\\name.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1])
    )
    drop_connector_file(leap_home, "good.csv", quarter_rows(METER_3.meter_id, "2021-11-08T15", [1, 1, 1, 1]))
    time.sleep(0.25)
    resources = {k: v for k, v in local_resources(leap_home).items() if k in ("landing_zone", "warehouse")}
    requests = schedule_tick(resources, 10)
    assert named_uploads(requests) == [f"{PREFIX}good.csv"]
    assert ignored_tag(requests[0]) == [f"{PREFIX}bad\\name.csv"]

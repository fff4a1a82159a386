"""The hourly landing-zone connector: GCS connectors' files through intake, then standardized meter-hours."""

import datetime as dt
import json
import time
import uuid

import dagster as dg
import pytest
from conftest import csv_text
from test_dagster import resources as local_resources

from leap_orchestration.config.demo_config import demo_meters
from leap_orchestration.standardized import meter_data
from leap_orchestration.standardized.publish import publish_standardized
from leap_orchestration.stores.buckets import LocalBuckets

PARTICIPANT, CONNECTOR, PREFIX = "participant_1", "ext_conn1", "ext_conn1/"
METER_3 = next(m for m in demo_meters() if m.meter_number == 3)
assert METER_3.owner == PARTICIPANT
HOUR_KEY = "ext_conn1/standardized/3/2021-11-08T14:00:00"


def quarter_rows(
    meter_id: str, hour: str, consumed: list[float], start_quarter: int = 0, final: str = "true"
) -> list[str]:
    """15-minute rows of one UTC hour ('2021-11-08T14'), from quarter `start_quarter` on."""
    base = dt.datetime.fromisoformat(hour + ":00:00+00:00")
    rows = []
    for i, value in enumerate(consumed, start=start_quarter):
        start, end = base + dt.timedelta(minutes=15 * i), base + dt.timedelta(minutes=15 * (i + 1))
        rows.append(
            ",".join(
                [
                    meter_id,
                    start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "",
                    str(value),
                    "0.5",
                    final,
                    "NY",
                ]
            )
        )
    return rows


def drop_connector_file(home, name, rows):
    path = home / "buckets" / "landing_zone" / PREFIX / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_text(*rows))
    return path


def run_connector_job(home, **resource_overrides):
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from assets.landing_zone import standardized_meter_hours

    time.sleep(0.25)  # LEAP_SETTLE_SECONDS is 0.2 s in tests
    result = dg.materialize(
        [meter_configuration, interval_intake, standardized_meter_hours],
        resources={**local_resources(home), **resource_overrides},
        run_config=dg.RunConfig(ops={"interval_intake": {"config": {"sources": ["connectors"]}}}),
        raise_on_error=False,
    )
    return result


def published_metadata(result):
    (mat,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "standardized_meter_hours"
    ]
    return {k: v.value for k, v in mat.materialization.metadata.items()}


# --- the document ------------------------------------------------------------------------------------------


def test_meter_data_document_validates_and_round_trips():
    hour = meter_data.MeterHour(
        "meters/utility_meter_003.xml",
        3,
        dt.datetime(2021, 11, 8, 14, tzinfo=dt.UTC),
        usage_kwh=0.1 + 0.2,
        consumed_kwh=2.3,
        generated_kwh=None,
        final=False,
        revision=2,
    )
    doc = meter_data.render(hour, "creator <&> test", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    fields = meter_data.parse(doc)
    assert fields == {
        "meterURI": "meters/utility_meter_003.xml",
        "meterNumber": "3",
        "startTime": "2021-11-08T14:00:00Z",
        "endTime": "2021-11-08T15:00:00Z",
        "usage": "0.3",
        "consumed": "2.3",
        "final": "false",
        "creator": "creator <&> test",
        "creationDate": "2026-01-02T03:04:05Z",
        "revision": "2",
    }
    assert b"<bm:meterData" in doc and b'unit="kWh"' in doc
    assert (
        meter_data.object_key("c", 3, dt.datetime(2021, 11, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5))))
        == "c/standardized/3/2021-11-08T14:00:00"
    )
    with pytest.raises(ValueError, match="not a valid bm:meterData"):
        meter_data.parse(doc.replace(b"<bm:usage", b"<bm:usageX").replace(b"</bm:usage>", b"</bm:usageX>"))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0000001, "0"),
        (1e-5, "0.00001"),
        (12.5, "12.5"),
        (0.1 + 0.2, "0.3"),
        (-3.25, "-3.25"),
        (1234567.0, "1234567"),
    ],
)
def test_kwh_is_fixed_point(value, text):
    hour = meter_data.MeterHour("m", 1, dt.datetime(2021, 1, 1, tzinfo=dt.UTC), value, None, None, True)
    assert meter_data.parse(meter_data.render(hour, "c", dt.datetime.now(dt.UTC)))["usage"] == text


# --- the job on the local stand-in (a folder per bucket) -----------------------------------------------------


def test_connector_job_publishes_complete_hours_and_republishes_what_changes(leap_home):
    meter = METER_3.meter_id
    drop_connector_file(
        leap_home,
        "first.csv",
        quarter_rows(meter, "2021-11-08T14", [1.0, 2.0, 3.0, 4.0])
        + quarter_rows(meter, "2021-11-08T15", [1.0, 1.0]),
    )  # 15:00 is half an hour: not published
    first = run_connector_job(leap_home)
    assert first.success
    buckets = LocalBuckets(leap_home / "buckets")
    doc = meter_data.parse(buckets.get(PARTICIPANT, HOUR_KEY))
    # net = consumed - generated (0.5 per quarter)
    assert (doc["usage"], doc["consumed"], doc["generated"], doc["revision"]) == ("8", "10", "2", "1")
    assert doc["meterURI"] == f"meters/{METER_3.file_name}" and doc["startTime"] == "2021-11-08T14:00:00Z"
    assert buckets.get(PARTICIPANT, "ext_conn1/standardized/3/2021-11-08T15:00:00") is None
    assert published_metadata(first)["published_this_run"] == 1
    status = json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/first.csv.json").read_text())
    assert status["status"] == "COMPLETED" and status["rows"] == 6

    # a later upload completes 15:00 and corrects one reading of 14:00: both hours go out, 14:00 as revision 2
    drop_connector_file(
        leap_home,
        "second.csv",
        quarter_rows(meter, "2021-11-08T14", [2.5], start_quarter=1)
        + quarter_rows(meter, "2021-11-08T15", [1.0, 1.0], start_quarter=2),
    )
    second = run_connector_job(leap_home)
    assert second.success and published_metadata(second)["published_this_run"] == 2
    assert published_metadata(second)["republished_this_run"] == 1
    doc = meter_data.parse(buckets.get(PARTICIPANT, HOUR_KEY))
    assert (doc["usage"], doc["revision"]) == ("8.5", "2")
    assert (
        meter_data.parse(buckets.get(PARTICIPANT, "ext_conn1/standardized/3/2021-11-08T15:00:00"))["usage"]
        == "2"
    )

    # an upload that repeats the same values changes nothing: nothing is rewritten
    drop_connector_file(leap_home, "same.csv", quarter_rows(meter, "2021-11-08T15", [1.0, 1.0]))
    third = run_connector_job(leap_home)
    assert third.success and published_metadata(third)["published_this_run"] == 0
    assert published_metadata(third)["uploads_standardized"] == 1


def test_failed_upload_publishes_nothing_and_is_reported_by_name(leap_home):
    meter = METER_3.meter_id
    drop_connector_file(leap_home, "bad.csv", quarter_rows(meter, "2021-11-08T14", [1.0, -2.0, 3.0, 4.0]))
    result = run_connector_job(leap_home)
    assert result.success and published_metadata(result)["published_this_run"] == 0
    status = json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/bad.csv.json").read_text())
    assert status["status"] == "FAILED" and status["errors"] == 1
    assert (leap_home / "buckets/landing_zone/ext_conn1/failed/bad.csv/bad.csv").exists()


def test_a_crash_while_publishing_is_recovered_by_the_next_run(leap_home):
    """Objects that could not be written fail the run; the next run writes exactly those, and no job is lost."""
    from leap_orchestration.resources import LocalBucketsResource

    class FlakyBuckets(LocalBuckets):
        fail_keys: set = set()

        def put_many(self, bucket, objects):
            written = super().put_many(bucket, [o for o in objects if o[0] not in self.fail_keys])
            results = iter(written)
            return [OSError("injected") if key in self.fail_keys else next(results) for key, _ in objects]

    class FlakyResource(LocalBucketsResource):
        def buckets(self):
            return FlakyBuckets(self.root)

    meter = METER_3.meter_id
    drop_connector_file(
        leap_home,
        "day.csv",
        quarter_rows(meter, "2021-11-08T14", [1, 1, 1, 1])
        + quarter_rows(meter, "2021-11-08T15", [2, 2, 2, 2]),
    )
    FlakyBuckets.fail_keys = {"ext_conn1/standardized/3/2021-11-08T15:00:00"}
    flaky = FlakyResource(root=str(leap_home / "buckets"))
    assert not run_connector_job(leap_home, participant_buckets=flaky).success
    buckets = LocalBuckets(leap_home / "buckets")
    assert buckets.get(PARTICIPANT, HOUR_KEY) is not None
    FlakyBuckets.fail_keys = set()
    again = run_connector_job(leap_home, participant_buckets=flaky)
    assert again.success
    meta = published_metadata(again)
    assert (meta["published_this_run"], meta["uploads_standardized"]) == (1, 1)  # only the missing hour
    assert (
        meter_data.parse(buckets.get(PARTICIPANT, "ext_conn1/standardized/3/2021-11-08T15:00:00"))["usage"]
        == "6"
    )


def test_hours_are_utc_across_a_daylight_saving_change(warehouse, leap_home):
    """2021-11-07 06:00 UTC is 01:00 EST, the repeated local hour: objects are named by UTC, one per hour."""
    from leap_orchestration.intake.process import Upload, process_upload
    from leap_orchestration.stores import LocalLandingStore

    store = LocalLandingStore(leap_home / "zone", inboxes=[(PARTICIPANT, PREFIX)])
    rows = quarter_rows(METER_3.meter_id, "2021-11-07T05", [1, 1, 1, 1]) + quarter_rows(
        METER_3.meter_id, "2021-11-07T06", [2, 2, 2, 2]
    )
    store.write_bytes(PREFIX + "dst.csv", csv_text(*rows))
    (obj,) = store.list_files(PREFIX)
    assert process_upload(store, warehouse, Upload(PARTICIPANT, PREFIX, obj, CONNECTOR)).status == "COMPLETED"
    buckets = LocalBuckets(leap_home / "out")
    from leap_orchestration.config.loader import load_configuration

    report = publish_standardized(
        warehouse, buckets, list(load_configuration(leap_home / "config").properties.connectors)
    )
    assert report.published == 2
    assert (
        meter_data.parse(buckets.get(PARTICIPANT, "ext_conn1/standardized/3/2021-11-07T05:00:00"))["usage"]
        == "2"
    )
    assert (
        meter_data.parse(buckets.get(PARTICIPANT, "ext_conn1/standardized/3/2021-11-07T06:00:00"))["usage"]
        == "6"
    )


# --- the hourly schedule ------------------------------------------------------------------------------------


def schedule_resources(home):
    """What the schedule is given: the landing zone (local stand-in) and the warehouse."""
    return {k: v for k, v in local_resources(home).items() if k in ("landing_zone", "warehouse")}


def test_schedule_lists_the_landing_zone_and_keys_runs_by_generation(leap_home):
    from sensors.landing_zone import MAX_UPLOADS_PER_RUN, landing_zone_schedule

    tick = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)
    # no instance: the schedule needs none (and an instance_for_test leaves Dagster's context state behind)
    ctx = dg.build_schedule_context(resources=schedule_resources(leap_home), scheduled_execution_time=tick)
    (idle,) = landing_zone_schedule(ctx)  # nothing new: one run that only publishes
    assert idle.run_key == "landing-zone-20261121T10-publish"
    # ... without touching intake (no uploads run, no interval_readings materialization, no settlement)
    assert idle.asset_selection == [dg.AssetKey("standardized_meter_hours")] and not idle.run_config
    assert idle.asset_check_keys == [dg.AssetCheckKey(dg.AssetKey("uploads"), "partner_health")]  # hourly

    for i in range(MAX_UPLOADS_PER_RUN + 1):
        drop_connector_file(leap_home, f"f{i:03d}.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1]))
    time.sleep(0.25)
    requests = landing_zone_schedule(ctx)
    assert [len(r.run_config["ops"]["interval_intake"]["config"]["connector_uploads"]) for r in requests] == [
        MAX_UPLOADS_PER_RUN,
        1,
    ]
    again = landing_zone_schedule(ctx)  # the same tick evaluated twice: the same run keys
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    status = json.loads((leap_home / "buckets/landing_zone/ext_conn1/status/f000.csv.json").read_text())
    assert status["status"] == "QUEUED"


def test_job_launched_from_the_schedule_config_takes_exactly_the_named_files(leap_home):
    from sensors.landing_zone import landing_zone_schedule

    drop_connector_file(leap_home, "named.csv", quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 1, 1, 1]))
    time.sleep(0.25)
    ctx = dg.build_schedule_context(
        resources=schedule_resources(leap_home),
        scheduled_execution_time=dt.datetime(2026, 11, 21, 11, tzinfo=dt.UTC),
    )
    (request,) = landing_zone_schedule(ctx)
    drop_connector_file(leap_home, "later.csv", quarter_rows(METER_3.meter_id, "2021-11-08T15", [1, 1, 1, 1]))
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from assets.landing_zone import standardized_meter_hours

    result = dg.materialize(
        [meter_configuration, interval_intake, standardized_meter_hours],
        resources=local_resources(leap_home),
        run_config=request.run_config,
    )
    assert result.success
    inbox = leap_home / "buckets/landing_zone/ext_conn1"
    assert (inbox / "accepted/named.csv/named.csv").exists() and (inbox / "later.csv").exists()


def unique_name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}.csv"


# --- on GCS (fake-gcs-server, the real google-cloud-storage client) ---------------------------------------


def ensure_bucket(client, name):
    from google.api_core import exceptions as gexc

    try:
        client.create_bucket(name)
    except gexc.Conflict:
        pass
    return client.bucket(name)


def gcs_resources(home, endpoint, landing_bucket, monkeypatch):
    from dagster_gcp import GCSResource

    from leap_orchestration.resources import GcsBucketsResource, GcsLandingStoreResource

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    gcs = GCSResource(project="leap-test")
    return {
        "landing_zone": GcsLandingStoreResource(
            gcs=gcs, bucket=landing_bucket, config_path=str(home / "config")
        ),
        "participant_buckets": GcsBucketsResource(gcs=gcs, max_workers=8),
    }


def test_connector_upload_on_gcs_is_downloadable_by_path(
    leap_home, gcs_endpoint, gcs_client, landing_bucket, monkeypatch
):
    """The guide's flow on GCS: a connector creates an object, the job runs, a participant fetches an hour by name."""
    ensure_bucket(gcs_client, PARTICIPANT)
    name = unique_name("readings")
    rows = quarter_rows(METER_3.meter_id, "2021-11-08T14", [1.25, 1.25, 1.25, 1.25])
    gcs_client.bucket(landing_bucket).blob(PREFIX + name).upload_from_string(
        csv_text(*rows), if_generation_match=0
    )
    result = run_connector_job(
        leap_home, **gcs_resources(leap_home, gcs_endpoint, landing_bucket, monkeypatch)
    )
    assert result.success
    # the download API: GET /b/participant_1/o/ext_conn1/standardized/3/2021-11-08T14:00:00
    blob = gcs_client.bucket(PARTICIPANT).blob(HOUR_KEY)
    doc = meter_data.parse(blob.download_as_bytes())
    assert (doc["usage"], doc["startTime"], doc["endTime"]) == (
        "3",
        "2021-11-08T14:00:00Z",
        "2021-11-08T15:00:00Z",
    )
    blob.reload()
    assert blob.content_type == "application/xml"
    status = json.loads(
        gcs_client.bucket(landing_bucket).blob(f"{PREFIX}status/{name}.json").download_as_bytes()
    )
    assert status["status"] == "COMPLETED"


def test_connector_flow_needs_no_list_permission(
    leap_home, gcs_endpoint, gcs_client, landing_bucket, monkeypatch
):
    """Through a proxy that grants only what the guide's IAM binding grants: create and read under the prefix."""
    from gcs_proxy import ConnectorProxy
    from gcs_support import client_for
    from google.api_core import exceptions as gexc

    ensure_bucket(gcs_client, PARTICIPANT)
    proxy = ConnectorProxy(gcs_endpoint, landing_bucket, PREFIX)
    good, bad = unique_name("good"), unique_name("bad")
    with proxy.running() as proxied:
        connector = client_for(proxied)  # what the connector's service account can do
        inbox = connector.bucket(landing_bucket)
        inbox.blob(PREFIX + good).upload_from_string(
            csv_text(*quarter_rows(METER_3.meter_id, "2021-11-08T16", [1, 1, 1, 1])), if_generation_match=0
        )
        inbox.blob(PREFIX + bad).upload_from_string(
            csv_text(*quarter_rows(METER_3.meter_id, "2021-11-08T16", [1, -1])), if_generation_match=0
        )
        # the proxy is not a rubber stamp: listing, overwriting, deleting and other prefixes are refused
        with pytest.raises(gexc.Forbidden):
            list(connector.list_blobs(landing_bucket, prefix=PREFIX))
        with pytest.raises(gexc.Forbidden):
            inbox.blob(PREFIX + good).upload_from_string(b"overwrite")
        with pytest.raises(gexc.Forbidden):
            inbox.blob(PREFIX + good).delete()
        with pytest.raises(gexc.Forbidden):
            inbox.blob("other_conn/x.csv").upload_from_string(b"x", if_generation_match=0)
        with pytest.raises(gexc.Forbidden):
            connector.bucket(PARTICIPANT).blob(HOUR_KEY).download_as_bytes()
        refused = len(proxy.denied)
        reasons = "\n".join(proxy.denied)
        for reason in (
            "storage.objects.list",
            "an overwrite",
            "objects.delete/update",
            "objects.create (outside",
            "objects.get (outside",
        ):
            assert reason in reasons, reasons

        # the pipeline (full permissions, not through the proxy) runs the hourly job
        assert run_connector_job(
            leap_home, **gcs_resources(leap_home, gcs_endpoint, landing_bucket, monkeypatch)
        ).success

        # the connector learns every outcome from names it can derive, without a single list call
        good_status = json.loads(inbox.blob(f"{PREFIX}status/{good}.json").download_as_bytes())
        bad_status = json.loads(inbox.blob(f"{PREFIX}status/{bad}.json").download_as_bytes())
        assert (good_status["status"], bad_status["status"]) == ("COMPLETED", "FAILED")
        for key in good_status["result_keys"] + bad_status["result_keys"]:
            assert inbox.blob(key).download_as_bytes()
        errors = inbox.blob(f"{PREFIX}failed/{bad}/{bad_status['job_id']}.errors.csv").download_as_text()
        assert "CON_0003" in errors
        assert not inbox.blob(PREFIX + good).exists()  # moved on: a metadata read, not a list
        # (the client may also fetch bucket metadata after a 403, which is refused too and changes nothing)
        object_requests = [d for d in proxy.denied[refused:] if "/o" in d.split("?")[0]]
        assert object_requests == [], object_requests

"""Intake over the GCS landing store (fake-gcs-server and the real google-cloud-storage client)."""

import io
import json
import uuid

import pytest
from conftest import csv_text, good_row, partner_meter
from google.api_core import exceptions as gexc
from google.cloud import storage
from sftp_support import process_pending, sftp_server

from leap_orchestration.config.loader import load_configuration
from leap_orchestration.stores.gcs import GcsLandingStore

PARTICIPANT, PREFIX = "participant_1", "ext_conn1/"


@pytest.fixture
def store(gcs_client, landing_bucket, leap_home):
    inboxes = load_configuration(leap_home / "config").properties.connector_inboxes()
    assert inboxes == [(PARTICIPANT, PREFIX)]
    return GcsLandingStore(gcs_client, landing_bucket, inboxes)


def connector_upload(client, bucket, name, data):
    """What a connector does (`gsutil cp`): create an object under its prefix, never overwriting."""
    client.bucket(bucket).blob(PREFIX + name).upload_from_string(data, if_generation_match=0)


def test_connector_upload_is_processed_and_results_are_readable_by_name(
    store, warehouse, gcs_client, landing_bucket
):
    meter = partner_meter(PARTICIPANT).meter_id
    good, bad = f"readings-{uuid.uuid4().hex[:8]}.csv", f"readings-{uuid.uuid4().hex[:8]}.csv"
    connector_upload(gcs_client, landing_bucket, good, csv_text(good_row(meter, region="NY")))
    connector_upload(gcs_client, landing_bucket, bad, csv_text(good_row(meter, consumed="-1", region="NY")))
    with pytest.raises(gexc.PreconditionFailed):
        connector_upload(gcs_client, landing_bucket, good, b"overwrite")  # a connector can't overwrite
    outcomes = {o.upload.obj.name: o.status for o in process_pending(store, warehouse)}
    assert outcomes == {good: "COMPLETED", bad: "FAILED"}
    bucket = gcs_client.bucket(landing_bucket)
    status = json.loads(bucket.blob(f"{PREFIX}status/{bad}.json").download_as_bytes())
    assert status["status"] == "FAILED" and status["errors"] == 1
    errors = bucket.blob(f"{PREFIX}failed/{bad}/{status['job_id']}.errors.csv").download_as_bytes().decode()
    assert "CON_0003" in errors
    assert bucket.blob(f"{PREFIX}accepted/{good}/{good}").exists() and not bucket.blob(PREFIX + good).exists()
    with warehouse.connect(read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM interval_readings WHERE meter_id = ?", [meter]
        ).fetchall() == [(1,)]


def test_crash_between_copy_and_delete_leaves_one_copy_after_rerun(
    store, warehouse, gcs_client, landing_bucket, monkeypatch
):
    name = f"crash-{uuid.uuid4().hex[:8]}.csv"
    connector_upload(
        gcs_client, landing_bucket, name, csv_text(good_row(partner_meter(PARTICIPANT).meter_id, region="NY"))
    )
    real_delete = storage.Blob.delete

    def crash(self, *args, **kwargs):
        if self.name == PREFIX + name:
            raise SystemExit("killed between copy and delete")
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(storage.Blob, "delete", crash)
    with pytest.raises(SystemExit):
        process_pending(store, warehouse)
    bucket = gcs_client.bucket(landing_bucket)
    assert bucket.blob(PREFIX + name).exists() and bucket.blob(f"{PREFIX}accepted/{name}/{name}").exists()
    monkeypatch.setattr(storage.Blob, "delete", real_delete)
    (again,) = process_pending(store, warehouse)
    assert again.status == "COMPLETED"
    names = [b.name for b in gcs_client.list_blobs(landing_bucket) if b.name.endswith(name)]
    assert names == [f"{PREFIX}accepted/{name}/{name}"]
    with warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM uploads WHERE file_name = ?", [name]).fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM interval_readings").fetchall() == [(1,)]


def test_sftp_server_on_the_gcs_store(leap_home, gcs_client, landing_bucket, warehouse):
    """The SFTP server only speaks the store interface: the same partner session works over GCS."""
    partner = "gridflex"
    store = GcsLandingStore(gcs_client, landing_bucket, [(partner, f"{partner}/interval-data/")])
    with sftp_server(leap_home, store=store) as srv:
        client = srv.paramiko(partner, srv.key_for(partner))
        ftp = client.open_sftp()
        ftp.putfo(
            io.BytesIO(csv_text(good_row(partner_meter(partner).meter_id))), "interval-data/over-gcs.csv"
        )
        assert store.stat(f"{partner}/interval-data/over-gcs.csv").complete
        with pytest.raises(OSError):
            ftp.putfo(io.BytesIO(b"again"), "interval-data/over-gcs.csv")
        with pytest.raises(OSError):
            ftp.remove("interval-data/over-gcs.csv")
        assert [o.status for o in process_pending(store, warehouse)] == ["COMPLETED"]
        assert ftp.listdir("interval-data/accepted") == ["over-gcs.csv"]
        with ftp.open("interval-data/accepted/over-gcs.csv/over-gcs.csv") as fh:
            assert fh.read().startswith(b"meter_uuid,")
        client.close()


def test_gcs_resource_builds_the_store_through_dagster_gcp(
    gcs_endpoint, landing_bucket, leap_home, monkeypatch
):
    from dagster_gcp import GCSResource

    from leap_orchestration.resources import GcsLandingStoreResource

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    resource = GcsLandingStoreResource(
        gcs=GCSResource(project="leap-test"), bucket=landing_bucket, config_path=str(leap_home / "config")
    )
    store = resource.store()
    assert store.list_tenant_inboxes() == [(PARTICIPANT, PREFIX)]
    store.write_bytes(PREFIX + "probe.csv", b"x")
    assert [o.name for o in store.list_files(PREFIX)] == ["probe.csv"]

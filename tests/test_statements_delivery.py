"""Statements where partners look: through Dagster on the demo history, over SFTP with real clients (read-only,
no other partner's files), and in a participant's bucket through the GCS proxy that grants only its prefix."""

import csv
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from gcs_proxy import ConnectorProxy
from gcs_support import client_for
from sftp_support import sftp_server
from test_dagster import resources
from test_settlement import _demo_history_warehouse

from leap_orchestration.config.models import Connector, Participant, Properties, SftpPartner
from leap_orchestration.statements.deliver import Destinations
from leap_orchestration.statements.render import pointer_files
from leap_orchestration.stores.buckets import GcsBuckets
from leap_orchestration.stores.local import LocalLandingStore

DEMO_PARTNER = "sunrise-energy"  # the partner `leap-orchestration demo` logs in as
GAP_EVENT = "caiso_dsgs-2025-08-20"


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_demo_partners_find_statements_and_the_demo_gap(leap_home):
    from assets.settlement import SETTLEMENT_ASSETS
    from assets.statements import performance_statements

    _demo_history_warehouse(leap_home)
    instance = dg.DagsterInstance.ephemeral()
    assets = [*SETTLEMENT_ASSETS, performance_statements]
    result = dg.materialize(assets, resources=resources(leap_home), instance=instance)
    assert result.success
    tree = leap_home / "landing" / DEMO_PARTNER / "performance"
    index = csv_rows((tree / "index.csv").read_bytes())
    assert {r["statement"] for r in index} == {
        "event/caiso_dsgs/caiso_dsgs-2025-08-20",
        "event/caiso_dsgs/caiso_dsgs-2025-09-03",
        "season/caiso_dsgs/summer-2025",
    }
    # September's readings are not final in the demo: that event and the season stay PRELIMINARY
    assert {r["subject"]: r["status"] for r in index} == {
        "caiso_dsgs-2025-08-20": "FINAL",
        "caiso_dsgs-2025-09-03": "PRELIMINARY",
        "summer-2025": "PRELIMINARY",
    }
    event = tree / "caiso_dsgs" / "events" / GAP_EVENT
    assert json.loads((event / "latest.json").read_text())["path"] == f"caiso_dsgs/events/{GAP_EVENT}/V1/"
    meters = csv_rows((event / "V1" / "meters.csv").read_bytes())
    statuses = {m["status"] for m in meters}
    assert statuses == {"OK", "INSUFFICIENT_DAYS", "MISSING_ACTUALS"} and all(
        m["reason"] for m in meters if m["status"] != "OK"
    )
    gap_meter = next(m["meter_id"] for m in meters if m["status"] == "MISSING_ACTUALS")
    # the deliberate gap: two readings of an EV charger in the August event, named with its deadline
    (owed,) = csv_rows((tree / "missing-intervals.csv").read_bytes())
    assert (owed["meter_id"], owed["intervals"], owed["windows"], owed["events"]) == (
        gap_meter,
        "2",
        "event",
        GAP_EVENT,
    )
    assert owed["submission_deadline_utc"] == "2025-10-20T02:00:00Z" and owed["overdue"] == "true"
    # a participant finds its statements in its connector's bucket, beside its standardized output
    bucket = leap_home / "buckets" / "participant_1" / "ext_conn1" / "performance"
    assert {r["program"] for r in csv_rows((bucket / "index.csv").read_bytes())} == {"nyiso_commercial"}
    # the UI: what this run issued, per partner, and the data owed
    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    statements = mats["performance_statements"]
    issued = [r.data for r in statements["issued_this_run"].value.records]
    assert {r["partner"] for r in issued} == {"sunrise-energy", "voltstream", "gridflex", "participant_1"}
    owed_rows = [r.data for r in statements["data_owed"].value.records]
    assert [(r["partner_id"], r["meter_id"]) for r in owed_rows] == [(DEMO_PARTNER, gap_meter)]
    # the same list from the CLI, as a table and as CSV; an unknown partner is a usage error
    cli = [str(Path(sys.executable).parent / "leap-orchestration"), "missing", "--partner"]
    table = subprocess.run([*cli, DEMO_PARTNER], capture_output=True, text=True, check=True).stdout
    assert gap_meter in table and GAP_EVENT in table and "(passed)" in table
    as_csv = subprocess.run([*cli, DEMO_PARTNER, "--csv"], capture_output=True, text=True, check=True).stdout
    assert csv_rows(as_csv.encode()) == [owed]
    assert "owes no readings" in subprocess.run([*cli, "voltstream"], capture_output=True, text=True).stdout
    unknown = subprocess.run([*cli, "nobody"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown partner 'nobody'" in unknown.stderr
    # nothing changed: a second run issues nothing and rewrites no file
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*") if p.is_file()}
    again = dg.materialize(assets, resources=resources(leap_home), instance=instance)
    metadata = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in again.get_asset_materialization_events()
    }
    assert metadata["performance_statements"]["issued_this_run"].value.records == []
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*") if p.is_file()} == before


def _two_partner_trees(home) -> LocalLandingStore:
    store = LocalLandingStore(home / "landing")
    props = Properties(
        sftp_partners=(SftpPartner("sunrise-energy", "A"), SftpPartner("gridflex", "B")), participants=()
    )
    destinations = Destinations(store, None, props)
    for partner in ("sunrise-energy", "gridflex"):
        (home / "landing" / partner / "interval-data").mkdir(parents=True)
        destinations.write(
            partner,
            {
                "p/events/e1/V1/meters.csv": f"meter_id\n{partner}-meter\n".encode(),
                "missing-intervals.csv": b"x\n",
            },
        )
    return store


def test_sftp_partners_read_their_statements_and_nothing_else(leap_home, tmp_path):
    _two_partner_trees(leap_home)
    with sftp_server(leap_home) as server:
        client = server.paramiko("sunrise-energy", server.key_for("sunrise-energy"))
        ftp = client.open_sftp()
        assert ftp.listdir("/") == ["interval-data", "performance"]
        assert sorted(ftp.listdir("/performance")) == ["missing-intervals.csv", "p"]
        with ftp.open("/performance/p/events/e1/V1/meters.csv") as fh:
            assert fh.read() == b"meter_id\nsunrise-energy-meter\n"
        # never writable: no upload, overwrite, remove, rename, folder
        with pytest.raises(PermissionError):
            ftp.putfo(io.BytesIO(b"x"), "/performance/new.csv")
        with pytest.raises(PermissionError):
            ftp.putfo(io.BytesIO(b"x"), "/performance/p/events/e1/V1/meters.csv")
        for refused in (
            lambda: ftp.remove("/performance/missing-intervals.csv"),
            lambda: ftp.rename("/performance/missing-intervals.csv", "/performance/m.csv"),
            lambda: ftp.mkdir("/performance/mine"),
            lambda: ftp.rmdir("/performance/p"),
        ):
            with pytest.raises(OSError):
                refused()
        with ftp.open("/performance/p/events/e1/V1/meters.csv") as fh:
            assert fh.read() == b"meter_id\nsunrise-energy-meter\n"  # unchanged
        # another partner's statements can't be reached
        for trick in (
            "/../gridflex/performance/missing-intervals.csv",
            "/performance/../../gridflex/performance/p/events/e1/V1/meters.csv",
            "../gridflex/performance",
            "/gridflex/performance/missing-intervals.csv",
        ):
            with pytest.raises(FileNotFoundError):
                ftp.stat(trick)
        client.close()
        # OpenSSH's sftp, as a partner would fetch a statement
        out = tmp_path / "meters.csv"
        done = server.openssh(
            "gridflex", server.key_for("gridflex"), [f"get /performance/p/events/e1/V1/meters.csv {out}"]
        )
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == b"meter_id\ngridflex-meter\n"
        refused = server.openssh(
            "gridflex", server.key_for("gridflex"), ["put /etc/hostname /performance/x.csv"]
        )
        assert refused.returncode != 0


def test_participants_read_their_bucket_by_name_and_no_other(gcs_endpoint, gcs_client):
    """Two participants' connectors share one output bucket: each reads its statements under its connector's
    prefix by name, and neither can list the bucket or read the other's."""
    bucket = gcs_client.create_bucket(f"out-{uuid.uuid4().hex[:12]}").name
    props = Properties(
        sftp_partners=(),
        participants=tuple(
            Participant(p, p, (Connector(c, p, f"{c}/", "interval-csv-v1", "hourly", bucket),))
            for p, c in (("participant_1", "conn_a"), ("participant_2", "conn_b"))
        ),
    )
    destinations = Destinations(None, GcsBuckets(gcs_client), props)
    for participant in ("participant_1", "participant_2"):
        destinations.write(
            participant, pointer_files([]) | {"p/events/e1/V1/summary.json": participant.encode()}
        )
    blob = gcs_client.bucket(bucket).get_blob("conn_a/performance/p/events/e1/V1/summary.json")
    assert blob.content_type == "application/json"
    assert gcs_client.bucket(bucket).get_blob("conn_a/performance/index.csv").content_type == "text/csv"
    proxy = ConnectorProxy(gcs_endpoint, bucket, "conn_a/")  # participant_1's readers: its connector's prefix
    with proxy.running() as proxied:
        reader = client_for(proxied).bucket(bucket)
        assert (
            reader.blob("conn_a/performance/p/events/e1/V1/summary.json").download_as_bytes()
            == b"participant_1"
        )
        assert (
            reader.blob("conn_a/performance/README.txt")
            .download_as_text()
            .startswith("Performance statements")
        )
        from google.api_core import exceptions as gexc

        with pytest.raises(gexc.Forbidden):
            reader.blob("conn_b/performance/p/events/e1/V1/summary.json").download_as_bytes()
        with pytest.raises(gexc.Forbidden):
            list(client_for(proxied).list_blobs(bucket, prefix="conn_a/"))
        with pytest.raises(gexc.Forbidden):
            reader.blob("conn_a/performance/index.csv").upload_from_string(b"mine")
    assert any("outside the connector's prefix" in d for d in proxy.denied)


def test_a_partner_without_a_channel_is_skipped_and_paths_are_checked(tmp_path):
    store = LocalLandingStore(tmp_path)
    destinations = Destinations(
        store, None, Properties(sftp_partners=(SftpPartner("a", "A"),), participants=())
    )
    destinations.write("nobody", {"x.csv": b"1"})  # logged, nothing written
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError):
        destinations.write("a", {"../b/performance/x.csv": b"1"})

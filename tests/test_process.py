"""Processing an upload against a real local store and a real DuckDB file: layout, idempotence, crashes."""

import json
import os
import time

import pytest
from conftest import csv_text, good_row, partner_meter

from leap_orchestration.config.loader import load_configuration
from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import process_upload
from leap_orchestration.stores import LocalLandingStore
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.config_tables import replace_configuration

PARTNER = "sunrise-energy"
INBOX = f"{PARTNER}/interval-data/"


@pytest.fixture
def env(leap_home, blank_warehouse):
    store = LocalLandingStore(leap_home / "landing")
    wh = blank_warehouse
    with wh.connect() as con:
        replace_configuration(con, load_configuration(leap_home / "config"))
    return store, wh


def drop(store, name, data, age=60):
    store.write_bytes(INBOX + name, data)
    past = time.time() - age
    os.utime(store.path(INBOX + name), (past, past))


def process_all(store, wh):
    return [process_upload(store, wh, u) for u in pending_uploads(store)]


def query(wh, sql):
    with wh.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_accepted_and_failed_layout(env):
    store, wh = env
    meter = partner_meter(PARTNER).meter_id
    drop(store, "good.csv", csv_text(good_row(meter)))
    drop(store, "bad.csv", csv_text(good_row(meter, consumed="=HYPERLINK(1)")))
    outcomes = {o.upload.obj.name: o for o in process_all(store, wh)}
    assert outcomes["good.csv"].status == "COMPLETED" and outcomes["bad.csv"].status == "FAILED"
    assert store.exists(INBOX + "accepted/good.csv/good.csv") and not store.exists(INBOX + "good.csv")
    bad_job = outcomes["bad.csv"].upload.job_id
    errors = store.read_bytes(f"{INBOX}failed/bad.csv/{bad_job}.errors.csv").decode()
    assert errors.splitlines()[0] == "line,column,code,message"
    assert "'=HYPERLINK(1)" in errors.replace('"', "")  # neutralised: no cell starts with '='
    assert all(not cell.startswith("=") for row in errors.splitlines() for cell in row.split(","))
    feedback = store.read_bytes(f"{INBOX}failed/bad.csv/{bad_job}.feedback").decode()
    assert feedback.startswith("Parsed 1 lines in ") and "found 1 errors on 1 lines" in feedback
    status = json.loads(store.read_bytes(INBOX + "status/bad.csv.json"))
    assert status["status"] == "FAILED" and status["job_id"] == bad_job and status["errors"] == 1
    assert set(status) == {
        "file",
        "job_id",
        "status",
        "rows",
        "errors",
        "received_at",
        "processed_at",
        "result_keys",
    }
    assert query(wh, "SELECT count(*) FROM interval_readings") == [(1,)]
    assert query(wh, "SELECT status, rows_total, error_count FROM uploads ORDER BY file_name") == [
        ("FAILED", 1, 1),
        ("COMPLETED", 1, 0),
    ]


def test_rerun_and_crash_recovery_never_duplicate(env, monkeypatch):
    store, wh = env
    meter = partner_meter(PARTNER).meter_id
    drop(store, "a.csv", csv_text(good_row(meter)))
    upload = pending_uploads(store)[0]
    original_move = store.move

    def crash(*a, **k):
        raise RuntimeError("killed between the warehouse commit and the move")

    monkeypatch.setattr(store, "move", crash)
    with pytest.raises(RuntimeError):
        process_upload(store, wh, upload)
    assert store.exists(INBOX + "a.csv")  # still pending: the crash lost nothing
    monkeypatch.setattr(store, "move", original_move)
    assert process_upload(store, wh, upload).status == "COMPLETED"
    assert process_upload(store, wh, upload).status == "SKIPPED"  # already done
    assert query(wh, "SELECT count(*) FROM interval_readings") == [(1,)]
    assert query(wh, "SELECT count(*) FROM uploads") == [(1,)]


def test_reupload_same_name_is_a_new_job_and_latest_wins(env):
    store, wh = env
    meter = partner_meter(PARTNER).meter_id
    drop(store, "a.csv", csv_text(good_row(meter, consumed="1")), age=120)
    [first] = process_all(store, wh)
    drop(store, "a.csv", csv_text(good_row(meter, consumed="2")), age=60)
    [second] = process_all(store, wh)
    assert first.upload.job_id != second.upload.job_id
    assert store.read_bytes(INBOX + "accepted/a.csv/a.csv").decode().endswith(",2,0,true,CA\n")
    assert (
        store.read_bytes(f"{INBOX}accepted/a.csv/{first.upload.job_id}.a.csv")
        .decode()
        .endswith(",1,0,true,CA\n")
    )
    assert store.exists(f"{INBOX}accepted/a.csv/{first.upload.job_id}.feedback")
    assert query(wh, "SELECT energy_consumed_kwh, job_id FROM interval_readings") == [
        (2.0, second.upload.job_id)
    ]
    assert query(
        wh, "SELECT energy_consumed_kwh, superseded_by_job_id FROM interval_readings_superseded"
    ) == [(1.0, second.upload.job_id)]


def test_nothing_from_a_failed_file_is_loaded(env):
    store, wh = env
    meter = partner_meter(PARTNER).meter_id
    drop(
        store,
        "mixed.csv",
        csv_text(
            good_row(meter),
            good_row(meter, start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z", region="x"),
        ),
    )
    [outcome] = process_all(store, wh)
    assert outcome.status == "FAILED"
    assert query(wh, "SELECT count(*) FROM interval_readings") == [(0,)]


def test_upload_waits_when_configuration_never_loaded(leap_home):
    from leap_orchestration.warehouse.intake_tables import ConfigurationNotLoaded

    store = LocalLandingStore(leap_home / "landing")
    wh = Warehouse(leap_home / "warehouse.duckdb")
    drop(store, "a.csv", csv_text(good_row(partner_meter(PARTNER).meter_id)))
    with pytest.raises(ConfigurationNotLoaded):
        process_all(store, wh)
    assert store.exists(INBOX + "a.csv")


def test_temp_names_and_symlinks_are_ignored(env, tmp_path):
    store, _ = env
    for name in (".hidden.csv", "x.csv.part", "x.filepart", "y.tmp"):
        drop(store, name, b"x")
    secret = tmp_path / "secret.csv"
    secret.write_text("s")
    os.symlink(secret, store.path(INBOX + "link.csv"))
    assert pending_uploads(store) == []

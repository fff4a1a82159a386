"""Dagster wiring: definitions load, the asset graph snapshot, materialize() and the sensors."""

import json
import os
import time

import dagster as dg
from conftest import csv_text, good_row, partner_meter

from leap_orchestration.intake.process import Upload
from leap_orchestration.intake.tick import plan_tick
from leap_orchestration.resources import (
    ConfigurationResource,
    LocalBucketsResource,
    LocalLandingStoreResource,
    LocalLandingZoneResource,
    WarehouseResource,
)
from leap_orchestration.stores import StoredObject

# Renaming an asset or changing the graph is a deliberate act: update this snapshot with it.
GRAPH = {
    "meter_configuration": [],
    "upload_errors": [],
    "interval_readings": [],
    "uploads": ["meter_configuration"],
    "standardized_meter_hours": ["interval_readings", "meter_configuration"],
    "baselines": ["interval_readings", "meter_configuration"],
    "event_performance": ["baselines"],
    "event_performance_hourly": ["event_performance"],
    "program_event_performance": ["event_performance"],
    "season_performance": ["event_performance"],
    "performance_statements": ["baselines"],
}


def test_definitions_load_and_graph_snapshot():
    from assets.settlement import SETTLEMENT_CHECKS
    from leap_orchestration.definitions import defs
    from sensors.settlement import AUTOMATION

    graph = defs.resolve_asset_graph()
    snapshot = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert snapshot == GRAPH
    # every asset writes DuckDB, so every one runs in the 'duckdb' pool (limit 1 in dagster.yaml)
    assert {k.to_user_string(): graph.get(k).pools for k in graph.get_all_asset_keys()} == {
        k: {"duckdb"} for k in GRAPH
    }
    intake = next(
        a for a in defs.assets if getattr(a, "op", None) is not None and a.op.name == "interval_intake"
    )
    assert {c.name for c in intake.check_specs} == {"uploads_accepted"}  # evaluated in the intake step
    performance = next(a for a in defs.assets if dg.AssetKey("event_performance") in getattr(a, "keys", ()))
    assert {c.name for c in performance.check_specs} == {
        "event_performance_sufficiency",
        "event_performance_delivery",
    }  # evaluated by event_performance itself, even when it materializes nothing
    checks = {c.op.name: c.op.pool for c in defs.asset_checks}
    assert checks == {
        "interval_readings_interval_readings_unique": "duckdb",
        "uploads_partner_health": "duckdb",
        "baselines_baselines_cover_events": "duckdb",
    }
    assert {s.name for s in defs.sensors} == {
        "landing_inbox_sensor",
        "configuration_sensor",
        "settlement_automation",
    }
    assert {(s.name, s.cron_schedule, s.job_name) for s in defs.schedules} == {
        ("landing_zone_schedule", "0 * * * *", "landing_zone_connector"),
        ("warehouse_maintenance_schedule", "30 3 * * *", "warehouse_maintenance"),
    }
    assert (
        defs.get_job_def("warehouse_maintenance").get_node_named("maintain_warehouse").definition.pool
        == "duckdb"
    )
    # settlement is declarative: a condition on each settlement asset and check, none elsewhere
    conditioned = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).automation_condition is not None
    }
    assert conditioned == {k for k in GRAPH if k in AUTOMATION}
    assert len(AUTOMATION) == 6 and all(
        graph.get(key).automation_condition is not None for c in SETTLEMENT_CHECKS for key in c.check_keys
    )


def resources(home):
    return {
        "landing_store": LocalLandingStoreResource(root=str(home / "landing")),
        "landing_zone": LocalLandingZoneResource(
            root=str(home / "buckets" / "landing_zone"), config_path=str(home / "config")
        ),
        "participant_buckets": LocalBucketsResource(root=str(home / "buckets")),
        "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb")),
        "configuration": ConfigurationResource(path=str(home / "config")),
    }


def drop(home, partner, name, data, age=30):
    path = home / "landing" / partner / "interval-data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - age,) * 2)
    return path


def test_materialize_whole_graph(leap_home):
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake, interval_readings_unique

    meter = partner_meter("gridflex").meter_id
    drop(leap_home, "gridflex", "good.csv", csv_text(good_row(meter)))
    drop(leap_home, "gridflex", "bad.csv", csv_text(good_row("nope")))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [meter_configuration, interval_intake, interval_readings_unique],
        resources=resources(leap_home),
        instance=instance,
    )
    assert result.success
    inbox = leap_home / "landing" / "gridflex" / "interval-data"
    assert (inbox / "accepted" / "good.csv" / "good.csv").exists() and (
        inbox / "failed" / "bad.csv" / "bad.csv"
    ).exists()
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    uploads = mats["uploads"].materialization.metadata
    assert {r.data["file"]: r.data["status"] for r in uploads["this_run"].value.records} == {
        "good.csv": "COMPLETED",
        "bad.csv": "FAILED",
    }
    recent = {r.data["file"]: r.data for r in uploads["recent_uploads"].value.records}
    assert recent["bad.csv"]["top_codes"] == "MTR_0002 ×1" and recent["good.csv"]["status"] == "COMPLETED"
    assert mats["interval_readings"].materialization.metadata["dagster/row_count"].value == 1
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["interval_readings_unique"].passed
    # a failed upload makes the run visibly not clean: a WARN check that names the file, its codes and rows
    warn = checks["uploads_accepted"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert "gridflex/bad.csv" in warn.description and "MTR_0002" in warn.description
    first = warn.metadata["first_errors"].value.records
    assert [(r.data["file"], r.data["line"], r.data["code"]) for r in first] == [("bad.csv", 2, "MTR_0002")]
    assert "'nope' is not a valid meter UUID" in first[0].data["message"]
    run_tags = instance.get_run_by_id(result.run_id).tags  # the Runs list filters on tag:leap/outcome
    assert run_tags.get("leap/outcome") == "failed-uploads" and run_tags.get("leap/failed_uploads") == "1"


def test_bad_configuration_fails_and_previous_stays(leap_home):
    from assets.configuration import meter_configuration

    assert dg.materialize([meter_configuration], resources=resources(leap_home)).success
    victim = sorted((leap_home / "config" / "meters").glob("*.xml"))[0]
    victim.write_text(victim.read_text().replace("timezone=", "timezone_typo="))
    result = dg.materialize([meter_configuration], resources=resources(leap_home), raise_on_error=False)
    assert not result.success
    import duckdb

    with duckdb.connect(str(leap_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM meters").fetchall()[0][0] >= 50


def test_sensor_waits_for_stable_files_then_batches(leap_home, monkeypatch):
    from sensors.landing import landing_inbox_sensor

    # a settle time no slow machine can overrun between the drop and the first tick (the clock, not a sleep, moves)
    monkeypatch.setenv("LEAP_SETTLE_SECONDS", "10")  # files untouched for 4 x 10 s count as settled
    meter = partner_meter("voltstream").meter_id
    fresh = drop(leap_home, "voltstream", "fresh.csv", csv_text(good_row(meter)), age=0)
    drop(leap_home, "voltstream", "old.csv", csv_text(good_row(meter)), age=120)
    drop(leap_home, "voltstream", "upload.csv.part", b"partial", age=120)
    res = {"landing_store": LocalLandingStoreResource(root=str(leap_home / "landing"))}
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=res)
        first = landing_inbox_sensor(ctx)
        assert len(first.run_requests) == 1
        entries = first.run_requests[0].run_config["ops"]["interval_intake"]["config"]["uploads"]
        assert [e.split("|")[0] for e in entries] == ["voltstream/interval-data/old.csv"]
        status = json.loads((leap_home / "landing/voltstream/interval-data/status/old.csv.json").read_text())
        assert status["status"] == "QUEUED"
        os.utime(fresh, (time.time() - 60,) * 2)  # unchanged for longer than the settle time
        ctx = dg.build_sensor_context(instance=instance, resources=res, cursor=first.cursor)
        second = landing_inbox_sensor(ctx)
        entries = second.run_requests[0].run_config["ops"]["interval_intake"]["config"]["uploads"]
        assert [e.split("|")[0] for e in entries] == ["voltstream/interval-data/fresh.csv"]
        ctx = dg.build_sensor_context(instance=instance, resources=res, cursor=second.cursor)
        assert landing_inbox_sensor(ctx).run_requests == []  # requested once, not again


def test_sensor_takes_a_published_upload_at_once(leap_home, monkeypatch):
    """A file the SFTP server published whole needs no settle wait, however young and long the wait."""
    from leap_orchestration.stores import LocalLandingStore
    from sensors.landing import landing_inbox_sensor

    monkeypatch.setenv("LEAP_SETTLE_SECONDS", "3600")
    store = LocalLandingStore(leap_home / "landing")
    spooled = store.spool_dir() / "upload"
    spooled.parent.mkdir(parents=True)
    spooled.write_bytes(csv_text(good_row(partner_meter("voltstream").meter_id)))
    store.publish("voltstream/interval-data/published.csv", spooled)
    drop(leap_home, "voltstream", "dropped.csv", b"x", age=0)  # same age, not published: waits
    res = {"landing_store": LocalLandingStoreResource(root=str(leap_home / "landing"))}
    with dg.instance_for_test() as instance:
        result = landing_inbox_sensor(dg.build_sensor_context(instance=instance, resources=res))
    (request,) = result.run_requests
    entries = request.run_config["ops"]["interval_intake"]["config"]["uploads"]
    assert [e.split("|")[0] for e in entries] == ["voltstream/interval-data/published.csv"]


def _upload(key, version, mtime):
    return Upload("t", "t/interval-data/", StoredObject(key, 1, int(mtime * 1e9), version))


def test_tick_bounds_work_retries_and_never_skips_old_mtimes():
    now = 1_000_000.0
    files = [_upload(f"t/interval-data/f{i}.csv", "v1", now - 10_000) for i in range(7)]
    plan = plan_tick(files, {}, now, settle_seconds=2, retry_seconds=900, max_per_run=3, max_runs=2)
    assert [len(b) for b in plan.batches] == [3, 3]  # bounded: 6 of 7 this tick
    again = plan_tick(
        files, plan.state, now + 5, settle_seconds=2, retry_seconds=900, max_per_run=3, max_runs=2
    )
    assert [u.obj.key for b in again.batches for u in b] == ["t/interval-data/f6.csv"]
    # a file still pending long after its run was requested is requested again, under a new run key
    late = plan_tick(
        files, again.state, now + 1000, settle_seconds=2, retry_seconds=900, max_per_run=10, max_runs=1
    )
    assert len(late.batches[0]) == 7 and late.run_keys[0] not in plan.run_keys + again.run_keys
    # a new version of a requested file is a new request
    changed = [_upload("t/interval-data/f0.csv", "v2", now - 10_000)]
    assert plan_tick(
        changed, plan.state, now + 5, settle_seconds=2, retry_seconds=900, max_per_run=3, max_runs=1
    ).batches


def test_configuration_sensor_requests_on_change(leap_home):
    from sensors.landing import configuration_sensor

    res = {"configuration": ConfigurationResource(path=str(leap_home / "config"))}
    first = configuration_sensor(dg.build_sensor_context(resources=res))
    assert len(first.run_requests) == 1
    unchanged = configuration_sensor(dg.build_sensor_context(resources=res, cursor=first.cursor))
    assert isinstance(unchanged, dg.SkipReason)
    programs = leap_home / "config" / "programs.xml"
    original = programs.read_text()
    programs.write_text(original + "\n")
    changed = configuration_sensor(dg.build_sensor_context(resources=res, cursor=first.cursor))
    assert changed.run_requests
    # back to the first content (A -> B -> A): A is loaded again, under a run key Dagster has not seen
    programs.write_text(original)
    import unittest.mock

    context = dg.build_sensor_context(resources=res, cursor=changed.cursor)
    with unittest.mock.patch.object(type(context), "last_tick_completion_time", 1_900_000_000.0):
        reverted = configuration_sensor(context)
    assert reverted.cursor == first.cursor
    assert reverted.run_requests[0].run_key != first.run_requests[0].run_key
    assert first.cursor.startswith(
        "3:"
    )  # the loader version: an upgrade that loads more reloads unchanged files


def test_configuration_sensor_first_tick_after_a_load_of_the_same_files_requests_nothing(leap_home):
    """The demo's first run loads the configuration; the sensor's first tick must not load it again."""
    from assets.configuration import meter_configuration
    from sensors.landing import configuration_sensor

    res = {"configuration": ConfigurationResource(path=str(leap_home / "config"))}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([meter_configuration], resources=resources(leap_home), instance=instance).success
    first = configuration_sensor(dg.build_sensor_context(resources=res, instance=instance))
    assert not first.run_requests and first.cursor  # already loaded: the cursor is set, no run
    programs = leap_home / "config" / "programs.xml"
    programs.write_text(programs.read_text() + "\n")
    changed = configuration_sensor(
        dg.build_sensor_context(resources=res, instance=instance, cursor=first.cursor)
    )
    assert len(changed.run_requests) == 1


def test_a_micro_batch_materializes_only_what_changed(leap_home):
    """A partner batch whose uploads all failed materializes no readings, so it starts no settlement run; the
    run is still visibly not clean (the WARN check and its tag)."""
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from leap_orchestration.intake.discovery import pending_uploads
    from leap_orchestration.intake.tick import config_entry
    from leap_orchestration.stores import LocalLandingStore

    dg.materialize([meter_configuration], resources=resources(leap_home))
    drop(leap_home, "gridflex", "bad.csv", csv_text(good_row("nope")))
    store = LocalLandingStore(leap_home / "landing")
    named = {
        "ops": {"interval_intake": {"config": {"uploads": [config_entry(u) for u in pending_uploads(store)]}}}
    }
    result = dg.materialize(
        [interval_intake], resources=resources(leap_home), run_config=named, selection=["*"]
    )
    assert result.success
    assert {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} == {
        "uploads",
        "upload_errors",
    }
    assert [c.passed for c in result.get_asset_check_evaluations()] == [False]

    meter = partner_meter("gridflex").meter_id
    drop(leap_home, "gridflex", "good.csv", csv_text(good_row(meter)))
    named = {
        "ops": {"interval_intake": {"config": {"uploads": [config_entry(u) for u in pending_uploads(store)]}}}
    }
    result = dg.materialize([interval_intake], resources=resources(leap_home), run_config=named)
    assert {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} == {
        "uploads",
        "interval_readings",
    }

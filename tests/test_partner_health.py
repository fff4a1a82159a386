"""Partner health: expectedUploadEvery in properties.xml, the states over a real warehouse, the partner_health
check on `uploads`, and the freshness policies (with_freshness)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import csv_text, good_row, partner_meter
from test_dagster import resources  # the same local resources as every Dagster test

from assets.health import FRESHNESS, HEALTH_CHECKS, HEALTH_COLUMNS, partner_health, with_freshness
from leap_orchestration.config import ConfigError, load_configuration
from leap_orchestration.config.loader import REPO_CONFIG_DIR, load_properties
from leap_orchestration.intake import health
from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import process_upload
from leap_orchestration.stores import LocalLandingStore

DAY = dt.timedelta(days=1)


# --- expectedUploadEvery ------------------------------------------------------------------------------


@pytest.fixture
def cfg(tmp_path) -> Path:
    return Path(shutil.copytree(REPO_CONFIG_DIR, tmp_path / "config"))


def _set_every(cfg: Path, element_id: str, value: str | None) -> None:
    """Set (or with None remove) expectedUploadEvery on the partner or connector with this id."""
    path = cfg / "properties.xml"
    text, n = re.subn(
        rf'(<(?:partner|connector) id="{element_id}"[^>]*?) expectedUploadEvery="[^"]*"',
        r"\1",
        path.read_text(),
    )
    assert n == 1
    if value is not None:
        text = text.replace(f'id="{element_id}"', f'id="{element_id}" expectedUploadEvery="{value}"', 1)
    path.write_text(text)


def test_demo_expects_daily_uploads_and_the_attribute_is_optional(cfg):
    props = load_configuration(REPO_CONFIG_DIR).properties
    assert {p.expected_upload_every for p in props.sftp_partners} == {DAY}
    assert props.connector("ext_conn1").expected_upload_every == DAY
    for element_id in ("gridflex", "ext_conn1"):  # a file written before the attribute existed stays valid
        _set_every(cfg, element_id, None)
    assert 'expectedUploadEvery="' in (cfg / "properties.xml").read_text()  # others still set
    props = load_configuration(cfg).properties
    assert props.sftp_partner("gridflex").expected_upload_every == DAY
    assert props.connector("ext_conn1").expected_upload_every == DAY


@pytest.mark.parametrize(
    "value, expected",
    [
        ("PT12H", dt.timedelta(hours=12)),
        ("P7D", dt.timedelta(days=7)),
        ("PT1H30M", dt.timedelta(minutes=90)),
        ("P1DT6H", dt.timedelta(hours=30)),
        ("PT1H", dt.timedelta(hours=1)),
        ("P366D", dt.timedelta(days=366)),
    ],
)
def test_cadence_values(cfg, value, expected):
    _set_every(cfg, "voltstream", value)
    _set_every(cfg, "ext_conn1", value)
    props = load_properties(cfg)
    assert props.sftp_partner("voltstream").expected_upload_every == expected
    assert props.connector("ext_conn1").expected_upload_every == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("daily", r"attribute 'expectedUploadEvery': 'daily' is not a valid value"),  # XSD: not a duration
        ("24", r"attribute 'expectedUploadEvery': '24' is not a valid value"),
        ("P1M", r"attribute 'expectedUploadEvery'.*'P1M' is not accepted by the pattern"),  # months: no
        ("PT30S", r"attribute 'expectedUploadEvery'.*'PT30S' is not accepted by the pattern"),
        ("PT30M", r"expectedUploadEvery='PT30M' is shorter than PT1H"),  # the reader's range
        ("P0D", r"expectedUploadEvery='P0D' is shorter than PT1H"),
        ("P400D", r"expectedUploadEvery='P400D' is longer than P366D"),
    ],
)
@pytest.mark.parametrize("element_id", ["gridflex", "ext_conn1"])
def test_a_bad_cadence_fails_the_configuration_load(cfg, element_id, value, message):
    _set_every(cfg, element_id, value)
    line = next(
        n for n, text in enumerate((cfg / "properties.xml").read_text().splitlines(), 1) if element_id in text
    )
    with pytest.raises(ConfigError) as info:
        load_configuration(cfg)
    err = info.value
    assert err.path == cfg / "properties.xml" and err.line == line, str(err)
    assert re.search(message, err.message), err.message
    assert "\n" not in str(err)


# --- states over a real warehouse ---------------------------------------------------------------------


def _drop(store: LocalLandingStore, tenant: str, name: str, data: bytes, age: float = 60) -> None:
    """An upload received `age` seconds ago (received_at is the file's time)."""
    key = f"{tenant}/interval-data/{name}"
    store.write_bytes(key, data)
    os.utime(store.path(key), (time.time() - age,) * 2)


def _process_all(store: LocalLandingStore, warehouse) -> dict[str, str]:
    return {u.obj.key: process_upload(store, warehouse, u).status for u in pending_uploads(store)}


def _insert(con, source: str, name: str, status: str, received: dt.datetime, connector: str | None = None):
    """An uploads row by column name, as intake writes it (a connector's tenant is its participant)."""
    con.execute(
        """INSERT INTO uploads (upload_id, tenant, file_name, source_key, version, job_id, status, rows_total,
                                error_count, received_at, processed_at, summary, connector_id)
           VALUES (?, ?, ?, ?, 'v1', ?, ?, 1, ?, ?, ?, ?, ?)""",
        [
            f"{source}/{name}@v1",
            source,
            name,
            f"{connector or source}/{name}",
            f"job-{source}-{name}",
            status,
            int(status == "FAILED"),
            received,
            received + dt.timedelta(minutes=2),
            json.dumps([["meter_uuid", "MTR_0002", 1]] if status == "FAILED" else []),
            connector,
        ],
    )


def _rows(warehouse, props, now=None) -> dict[str, dict]:
    with warehouse.connect(read_only=True) as con:
        return {r["source"]: r for r in health.partner_health(con, props, now=now)}


def test_states_from_real_uploads(leap_home, warehouse):
    store = LocalLandingStore(leap_home / "landing")
    props = load_properties(leap_home / "config")
    sunrise, volt = partner_meter("sunrise-energy").meter_id, partner_meter("voltstream").meter_id
    _drop(store, "sunrise-energy", "good.csv", csv_text(good_row(sunrise)))
    _drop(store, "voltstream", "good.csv", csv_text(good_row(volt, region="MA")))
    _drop(store, "voltstream", "zz-bad.csv", csv_text(good_row("nope"), good_row(volt, consumed="x")), age=30)
    assert _process_all(store, warehouse) == {
        "sunrise-energy/interval-data/good.csv": "COMPLETED",
        "voltstream/interval-data/good.csv": "COMPLETED",
        "voltstream/interval-data/zz-bad.csv": "FAILED",
    }
    rows = _rows(warehouse, props)
    assert list(rows) == ["sunrise-energy", "voltstream", "gridflex", "ext_conn1"]  # configuration order
    ok, failing, never = rows["sunrise-energy"], rows["voltstream"], rows["gridflex"]
    assert ok["state"] == "ok" and ok["reason"] == "" and ok["kind"] == "sftp"
    assert (ok["uploads_7d"], ok["failed_7d"], ok["last_status"]) == (1, 0, "COMPLETED")
    assert ok["silent_for"] < dt.timedelta(minutes=5) and ok["expected"] == DAY
    assert ok["last_processed"] >= ok["last_received"]
    # voltstream's latest upload (received last) failed: failing, with the file, its codes and the fix
    assert failing["state"] == "failing" and (failing["uploads_7d"], failing["failed_7d"]) == (2, 1)
    assert (
        "the latest upload from voltstream, zz-bad.csv, failed (CON_0002 ×1, MTR_0002 ×1)"
        in failing["reason"]
    )
    assert "upload a corrected file" in failing["reason"]
    # configured partners and connectors that never uploaded: exactly what an operator must see
    assert never["state"] == "never" and never["last_received"] is None and never["silent_for"] is None
    assert "leap-orchestration partners add gridflex" in never["reason"]
    assert rows["ext_conn1"]["state"] == "never" and rows["ext_conn1"]["kind"] == "gcs"
    assert "docs/landing-zone.md" in rows["ext_conn1"]["reason"]

    # a good upload after the failure: the latest is accepted and half (not more) of the week failed
    _drop(
        store,
        "voltstream",
        "zzz-fixed.csv",
        csv_text(good_row(volt, start="2024-04-02T11:00:00Z", end="2024-04-02T11:15:00Z", region="MA")),
        age=10,
    )
    _process_all(store, warehouse)
    assert _rows(warehouse, props)["voltstream"]["state"] == "ok"

    # three days on, with nothing new: silent (a daily cadence + 50 % grace = 36 h)
    later = _rows(warehouse, props, now=dt.datetime.now(dt.UTC) + 3 * DAY)
    assert later["sunrise-energy"]["state"] == "silent"
    assert later["sunrise-energy"]["reason"].startswith(
        "no upload from sunrise-energy for 3 days (expected daily): ask them to upload"
    )
    assert later["gridflex"]["state"] == "never"  # never stays never
    # 35 h is within the grace, 37 h is not
    in_hours = {
        h: _rows(warehouse, props, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=h)) for h in (35, 37)
    }
    assert [in_hours[h]["sunrise-energy"]["state"] for h in (35, 37)] == ["ok", "silent"]


def test_cadence_grace_and_the_seven_day_failure_share(leap_home, warehouse, cfg):
    now = dt.datetime(2025, 9, 10, 12, tzinfo=dt.UTC)
    _set_every(cfg, "sunrise-energy", "P7D")  # weekly
    _set_every(cfg, "ext_conn1", "PT6H")
    props = load_properties(cfg)
    with warehouse.connect() as con:
        _insert(con, "sunrise-energy", "weekly.csv", "COMPLETED", now - 9 * DAY)
        # the connector: 3 of 5 uploads this week failed, though the latest was accepted
        for i, status in enumerate(["FAILED", "FAILED", "COMPLETED", "FAILED", "COMPLETED"]):
            _insert(
                con, "participant_1", f"c{i}.csv", status, now - dt.timedelta(hours=20 - 4 * i), "ext_conn1"
            )
        _insert(
            con, "participant_1", "old-failure.csv", "FAILED", now - 8 * DAY, "ext_conn1"
        )  # outside the week
        # gridflex: its latest failed, then nothing for 4 days: failing, and the reason says silent too
        _insert(con, "gridflex", "a.csv", "COMPLETED", now - 5 * DAY)
        _insert(con, "gridflex", "b.csv", "FAILED", now - 4 * DAY)
        # voltstream: a file being processed counts as received
        _insert(con, "voltstream", "old.csv", "COMPLETED", now - 3 * DAY)
        _insert(con, "voltstream", "new.csv", "PROCESSING", now - dt.timedelta(hours=1))
    rows = _rows(warehouse, props, now=now)
    assert rows["sunrise-energy"]["state"] == "ok"  # 9 days < 7 days + 3.5
    assert _rows(warehouse, props, now=now + 2 * DAY)["sunrise-energy"]["state"] == "silent"  # 11 days
    conn = rows["ext_conn1"]
    assert conn["state"] == "failing" and (conn["uploads_7d"], conn["failed_7d"]) == (5, 3)
    assert conn["reason"].startswith("3 of 5 uploads from ext_conn1 in the last 7 days failed:")
    assert conn["last_status"] == "COMPLETED" and conn["last_file"] == "c4.csv"
    grid = rows["gridflex"]
    assert (
        grid["state"] == "failing"
        and "b.csv, failed (MTR_0002 ×1), and nothing came since, for 4 days" in grid["reason"]
    )
    volt = rows["voltstream"]
    assert volt["state"] == "ok" and volt["silent_for"] == dt.timedelta(hours=1)
    assert volt["last_status"] == "COMPLETED" and (volt["uploads_7d"], volt["failed_7d"]) == (1, 0)

    lines = health.summary(list(rows.values())).split("\n")
    assert lines[0] == "2 of 4 partners and connectors need attention:"
    assert lines[1].startswith("- the latest upload from gridflex") and lines[2].startswith(
        "- 3 of 5 uploads"
    )
    assert health.summary(list(rows.values()), limit=1).split("\n")[1:] == [
        lines[1],
        "- and 1 more (see the partners table)",
    ]
    assert health.summary([r for r in rows.values() if r["state"] == "ok"]).startswith("all 2 partners")
    # failing before silent (and never last: the check's test), each in configuration order
    later = _rows(warehouse, props, now=now + 2 * DAY)
    assert [(r["source"], r["state"]) for r in health.needing_attention(later.values())] == [
        ("gridflex", "failing"),
        ("ext_conn1", "failing"),
        ("sunrise-energy", "silent"),
        ("voltstream", "silent"),  # 49 h since new.csv arrived
    ]
    assert later["ext_conn1"]["state"] == "failing"  # still 3 of 5 failed within the week


def test_describing_cadences_and_silences():
    every = health.describe_every
    assert [every(dt.timedelta(hours=h)) for h in (1, 24, 168, 12, 48, 30)] == [
        "hourly",
        "daily",
        "weekly",
        "every 12 h",
        "every 2 days",
        "every 1 day 6 h",
    ]
    assert every(dt.timedelta(minutes=90)) == "every 1 h 30 min"
    span = health.describe_span
    assert [span(dt.timedelta(minutes=m)) for m in (40, 36 * 60, 47 * 60 + 59, 3 * 1440 + 600)] == [
        "40 min",
        "36 h",
        "47 h",
        "3 days",
    ]


# --- the check in Dagster -----------------------------------------------------------------------------


def _health_check(result) -> dg.AssetCheckEvaluation:
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return checks["partner_health"]


def test_the_check_warns_naming_who_and_what_clears_it(leap_home):
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake

    assert HEALTH_CHECKS == [partner_health]
    store = LocalLandingStore(leap_home / "landing")
    _drop(store, "sunrise-energy", "good.csv", csv_text(good_row(partner_meter("sunrise-energy").meter_id)))
    _drop(store, "voltstream", "bad.csv", csv_text(good_row("nope")))
    result = dg.materialize(
        [meter_configuration, interval_intake, partner_health], resources=resources(leap_home)
    )
    assert result.success
    check = _health_check(result)
    assert check.asset_key == dg.AssetKey("uploads")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.split("\n") == [
        "3 of 4 partners and connectors need attention:",
        "- the latest upload from voltstream, bad.csv, failed (MTR_0002 ×1): ask them to upload a corrected "
        "file (errors.csv in their failed/bad.csv/, codes in docs/error-codes.md); clears once their uploads "
        "are accepted again",
        "- gridflex never uploaded (expected daily): make sure they have an API key (leap-orchestration "
        "partners add gridflex) and upload into interval-data/; clears with the first upload",
        "- ext_conn1 never uploaded (expected daily): make sure the connector is provisioned and uploads to "
        "its prefix (docs/landing-zone.md); clears with the first upload",
    ]
    meta = check.metadata
    table = {r.data["source"]: r.data for r in meta["partners"].value.records}
    assert list(table) == ["sunrise-energy", "voltstream", "gridflex", "ext_conn1"]
    assert table["sunrise-energy"]["state"] == "ok" and table["sunrise-energy"]["expected"] == "daily"
    assert (
        table["sunrise-energy"]["last_status"] == "COMPLETED"
        and table["sunrise-energy"]["silent_days"] == 0.0
    )
    assert table["sunrise-energy"]["last_received"].endswith(" UTC")
    assert table["voltstream"] | {"last_received": "", "last_processed": ""} == {
        "source": "voltstream",
        "kind": "sftp",
        "state": "failing",
        "expected": "daily",
        "last_received": "",
        "last_processed": "",
        "silent_days": 0.0,
        "uploads_7d": 1,
        "failed_7d": 1,
        "last_status": "FAILED",
    }
    assert table["gridflex"]["silent_days"] is None and table["gridflex"]["last_received"] == ""
    assert [c.name for c in meta["partners"].value.schema.columns] == [name for name, _ in HEALTH_COLUMNS]
    assert meta["needs_attention"].value == "voltstream (failing), gridflex (never), ext_conn1 (never)"
    assert (meta["ok_sources"].value, meta["never_sources"].value, meta["failing_sources"].value) == (1, 2, 1)


def test_a_rejected_properties_file_warns_instead_of_crashing(leap_home, warehouse):

    (leap_home / "config" / "properties.xml").write_text("<not-properties/>")
    res = resources(leap_home)
    check = partner_health(warehouse=res["warehouse"], configuration=res["configuration"])
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("properties.xml is rejected, so partner health can't be judged: ")


def test_demo_partners_are_ok_after_the_first_whole_graph_run(leap_home):
    """scripts/demo's first run: every demo partner and the connector uploaded (their summer history, and the
    connector's readings), all accepted; the demo's bad files wait in demo-uploads/, outside the inboxes."""
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake
    from leap_orchestration.demo import write_demo

    write_demo(leap_home)
    time.sleep(0.3)  # LEAP_SETTLE_SECONDS is 0.2 in the tests
    result = dg.materialize(
        [meter_configuration, interval_intake, partner_health], resources=resources(leap_home)
    )
    assert result.success
    check = _health_check(result)
    assert check.passed, check.description
    assert check.description.startswith(
        "all 4 partners and connectors uploaded within their expected cadence"
    )
    table = {r.data["source"]: r.data for r in check.metadata["partners"].value.records}
    assert {s: r["state"] for s, r in table.items()} == dict.fromkeys(
        ["sunrise-energy", "voltstream", "gridflex", "ext_conn1"], "ok"
    )
    assert table["ext_conn1"]["uploads_7d"] == 2  # the history and the readings upload


# --- freshness ----------------------------------------------------------------------------------------


def test_with_freshness_puts_each_policy_on_its_asset_only(tmp_path):
    from assets.configuration import meter_configuration
    from assets.intake import interval_intake, interval_readings_unique
    from assets.landing_zone import standardized_meter_hours
    from assets.settlement import SETTLEMENT_ASSETS

    own = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=3))
    spec = dg.AssetSpec("event_performance_elsewhere")
    kept = dg.AssetSpec("standardized_meter_hours_copy", freshness_policy=own)
    given = [meter_configuration, interval_intake, standardized_meter_hours, *SETTLEMENT_ASSETS, spec, kept]
    mapped = with_freshness([*given, interval_readings_unique])
    assert len(mapped) == len(given) + 1
    assert mapped[0] is meter_configuration and mapped[-1] is interval_readings_unique  # untouched
    policies = {
        key.to_user_string(): s.freshness_policy
        for a in mapped
        if isinstance(a, dg.AssetsDefinition)
        for key, s in ((s.key, s) for s in a.specs)
    }
    assert policies == {
        "meter_configuration": None,
        "uploads": None,
        "upload_errors": None,
        "interval_readings": FRESHNESS["interval_readings"],
        "standardized_meter_hours": FRESHNESS["standardized_meter_hours"],
        "baselines": FRESHNESS["baselines"],
        "event_performance": None,
        "event_performance_hourly": None,
        "program_event_performance": None,
        "season_performance": None,
    }
    assert mapped[-3] is spec and mapped[-2].freshness_policy is own
    # the multi-asset keeps its checks and the Definitions resolve with the policies on the graph's nodes
    intake = mapped[1]
    assert {c.name for c in intake.check_specs} == {"uploads_accepted"}
    graph = dg.Definitions(assets=mapped[:-3], resources=resources(tmp_path)).resolve_asset_graph()
    assert graph.get(dg.AssetKey("interval_readings")).freshness_policy == FRESHNESS["interval_readings"]
    # warn before fail, both windows at least a minute (Dagster refuses others), days for readings
    readings = FRESHNESS["interval_readings"]
    assert readings.warn_window.to_timedelta() == DAY and readings.fail_window.to_timedelta() == 2 * DAY
    for key in ("standardized_meter_hours", "baselines"):
        policy = FRESHNESS[key]
        assert dt.timedelta(hours=1) < policy.warn_window.to_timedelta() < policy.fail_window.to_timedelta()
        assert policy.fail_window.to_timedelta() <= dt.timedelta(hours=3)


@dg.asset(name="interval_readings")
def _readings_stand_in() -> None:
    """Stand-ins for the real assets (same keys), for the freshness daemon below."""


@dg.asset(name="baselines")
def _settlement_stand_in() -> None:
    pass


# the code location the freshness daemon loads in the test below
FRESHNESS_DEFS = dg.Definitions(assets=with_freshness([_readings_stand_in, _settlement_stand_in]))


def test_the_freshness_daemon_judges_the_last_materialization_not_the_data():
    """The demo's readings are from summer 2025, but its first run materializes them: fresh. A policy judges
    the last materialization, so an asset last materialized 3 days ago fails (interval_readings: 2 days)."""
    import sys

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
        freeze_time,
        instance_for_test,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.freshness import FreshnessDaemon

    keys = [dg.AssetKey("interval_readings"), dg.AssetKey("baselines")]
    with instance_for_test() as instance:
        with freeze_time(dt.datetime.now(dt.UTC) - 3 * DAY):
            dg.materialize([_readings_stand_in, _settlement_stand_in], instance=instance)
        dg.materialize([_settlement_stand_in], instance=instance)  # just now
        origin = InProcessCodeLocationOrigin(
            loadable_target_origin=LoadableTargetOrigin(
                executable_path=sys.executable, module_name=__name__, attribute="FRESHNESS_DEFS"
            ),
            location_name="freshness_test",
        )
        with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as ctx:
            list(FreshnessDaemon().run_iteration(ctx))
        states = {
            k.to_user_string(): r.freshness_state.value
            for k, r in instance.get_freshness_state_records(keys).items()
        }
    assert states == {"interval_readings": "FAIL", "baselines": "PASS"}

"""Loading the configuration folder: demo content, cross-checks, fingerprint, defaults (no Dagster)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leap_orchestration.config import ConfigError, config_fingerprint, default_config_dir, load_configuration
from leap_orchestration.config.demo_config import (
    DEMO_PARTNERS,
    TRANSFER_AT,
    TRANSFERRED_METER_NUMBER,
    demo_meters,
    write_demo_configuration,
)
from leap_orchestration.config.loader import REPO_CONFIG_DIR, config_files


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo():
    return load_configuration(REPO_CONFIG_DIR)


@pytest.fixture
def cfg(tmp_path) -> Path:
    """A private copy of the committed demo configuration to break."""
    return Path(shutil.copytree(REPO_CONFIG_DIR, tmp_path / "config"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _load_fails(cfg: Path, rel: str, pattern: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_configuration(cfg)
    err = info.value
    assert err.path == cfg / rel, str(err)
    assert re.search(pattern, err.message), err.message
    assert str(err).count("\n") == 0 and rel.split("/")[-1] in str(err)
    return err


# --- the committed demo configuration ---------------------------------------------------------------


def test_demo_configuration_loads(demo):
    props = demo.properties
    assert set(DEMO_PARTNERS) <= props.partner_ids and len(props.partner_ids) >= 3
    (connector,) = props.connectors
    assert (
        connector.connector_id,
        connector.participant_id,
        connector.inbox_prefix,
        connector.output_bucket,
    ) == ("ext_conn1", "participant_1", "ext_conn1/", "participant_1")
    assert props.sftp_partner("gridflex").inbox_prefix == "gridflex/interval-data/"
    assert 45 <= len(demo.meters) <= 60
    assert (
        len({m.meter_id for m in demo.meters})
        == len({m.meter_number for m in demo.meters})
        == len(demo.meters)
    )
    assert {m.timezone for m in demo.meters} == {"America/Los_Angeles", "America/New_York", "America/Chicago"}
    assert {m.device_type for m in demo.meters} >= {"battery", "thermostat", "ev_charger", "none"}
    assert any(m.source == "utility" for m in demo.meters) and any(m.source == "partner" for m in demo.meters)
    assert all(re.fullmatch(r"meters/[a-z_]+_\d{3}\.xml", m.config_uri) for m in demo.meters)
    assert len(demo.fingerprint) == 64


def test_partner_change_owner_at_both_sides(demo):
    (meter,) = [m for m in demo.meters if m.meter_number == TRANSFERRED_METER_NUMBER]
    assert len(meter.ownerships) == 2
    assert meter.owner_at(_utc(2023, 12, 31, 23, 59)) is None
    assert meter.owner_at(_utc(2024, 1, 1)) == "sunrise-energy"
    assert meter.owner_at(_utc(2025, 5, 31, 23, 45)) == "sunrise-energy"
    assert meter.owner_at(TRANSFER_AT) == "voltstream"  # windows are [from, to)
    assert meter.owner_at(_utc(2030, 1, 1)) == "voltstream"
    with pytest.raises(ValueError):
        meter.owner_at(datetime(2025, 1, 1))  # naive timestamps are refused, not guessed
    assert demo.meter(meter.meter_id) is meter


def test_programs_events_and_enrollments(demo):
    presets = {p.program_id: (p.baseline_preset, p.channel) for p in demo.programs}
    assert presets["caiso_dsgs"] == ("caiso_10in10", "net")
    assert presets["ma_connected_solutions"] == ("no_baseline", "generated")
    assert presets["pjm_residential"][0] == "pjm_high4of5"
    event = next(e for e in demo.events if e.start_utc == _utc(2025, 8, 20, 23))
    assert (event.program_id, event.end_utc) == ("caiso_dsgs", _utc(2025, 8, 21, 2))
    assert len(demo.events_of("pjm_residential")) >= 2
    assert all(e.start_utc.tzinfo is UTC and e.end_utc > e.start_utc for e in demo.events)
    batteries_ma = [m for m in demo.meters if m.region == "MA" and m.device_type == "battery"]
    assert batteries_ma and all(
        m.enrolled_in("ma_connected_solutions", _utc(2025, 7, 29, 21)) for m in batteries_ma
    )
    assert all(not m.enrollments for m in demo.meters if m.source == "utility")


def test_demo_meters_match_loaded_configuration(demo):
    now = _utc(2025, 8, 1)
    expected = {(d.meter_id, d.meter_number, d.owner, f"meters/{d.file_name}") for d in demo_meters()}
    assert expected == {(m.meter_id, m.meter_number, m.owner_at(now), m.config_uri) for m in demo.meters}
    for partner in DEMO_PARTNERS:
        assert demo.meters_owned_by(partner, now)


def test_generator_output_equals_committed_folder(tmp_path):
    write_demo_configuration(tmp_path / "out")
    generated = {rel: p.read_bytes() for rel, p in config_files(tmp_path / "out")}
    committed = {rel: p.read_bytes() for rel, p in config_files(REPO_CONFIG_DIR)}
    assert sorted(generated) == sorted(committed)
    assert [rel for rel in generated if generated[rel] != committed[rel]] == []
    assert not list((tmp_path / "out").rglob(".tmp-*"))


# --- cross-checks: each fails with a clear message naming the file -----------------------------------


def test_duplicate_meter_id(cfg):
    shutil.copy(cfg / "meters/battery_001.xml", cfg / "meters/zz_copy.xml")
    _edit(cfg / "meters/zz_copy.xml", 'meterNumber="5"', 'meterNumber="999"')
    _load_fails(cfg, "meters/zz_copy.xml", r"duplicate meter id .* \(also in meters/battery_001.xml\)")


def test_duplicate_meter_number(cfg):
    _edit(cfg / "meters/battery_002.xml", 'meterNumber="6"', 'meterNumber="5"')
    _load_fails(cfg, "meters/battery_002.xml", r"duplicate meterNumber 5 \(also in meters/battery_001.xml\)")


def test_unknown_ownership_partner(cfg):
    _edit(cfg / "meters/battery_001.xml", 'partner="sunrise-energy"', 'partner="nobody"')
    err = _load_fails(cfg, "meters/battery_001.xml", r"'nobody' is not an SFTP partner or participant")
    assert err.line == 5


def test_participant_may_own_meters(cfg):
    _edit(cfg / "meters/battery_001.xml", 'partner="sunrise-energy"', 'partner="participant_1"')
    assert (
        load_configuration(cfg).meter(demo_meters()[0].meter_id).owner_at(_utc(2025, 1, 1)) == "participant_1"
    )


def test_overlapping_ownership(cfg):
    _edit(
        cfg / "meters/battery_005.xml",
        'partner="voltstream" from="2025-06-01T00:00:00Z"',
        'partner="voltstream" from="2025-05-01T00:00:00Z"',
    )
    _load_fails(cfg, "meters/battery_005.xml", r"ownership window overlaps the one at line 5")


def test_ownership_from_not_before_to(cfg):
    _edit(cfg / "meters/battery_005.xml", 'to="2025-06-01T00:00:00Z"', 'to="2024-01-01T00:00:00Z"')
    _load_fails(
        cfg, "meters/battery_005.xml", r"from=2024-01-01T00:00:00Z must be before to=2024-01-01T00:00:00Z"
    )


def test_enrollment_from_not_before_to(cfg):
    _edit(
        cfg / "meters/battery_001.xml",
        'program="caiso_dsgs" from="2024-01-01T00:00:00Z"',
        'program="caiso_dsgs" from="2024-01-01T00:00:00Z" to="2023-01-01T00:00:00Z"',
    )
    _load_fails(cfg, "meters/battery_001.xml", r"must be before")


def test_unknown_program(cfg):
    _edit(cfg / "meters/battery_001.xml", 'program="caiso_dsgs"', 'program="no_such_program"')
    _load_fails(cfg, "meters/battery_001.xml", r"unknown program 'no_such_program'")


@pytest.mark.parametrize("zone", ["America/Atlantis", "America", "Etc/GMT+99"])
def test_unknown_time_zone(cfg, zone):
    _edit(cfg / "meters/battery_001.xml", 'timezone="America/Los_Angeles"', f'timezone="{zone}"')
    _load_fails(cfg, "meters/battery_001.xml", rf"unknown IANA time zone '{re.escape(zone)}'")


def test_event_end_not_after_start(cfg):
    _edit(cfg / "programs.xml", 'end="2025-08-21T02:00:00Z"', 'end="2025-08-20T23:00:00Z"')
    _load_fails(cfg, "programs.xml", r"event 'caiso_dsgs-2025-08-20': end .* must be after start")


def test_duplicate_event_id(cfg):
    _edit(cfg / "programs.xml", 'id="ma_cs-2025-08-20"', 'id="caiso_dsgs-2025-08-20"')
    _load_fails(cfg, "programs.xml", r"duplicate event id 'caiso_dsgs-2025-08-20' \(first at line \d+\)")


@pytest.mark.parametrize(
    "override, message",
    [
        ('<override name="typo" value="1"/>', r"unknown override\(s\) for preset caiso_10in10: typo"),
        ('<override name="selection" value="best"/>', r"selection must be one of"),
        ('<override name="selection" value="highest"/>', r"'highest' needs 1 <= keep <= days"),
        ('<override name="cap" value="1.5"/>', r"cap in \[0, 1\] or none"),
        ('<override name="days" value="ten"/>', r"bad override value"),
    ],
)
def test_bad_overrides_fail_the_load(cfg, override, message):
    _edit(
        cfg / "programs.xml",
        'clip="none">\n    <season id="summer-2025" start="2025-06-01T00:00:00-07:00"',
        f'clip="none">\n    {override}\n    <season id="summer-2025" start="2025-06-01T00:00:00-07:00"',
    )
    _load_fails(cfg, "programs.xml", rf"program 'caiso_dsgs': .*{message}")


def test_overrides_a_preset_cannot_use_fail_the_load(cfg):
    _edit(
        cfg / "programs.xml",
        'baseline="no_baseline" channel="generated" holidayCalendar="NERC" clip="none">',
        'baseline="no_baseline" channel="generated" holidayCalendar="NERC" clip="none">\n    <override name="days" value="5"/>',
    )
    _load_fails(
        cfg, "programs.xml", r"program 'ma_connected_solutions': preset no_baseline has no candidate days"
    )


def test_unknown_holiday_calendar(cfg):
    _edit(
        cfg / "programs.xml",
        'baseline="caiso_10in10" channel="net" holidayCalendar="NERC"',
        'baseline="caiso_10in10" channel="net" holidayCalendar="XX"',
    )
    _load_fails(cfg, "programs.xml", r"unknown holiday calendar 'XX'")


def test_overlapping_seasons(cfg):
    _edit(
        cfg / "programs.xml",
        '<season id="summer-2025" start="2025-06-01T00:00:00-07:00" end="2025-10-01T00:00:00-07:00"/>',
        '<season id="summer-2025" start="2025-06-01T00:00:00-07:00" end="2025-10-01T00:00:00-07:00"/>\n'
        '    <season id="late" start="2025-09-01T00:00:00-07:00" end="2025-11-01T00:00:00-07:00"/>',
    )
    _load_fails(cfg, "programs.xml", r"season of program 'caiso_dsgs' window overlaps")


def test_event_off_the_quarter_hour(cfg):
    _edit(cfg / "programs.xml", 'start="2025-08-20T23:00:00Z"', 'start="2025-08-20T23:10:00Z"')
    _load_fails(
        cfg, "programs.xml", r"event 'caiso_dsgs-2025-08-20': start and end must be on a quarter hour"
    )


def test_overlapping_events_of_a_program(cfg):
    _edit(
        cfg / "programs.xml",
        'start="2025-09-03T23:00:00Z" end="2025-09-04T02:00:00Z"',
        'start="2025-08-21T01:00:00Z" end="2025-08-21T03:00:00Z"',
    )
    _load_fails(cfg, "programs.xml", r"event of program 'caiso_dsgs' window overlaps")


def test_event_crossing_local_midnight_of_an_enrolled_meter(cfg):
    # 22:00-01:00 in Los Angeles, where the program's meters are
    _edit(
        cfg / "programs.xml",
        'start="2025-08-20T23:00:00Z" end="2025-08-21T02:00:00Z"',
        'start="2025-08-21T05:00:00Z" end="2025-08-21T08:00:00Z"',
    )
    _load_fails(
        cfg, "programs.xml", r"event 'caiso_dsgs-2025-08-20' crosses local midnight in America/Los_Angeles"
    )


def test_season_id_may_not_be_a_bare_year(cfg):
    _edit(
        cfg / "programs.xml",
        '<season id="summer-2025" start="2025-06-01T00:00:00-07:00"',
        '<season id="2025" start="2025-06-01T00:00:00-07:00"',
    )
    _load_fails(cfg, "programs.xml", r"season id '2025': a bare number is reserved")


def test_seasons_and_overrides_are_loaded(demo):
    program = demo.program("ma_connected_solutions")
    assert [(s.season_id, s.start_utc.isoformat()) for s in program.seasons] == [
        ("summer-2025", "2025-06-01T04:00:00+00:00")
    ]


def test_duplicate_program_id(cfg):
    _edit(cfg / "programs.xml", 'id="nyiso_commercial"', 'id="caiso_dsgs"')
    _load_fails(cfg, "programs.xml", r"duplicate program id 'caiso_dsgs'")


def test_duplicate_partner_id(cfg):
    _edit(cfg / "properties.xml", 'id="voltstream"', 'id="sunrise-energy"')
    _load_fails(cfg, "properties.xml", r"duplicate partner/participant id 'sunrise-energy'")


def test_connector_inbox_may_not_overlap_a_partner_inbox(cfg):
    _edit(cfg / "properties.xml", 'inboxPrefix="ext_conn1/"', 'inboxPrefix="gridflex/x/"')
    _load_fails(
        cfg, "properties.xml", r"inboxPrefix 'gridflex/x/' overlaps the inbox 'gridflex/' of SFTP partner"
    )


@pytest.mark.parametrize("prefix", ["../up/", "ext_conn1", "/abs/", "a/../b/"])
def test_bad_inbox_prefix_is_a_schema_error(cfg, prefix):
    _edit(cfg / "properties.xml", 'inboxPrefix="ext_conn1/"', f'inboxPrefix="{prefix}"')
    _load_fails(cfg, "properties.xml", r"inboxPrefix")


def test_datetime_python_cannot_use(cfg):
    # xs:dateTime allows 24:00:00 (end of day); refused with a clear message instead of a traceback.
    _edit(
        cfg / "meters/battery_001.xml",
        'partner="sunrise-energy" from="2024-01-01T00:00:00Z"',
        'partner="sunrise-energy" from="2023-12-31T24:00:00Z"',
    )
    _load_fails(cfg, "meters/battery_001.xml", r"not a usable date-time")


def test_schema_error_in_one_meter_fails_the_whole_load(cfg):
    _edit(cfg / "meters/thermostat_003.xml", 'region="CA"', 'region="California"')
    err = _load_fails(cfg, "meters/thermostat_003.xml", r"region")
    assert err.line == 4


def test_unexpected_and_missing_files(cfg, tmp_path):
    (cfg / "program.xml").write_text("<x/>")
    _load_fails(cfg, "program.xml", r"unexpected XML file")
    (cfg / "program.xml").unlink()
    (cfg / "programs.xml").unlink()
    _load_fails(cfg, "programs.xml", r"missing")
    with pytest.raises(ConfigError, match="folder not found"):
        load_configuration(tmp_path / "nowhere")


def test_hidden_files_are_ignored(cfg):
    (cfg / "meters/.#battery_001.xml").write_text("garbage")
    (cfg / ".git").mkdir()
    (cfg / ".git/x.xml").write_text("garbage")
    assert len(load_configuration(cfg).meters) == len(demo_meters())


# --- fingerprint ----------------------------------------------------------------------------------


def test_fingerprint_stable_and_sensitive(cfg):
    first = config_fingerprint(cfg)
    assert config_fingerprint(cfg) == first == load_configuration(cfg).fingerprint
    (cfg / "meters/.swp.xml").write_text("ignored")
    assert config_fingerprint(cfg) == first
    _edit(cfg / "meters/battery_001.xml", 'region="CA"', 'region="NV"')
    changed = config_fingerprint(cfg)
    assert changed != first and changed == load_configuration(cfg).fingerprint
    _edit(cfg / "meters/battery_001.xml", 'region="NV"', 'region="CA"')
    assert config_fingerprint(cfg) == first
    (cfg / "meters/battery_001.xml").rename(cfg / "meters/battery_000.xml")
    assert config_fingerprint(cfg) != first


def test_fingerprint_never_raises(tmp_path):
    assert len(config_fingerprint(tmp_path / "missing")) == 64


def test_fingerprint_is_cheap_for_1000_files(tmp_path):
    meters = tmp_path / "meters"
    meters.mkdir()
    body = (REPO_CONFIG_DIR / "meters/battery_001.xml").read_bytes()
    for i in range(1000):
        (meters / f"m{i:04d}.xml").write_bytes(body)
    started = time.monotonic()
    config_fingerprint(tmp_path)
    assert time.monotonic() - started < 1.0


# --- default folder -------------------------------------------------------------------------------


def test_default_config_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEAP_CONFIG", raising=False)
    monkeypatch.delenv("LEAP_HOME", raising=False)
    assert default_config_dir() == REPO_CONFIG_DIR
    (tmp_path / ".leap/config").mkdir(parents=True)
    assert default_config_dir() == Path(".leap/config")
    monkeypatch.setenv("LEAP_HOME", str(tmp_path / "home"))
    assert default_config_dir() == REPO_CONFIG_DIR
    (tmp_path / "home/config").mkdir(parents=True)
    assert default_config_dir() == tmp_path / "home/config"
    monkeypatch.setenv("LEAP_CONFIG", str(tmp_path / "explicit"))
    assert default_config_dir() == tmp_path / "explicit"


def test_data_deadline_per_program_with_a_default(cfg):
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import replace_configuration

    _edit(
        cfg / "programs.xml",
        'holidayCalendar="NERC" clip="none">',
        'holidayCalendar="NERC" clip="none" dataDeadline="P10D">',
    )
    loaded = load_configuration(cfg)
    deadlines = {p.program_id: p.data_deadline for p in loaded.programs}
    assert deadlines["caiso_dsgs"] == dt.timedelta(days=10)  # the first program, edited
    assert set(deadlines.values()) == {
        dt.timedelta(days=10),
        dt.timedelta(days=60),
    }  # the others: the default
    with Warehouse(cfg.parent / "w.duckdb").connect() as con:
        replace_configuration(con, loaded)
        stored = dict(con.execute("SELECT program_id, data_deadline FROM programs").fetchall())
    assert stored == deadlines


@pytest.mark.parametrize("value", ["P0D", "P367D", "PT12H", "P1M", "ten days"])
def test_data_deadline_outside_whole_days_1_to_366_fails_the_load(cfg, value):
    _edit(
        cfg / "programs.xml",
        'holidayCalendar="NERC" clip="none">',
        f'holidayCalendar="NERC" clip="none" dataDeadline="{value}">',
    )
    with pytest.raises(ConfigError) as info:
        load_configuration(cfg)
    assert "dataDeadline" in info.value.message, info.value.message

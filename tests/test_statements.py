"""Partner statements below Dagster: contents against hand-computed numbers, ownership split mid-event, versions
and their diffs and causes, PRELIMINARY -> FINAL at the deadline, season statements and the data still owed."""

import csv
import datetime as dt
import io
import json

import pytest
from test_settlement import EVENT_DAY, add_event, add_meter, add_program, load, local

from leap_orchestration.config.models import Properties, SftpPartner
from leap_orchestration.settlement.settle import settle
from leap_orchestration.statements.deliver import Destinations
from leap_orchestration.statements.issue import issue_statements
from leap_orchestration.statements.missing import owed_windows
from leap_orchestration.stores.buckets import LocalBuckets
from leap_orchestration.stores.local import LocalLandingStore
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse.duck import run

LOADED = dt.datetime(2025, 8, 20, 23, 30, tzinfo=dt.UTC)  # when the history and the configuration were loaded
SETTLED = dt.datetime(
    2025, 8, 21, 1, tzinfo=dt.UTC
)  # after the event (ends 00:00 UTC): PRELIMINARY (60 days)
LATER = SETTLED + dt.timedelta(days=1)  # a late upload
EVENT = "p/events/e1"


def value(day, lt):
    """1.0 everywhere; 0.5 in the event hour (16:00-17:00 local) of the event day: baseline 1.0 (10 weekdays of
    1.0, ratio over [12:00, 15:00) 1.0), reduction 0.5 kWh per interval."""
    return 0.5 if day == EVENT_DAY and 16 <= lt.hour < 17 else 1.0


@pytest.fixture
def world(blank_warehouse, tmp_path):
    with blank_warehouse.connect() as con:
        run(con, "INSERT INTO config_loads VALUES ('fp-1', now(), 0, 0, 0)")
        yield _world(con, tmp_path)


def _world(con, tmp_path):
    """Program p (caiso_10in10), event e1 16:00-17:00 on 20 Aug 2025; m-1 owned by A, m-2 by A until 16:30
    local on the event day and by B after."""
    add_program(con, "p")
    add_event(con, "e1", "p", local(EVENT_DAY, 16), local(EVENT_DAY, 17))
    for m in ("m-1", "m-2"):
        add_meter(con, m, "p")
        load(con, m, dt.date(2025, 7, 1), EVENT_DAY, value)
    switch = local(EVENT_DAY, 16, 30)
    run(
        con,
        "INSERT INTO meter_ownership VALUES ('m-1', 'A', '2025-01-01', NULL), ('m-2', 'A', '2025-01-01', ?), "
        "('m-2', 'B', ?, NULL)",
        [switch, switch],
    )
    # the test's clock: loads happened before SETTLED (a cause is what was loaded after the previous version)
    run(con, "UPDATE interval_readings SET loaded_at = ?, received_at = ?", [LOADED, LOADED])
    run(con, "UPDATE config_loads SET loaded_at = ?", [LOADED])
    store = LocalLandingStore(tmp_path / "landing")
    props = Properties(sftp_partners=(SftpPartner("A", "A"), SftpPartner("B", "B")), participants=())
    return con, store, Destinations(store, LocalBuckets(tmp_path / "buckets"), props)


def cycle(con, destinations, now):
    settle(con, now, force=True)  # forced: settle's own watermark is on the real clock, the test's is not
    return issue_statements(con, destinations, now)


def read(store, partner, path):
    return store.read_bytes(f"{partner}/performance/{path}").decode()


def rows(store, partner, path):
    return list(csv.DictReader(io.StringIO(read(store, partner, path))))


def test_contents_by_ownership_at_each_interval(world):
    con, store, dest = world
    report = cycle(con, dest, SETTLED)
    assert {(i["partner"], i["statement"], i["version"]) for i in report.issued} >= {
        ("A", "event/p/e1", 1),
        ("B", "event/p/e1", 1),
    }
    a = {r["meter_id"]: r for r in rows(store, "A", f"{EVENT}/V1/meters.csv")}
    # m-1: 4 intervals, baseline 4 x 1.0, actual 4 x 0.5, reduction 2.0 kWh over 1 h -> 2.0 kW
    assert (a["m-1"]["status"], a["m-1"]["intervals_expected"], a["m-1"]["intervals_present"]) == (
        "OK",
        "4",
        "4",
    )
    assert [float(a["m-1"][k]) for k in ("adjusted_baseline_kwh", "actual_kwh", "reduction_kwh")] == [4, 2, 2]
    assert float(a["m-1"]["avg_reduction_kw"]) == 2.0
    # m-2 for A: 16:00 and 16:15 only -> 1.0 kWh over 0.5 h -> 2.0 kW; for B: 16:30 and 16:45
    assert (a["m-2"]["intervals_expected"], float(a["m-2"]["reduction_kwh"])) == ("2", 1.0)
    b = rows(store, "B", f"{EVENT}/V1/meters.csv")
    assert [(r["meter_id"], r["intervals_expected"], float(r["reduction_kwh"])) for r in b] == [
        ("m-2", "2", 1.0)
    ]
    b_intervals = rows(store, "B", f"{EVENT}/V1/intervals.csv")
    assert [r["interval_start_utc"] for r in b_intervals] == ["2025-08-20T23:30:00Z", "2025-08-20T23:45:00Z"]
    assert b_intervals[0]["interval_start_local"] == "2025-08-20 16:30 PDT"
    summary = json.loads(read(store, "A", f"{EVENT}/V1/summary.json"))
    assert summary["status"] == "PRELIMINARY" and summary["version"] == 1
    assert summary["totals"]["reduction_kwh"] == 3.0 and summary["totals"]["avg_reduction_kw"] == 3.0
    assert summary["window"]["start_local"] == "2025-08-20 16:00 PDT"
    assert summary["data_deadline_utc"] == "2025-10-20T00:00:00Z"  # end + 60 days
    assert summary["meters_by_status"] == {"OK": 2}
    # the explanation: every look-back day of every meter, the 10 selected days
    explanation = rows(store, "A", f"{EVENT}/V1/explanation.csv")
    assert {r["meter_id"] for r in explanation} == {"m-1", "m-2"}
    assert sum(r["outcome"] == "SELECTED" for r in explanation if r["meter_id"] == "m-1") == 10
    assert all(r["reason"] for r in explanation)
    latest = json.loads(read(store, "A", f"{EVENT}/latest.json"))
    assert (latest["version"], latest["status"], latest["path"]) == (1, "PRELIMINARY", "p/events/e1/V1/")
    index = rows(store, "A", "index.csv")
    assert {r["statement"] for r in index} == {"event/p/e1", "season/p/2025"}
    # B never sees A's meter, in any file
    for path in (
        "index.csv",
        f"{EVENT}/V1/intervals.csv",
        f"{EVENT}/V1/explanation.csv",
        f"{EVENT}/V1/summary.json",
    ):
        assert "m-1" not in read(store, "B", path)


def test_season_statement_counts_a_missed_event_as_zero(world):
    con, store, dest = world
    # a second event on 21 Aug where no meter has an actual: numbers for nobody, 1 event hour each
    add_event(con, "e2", "p", local(EVENT_DAY + dt.timedelta(1), 16), local(EVENT_DAY + dt.timedelta(1), 17))
    cycle(con, dest, dt.datetime(2025, 8, 22, tzinfo=dt.UTC))
    season = {r["meter_id"]: r for r in rows(store, "A", "p/seasons/2025/V1/meters.csv")}
    # m-1: 2.0 kWh over 2 event hours -> 1.0 kW; m-2 is B's from 16:30 on 20 Aug: B has the second half of e1
    # (1.0 kWh) and all of e2 (no numbers: zero) -> 1.0 kWh over 1.5 h
    assert (season["m-1"]["events"], season["m-1"]["events_with_numbers"]) == ("2", "1")
    assert float(season["m-1"]["avg_reduction_kw"]) == 1.0
    assert (season["m-2"]["events"], float(season["m-2"]["event_hours"])) == ("1", 0.5)
    (b,) = rows(store, "B", "p/seasons/2025/V1/meters.csv")
    assert (b["meter_id"], b["events"], b["events_with_numbers"], float(b["event_hours"])) == (
        "m-2",
        "2",
        "1",
        1.5,
    )
    assert float(b["avg_reduction_kw"]) == pytest.approx(1.0 / 1.5, abs=1e-6)
    summary = json.loads(read(store, "A", "p/seasons/2025/V1/summary.json"))
    assert [e["event"] for e in summary["events"]] == ["e1", "e2"]
    assert summary["totals"]["avg_reduction_kw"] == pytest.approx(3.0 / 2, abs=1e-6)


def test_an_unchanged_recomputation_issues_nothing(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    settle(con, SETTLED + dt.timedelta(hours=1), force=True)  # every event recomputed, same numbers
    report = issue_statements(con, dest, SETTLED + dt.timedelta(hours=1))
    assert report.issued == [] and report.events_built == ["e1"]
    assert not store.exists(f"A/performance/{EVENT}/V2/summary.json")
    assert issue_statements(con, dest, SETTLED + dt.timedelta(hours=2)).events_built == []


def late_upload(con, meter, start, new_value, job_id, tenant, file_name, now):
    """What intake does for an upload that replaces the reading at `start`: supersede, insert, record."""
    run(
        con,
        """INSERT INTO interval_readings_superseded SELECT *, ?, ? FROM interval_readings
           WHERE meter_id = ? AND interval_start_utc = ?""",
        [job_id, now, meter, start],
    )
    run(con, "DELETE FROM interval_readings WHERE meter_id = ? AND interval_start_utc = ?", [meter, start])
    run(
        con,
        """INSERT INTO interval_readings (meter_id, interval_start_utc, interval_end_utc, energy_consumed_kwh,
               energy_generated_kwh, energy_net_kwh, final, region, job_id, received_at, loaded_at)
           VALUES (?, ?, ?, ?, 0, ?, true, 'CA', ?, ?, ?)""",
        [meter, start, start + dt.timedelta(minutes=15), new_value, new_value, job_id, now, now],
    )
    run(
        con,
        """INSERT INTO uploads (upload_id, tenant, file_name, source_key, version, job_id, status, run_id)
           SELECT ?, ?, ?, ?, 'v1', ?, 'COMPLETED', 'run-late' WHERE ? NOT IN (SELECT upload_id FROM uploads)""",
        [f"{tenant}/{file_name}@v1", tenant, file_name, f"{tenant}/interval-data/{file_name}", job_id]
        + [f"{tenant}/{file_name}@v1"],
    )


def test_a_late_upload_issues_v2_with_a_diff_naming_it(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    late_upload(con, "m-1", local(EVENT_DAY, 16), 0.25, "job-late", "A", "fix.csv", LATER)
    report = cycle(con, dest, LATER)
    assert ("A", "event/p/e1", 2) in {(i["partner"], i["statement"], i["version"]) for i in report.issued}
    assert "B" not in {i["partner"] for i in report.issued if i["statement"] == "event/p/e1"}  # B's unchanged
    changes = json.loads(read(store, "A", f"{EVENT}/V2/changes.json"))
    assert changes["previous_version"] == 1 and changes["status"] == {
        "old": "PRELIMINARY",
        "new": "PRELIMINARY",
    }
    (cause,) = changes["causes"]
    assert (cause["kind"], cause["job_id"], cause["file"], cause["meters"]) == (
        "corrected_readings",
        "job-late",
        "fix.csv",
        ["m-1"],
    )
    by_line = {(c["line"], c["field"]): (c["old"], c["new"]) for c in changes["changes"]}
    # 16:00 actual 0.5 -> 0.25: reduction 0.5 -> 0.75; m-1 totals 2.0 -> 2.25 kWh
    assert by_line[("m-1@2025-08-20T23:00:00Z", "actual_kwh")] == (0.5, 0.25)
    assert by_line[("m-1@2025-08-20T23:00:00Z", "reduction_kwh")] == (0.5, 0.75)
    assert by_line[("m-1", "reduction_kwh")] == (2.0, 2.25)
    assert all(line.startswith("m-1") for line, _ in by_line)
    assert read(store, "A", f"{EVENT}/V1/meters.csv") != read(store, "A", f"{EVENT}/V2/meters.csv")
    assert json.loads(read(store, "A", f"{EVENT}/V1/changes.json"))["causes"] == [{"kind": "first_statement"}]
    season = json.loads(read(store, "A", "p/seasons/2025/V2/changes.json"))
    assert season["causes"] == [
        {"kind": "event_statement", "event": "e1", "version": 2, "status": "PRELIMINARY"}
    ]
    assert {(c["line"], c["field"]) for c in season["changes"]} == {
        ("m-1", "reduction_kwh"),
        ("m-1", "avg_reduction_kw"),
    }
    assert json.loads(read(store, "A", f"{EVENT}/latest.json"))["version"] == 2
    changes_csv = rows(store, "A", f"{EVENT}/V2/changes.csv")
    assert {
        "meter_id": "m-1",
        "interval_start_utc": "",
        "field": "reduction_kwh",
        "old": "2.0",
        "new": "2.25",
    } in (changes_csv)


def test_another_partys_upload_is_not_named(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    # B uploads for m-2's second half (its own intervals): A's statement is unchanged, B's names B's job
    late_upload(con, "m-2", local(EVENT_DAY, 16, 45), 0.0, "job-b", "B", "b.csv", LATER)
    cycle(con, dest, LATER)
    b = json.loads(read(store, "B", f"{EVENT}/V2/changes.json"))
    assert [(c["kind"], c["job_id"], c["file"]) for c in b["causes"]] == [
        ("corrected_readings", "job-b", "b.csv")
    ]
    assert not store.exists(f"A/performance/{EVENT}/V2/summary.json")
    # a utility's correction of a look-back day of m-1 (19 Aug 16:00: 2.0, so the 16:00 baseline is 1.1):
    # A's V2 says readings of another party changed, without naming that party's job or file
    late_upload(con, "m-1", local(EVENT_DAY - dt.timedelta(1), 16), 2.0, "job-u", "utility", "u.csv", LATER)
    cycle(con, dest, LATER + dt.timedelta(hours=1))
    a = json.loads(read(store, "A", f"{EVENT}/V2/changes.json"))
    (cause,) = a["causes"]
    assert cause["kind"] == "corrected_readings" and cause["meters"] == ["m-1"] and "source" in cause
    assert "job_id" not in cause and "file" not in cause and "job-u" not in json.dumps(a)
    baselines = {(c["line"], c["field"]): c["new"] for c in a["changes"]}
    assert baselines[("m-1@2025-08-20T23:00:00Z", "adjusted_baseline_kwh")] == pytest.approx(1.1)


def test_preliminary_until_the_deadline_then_final(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    deadline = local(EVENT_DAY, 17) + dt.timedelta(days=60)
    assert cycle(con, dest, deadline - dt.timedelta(minutes=1)).issued == []
    report = cycle(con, dest, deadline)
    assert {(i["statement"], i["version"], i["status"]) for i in report.issued if i["partner"] == "A"} >= {
        ("event/p/e1", 2, "FINAL")
    }
    changes = json.loads(read(store, "A", f"{EVENT}/V2/changes.json"))
    assert changes["values_changed"] == 0
    assert changes["causes"] == [
        {
            "kind": "status_change",
            "old": "PRELIMINARY",
            "new": "FINAL",
            "data_deadline_utc": "2025-10-20T00:00:00Z",
        }
    ]
    assert json.loads(read(store, "A", f"{EVENT}/latest.json"))["status"] == "FINAL"


def test_provisional_readings_keep_it_preliminary_past_the_deadline(world):
    con, store, dest = world
    run(
        con, "UPDATE interval_readings SET final = false WHERE interval_start_utc = ?", [local(EVENT_DAY, 16)]
    )
    cycle(con, dest, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert json.loads(read(store, "A", f"{EVENT}/latest.json"))["status"] == "PRELIMINARY"
    # B's intervals (16:30, 16:45) are all final: its statement is FINAL
    assert json.loads(read(store, "B", f"{EVENT}/latest.json"))["status"] == "FINAL"


def test_missing_report_before_and_after_the_data_arrives(world):
    con, store, dest = world
    gone = [local(EVENT_DAY, 16, 15), local(EVENT_DAY, 16, 30), local(EVENT_DAY - dt.timedelta(1), 13)]
    run(
        con,
        "DELETE FROM interval_readings WHERE meter_id = 'm-2' AND list_contains(?, interval_start_utc)",
        [gone],
    )
    cycle(con, dest, SETTLED)
    a = rows(store, "A", "missing-intervals.csv")
    b = rows(store, "B", "missing-intervals.csv")
    # A owned m-2 at 16:15 and on the day before (a look-back day among the 10 most recent); B at 16:30
    assert [(r["meter_id"], r["window_start_utc"], r["intervals"], r["windows"]) for r in a] == [
        ("m-2", "2025-08-19T20:00:00Z", "1", "lookback"),
        ("m-2", "2025-08-20T23:15:00Z", "1", "event"),
    ]
    assert a[0]["events"] == "e1" and a[0]["submission_deadline_utc"] == "2025-10-20T00:00:00Z"
    assert a[0]["overdue"] == "false" and a[0]["window_start_local"] == "2025-08-19 13:00 PDT"
    assert [(r["meter_id"], r["window_start_utc"], r["window_end_utc"]) for r in b] == [
        ("m-2", "2025-08-20T23:30:00Z", "2025-08-20T23:45:00Z")
    ]
    assert owed_windows(con, SETTLED, "B").height == 1
    for t in gone:
        late_upload(con, "m-2", t, 1.0 if t.day == 19 else 0.5, "job-fill", "A", "fill.csv", LATER)
    report = cycle(con, dest, LATER)
    assert set(report.reports_written) == {"A", "B"}
    assert rows(store, "A", "missing-intervals.csv") == [] == rows(store, "B", "missing-intervals.csv")


# ---- found in review: each of these failed before its fix ----


def test_float_noise_never_issues_a_version(tmp_path):
    """Loads like 0.1 and 0.3 are not exact in binary: sums in another order land on either side of zero.
    Recomputing four times with the same inputs issues nothing after V1."""
    with Warehouse(tmp_path / "w.duckdb").connect() as con:
        run(con, "INSERT INTO config_loads VALUES ('fp-1', ?, 0, 0, 0)", [LOADED])
        add_program(con, "p")
        add_event(con, "e1", "p", local(EVENT_DAY, 16), local(EVENT_DAY, 17))
        meters = [f"m-{i}" for i in range(40)]
        for i, m in enumerate(meters):
            add_meter(con, m, "p")
            k = 0.1 * (1 + i % 7)
            load(con, m, dt.date(2025, 7, 1), EVENT_DAY, lambda day, lt, k=k: k * (3 if lt.hour == 16 else 1))
            run(con, "INSERT INTO meter_ownership VALUES (?, ?, '2025-01-01', NULL)", [m, "AB"[i % 2]])
        run(con, "UPDATE interval_readings SET loaded_at = ?", [LOADED])
        store = LocalLandingStore(tmp_path / "landing")
        props = Properties(sftp_partners=(SftpPartner("A", "A"), SftpPartner("B", "B")), participants=())
        dest = Destinations(store, None, props)
        assert len(cycle(con, dest, SETTLED).issued) == 4  # V1 of A's and B's event and season statements
        for hour in range(1, 5):
            assert cycle(con, dest, SETTLED + dt.timedelta(hours=hour)).issued == []
        assert "-0.0" not in read(store, "A", f"{EVENT}/V1/meters.csv")


def test_a_partner_that_no_longer_owns_anything_gets_a_withdrawn_version(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    # ownership corrected: both meters were B's all along
    run(con, "DELETE FROM meter_ownership")
    run(
        con,
        "INSERT INTO meter_ownership VALUES ('m-1', 'B', '2025-01-01', NULL), ('m-2', 'B', '2025-01-01', NULL)",
    )
    report = cycle(con, dest, LATER)
    issued = {(i["partner"], i["statement"]): (i["version"], i["status"]) for i in report.issued}
    assert issued[("A", "event/p/e1")] == (2, "WITHDRAWN") and issued[("A", "season/p/2025")] == (
        2,
        "WITHDRAWN",
    )
    assert issued[("B", "event/p/e1")][0] == 2
    summary = json.loads(read(store, "A", f"{EVENT}/V2/summary.json"))
    assert (
        summary["status"] == "WITHDRAWN" and summary["meters"] == 0 and "no longer apply" in summary["note"]
    )
    assert {r["status"] for r in rows(store, "A", "index.csv")} == {"WITHDRAWN"}
    b = {r["meter_id"]: r for r in rows(store, "B", f"{EVENT}/V2/meters.csv")}
    assert set(b) == {"m-1", "m-2"} and b["m-2"]["intervals_expected"] == "4"
    assert cycle(con, dest, LATER + dt.timedelta(hours=1)).issued == []  # withdrawn once


def test_a_former_owner_is_told_of_its_look_back_gap_until_the_event_is_final(world):
    con, store, dest = world
    # m-1 was C's until 16 Aug, then A's; C's reading of Thu 14 Aug 16:00 (a look-back day of the event) is missing
    run(con, "DELETE FROM meter_ownership WHERE meter_id = 'm-1'")
    run(
        con,
        "INSERT INTO meter_ownership VALUES ('m-1', 'C', '2025-01-01', '2025-08-16'), ('m-1', 'A', '2025-08-16', NULL)",
    )
    gap = local(dt.date(2025, 8, 14), 16)
    run(con, "DELETE FROM interval_readings WHERE meter_id = 'm-1' AND interval_start_utc = ?", [gap])
    dest.properties = Properties(
        sftp_partners=(SftpPartner("A", "A"), SftpPartner("B", "B"), SftpPartner("C", "C")), participants=()
    )
    cycle(con, dest, SETTLED)
    (owed,) = rows(store, "C", "missing-intervals.csv")
    assert (owed["meter_id"], owed["windows"], owed["events"]) == ("m-1", "lookback", "e1")
    assert owed["window_start_utc"] == "2025-08-14T23:00:00Z"
    assert rows(store, "A", "missing-intervals.csv") == []  # A can't upload C's days
    assert not store.exists("C/performance/index.csv")  # C has no meter in the event: no statement
    # A's explanation lists every look-back day of m-1, but C's days without their load
    days = {r["day"]: r for r in rows(store, "A", f"{EVENT}/V1/explanation.csv") if r["meter_id"] == "m-1"}
    assert days["2025-08-15"]["event_window_mean_kwh"] == "" and days["2025-08-15"]["outcome"] == "SELECTED"
    assert days["2025-08-14"]["outcome"] == "MISSING_SLOTS"
    assert float(days["2025-08-18"]["event_window_mean_kwh"]) == 1.0
    # once every statement of the event is FINAL its baselines no longer change: nothing is owed any more
    cycle(con, dest, local(EVENT_DAY, 17) + dt.timedelta(days=60))
    assert rows(store, "C", "missing-intervals.csv") == []


@pytest.mark.parametrize("second_half, shares", [(0.75, (0.0, 0.0)), (0.25, (-1.0, 1.5))])
def test_event_clip_is_the_meters_and_shares_add_up_to_settlement(world, second_half, shares):
    con, store, dest = world
    run(con, "UPDATE programs SET clip = 'event'")
    # m-2: A's half (16:00, 16:15) at 1.5 (reduction -0.5 each), B's half at `second_half`
    for minute, v in ((0, 1.5), (15, 1.5), (30, second_half), (45, second_half)):
        run(
            con,
            "UPDATE interval_readings SET energy_net_kwh = ? WHERE meter_id = 'm-2' AND interval_start_utc = ?",
            [v, local(EVENT_DAY, 16, minute)],
        )
    cycle(con, dest, SETTLED)
    a = {r["meter_id"]: r for r in rows(store, "A", f"{EVENT}/V1/meters.csv")}
    (b,) = rows(store, "B", f"{EVENT}/V1/meters.csv")
    # meter total -1.0 + 0.5 = -0.5 -> clipped to 0 for both; -1.0 + 1.5 = 0.5 -> each its own sum
    assert (float(a["m-2"]["reduction_kwh"]), float(b["reduction_kwh"])) == shares
    from leap_orchestration.settlement.performance import rebuild_event_performance

    rebuild_event_performance(con, SETTLED)
    (settled,) = con.execute("SELECT reduction_kwh FROM event_performance WHERE meter_id = 'm-2'").fetchone()
    assert sum(shares) == pytest.approx(settled)


def test_each_share_has_its_own_status(world):
    con, store, dest = world
    # A's 16:15 of m-2 is missing: A's share is MISSING_ACTUALS, B's share (16:30, 16:45) is complete
    run(
        con,
        "DELETE FROM interval_readings WHERE meter_id = 'm-2' AND interval_start_utc = ?",
        [local(EVENT_DAY, 16, 15)],
    )
    cycle(con, dest, SETTLED)
    a = {r["meter_id"]: r for r in rows(store, "A", f"{EVENT}/V1/meters.csv")}
    (b,) = rows(store, "B", f"{EVENT}/V1/meters.csv")
    assert a["m-2"]["status"] == "MISSING_ACTUALS" and "1 of 2 event intervals missing" in a["m-2"]["reason"]
    assert (b["status"], b["reason"]) == ("OK", "")


def test_a_deadline_change_issues_a_version_with_the_new_deadline(world):
    con, store, dest = world
    cycle(con, dest, SETTLED)
    run(con, "UPDATE programs SET data_deadline = INTERVAL 90 DAY")
    run(con, "INSERT INTO config_loads VALUES ('fp-2', ?, 0, 0, 0)", [LATER])
    report = cycle(con, dest, LATER)
    assert ("A", "event/p/e1", 2) in {(i["partner"], i["statement"], i["version"]) for i in report.issued}
    summary = json.loads(read(store, "A", f"{EVENT}/V2/summary.json"))
    assert summary["data_deadline_utc"] == "2025-11-19T00:00:00Z"
    assert summary["changes"]["causes"] == [
        {"kind": "configuration_change", "fingerprint": "fp-2", "loaded_at": "2025-08-22T01:00:00Z"}
    ]


def test_a_partner_without_a_channel_gets_its_statements_once_it_has_one(world):
    con, store, dest = world
    dest.properties = Properties(
        sftp_partners=(SftpPartner("A", "A"),), participants=()
    )  # B has no login yet
    report = cycle(con, dest, SETTLED)
    assert report.undeliverable == {"B"} and {i["partner"] for i in report.issued} == {"A"}
    dest.properties = Properties(
        sftp_partners=(SftpPartner("A", "A"), SftpPartner("B", "B")), participants=()
    )
    report = issue_statements(con, dest, SETTLED + dt.timedelta(hours=1))
    assert {(i["partner"], i["version"]) for i in report.issued} == {("B", 1)}
    assert json.loads(read(store, "B", f"{EVENT}/latest.json"))["version"] == 1

"""No file can stop intake: hostile content, names, internal errors and crashes each end that file in failed/
with a documented code, and the other files go on. Memory stays under 2 GB on every hostile file."""

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import HEADER, csv_text, good_row, partner_meter
from hostile_files import repeated_lines, zeros_without_newline
from hypothesis import given, settings
from hypothesis import strategies as st

from leap_orchestration.intake import layout, reader
from leap_orchestration.intake import process as process_module
from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.header import parse_header
from leap_orchestration.intake.limits import IntakeLimits
from leap_orchestration.intake.process import MAX_ATTEMPTS, process_upload
from leap_orchestration.intake.validate import validate_upload
from leap_orchestration.stores import LocalLandingStore
from leap_orchestration.warehouse import intake_tables as tables

PARTNER = "sunrise-energy"
INBOX = f"{PARTNER}/interval-data/"
REPO = Path(__file__).resolve().parents[1]
TWO_GB = 2 * 1024**3


@pytest.fixture
def meter():
    return partner_meter(PARTNER).meter_id


@pytest.fixture
def store(leap_home):
    return LocalLandingStore(leap_home / "landing")


def check(meters_of, data: bytes, name="f.csv", **kw):
    report = validate_upload(io.BytesIO(data), name, meters_of(PARTNER), **kw)
    return [(f.line, f.column, f.code) for f in report.details], report


def drop(store, name: str, data: bytes) -> None:
    store.write_bytes(INBOX + name, data)
    past = time.time() - 60
    os.utime(store.path(INBOX + name), (past, past))


def codes(store, name: str) -> tuple[str, list[str]]:
    status = json.loads(store.read_bytes(layout.status_key(INBOX, name)))
    errors = store.read_bytes(
        f"{layout.result_dir(INBOX, 'failed', name)}{status['job_id']}.errors.csv"
    ).decode()
    return status["status"], [row.split(",")[2] for row in errors.splitlines()[1:]]


# ---------------------------------------------------------------- content


def test_cr_only_line_endings_read_like_any_other(meters_of, meter):
    """Excel for Mac still writes CR-only files: rows, errors and their line numbers as with LF."""
    rows = [
        good_row(meter),
        good_row(meter, consumed="x", start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z"),
    ]
    found, report = check(meters_of, csv_text(*rows).replace(b"\n", b"\r"))
    assert found == [(3, "energy_consumed_kwh", "CON_0002")] and report.lines_parsed == 2
    found, _ = check(meters_of, b"meter_uuid,interval_start_time_utc\rx,y\r")  # the finding's own repro
    assert (2, "meter_uuid", "MTR_0002") in found


def test_header_field_over_the_csv_module_limit(meters_of):
    found, report = check(meters_of, b"meter_uuid," + b"a" * 140_000 + b"\nx,y\n")
    assert found == [(1, "", "LIN_0004")] and not report.valid


def test_header_unreadable_as_csv_is_a_finding(meters_of):
    """A CR inside the first line of an LF file: csv raised `_csv.Error` and stopped the whole intake step."""
    found, _ = check(meters_of, b"meter_uuid,interval_start_time_utc\rjunk,more\nx,y\n")
    assert found == [(1, "", "HDR_0001")]


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 20])
def test_long_line_is_skipped_and_the_rest_still_checked(meter, chunk):
    """A line over the limit is LIN_0004 wherever the chunk edges fall (and is never held whole)."""
    header = parse_header(HEADER.encode())
    limits = IntakeLimits(max_line_bytes=200)
    body = (
        good_row(meter) + "\n" + "9" * 5000 + "\n" + good_row(meter, consumed="x") + "\n" + "7" * 300
    ).encode()
    chunks = list(reader.iter_chunks(io.BytesIO(body), header, chunk_bytes=chunk, limits=limits))
    findings = [(f.line, f.code) for c in chunks for f in c.findings]
    assert findings == [(3, "LIN_0004"), (5, "LIN_0004")]
    assert [line for c in chunks for line in c.frame["line"]] == [2, 4]


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from([b"a,b", b"", b"x" * 60, b"y" * 130, b'"q', b"\xef\xbb\xbfm,n"]), max_size=12
    ),
    chunk=st.integers(1, 200),
)
def test_chunked_reading_with_long_lines_agrees_with_the_exact_reader(lines, chunk):
    """Long lines dropped as they are read, wherever block edges fall (a line ending exactly at a block's end
    once made the rest of the file look empty), give the exact reader's rows and findings."""
    header = parse_header(b"meter_uuid,interval_start_time_utc")
    limits = IntakeLimits(max_line_bytes=50)
    body = b"".join(line + b"\n" for line in lines)
    chunks = list(reader.iter_chunks(io.BytesIO(body), header, chunk_bytes=chunk, limits=limits))
    whole = reader._parse_exact(body, 2, header, limits=limits)
    combined = pl.concat([c.frame for c in chunks]) if chunks else whole.frame.clear()
    assert combined.equals(whole.frame)
    assert [(f.line, f.code) for c in chunks for f in c.findings] == [
        (f.line, f.code) for f in whole.findings
    ]


def test_a_bom_at_a_line_start_reads_the_same_on_any_line(meters_of, meter):
    """polars strips a BOM at the start of its buffer: a line starting with one is judged like any other line."""
    bom = "\ufeff"
    rows = [bom + good_row(meter), good_row(meter, start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z")]
    first, _ = check(meters_of, csv_text(*rows))
    second, _ = check(meters_of, csv_text(*reversed(rows)))
    assert [code for _, _, code in first] == [code for _, _, code in second] == ["MTR_0002"]


def test_flood_of_bad_lines_is_counted_exactly(meters_of):
    """A million short bad lines: exact counts in the feedback, details capped, no per-line objects kept."""
    found, report = check(meters_of, HEADER.encode() + b"\n" + b"x\n" * 1_000_000)
    assert report.counts[("", "LIN_0001")] == 1_000_000 and report.error_lines == 1_000_000
    assert len(found) == 10_000 and found[0] == (2, "", "LIN_0001")


def test_line_count_and_time_limits(meters_of, meter):
    rows = [
        good_row(meter, start=f"2024-04-01T{h:02d}:00:00Z", end=f"2024-04-01T{h:02d}:15:00Z")
        for h in range(6)
    ]
    found, _ = check(meters_of, csv_text(*rows), limits=IntakeLimits(max_lines=5))
    assert (0, "", "FIL_0007") in found
    found, _ = check(meters_of, csv_text(*rows), limits=IntakeLimits(max_seconds=0))
    assert found == [(0, "", "FIL_0008")]


def test_expanded_size_limit_applies_to_plain_files_too(meters_of, meter):
    found, _ = check(meters_of, csv_text(good_row(meter)) * 20, limits=IntakeLimits(max_expanded_bytes=1000))
    assert (0, "", "FIL_0004") in found


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("length", [201, 251, 255])
def test_overlong_name_fails_with_its_results_readable(store, warehouse, meter, length):
    """Names of 251-255 bytes made status/<name>.json too long for the file system and blocked the inbox."""
    name = "n" * (length - 4) + ".csv"
    drop(store, name, csv_text(good_row(meter)))
    drop(store, "after.csv", csv_text(good_row(meter)))
    outcomes = {
        o.upload.obj.name: o.status
        for o in (process_upload(store, warehouse, u) for u in pending_uploads(store))
    }
    assert outcomes == {name: "FAILED", "after.csv": "COMPLETED"}
    assert codes(store, name) == ("FAILED", ["FIL_0009"])
    short = layout.result_name(name)
    assert len(short.encode()) < 200 and store.exists(f"{INBOX}failed/{short}/{short}")
    drop(
        store, name, csv_text(good_row(meter))
    )  # the same long name again: the earlier original is set aside
    assert [process_upload(store, warehouse, u).status for u in pending_uploads(store)] == ["FAILED"]
    assert pending_uploads(store) == []


# ---------------------------------------------------------------- our faults


def test_internal_error_fails_that_file_and_the_others_go_on(store, warehouse, meter, monkeypatch, caplog):
    real = process_module.validate_upload

    def broken(stream, name, *args, **kw):
        if name == "boom.csv":
            raise RuntimeError("a bug in a rule")
        return real(stream, name, *args, **kw)

    monkeypatch.setattr(process_module, "validate_upload", broken)
    drop(store, "boom.csv", csv_text(good_row(meter)))
    drop(store, "fine.csv", csv_text(good_row(meter)))
    outcomes = {
        o.upload.obj.name: o.status
        for o in (process_upload(store, warehouse, u) for u in pending_uploads(store))
    }
    assert outcomes == {"boom.csv": "FAILED", "fine.csv": "COMPLETED"}
    assert codes(store, "boom.csv") == ("FAILED", ["SYS_0001"])
    assert store.exists(INBOX + "failed/boom.csv/boom.csv")
    assert "a bug in a rule" in caplog.text  # operators get the traceback


def test_a_file_that_keeps_killing_its_run_fails_after_three_tries(store, warehouse, meter):
    """A run killed mid-check (OOM) leaves the row PROCESSING; the third such start ends the file (SYS_0002)."""
    drop(store, "killer.csv", csv_text(good_row(meter)))
    upload = pending_uploads(store)[0]
    with warehouse.connect() as con:
        for _ in range(MAX_ATTEMPTS):  # what three killed runs leave behind
            process_module._start(con, upload, run_id="killed")
        assert tables.get_upload(con, upload.upload_id)["attempts"] == MAX_ATTEMPTS
    assert process_upload(store, warehouse, upload).status == "FAILED"
    assert codes(store, "killer.csv") == ("FAILED", ["SYS_0002"])


def test_status_result_keys_resolve_on_the_partners_channel(store, warehouse, meter):
    """Over SFTP the partner's root is <partner>/: result keys are given relative to it."""
    drop(store, "bad.csv", csv_text(good_row(meter, consumed="x")))
    process_upload(store, warehouse, pending_uploads(store)[0])
    status = json.loads(store.read_bytes(INBOX + "status/bad.csv.json"))
    assert status["result_keys"] and all(
        k.startswith("interval-data/failed/bad.csv/") for k in status["result_keys"]
    )
    assert all(store.exists(f"{PARTNER}/{k}") for k in status["result_keys"])


def test_two_processes_on_one_home_never_crash_each_other(leap_home, store, warehouse, meter):
    """Two intake processes (as two `materialize` runs with different instances) over the same inbox."""
    for i in range(30):
        drop(store, f"f{i:02d}.csv", csv_text(good_row(meter, consumed=str(i))))
    script = textwrap.dedent(f"""
        from leap_orchestration.intake.discovery import pending_uploads
        from leap_orchestration.intake.process import process_upload
        from leap_orchestration.stores import LocalLandingStore
        from leap_orchestration.warehouse import Warehouse
        store, wh = LocalLandingStore({str(leap_home / "landing")!r}), Warehouse({str(leap_home / "warehouse.duckdb")!r})
        for u in pending_uploads(store):
            process_upload(store, wh, u)
    """)
    env = {**os.environ, "LEAP_DUCKDB_LOCK_WAIT_SECONDS": "120"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    assert pending_uploads(store) == []
    with warehouse.connect(read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT file_name) FROM uploads WHERE status = 'COMPLETED'"
        ).fetchall() == [(30, 30)]
    assert all(store.exists(f"{INBOX}accepted/f{i:02d}.csv/f{i:02d}.csv") for i in range(30))


# ---------------------------------------------------------------- memory on hostile files (built by streaming)


def _peak_rss(args: list[str], env: dict) -> tuple[int, str, int]:
    """Run a command in a fresh process and return (exit code, stdout, the command's peak RSS in bytes)."""
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(r.stdout); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, timeout=600
    )
    peak_kb, code = done.stderr.strip().splitlines()[-1].split()
    return int(code), done.stdout, int(peak_kb) * 1024


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["zeros", "short_valid_lines", "bad_lines", "quoted_lines"])
def test_hostile_file_memory_stays_under_two_gb(tmp_path, leap_home, meter, kind):
    """The pre-flight CLI on each bomb: the documented code, exit 1, peak RSS < 2 GB."""
    path = tmp_path / f"{kind}.csv.gz"
    if kind == "zeros":  # a header, then 5 GB without a line end
        zeros_without_newline(path, expanded_gb=5)
        expected = "FIL_0004"
    elif kind == "short_valid_lines":  # 10M+ valid lines, 7 MB compressed
        repeated_lines(path, (good_row(meter) + "\n").encode(), 10_000_100)
        expected = "FIL_0007"
    elif kind == "bad_lines":
        repeated_lines(path, b"x\n", 10_000_100)
        expected = "FIL_0007"
    else:
        repeated_lines(path, b'"\n', 2_000_000)
        expected = "LIN_0003"
    cli = str(Path(sys.executable).parent / "leap-orchestration")
    code, out, peak = _peak_rss([cli, "validate", str(path), "--partner", PARTNER], os.environ.copy())
    assert code == 1 and f",{expected}," in out
    assert peak < TWO_GB, f"peak RSS {peak / 1024**2:.0f} MB"


@pytest.mark.slow
def test_thousands_of_unknown_columns_stay_under_two_gb(tmp_path, leap_home, meter):
    """Unknown columns are only a warning: they are never parsed, so a wide file costs no more than a narrow one
    (2,000 extra columns over 64 MB peaked at 3.4 GB before)."""
    extra = ",".join(f"x{i}" for i in range(2000))
    line = (good_row(meter) + "," + ",".join("1" * 2000) + "\n").encode()
    path = tmp_path / "wide.csv"
    with path.open("wb") as fh:
        fh.write(f"{HEADER},{extra}\n".encode())
        for _ in range(64 * 1024**2 // len(line)):
            fh.write(line)
    cli = str(Path(sys.executable).parent / "leap-orchestration")
    code, out, peak = _peak_rss([cli, "validate", str(path), "--partner", PARTNER], os.environ.copy())
    assert (
        code == 0 and out.strip() == "line,column,code,message"
    )  # valid: unknown columns and repeats only warn
    assert peak < TWO_GB, f"peak RSS {peak / 1024**2:.0f} MB"


@pytest.mark.slow
def test_pipeline_memory_on_a_flood_of_duplicates(tmp_path, leap_home, store, warehouse, meter):
    """The pipeline's own path (warehouse connection, duplicate detection) on 3M identical lines."""
    repeated_lines(tmp_path / "dups.csv.gz", (good_row(meter) + "\n").encode(), 3_000_000)
    drop(store, "dups.csv.gz", (tmp_path / "dups.csv.gz").read_bytes())
    script = textwrap.dedent(f"""
        from leap_orchestration.intake.discovery import pending_uploads
        from leap_orchestration.intake.process import process_upload
        from leap_orchestration.stores import LocalLandingStore
        from leap_orchestration.warehouse import Warehouse
        store, wh = LocalLandingStore({str(leap_home / "landing")!r}), Warehouse({str(leap_home / "warehouse.duckdb")!r})
        print(*[(o.status, o.rows) for o in (process_upload(store, wh, u) for u in pending_uploads(store))])
    """)
    code, out, peak = _peak_rss([sys.executable, "-c", script], os.environ.copy())
    assert code == 0 and "('COMPLETED', 3000000)" in out
    assert peak < TWO_GB, f"peak RSS {peak / 1024**2:.0f} MB"
    feedback = store.read_bytes(f"{INBOX}accepted/dups.csv.gz/{pending_job(warehouse)}.feedback").decode()
    assert "DUP_0002 line: 2999999 warnings" in feedback


def pending_job(warehouse) -> str:
    with warehouse.connect(read_only=True) as con:
        return con.execute("SELECT job_id FROM uploads").fetchall()[0][0]


def test_a_store_fault_leaves_the_file_pending_not_failed(store, warehouse, meter, monkeypatch):
    """A transient store error while reading is not the file's fault: no SYS_0001, no attempt counted."""
    drop(store, "good.csv", csv_text(good_row(meter)))
    upload = pending_uploads(store)[0]
    real_open = store.open_read

    def flaky(key):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(store, "open_read", flaky)
    with pytest.raises(process_module.StoreUnavailable):
        process_upload(store, warehouse, upload)
    monkeypatch.setattr(store, "open_read", real_open)
    with warehouse.connect(read_only=True) as con:
        assert tables.get_upload(con, upload.upload_id)["attempts"] == 0
    assert process_upload(store, warehouse, upload).status == "COMPLETED"


def test_a_crash_while_setting_aside_an_earlier_original_is_finished_by_the_rerun(store, warehouse, meter):
    """The re-upload of a processed name sets the earlier original aside (link, then unlink); a crash between
    the two left the aside copy in place and every re-run failed with FileExistsError."""
    drop(store, "same.csv", csv_text(good_row(meter)))
    assert process_upload(store, warehouse, pending_uploads(store)[0]).status == "COMPLETED"
    drop(store, "same.csv", csv_text(good_row(meter, consumed="7")))
    again = pending_uploads(store)[0]
    target = f"{INBOX}accepted/same.csv/same.csv"
    real_move = store.move

    def crash_after_link(src, dst, **kw):
        if src == target:
            os.link(store.path(src), store.path(dst))  # the first half of the move, then the process dies
            raise SystemExit("killed")
        return real_move(src, dst, **kw)

    store.move = crash_after_link
    with pytest.raises(SystemExit):
        process_upload(store, warehouse, again)
    store.move = real_move
    assert process_upload(store, warehouse, again).status == "COMPLETED"
    folder = sorted(p.name for p in store.path(f"{INBOX}accepted/same.csv").iterdir())
    assert folder.count("same.csv") == 1 and sum(n.endswith(".same.csv") for n in folder) == 1
    assert store.read_bytes(target) == csv_text(good_row(meter, consumed="7"))


def test_a_late_queued_never_overwrites_the_final_status(store, warehouse, meter):
    """A sensor tick that listed a file just before a run finished it used to write QUEUED over the final
    status, and nothing ever corrected it."""
    drop(store, "late.csv", csv_text(good_row(meter)))
    listed = pending_uploads(store)  # the tick lists ...
    assert process_upload(store, warehouse, listed[0]).status == "COMPLETED"  # ... a run finishes it ...
    process_module.mark_queued(store, listed)  # ... then the tick marks what it listed
    assert json.loads(store.read_bytes(INBOX + "status/late.csv.json"))["status"] == "COMPLETED"

    drop(store, "later.csv", csv_text(good_row(meter)))
    upload = pending_uploads(store)[0]
    real_move = store.move

    def queued_just_before_the_move(src, dst, **kw):  # the tick's write lands between status and move
        if src == upload.obj.key:
            process_module.write_pending_status(store, upload, "QUEUED")
        return real_move(src, dst, **kw)

    store.move = queued_just_before_the_move
    assert process_upload(store, warehouse, upload).status == "COMPLETED"
    assert json.loads(store.read_bytes(INBOX + "status/later.csv.json"))["status"] == "COMPLETED"

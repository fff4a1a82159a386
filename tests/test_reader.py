"""File-level faults and the reader's exact line numbers (BOM, CRLF, quotes, blank lines, chunk edges, gzip)."""

import gzip
import io

import polars as pl
import pytest
from conftest import HEADER, csv_text, good_row, partner_meter
from hypothesis import given, settings
from hypothesis import strategies as st

from leap_orchestration.intake import reader
from leap_orchestration.intake.header import parse_header
from leap_orchestration.intake.limits import IntakeLimits
from leap_orchestration.intake.validate import validate_upload

PARTNER = "sunrise-energy"


@pytest.fixture
def meter():
    return partner_meter(PARTNER).meter_id


def run(meters_of, data: bytes, name="f.csv", **kw):
    report = validate_upload(io.BytesIO(data), name, meters_of(PARTNER), **kw)
    return [(f.line, f.column, f.code) for f in report.details], report


def test_bom_and_crlf_are_accepted(meters_of, meter):
    data = b"\xef\xbb\xbf" + csv_text(
        good_row(meter), good_row(meter, start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z")
    ).replace(b"\n", b"\r\n")
    found, report = run(meters_of, data)
    assert found == [] and report.rows_staged == 2


def test_quoted_fields_and_blank_lines_keep_line_numbers(meters_of, meter):
    rows = [
        f'"{meter}","2024-04-01T11:00:00Z","2024-04-01T11:15:00Z","","5.01","0","true","CA"',
        "",
        good_row(meter, consumed="x", start="2024-04-01T11:15:00Z", end="2024-04-01T11:30:00Z"),
        '"unterminated,2024',
        "a,b",
    ]
    found, _ = run(meters_of, csv_text(*rows))
    assert (4, "energy_consumed_kwh", "CON_0002") in found
    assert (5, "", "LIN_0003") in found and (6, "", "LIN_0001") in found
    assert all(line != 2 for line, _, _ in found)


def test_more_fields_than_header(meters_of, meter):
    found, _ = run(meters_of, csv_text(good_row(meter) + ",extra"))
    assert found == [(2, "", "LIN_0002")]


def test_line_numbers_exact_across_chunks(meters_of, meter, monkeypatch):
    monkeypatch.setattr(reader, "CHUNK_BYTES", 300)
    rows = [
        good_row(
            meter,
            start=f"2024-04-01T{h:02d}:00:00Z",
            end=f"2024-04-01T{h:02d}:15:00Z",
            consumed="x" if h in (3, 17) else "1",
        )
        for h in range(20)
    ]
    found, report = run(meters_of, csv_text(*rows))
    assert found == [(5, "energy_consumed_kwh", "CON_0002"), (19, "energy_consumed_kwh", "CON_0002")]
    assert report.lines_parsed == 20


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (b"", "FIL_0001", 0),
        (b"\n\n", "FIL_0001", 0),
        (HEADER.encode() + b"\n", "FIL_0006", 0),
        (b"5be80922-2345-4ed8-ae70-e7d8114cd2a3,2024-04-01T11:00:00Z\n", "HDR_0001", 1),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "FIL_0002", 1),
        (HEADER.encode() + b"\n\xff\xfe,bad\n", "FIL_0002", 2),
        (b"\x1f\x8b\x08\x00corrupt-gzip", "FIL_0003", 0),
    ],
)
def test_file_level_faults(meters_of, data, code, line):
    found, report = run(meters_of, data)
    assert (line, code) in [(f[0], f[2]) for f in found]
    assert not report.valid


def test_gzip_accepted_and_bomb_refused(meters_of, meter):
    data = gzip.compress(csv_text(good_row(meter)))
    found, report = run(meters_of, data, name="f.csv.gz")
    assert found == [] and report.rows_staged == 1
    bomb = gzip.compress(HEADER.encode() + b"\n" + b"0" * 10_000_000)
    report = validate_upload(
        io.BytesIO(bomb), "b.csv.gz", meters_of(PARTNER), limits=IntakeLimits(max_expanded_bytes=1000)
    )
    assert [f.code for f in report.details] == ["FIL_0004"]


def test_header_problems(meters_of, meter):
    header = HEADER.replace("meter_uuid", "meter_id").replace("region", "regoin") + ",notes"
    found, report = run(meters_of, csv_text(good_row(meter) + ",hello", header=header))
    assert found == [(1, "regoin", "HDR_0004")]  # a misspelt column fails; an unknown one is a warning
    assert report.counts[("notes", "HDR_0003")] == 1
    found, _ = run(meters_of, csv_text("a,b", header="meter_uuid,meter_uuid"))
    assert (1, "meter_uuid", "HDR_0002") in found and (1, "interval_start_time_utc", "STM_0001") in found


def test_wrong_file_name(meters_of, meter):
    found, _ = run(meters_of, csv_text(good_row(meter)), name="data.xlsx")
    assert found == [(0, "", "FIL_0005")]


# Fields that stress the reader: quotes, commas, blanks, whitespace, CR, NUL, non-ASCII and invalid UTF-8.
_FIELDS = st.sampled_from(
    [b"", b"a", b" b ", b"\t", b"1.5", b'"q"', b'"un', b'"x,y"', b"\xc3\xa9", b"\x00", b"\xff", b"\r", b" "]
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.lists(_FIELDS, min_size=1, max_size=10), max_size=30),
    crlf=st.booleans(),
    first=st.integers(2, 10**6),
)
def test_fast_reader_agrees_with_exact_reader(lines, crlf, first):
    """Whatever mix of good and odd lines, the vectorised reader gives the exact reader's rows and findings."""
    header = parse_header(HEADER.encode())
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(b",".join(fields) + end for fields in lines)
    fast, exact = reader._parse(body, first, header), reader._parse_exact(body, first, header)
    assert fast.frame.sort("line").equals(exact.frame.sort("line"))
    key = lambda f: (f.line, f.code, f.message)  # noqa: E731
    assert sorted(fast.findings, key=key) == sorted(exact.findings, key=key)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.lists(_FIELDS, min_size=1, max_size=10), max_size=30), chunk=st.integers(1, 200))
def test_chunked_reading_agrees_with_reading_whole(lines, chunk):
    """Chunk edges (any size, growing from the first) never change rows, findings or line numbers."""
    header = parse_header(HEADER.encode())
    body = b"".join(b",".join(fields) + b"\n" for fields in lines)
    chunks = list(reader.iter_chunks(io.BytesIO(body), header, chunk_bytes=chunk))
    whole = reader._parse_exact(body, 2, header)
    frames = [c.frame for c in chunks]
    combined = pl.concat(frames) if frames else whole.frame.clear()
    assert combined.equals(whole.frame)
    assert [f for c in chunks for f in c.findings] == whole.findings

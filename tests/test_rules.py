"""One test per rule, with good and bad values (docs/error-codes.md)."""

import datetime as dt
import io

import pytest
from conftest import csv_text, good_row, partner_meter

from leap_orchestration.intake.validate import validate_upload

PARTNER = "sunrise-energy"


def codes_for(meters_of, *rows, header=None, name="f.csv", partner=PARTNER, now=None):
    data = csv_text(*rows) if header is None else csv_text(*rows, header=header)
    report = validate_upload(io.BytesIO(data), name, meters_of(partner), now=now)
    return sorted({(f.line, f.column, f.code) for f in report.details}), report


@pytest.fixture
def meter():
    return partner_meter(PARTNER).meter_id


def test_good_row_is_valid(meters_of, meter):
    found, report = codes_for(meters_of, good_row(meter))
    assert found == [] and report.valid and report.rows_staged == 1


@pytest.mark.parametrize(
    ("field", "value", "code", "column"),
    [
        ("start", "2024-04-01 11:00:00Z", "STM_0002", "interval_start_time_utc"),
        ("start", "2024-04-01T11:00:00", "STM_0002", "interval_start_time_utc"),  # no offset
        ("start", "2023-02-29T00:00:00Z", "STM_0002", "interval_start_time_utc"),  # not a leap year
        ("start", "2024-04-01T11:05:00Z", "STM_0003", "interval_start_time_utc"),
        ("start", "", "STM_0001", "interval_start_time_utc"),
        ("end", "2024-04-01T11:15:30Z", "ETM_0003", "interval_end_time_utc"),
        ("end", "2024-04-01T11:30:00Z", "DTR_0003", "interval_end_time_utc"),
        ("end", "yesterday", "ETM_0002", "interval_end_time_utc"),
        ("end", "", "ETM_0001", "interval_end_time_utc"),
        ("consumed", "abc", "CON_0002", "energy_consumed_kwh"),
        ("consumed", "NaN", "CON_0002", "energy_consumed_kwh"),
        ("consumed", "inf", "CON_0002", "energy_consumed_kwh"),
        ("consumed", "1e999", "CON_0002", "energy_consumed_kwh"),
        ("consumed", "0x10", "CON_0002", "energy_consumed_kwh"),
        ("consumed", "-0.5", "CON_0003", "energy_consumed_kwh"),
        ("generated", "?", "GEN_0002", "energy_generated_kwh"),
        ("generated", "-1", "GEN_0003", "energy_generated_kwh"),
        ("final", "yes", "FNL_0002", "final"),
        ("region", "C1", "REG_0002", "region"),
        ("region", "ca", "REG_0003", "region"),
        ("region", "CAL", "REG_0003", "region"),
    ],
)
def test_bad_value(meters_of, meter, field, value, code, column):
    kwargs = {field: value}
    found, report = codes_for(meters_of, good_row(meter, **kwargs))
    assert (2, column, code) in found
    assert not report.valid
    message = next(f.message for f in report.details if f.code == code)
    assert value == "" or value in message  # messages quote the offending value


@pytest.mark.parametrize(
    ("kwargs",),
    [
        ({"consumed": "1e3", "generated": "0"},),  # scientific notation is a number
        ({"consumed": ".5", "generated": "0."},),
        ({"final": "TRUE"},),
        ({"final": ""},),
        ({"region": ""},),
        ({"start": "2024-04-01T04:00:00-07:00", "end": "2024-04-01T11:15:00Z"},),  # offset converted to UTC
        ({"start": "2024-02-29T23:45:00Z", "end": "2024-03-01T00:00:00Z"},),  # leap day
        # DST end in Los Angeles: 01:45 PDT to 01:00 PST is exactly 15 minutes
        ({"start": "2024-11-03T01:45:00-07:00", "end": "2024-11-03T01:00:00-08:00"},),
        ({"start": "2024-04-01T11:00:00.000Z", "end": "2024-04-01T11:15:00+00:00"},),
    ],
)
def test_good_values(meters_of, meter, kwargs):
    found, _ = codes_for(meters_of, good_row(meter, **kwargs))
    assert found == []


def test_future_interval_rejected(meters_of, meter):
    now = dt.datetime(2024, 4, 1, 11, 10, tzinfo=dt.UTC)
    found, _ = codes_for(meters_of, good_row(meter), now=now)
    assert (2, "interval_start_time_utc", "STM_0003") in found and (
        2,
        "interval_end_time_utc",
        "ETM_0003",
    ) in found
    # the boundary: an interval that ended exactly now is in the past
    found, _ = codes_for(meters_of, good_row(meter), now=dt.datetime(2024, 4, 1, 11, 15, tzinfo=dt.UTC))
    assert found == []


@pytest.mark.parametrize(
    ("net", "consumed", "generated", "code"),
    [
        ("", "", "", "NRG_0001"),
        ("", "1", "", "NRG_0001"),
        ("1", "1", "", "NRG_0001"),
        ("1", "2", "0.5", "NRG_0003"),
    ],
)
def test_energy_sets(meters_of, meter, net, consumed, generated, code):
    found, _ = codes_for(meters_of, good_row(meter, net=net, consumed=consumed, generated=generated))
    assert (2, "", code) in found


@pytest.mark.parametrize(
    ("net", "consumed", "generated"), [("-2.5", "", ""), ("1.5", "2", "0.5"), ("1.5", "2", "0.5004")]
)
def test_valid_energy_sets(meters_of, meter, net, consumed, generated):
    found, _ = codes_for(meters_of, good_row(meter, net=net, consumed=consumed, generated=generated))
    assert found == []


def test_meter_rules(meters_of, meter):
    utility = partner_meter(PARTNER, source="utility").meter_id
    someone_elses = partner_meter("gridflex").meter_id
    found, report = codes_for(
        meters_of,
        good_row("not-a-uuid"),
        good_row("00000000-0000-0000-0000-000000000000"),
        good_row(utility),
        good_row(someone_elses),
        good_row(""),
    )
    assert (2, "meter_uuid", "MTR_0002") in found
    assert (3, "meter_uuid", "MTR_0003") in found
    assert (4, "meter_uuid", "OWN_0001") in found
    assert (5, "meter_uuid", "MTR_0003") in found  # another partner's meter looks like no meter at all
    assert (6, "meter_uuid", "MTR_0001") in found
    assert "gridflex" not in " ".join(f.message for f in report.details)


def test_meter_that_changed_partner(meters_of):
    from leap_orchestration.config.demo_config import TRANSFER_AT, TRANSFERRED_METER_NUMBER, demo_meter_id

    moved = demo_meter_id(TRANSFERRED_METER_NUMBER)
    before = (TRANSFER_AT - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before_end = (TRANSFER_AT - dt.timedelta(days=1) + dt.timedelta(minutes=15)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    after = (TRANSFER_AT + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after_end = (TRANSFER_AT + dt.timedelta(days=1, minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the new owner may upload after the transfer, not before
    found, _ = codes_for(
        meters_of,
        good_row(moved, start=after, end=after_end),
        good_row(moved, start=before, end=before_end),
        partner="voltstream",
    )
    assert found == [(3, "meter_uuid", "OWN_0003")]
    # the old owner no longer has it at upload time, even for intervals it owned
    found, _ = codes_for(meters_of, good_row(moved, start=before, end=before_end), partner="sunrise-energy")
    assert found == [(2, "meter_uuid", "OWN_0002")]


def test_duplicates(meters_of, meter):
    found, report = codes_for(meters_of, good_row(meter), good_row(meter), good_row(meter, consumed="6"))
    assert found == [(4, "", "DUP_0001")]
    assert report.counts[("", "DUP_0002")] == 1  # the identical repeat is only a warning
    found, report = codes_for(meters_of, good_row(meter), good_row(meter))
    assert found == [] and report.valid and report.rows_staged == 1


def test_every_error_is_found_and_counted(meters_of, meter):
    rows = [
        good_row(
            meter, consumed="x", region="zz", start=f"2024-04-0{d}T11:00:00Z", end=f"2024-04-0{d}T11:15:00Z"
        )
        for d in range(1, 6)
    ]
    found, report = codes_for(meters_of, *rows)
    assert report.error_count == 10 and report.error_lines == 5 and len(found) == 10


def test_errors_cap_keeps_counts_exact(meters_of, meter):
    import io as _io

    rows = [
        good_row(
            meter,
            consumed="x",
            start=f"2024-04-01T{h:02d}:{m:02d}:00Z",
            end=f"2024-04-01T{h + (m + 15) // 60:02d}:{(m + 15) % 60:02d}:00Z",
        )
        for h in range(0, 23)
        for m in (0, 15, 30, 45)
    ]
    report = validate_upload(_io.BytesIO(csv_text(*rows)), "f.csv", meters_of(PARTNER), cap=10)
    assert len(report.details) == 10 and report.error_count == len(rows) == report.error_lines

"""Deterministic demo configuration: 3 SFTP partners, 1 GCS participant, 52 meters, 4 programs.

The repo's committed `config/` folder is this module's output (a test keeps them byte-identical); to change
the demo, change this module and run `python -m leap_orchestration.config.demo_config config`.
Other demo code should pick meters via `load_configuration(...)` or `demo_meters()`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import quoteattr

from .xml_safety import NAMESPACE

# Fixed namespace so meter UUIDs are identical on every machine and every run.
DEMO_NAMESPACE = uuid.UUID("6f1c5f0e-3d2a-5b8e-9c41-0a7d2e4b8f10")
DEMO_PARTNERS = ("sunrise-energy", "voltstream", "gridflex")
DEMO_PARTICIPANT = "participant_1"
DEMO_CONNECTOR = "ext_conn1"
START = "2024-01-01T00:00:00Z"
# The GCS participant's meters come first (numbers 1-4) and are owned since 2021, so the data-upload guide's
# download example, participant_1/<connector>/standardized/3/2021-11-08T14:00:00, works on the demo.
PARTICIPANT_START = "2021-01-01T00:00:00Z"
# Meter number 9 (battery_005, California) moved from sunrise-energy to voltstream at this instant.
TRANSFERRED_METER_NUMBER = 9
# Every demo partner and the connector are expected to upload daily, as the data-upload guide recommends.
DEMO_UPLOAD_EVERY = "P1D"
TRANSFER_AT = datetime(2025, 6, 1, tzinfo=UTC)
_TRANSFER_AT_TEXT = "2025-06-01T00:00:00Z"

_HEADER = "<!-- Demo configuration written by leap_orchestration/config/demo_config.py: change that module, not this file. -->"


class DemoMeter(NamedTuple):
    file_name: str  # under meters/
    meter_number: int
    meter_id: str
    owner: str  # current owner (see ownerships for the history)
    source: str
    meter_type: str
    device_type: str
    customer_class: str
    region: str
    timezone: str
    programs: tuple[str, ...]
    ownerships: tuple[tuple[str, str, str | None], ...]  # (partner, from, to)
    enrolled_from: str


# (owner, count, meter_type, device_type, customer_class, source, region, timezone, programs)
_GROUPS = (
    (
        "participant_1",
        4,
        "utility_meter",
        "none",
        "commercial",
        "partner",
        "NY",
        "America/New_York",
        ("nyiso_commercial",),
    ),
    (
        "sunrise-energy",
        12,
        "device",
        "battery",
        "residential",
        "partner",
        "CA",
        "America/Los_Angeles",
        ("caiso_dsgs",),
    ),
    (
        "sunrise-energy",
        6,
        "device",
        "thermostat",
        "residential",
        "partner",
        "CA",
        "America/Los_Angeles",
        ("caiso_dsgs",),
    ),
    (
        "sunrise-energy",
        2,
        "device",
        "ev_charger",
        "residential",
        "partner",
        "CA",
        "America/Los_Angeles",
        ("caiso_dsgs",),
    ),
    ("sunrise-energy", 2, "utility_meter", "none", "residential", "utility", "CA", "America/Los_Angeles", ()),
    (
        "voltstream",
        8,
        "device",
        "battery",
        "residential",
        "partner",
        "MA",
        "America/New_York",
        ("ma_connected_solutions",),
    ),
    (
        "voltstream",
        2,
        "device",
        "battery",
        "commercial",
        "partner",
        "MA",
        "America/New_York",
        ("ma_connected_solutions",),
    ),
    ("voltstream", 1, "utility_meter", "none", "commercial", "utility", "MA", "America/New_York", ()),
    (
        "gridflex",
        8,
        "device",
        "thermostat",
        "residential",
        "partner",
        "IL",
        "America/Chicago",
        ("pjm_residential",),
    ),
    (
        "gridflex",
        4,
        "device",
        "ev_charger",
        "residential",
        "partner",
        "IL",
        "America/Chicago",
        ("pjm_residential",),
    ),
    ("gridflex", 2, "submeter", "none", "industrial", "partner", "IL", "America/Chicago", ()),
    ("gridflex", 1, "utility_meter", "none", "residential", "utility", "IL", "America/Chicago", ()),
)

# (id, name, baseline, channel, holidayCalendar, clip, events[(id, start, end, type)])
_PROGRAMS = (
    (
        "caiso_dsgs",
        "California DSGS (device-level)",
        "caiso_10in10",
        "net",
        "NERC",
        "none",
        (
            # 16:00-19:00 PDT on Wednesdays
            ("caiso_dsgs-2025-08-20", "2025-08-20T23:00:00Z", "2025-08-21T02:00:00Z", "emergency"),
            ("caiso_dsgs-2025-09-03", "2025-09-03T23:00:00Z", "2025-09-04T02:00:00Z", "emergency"),
        ),
    ),
    (
        "ma_connected_solutions",
        "Massachusetts ConnectedSolutions (batteries)",
        "no_baseline",
        "generated",
        "NERC",
        "none",
        (
            # 17:00-20:00 EDT
            ("ma_cs-2025-07-29", "2025-07-29T21:00:00Z", "2025-07-30T00:00:00Z", "capacity"),
            ("ma_cs-2025-08-20", "2025-08-20T21:00:00Z", "2025-08-21T00:00:00Z", "capacity"),
        ),
    ),
    (
        "pjm_residential",
        "PJM residential load management",
        "pjm_high4of5",
        "net",
        "NERC",
        "none",
        (
            # 15:00-18:00 EDT = 14:00-17:00 CDT
            ("pjm_res-2025-07-29", "2025-07-29T19:00:00Z", "2025-07-29T22:00:00Z", "load_management"),
            ("pjm_res-2025-08-13", "2025-08-13T19:00:00Z", "2025-08-13T22:00:00Z", "load_management"),
        ),
    ),
    (
        "nyiso_commercial",
        "NYISO commercial demand response",
        "nyiso_avg_day",
        "net",
        "NERC",
        "none",
        (
            # 14:00-18:00 EDT
            ("nyiso_com-2025-07-29", "2025-07-29T18:00:00Z", "2025-07-29T22:00:00Z", "capacity"),
            ("nyiso_com-2025-08-20", "2025-08-20T18:00:00Z", "2025-08-20T22:00:00Z", "capacity"),
        ),
    ),
)


# One summer season per program, in its region's local time (ConnectedSolutions pays on June-September).
_SEASON_OFFSET = {
    "caiso_dsgs": "-07:00",
    "ma_connected_solutions": "-04:00",
    "pjm_residential": "-05:00",
    "nyiso_commercial": "-04:00",
}


def demo_events() -> list[tuple[str, str, datetime, datetime]]:
    """(program id, event id, start, end) of every demo event."""
    return [
        (program_id, e, datetime.fromisoformat(start), datetime.fromisoformat(end))
        for program_id, *_, events in _PROGRAMS
        for e, start, end, _ in events
    ]


def demo_meter_id(meter_number: int) -> str:
    return str(uuid.uuid5(DEMO_NAMESPACE, f"demo-meter-{meter_number}"))


def demo_meters() -> list[DemoMeter]:
    """The demo meters in meter-number order (1..52)."""
    meters: list[DemoMeter] = []
    per_kind: dict[str, int] = {}
    for owner, count, meter_type, device_type, customer_class, source, region, tz, programs in _GROUPS:
        kind = device_type if meter_type == "device" else meter_type
        for _ in range(count):
            number = len(meters) + 1
            per_kind[kind] = per_kind.get(kind, 0) + 1
            start = PARTICIPANT_START if owner == DEMO_PARTICIPANT else START
            ownerships: tuple[tuple[str, str, str | None], ...] = ((owner, start, None),)
            current = owner
            if number == TRANSFERRED_METER_NUMBER:
                ownerships = ((owner, START, _TRANSFER_AT_TEXT), ("voltstream", _TRANSFER_AT_TEXT, None))
                current = "voltstream"
            meters.append(
                DemoMeter(
                    f"{kind}_{per_kind[kind]:03d}.xml",
                    number,
                    demo_meter_id(number),
                    current,
                    source,
                    meter_type,
                    device_type,
                    customer_class,
                    region,
                    tz,
                    programs,
                    ownerships,
                    start,
                )
            )
    return meters


def _attrs(**values: str | None) -> str:
    # Attribute names that are Python keywords are passed with a trailing underscore (from_).
    return " ".join(f"{k.rstrip('_')}={quoteattr(v)}" for k, v in values.items() if v is not None)


def _document(lines: list[str]) -> str:
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', _HEADER, *lines]) + "\n"


def properties_xml() -> str:
    names = {"sunrise-energy": "Sunrise Energy", "voltstream": "VoltStream", "gridflex": "GridFlex"}
    lines = [f'<properties xmlns="{NAMESPACE}">', "  <sftpPartners>"]
    # expectedUploadEvery is optional (default P1D, daily); written out so the demo shows where it goes
    lines += [
        f"    <partner {_attrs(id=p, name=names[p], expectedUploadEvery=DEMO_UPLOAD_EVERY)}/>"
        for p in DEMO_PARTNERS
    ]
    lines += [
        "  </sftpPartners>",
        "  <participants>",
        f"    <participant {_attrs(id=DEMO_PARTICIPANT, name='Participant 1')}>",
    ]
    connector = _attrs(
        id=DEMO_CONNECTOR,
        inboxPrefix=f"{DEMO_CONNECTOR}/",
        fileFormat="interval-csv-v1",
        schedule="hourly",
        outputBucket=DEMO_PARTICIPANT,
        expectedUploadEvery=DEMO_UPLOAD_EVERY,
    )
    lines += [f"      <connector {connector}/>", "    </participant>", "  </participants>", "</properties>"]
    return _document(lines)


def programs_xml() -> str:
    lines = [f'<programs xmlns="{NAMESPACE}">']
    for program_id, name, baseline, channel, calendar, clip, events in _PROGRAMS:
        attrs = _attrs(
            id=program_id, name=name, baseline=baseline, channel=channel, holidayCalendar=calendar, clip=clip
        )
        lines.append(f"  <program {attrs}>")
        offset = _SEASON_OFFSET[program_id]
        lines.append(
            f"    <season {_attrs(id='summer-2025', start=f'2025-06-01T00:00:00{offset}', end=f'2025-10-01T00:00:00{offset}')}/>"
        )
        lines += [f"    <event {_attrs(id=e, start=s, end=t, type=k)}/>" for e, s, t, k in events]
        lines.append("  </program>")
    lines.append("</programs>")
    return _document(lines)


def meter_xml(meter: DemoMeter) -> str:
    attrs = _attrs(
        id=meter.meter_id,
        meterNumber=str(meter.meter_number),
        source=meter.source,
        meterType=meter.meter_type,
        deviceType=meter.device_type,
        customerClass=meter.customer_class,
        region=meter.region,
        timezone=meter.timezone,
    )
    lines = [f'<meter xmlns="{NAMESPACE}"', f"       {attrs}>"]
    lines += [f"  <ownership {_attrs(partner=p, from_=f, to=t)}/>" for p, f, t in meter.ownerships]
    lines += [f"  <enrollment {_attrs(program=p, from_=meter.enrolled_from)}/>" for p in meter.programs]
    lines.append("</meter>")
    return _document(lines)


def _write_atomic(path: Path, text: str) -> None:
    # Write-then-rename so a sensor polling the folder never parses a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def demo_files() -> dict[str, str]:
    """Relative path -> text of every file of the demo configuration."""
    files = {"properties.xml": properties_xml(), "programs.xml": programs_xml()}
    files.update({f"meters/{m.file_name}": meter_xml(m) for m in demo_meters()})
    return files


def write_demo_configuration(target_dir: Path) -> Path:
    """Write the demo configuration into target_dir (created if needed); other files there are left alone."""
    target_dir = Path(target_dir)
    for rel, text in demo_files().items():
        _write_atomic(target_dir / rel, text)
    return target_dir


if __name__ == "__main__":
    print(write_demo_configuration(Path(sys.argv[1] if len(sys.argv) > 1 else "config")))

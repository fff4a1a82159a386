"""The per-meter-hour XML document (`bm:meterData`, schema in meter_data.xsd) and where it is published."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from leap_orchestration.config.xml_safety import safe_parser

NAMESPACE = "urn:leap-orchestration:meter-data:1"
SCHEMA_PATH = Path(__file__).with_name("meter_data.xsd")
HOUR_FORMAT = "%Y-%m-%dT%H:00:00"  # the object name of an hour: its UTC start, as in the guide's example


@dataclass(frozen=True)
class MeterHour:
    meter_uri: str
    meter_number: int
    start_utc: dt.datetime  # aware, on the hour
    usage_kwh: float  # net
    consumed_kwh: float | None  # None unless all four readings have it
    generated_kwh: float | None
    final: bool
    revision: int = 1

    @property
    def end_utc(self) -> dt.datetime:
        return self.start_utc + dt.timedelta(hours=1)


def object_key(connector_id: str, meter_number: int, hour_start_utc: dt.datetime) -> str:
    """`<connector>/standardized/<meter number>/<YYYY-MM-DDTHH:00:00>` inside the participant's bucket."""
    return f"{connector_id}/standardized/{meter_number}/{hour_start_utc.astimezone(dt.UTC).strftime(HOUR_FORMAT)}"


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kwh(value: float) -> str:
    # fixed-point, 6 decimals (1 mWh), trailing zeros dropped: an xs:decimal, never 1e-05 or 0.30000000000000004
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def render(hour: MeterHour, creator: str, created_at: dt.datetime) -> bytes:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<bm:meterData xmlns:bm="{NAMESPACE}">',
        f"  <bm:meterURI>{escape(hour.meter_uri)}</bm:meterURI>",
        f"  <bm:meterNumber>{hour.meter_number}</bm:meterNumber>",
        f"  <bm:startTime>{_utc(hour.start_utc)}</bm:startTime>",
        f"  <bm:endTime>{_utc(hour.end_utc)}</bm:endTime>",
        f'  <bm:usage unit="kWh">{_kwh(hour.usage_kwh)}</bm:usage>',
    ]
    if hour.consumed_kwh is not None:
        lines.append(f"  <bm:consumed>{_kwh(hour.consumed_kwh)}</bm:consumed>")
    if hour.generated_kwh is not None:
        lines.append(f"  <bm:generated>{_kwh(hour.generated_kwh)}</bm:generated>")
    lines += [
        f"  <bm:final>{'true' if hour.final else 'false'}</bm:final>",
        "  <bm:audit>",
        f"    <bm:creator>{escape(creator)}</bm:creator>",
        f"    <bm:creationDate>{_utc(created_at)}</bm:creationDate>",
        f"    <bm:revision>{hour.revision}</bm:revision>",
        "  </bm:audit>",
        "</bm:meterData>",
    ]
    return ("\n".join(lines) + "\n").encode()


@functools.cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), safe_parser()))


def parse(data: bytes) -> dict[str, str]:
    """Validate a downloaded document against the XSD (safely: no DTD, no entities) and return its fields."""
    root = etree.fromstring(data, safe_parser())
    schema = _schema()
    if not schema.validate(root):
        raise ValueError(f"not a valid bm:meterData document: {schema.error_log.last_error}")
    fields = {etree.QName(e).localname: (e.text or "") for e in root.iter() if e is not root and len(e) == 0}
    return fields

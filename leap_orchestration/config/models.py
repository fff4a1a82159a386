"""Immutable in-memory form of the XML configuration. Every datetime is tz-aware UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

# Mirrors of the XSD enumerations (a test keeps them equal), for code that branches on them.
SOURCES = ("partner", "utility")
METER_TYPES = ("utility_meter", "submeter", "device")
DEVICE_TYPES = (
    "battery",
    "thermostat",
    "ev_charger",
    "solar_inverter",
    "water_heater",
    "heat_pump",
    "other",
    "none",
)
CUSTOMER_CLASSES = ("residential", "commercial", "industrial")
BASELINE_PRESETS = (
    "caiso_10in10",
    "caiso_res_5in10",
    "pjm_high4of5",
    "pjm_same_day_3p2",
    "nyiso_avg_day",
    "nyiso_weather_sensitive",
    "miso_10day",
    "ercot_middle8of10",
    "no_baseline",
)
CHANNELS = ("net", "consumed", "generated")
CLIP_RULES = ("none", "event", "interval")
FILE_FORMATS = ("interval-csv-v1",)
SCHEDULES = ("hourly", "daily")
# How often a partner or connector is expected to upload (`expectedUploadEvery`): the data-upload guide
# recommends daily uploads; the loader accepts PT1H to P366D.
DEFAULT_UPLOAD_EVERY = timedelta(days=1)
UPLOAD_EVERY_RANGE = (timedelta(hours=1), timedelta(days=366))
# How long after an event's end a partner may still upload or correct its readings (`dataDeadline`): until then
# the event's numbers are preliminary. 60 days unless a program says otherwise; P1D to P366D.
DEFAULT_DATA_DEADLINE = timedelta(days=60)
DATA_DEADLINE_RANGE = (timedelta(days=1), timedelta(days=366))


def _require_aware(ts: datetime) -> datetime:
    # Comparing naive and aware datetimes raises deep inside; fail early with a clear message instead.
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts!r} has no time zone; pass a tz-aware (UTC) datetime")
    return ts


def _covers(valid_from: datetime, valid_to: datetime | None, ts: datetime) -> bool:
    """Half-open window [valid_from, valid_to); valid_to None = open-ended."""
    _require_aware(ts)
    return valid_from <= ts and (valid_to is None or ts < valid_to)


@dataclass(frozen=True)
class SftpPartner:
    partner_id: str
    name: str
    expected_upload_every: timedelta = DEFAULT_UPLOAD_EVERY

    @property
    def inbox_prefix(self) -> str:
        """Landing-store prefix of the partner's uploads (the landing store layout, ARCHITECTURE.md)."""
        return f"{self.partner_id}/interval-data/"


@dataclass(frozen=True)
class Connector:
    connector_id: str
    participant_id: str
    inbox_prefix: str
    file_format: str
    schedule: str
    output_bucket: str
    expected_upload_every: timedelta = DEFAULT_UPLOAD_EVERY


@dataclass(frozen=True)
class Participant:
    participant_id: str
    name: str
    connectors: tuple[Connector, ...]


@dataclass(frozen=True)
class Properties:
    sftp_partners: tuple[SftpPartner, ...]
    participants: tuple[Participant, ...]

    @property
    def partner_ids(self) -> frozenset[str]:
        return frozenset(p.partner_id for p in self.sftp_partners)

    @property
    def participant_ids(self) -> frozenset[str]:
        return frozenset(p.participant_id for p in self.participants)

    @property
    def owner_ids(self) -> frozenset[str]:
        """Ids a meter's ownership may name: SFTP partners and GCS participants."""
        return self.partner_ids | self.participant_ids

    @property
    def connectors(self) -> tuple[Connector, ...]:
        return tuple(c for p in self.participants for c in p.connectors)

    def connector_inboxes(self) -> list[tuple[str, str]]:
        """(participant, inbox prefix) of every connector: the tenants of the landing zone."""
        return [(c.participant_id, c.inbox_prefix) for c in self.connectors]

    def sftp_partner(self, partner_id: str) -> SftpPartner | None:
        return next((p for p in self.sftp_partners if p.partner_id == partner_id), None)

    def connector(self, connector_id: str) -> Connector | None:
        return next((c for c in self.connectors if c.connector_id == connector_id), None)


@dataclass(frozen=True)
class Ownership:
    partner_id: str
    valid_from: datetime
    valid_to: datetime | None = None

    def covers(self, ts: datetime) -> bool:
        return _covers(self.valid_from, self.valid_to, ts)


@dataclass(frozen=True)
class Enrollment:
    program_id: str
    valid_from: datetime
    valid_to: datetime | None = None

    def covers(self, ts: datetime) -> bool:
        return _covers(self.valid_from, self.valid_to, ts)


@dataclass(frozen=True)
class Meter:
    meter_id: str
    meter_number: int
    source: str
    meter_type: str
    device_type: str
    customer_class: str
    region: str
    timezone: str
    ownerships: tuple[Ownership, ...]
    enrollments: tuple[Enrollment, ...]
    config_uri: str

    def owner_at(self, ts: datetime) -> str | None:
        """The partner/participant owning the meter at instant ts (windows never overlap), else None."""
        return next((o.partner_id for o in self.ownerships if o.covers(ts)), None)

    def programs_at(self, ts: datetime) -> tuple[str, ...]:
        """Programs the meter is enrolled in at instant ts."""
        return tuple(sorted({e.program_id for e in self.enrollments if e.covers(ts)}))

    def enrolled_in(self, program_id: str, ts: datetime) -> bool:
        return any(e.program_id == program_id and e.covers(ts) for e in self.enrollments)


@dataclass(frozen=True)
class Season:
    season_id: str
    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True)
class Program:
    program_id: str
    name: str
    baseline_preset: str
    overrides: tuple[tuple[str, str], ...]
    channel: str
    holiday_calendar: str
    clip: str
    seasons: tuple[Season, ...] = ()
    data_deadline: timedelta = DEFAULT_DATA_DEADLINE

    @property
    def override_dict(self) -> dict[str, str]:
        return dict(self.overrides)


@dataclass(frozen=True)
class DrEvent:
    event_id: str
    program_id: str
    start_utc: datetime
    end_utc: datetime
    event_type: str


@dataclass(frozen=True)
class Configuration:
    properties: Properties
    meters: tuple[Meter, ...]
    programs: tuple[Program, ...]
    events: tuple[DrEvent, ...]
    fingerprint: str

    # cached_property writes to the instance __dict__ directly, so it works on a frozen dataclass.
    @cached_property
    def _meters_by_id(self) -> dict[str, Meter]:
        return {m.meter_id: m for m in self.meters}

    @cached_property
    def _programs_by_id(self) -> dict[str, Program]:
        return {p.program_id: p for p in self.programs}

    def meter(self, meter_id: str) -> Meter | None:
        return self._meters_by_id.get(meter_id)

    def program(self, program_id: str) -> Program | None:
        return self._programs_by_id.get(program_id)

    def events_of(self, program_id: str) -> tuple[DrEvent, ...]:
        return tuple(e for e in self.events if e.program_id == program_id)

    def meters_owned_by(self, owner_id: str, ts: datetime | None = None) -> tuple[Meter, ...]:
        """Meters owned by owner_id at ts (default: now)."""
        at = ts or datetime.now(UTC)
        return tuple(m for m in self.meters if m.owner_at(at) == owner_id)

"""Turn XSD-valid elements into models, with the checks XSD 1.0 cannot express.

Each reader gets the root of one already-validated document, so attribute presence and lexical forms are
guaranteed; what remains are semantic checks, each reported at the offending element's line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from lxml import etree

from .errors import ConfigError
from .models import (
    DATA_DEADLINE_RANGE,
    DEFAULT_DATA_DEADLINE,
    DEFAULT_UPLOAD_EVERY,
    UPLOAD_EVERY_RANGE,
    Connector,
    DrEvent,
    Enrollment,
    Meter,
    Ownership,
    Participant,
    Program,
    Properties,
    Season,
    SftpPartner,
)
from .xml_safety import NAMESPACE


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _datetime(elem: etree._Element, attr: str, path: Path) -> datetime | None:
    text = elem.get(attr)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:  # e.g. 24:00:00, which xs:dateTime allows and Python does not
        raise ConfigError(
            path, elem.sourceline, f"{attr}={text!r} is not a usable date-time ({exc})"
        ) from None
    if value.tzinfo is None:  # the XSD pattern already demands an offset; kept in case the schema loosens
        raise ConfigError(path, elem.sourceline, f"{attr}={text!r} needs an explicit offset (Z or +HH:MM)")
    return value.astimezone(UTC)


def _window(elem: etree._Element, path: Path) -> tuple[datetime, datetime | None]:
    start = _datetime(elem, "from", path)
    end = _datetime(elem, "to", path)
    assert start is not None  # required by the XSD
    if end is not None and start >= end:
        raise ConfigError(
            path, elem.sourceline, f"from={elem.get('from')} must be before to={elem.get('to')}"
        )
    return start, end


def _check_unique(seen: dict[str, int], key: str, what: str, elem: etree._Element, path: Path) -> None:
    if key in seen:
        raise ConfigError(path, elem.sourceline, f"duplicate {what} {key!r} (first at line {seen[key]})")
    seen[key] = elem.sourceline or 0


_CADENCE = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?")


def _upload_every(elem: etree._Element, path: Path) -> timedelta:
    """`expectedUploadEvery`: an ISO-8601 duration in days, hours and minutes (P1D, PT12H, P7D), PT1H to P366D."""
    text = elem.get("expectedUploadEvery")
    if text is None:  # lxml does not fill in XSD attribute defaults
        return DEFAULT_UPLOAD_EVERY
    value = text.strip()
    match = _CADENCE.fullmatch(value)
    if match is None or not any(match.groups()) or value.endswith("T"):  # the XSD refuses these too
        raise ConfigError(
            path,
            elem.sourceline,
            f"expectedUploadEvery={text!r} is not a duration in days, hours and minutes "
            "(ISO 8601, e.g. P1D for daily, PT12H, P7D for weekly)",
        )
    days, hours, minutes = (int(g or 0) for g in match.groups())
    total = (days * 24 + hours) * 60 + minutes  # minutes, compared before a huge value can overflow timedelta
    low, high = (int(bound.total_seconds()) // 60 for bound in UPLOAD_EVERY_RANGE)
    if total < low:
        raise ConfigError(
            path,
            elem.sourceline,
            f"expectedUploadEvery={text!r} is shorter than PT1H: partner health is evaluated about hourly "
            "(with the intake runs), so a shorter cadence could not be told apart from an ordinary delay",
        )
    if total > high:
        raise ConfigError(
            path, elem.sourceline, f"expectedUploadEvery={text!r} is longer than P366D (a yearly upload)"
        )
    return timedelta(minutes=total)


def _data_deadline(p_elem: etree._Element, path: Path) -> timedelta:
    """`dataDeadline`: whole days (P10D), P1D to P366D; P60D when absent."""
    text = p_elem.get("dataDeadline")
    if text is None:  # lxml does not fill in XSD attribute defaults
        return DEFAULT_DATA_DEADLINE
    match = re.fullmatch(r"P(\d+)D", text.strip())
    low, high = DATA_DEADLINE_RANGE
    if match is None or not low.days <= int(match.group(1)) <= high.days:
        raise ConfigError(
            path,
            p_elem.sourceline,
            f"program {p_elem.get('id')!r}: dataDeadline={text!r} is not a number of days from P1D to P366D "
            "(ISO 8601, e.g. P10D: readings may come up to 10 days after the event's end)",
        )
    return timedelta(days=int(match.group(1)))


def read_properties(root: etree._Element, path: Path) -> Properties:
    ids: dict[str, int] = {}  # partner and participant ids share one space: ownership may name either
    partners = []
    for elem in root.iterfind(f"{_q('sftpPartners')}/{_q('partner')}"):
        _check_unique(ids, elem.get("id"), "partner/participant id", elem, path)
        partners.append(
            SftpPartner(
                partner_id=elem.get("id"),
                name=elem.get("name"),
                expected_upload_every=_upload_every(elem, path),
            )
        )

    connector_ids: dict[str, int] = {}
    # Every tenant inbox, to make sure no tenant can write into (or read status objects of) another's.
    inboxes: list[tuple[str, str]] = [
        (f"{p.partner_id}/", f"SFTP partner {p.partner_id!r}") for p in partners
    ]
    participants = []
    for p_elem in root.iterfind(f"{_q('participants')}/{_q('participant')}"):
        participant_id = p_elem.get("id")
        _check_unique(ids, participant_id, "partner/participant id", p_elem, path)
        connectors = []
        for c_elem in p_elem.iterfind(_q("connector")):
            _check_unique(connector_ids, c_elem.get("id"), "connector id", c_elem, path)
            prefix = c_elem.get("inboxPrefix")
            if ".." in prefix or not prefix.endswith("/") or prefix.startswith("/"):
                raise ConfigError(
                    path,
                    c_elem.sourceline,
                    f"inboxPrefix {prefix!r} must be relative, end with '/' and not contain '..'",
                )
            for other, owner in inboxes:
                if prefix.startswith(other) or other.startswith(prefix):
                    raise ConfigError(
                        path,
                        c_elem.sourceline,
                        f"inboxPrefix {prefix!r} overlaps the inbox {other!r} of {owner}",
                    )
            inboxes.append((prefix, f"connector {c_elem.get('id')!r}"))
            connectors.append(
                Connector(
                    connector_id=c_elem.get("id"),
                    participant_id=participant_id,
                    inbox_prefix=prefix,
                    file_format=c_elem.get("fileFormat", "interval-csv-v1"),
                    schedule=c_elem.get("schedule", "hourly"),
                    output_bucket=c_elem.get("outputBucket"),
                    expected_upload_every=_upload_every(c_elem, path),
                )
            )
        participants.append(
            Participant(participant_id=participant_id, name=p_elem.get("name"), connectors=tuple(connectors))
        )
    return Properties(sftp_partners=tuple(partners), participants=tuple(participants))


def read_programs(root: etree._Element, path: Path) -> tuple[tuple[Program, ...], tuple[DrEvent, ...]]:
    program_ids: dict[str, int] = {}
    event_ids: dict[str, int] = {}
    programs: list[Program] = []
    events: list[DrEvent] = []
    for p_elem in root.iterfind(_q("program")):
        program_id = p_elem.get("id")
        _check_unique(program_ids, program_id, "program id", p_elem, path)
        override_names: dict[str, int] = {}
        overrides = []
        for o_elem in p_elem.iterfind(_q("override")):
            _check_unique(
                override_names, o_elem.get("name"), f"override in program {program_id!r}:", o_elem, path
            )
            overrides.append((o_elem.get("name"), o_elem.get("value")))
        _check_baseline(p_elem, dict(overrides), path)
        seasons = _read_seasons(p_elem, program_id, path)
        program_windows: list = []
        for e_elem in p_elem.iterfind(_q("event")):
            _check_unique(event_ids, e_elem.get("id"), "event id", e_elem, path)
            start = _datetime(e_elem, "start", path)
            end = _datetime(e_elem, "end", path)
            assert start is not None and end is not None  # required by the XSD
            if end <= start:
                raise ConfigError(
                    path,
                    e_elem.sourceline,
                    f"event {e_elem.get('id')!r}: end {e_elem.get('end')} must be after start {e_elem.get('start')}",
                )
            if any(t.minute % 15 or t.second or t.microsecond for t in (start, end)):
                raise ConfigError(
                    path,
                    e_elem.sourceline,
                    f"event {e_elem.get('id')!r}: start and end must be on a "
                    "quarter hour (readings are 15-minute intervals)",
                )
            events.append(DrEvent(e_elem.get("id"), program_id, start, end, e_elem.get("type")))
            program_windows.append((start, end, e_elem))
        # overlapping events would count the shared hours twice in per-event and season roll-ups
        _check_no_overlap(program_windows, f"event of program {program_id!r}", path)
        programs.append(
            Program(
                program_id=program_id,
                name=p_elem.get("name"),
                baseline_preset=p_elem.get("baseline"),
                overrides=tuple(overrides),
                # Defaults repeated here: lxml does not fill in XSD attribute defaults during validation.
                channel=p_elem.get("channel", "net"),
                holiday_calendar=p_elem.get("holidayCalendar", "NERC"),
                clip=p_elem.get("clip", "none"),
                seasons=seasons,
                data_deadline=_data_deadline(p_elem, path),
            )
        )
    return tuple(programs), tuple(events)


def _check_timezone(name: str, elem: etree._Element, path: Path) -> None:
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError, IsADirectoryError (e.g. "America"), ...
        raise ConfigError(path, elem.sourceline, f"unknown IANA time zone {name!r}") from None


def _check_baseline(p_elem: etree._Element, overrides: dict[str, str], path: Path) -> None:
    """Overrides the preset knows and a holiday calendar that exists: a typo fails the load, not a settlement."""
    from leap_orchestration.settlement.calendars import holiday_dates
    from leap_orchestration.settlement.presets import preset_for

    try:
        preset_for(p_elem.get("baseline"), overrides)
    except ValueError as exc:
        raise ConfigError(path, p_elem.sourceline, f"program {p_elem.get('id')!r}: {exc}") from None
    calendar = p_elem.get("holidayCalendar", "NERC")
    try:
        holiday_dates(calendar, 2025)
    except (NotImplementedError, KeyError):
        raise ConfigError(
            path,
            p_elem.sourceline,
            f"program {p_elem.get('id')!r}: unknown holiday calendar {calendar!r} "
            "(NERC, US, or a country/subdivision code of the holidays package such as US-NY)",
        ) from None


def _read_seasons(p_elem: etree._Element, program_id: str, path: Path) -> tuple[Season, ...]:
    seen: dict[str, int] = {}
    seasons, windows = [], []
    for s_elem in p_elem.iterfind(_q("season")):
        _check_unique(seen, s_elem.get("id"), f"season in program {program_id!r}:", s_elem, path)
        if s_elem.get("id").isdigit():  # bare years name the events outside every season
            raise ConfigError(
                path,
                s_elem.sourceline,
                f"season id {s_elem.get('id')!r}: a bare number is reserved "
                "for the events outside every season (grouped by year)",
            )
        start, end = _datetime(s_elem, "start", path), _datetime(s_elem, "end", path)
        assert start is not None and end is not None  # required by the XSD
        if end <= start:
            raise ConfigError(
                path, s_elem.sourceline, f"season {s_elem.get('id')!r}: end must be after start"
            )
        seasons.append(Season(s_elem.get("id"), start, end))
        windows.append((start, end, s_elem))
    _check_no_overlap(windows, f"season of program {program_id!r}", path)
    return tuple(seasons)


def _check_no_overlap(
    windows: list[tuple[datetime, datetime | None, etree._Element]], what: str, path: Path
) -> None:
    ordered = sorted(windows, key=lambda w: w[0])
    for (_, prev_end, prev_elem), (start, _, elem) in zip(ordered, ordered[1:], strict=False):
        if prev_end is None or prev_end > start:
            raise ConfigError(
                path, elem.sourceline, f"{what} window overlaps the one at line {prev_elem.sourceline}"
            )


def check_events_within_local_days(meters, events, path: Path) -> None:
    """An event must lie within one local day of every meter enrolled in it (docs/baselines.md: events do not cross
    local midnight); checked per time zone, so it costs events x zones, not events x meters."""
    zones: dict[str, set[str]] = {}
    for m in meters:
        for e in m.enrollments:
            zones.setdefault(e.program_id, set()).add(m.timezone)
    for event in events:
        for zone in sorted(zones.get(event.program_id, ())):
            tz = ZoneInfo(zone)
            first, last = (
                event.start_utc.astimezone(tz),
                (event.end_utc - timedelta(minutes=15)).astimezone(tz),
            )
            if first.date() != last.date():
                raise ConfigError(
                    path,
                    None,
                    f"event {event.event_id!r} crosses local midnight in {zone} "
                    f"({first:%Y-%m-%d %H:%M} to {last + timedelta(minutes=15):%Y-%m-%d %H:%M}), where meters of "
                    f"program {event.program_id!r} are: baselines are per local day",
                )


def read_meter(
    root: etree._Element,
    path: Path,
    config_uri: str,
    owner_ids: frozenset[str],
    program_ids: frozenset[str],
) -> Meter:
    _check_timezone(root.get("timezone"), root, path)
    ownerships = []
    owner_windows = []
    for elem in root.iterfind(_q("ownership")):
        partner = elem.get("partner")
        if partner not in owner_ids:
            raise ConfigError(
                path,
                elem.sourceline,
                f"ownership partner {partner!r} is not an SFTP partner or participant in properties.xml",
            )
        start, end = _window(elem, path)
        ownerships.append(Ownership(partner, start, end))
        owner_windows.append((start, end, elem))
    _check_no_overlap(owner_windows, "ownership", path)

    enrollments = []
    by_program: dict[str, list] = {}
    for elem in root.iterfind(_q("enrollment")):
        program = elem.get("program")
        if program not in program_ids:
            raise ConfigError(
                path, elem.sourceline, f"enrollment in unknown program {program!r} (not in programs.xml)"
            )
        start, end = _window(elem, path)
        enrollments.append(Enrollment(program, start, end))
        by_program.setdefault(program, []).append((start, end, elem))
    for program, windows in by_program.items():
        _check_no_overlap(windows, f"enrollment in {program!r}", path)

    return Meter(
        meter_id=root.get("id"),
        meter_number=int(root.get("meterNumber")),
        source=root.get("source"),
        meter_type=root.get("meterType"),
        device_type=root.get("deviceType"),
        customer_class=root.get("customerClass"),
        region=root.get("region"),
        timezone=root.get("timezone"),
        ownerships=tuple(sorted(ownerships, key=lambda o: o.valid_from)),
        enrollments=tuple(enrollments),
        config_uri=config_uri,
    )

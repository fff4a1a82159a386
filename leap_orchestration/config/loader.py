"""Load a configuration folder all-or-nothing, fingerprint it, and find the default folder.

Folder layout:
    properties.xml      SFTP partners, GCS participants and their connectors
    programs.xml        programs and their dispatch events
    meters/*.xml        one meter per file; its config_uri is e.g. `meters/battery_001.xml`

Files and folders whose name starts with '.' are ignored (editor lock and swap files); any other *.xml
file is an error, so a misnamed file is reported instead of silently ignored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ConfigError
from .models import Configuration, Meter, Properties
from .readers import check_events_within_local_days, read_meter, read_programs, read_properties
from .xml_safety import MAX_FILE_BYTES, parse_validated, parse_validated_bytes

# Bump when the warehouse tables loaded from the configuration gain what unchanged files should now fill in: the
# configuration sensor's cursor includes it, so one reload follows an upgrade.
LOADER_VERSION = "3"  # 2: programs.overrides, programs.clip, program_seasons; 3: programs.data_deadline
PROPERTIES_FILE = "properties.xml"
PROGRAMS_FILE = "programs.xml"
METERS_DIR = "meters"
# The repo's committed demo configuration (leap_orchestration/config/loader.py -> repo root).
REPO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def default_config_dir() -> Path:
    """LEAP_CONFIG if set, else $LEAP_HOME/config if it exists (LEAP_HOME defaults to ./.leap), else the repo's config/."""
    explicit = os.environ.get("LEAP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = Path(os.environ.get("LEAP_HOME") or ".leap").expanduser()
    if (home / "config").is_dir():
        return home / "config"
    return REPO_CONFIG_DIR


def config_files(config_dir: Path) -> list[tuple[str, Path]]:
    """Every non-hidden *.xml file under config_dir as (relative posix path, path), sorted by relative path."""
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        return []
    found = []
    for path in config_dir.rglob("*.xml"):
        rel = path.relative_to(config_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    return sorted(found)


def _hash_entry(digest: hashlib._Hash, rel: str, data: bytes) -> None:
    # Length-prefixed so that no two different folders can produce the same byte stream.
    name = rel.encode("utf-8")
    digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
    digest.update(data)


def config_fingerprint(config_dir: Path) -> str:
    """sha256 (hex) over the sorted relative paths and bytes of the configuration's *.xml files.

    Cheap (reads ~1000 small files in milliseconds) so a sensor can poll it; never raises for a vanished or
    unreadable file (the next load reports that), so a race with an editor cannot crash a sensor tick.
    """
    digest = hashlib.sha256()
    for rel, path in config_files(config_dir):
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0unreadable\0"
        _hash_entry(digest, rel, data)
    return digest.hexdigest()


def _read_all(config_dir: Path) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    for rel, path in config_files(config_dir):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(path, None, f"file is larger than {MAX_FILE_BYTES} bytes")
            contents[rel] = path.read_bytes()
        except OSError as exc:
            raise ConfigError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    return contents


def _is_meter_file(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) == 2 and parts[0] == METERS_DIR


def load_properties(config_dir: Path) -> Properties:
    """Only properties.xml (partners, participants, connectors): what the landing zone needs, without parsing
    every meter file (a bad meter file must not stop connectors; the warehouse keeps the last good meters)."""
    path = Path(config_dir) / PROPERTIES_FILE
    return read_properties(parse_validated(path, "properties"), path)


def load_configuration(config_dir: Path) -> Configuration:
    """Parse, XSD-validate and cross-check the whole folder; return it, or raise ConfigError naming the file.

    All files are read first and the fingerprint is taken over exactly those bytes, so the returned
    Configuration is internally consistent even if files change while it loads.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(config_dir, None, "configuration folder not found (set LEAP_CONFIG or LEAP_HOME)")
    contents = _read_all(config_dir)
    for rel in contents:
        if rel not in (PROPERTIES_FILE, PROGRAMS_FILE) and not _is_meter_file(rel):
            raise ConfigError(
                config_dir / rel,
                None,
                "unexpected XML file: expected properties.xml, programs.xml or meters/*.xml",
            )
    for required in (PROPERTIES_FILE, PROGRAMS_FILE):
        if required not in contents:
            raise ConfigError(
                config_dir / required,
                None,
                "missing: a configuration folder needs properties.xml and programs.xml",
            )

    digest = hashlib.sha256()
    for rel in sorted(contents):
        _hash_entry(digest, rel, contents[rel])

    path = config_dir / PROPERTIES_FILE
    properties = read_properties(parse_validated_bytes(contents[PROPERTIES_FILE], path, "properties"), path)
    path = config_dir / PROGRAMS_FILE
    programs, events = read_programs(parse_validated_bytes(contents[PROGRAMS_FILE], path, "programs"), path)

    owner_ids = properties.owner_ids
    program_ids = frozenset(p.program_id for p in programs)
    meters: list[Meter] = []
    by_id: dict[str, str] = {}
    by_number: dict[int, str] = {}
    for rel in sorted(r for r in contents if _is_meter_file(r)):
        path = config_dir / rel
        root = parse_validated_bytes(contents[rel], path, "meter")
        meter = read_meter(root, path, rel, owner_ids, program_ids)
        if meter.meter_id in by_id:
            raise ConfigError(
                path,
                root.sourceline,
                f"duplicate meter id {meter.meter_id} (also in {by_id[meter.meter_id]})",
            )
        if meter.meter_number in by_number:
            raise ConfigError(
                path,
                root.sourceline,
                f"duplicate meterNumber {meter.meter_number} (also in {by_number[meter.meter_number]})",
            )
        by_id[meter.meter_id] = rel
        by_number[meter.meter_number] = rel
        meters.append(meter)
    check_events_within_local_days(meters, events, config_dir / PROGRAMS_FILE)

    return Configuration(
        properties=properties,
        meters=tuple(meters),
        programs=programs,
        events=events,
        fingerprint=digest.hexdigest(),
    )

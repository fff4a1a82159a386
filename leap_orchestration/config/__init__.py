"""XML configuration: safe parsing, XSD validation, models and the all-or-nothing loader."""

from .errors import ConfigError
from .loader import config_files, config_fingerprint, default_config_dir, load_configuration
from .models import (
    Configuration,
    Connector,
    DrEvent,
    Enrollment,
    Meter,
    Ownership,
    Participant,
    Program,
    Properties,
    SftpPartner,
)
from .xml_safety import NAMESPACE, parse_validated

__all__ = [
    "NAMESPACE",
    "ConfigError",
    "Configuration",
    "Connector",
    "DrEvent",
    "Enrollment",
    "Meter",
    "Ownership",
    "Participant",
    "Program",
    "Properties",
    "SftpPartner",
    "config_files",
    "config_fingerprint",
    "default_config_dir",
    "load_configuration",
    "parse_validated",
]

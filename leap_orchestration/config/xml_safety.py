"""Safe XML parsing and XSD validation of configuration files.

Configuration files are edited by people and copied between machines, so they are treated as untrusted
input: no DTD (hence no entity expansion, no billion laughs, no XXE), no network, no huge trees. A document
with a DOCTYPE is refused outright rather than parsed with the DTD ignored: refusing is simpler to reason
about, and our schemas never need one.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

from lxml import etree

from .errors import ConfigError

NAMESPACE = "urn:leap-orchestration:config:1"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# schema name -> the one root element it accepts (common.xsd is only ever included, never validated against)
ROOT_ELEMENTS = {"properties": "properties", "meter": "meter", "programs": "programs"}
# A configuration file is a few KB; anything this large is a mistake or an attack, refused before parsing.
MAX_FILE_BYTES = 16 * 1024 * 1024

# Looked for in the raw bytes before libxml2 sees the document, in every encoding an XML file may
# legitimately use, so even the internal DTD subset is never processed.
_DOCTYPE_MARKERS = tuple(
    marker.encode(enc) for marker in ("<!DOCTYPE", "<!ENTITY") for enc in ("utf-8", "utf-16-le", "utf-16-be")
)
_NS_IN_MESSAGE = re.compile(r"\{" + re.escape(NAMESPACE) + r"\}")
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")
# lxml validators keep their error_log on the instance; one lock keeps concurrent threads (sensors) apart.
_VALIDATE_LOCK = threading.Lock()


def safe_parser() -> etree.XMLParser:
    """A fresh parser (lxml parsers must not be shared between threads) with every dangerous feature off."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
    )


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    if name not in ROOT_ELEMENTS:
        raise ValueError(f"unknown configuration schema {name!r}; expected one of {sorted(ROOT_ELEMENTS)}")
    # Parsed from the file path so libxml2 resolves <xs:include schemaLocation="common.xsd"> next to it.
    doc = etree.parse(str(SCHEMA_DIR / f"{name}.xsd"), safe_parser())
    return etree.XMLSchema(doc)


def schema_path(name: str) -> Path:
    """Where the XSD of a document type lives (for docs and tools)."""
    _schema(name)  # validates the name
    return SCHEMA_DIR / f"{name}.xsd"


def parse_validated(path: Path, schema: str) -> etree._Element:
    """Read, safely parse and XSD-validate one file; return its root element or raise ConfigError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                path, None, f"file is {size} bytes; configuration files are limited to {MAX_FILE_BYTES}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    return parse_validated_bytes(data, path, schema)


def parse_validated_bytes(data: bytes, path: Path, schema: str) -> etree._Element:
    """As parse_validated, for bytes already read (the loader fingerprints exactly the bytes it parses)."""
    xsd = _schema(schema)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            path, None, f"file is {len(data)} bytes; configuration files are limited to {MAX_FILE_BYTES}"
        )
    _refuse_dtd_bytes(data, path)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        message = _POSITION_SUFFIX.sub("", exc.msg or str(exc))
        raise ConfigError(path, exc.lineno, f"not well-formed XML: {message}") from None
    _refuse_dtd_tree(root, path)
    _check_root(root, path, schema)
    with _VALIDATE_LOCK:
        valid = xsd.validate(root)
        errors = [] if valid else list(xsd.error_log)
    if errors:
        first = errors[0]
        message = _NS_IN_MESSAGE.sub("", first.message).strip()
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more schema error(s) in this file)"
        raise ConfigError(path, first.line or None, message)
    return root


def _refuse_dtd_bytes(data: bytes, path: Path) -> None:
    for marker in _DOCTYPE_MARKERS:
        index = data.find(marker)
        if index >= 0:
            # Line counting is only exact for ASCII-compatible encodings; good enough to point at the spot.
            line = data.count(b"\n", 0, index) + 1
            raise ConfigError(
                path, line, "DOCTYPE/ENTITY declarations are not allowed in configuration files"
            )


def _refuse_dtd_tree(root: etree._Element, path: Path) -> None:
    # Second line of defence should the byte scan ever miss an encoding: the parsed tree must carry no DTD.
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ConfigError(path, 1, "DOCTYPE/ENTITY declarations are not allowed in configuration files")


def _check_root(root: etree._Element, path: Path, schema: str) -> None:
    # The XSD would say "No matching global declaration"; a forgotten xmlns deserves a plainer message.
    expected = etree.QName(NAMESPACE, ROOT_ELEMENTS[schema]).text
    if root.tag != expected:
        raise ConfigError(
            path,
            root.sourceline,
            f'root element must be <{ROOT_ELEMENTS[schema]} xmlns="{NAMESPACE}">, found <{_NS_IN_MESSAGE.sub("", str(root.tag))}>',
        )

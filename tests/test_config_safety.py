"""Safe parsing and XSD validation of configuration files (no Dagster)."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import pytest
from lxml import etree

from leap_orchestration.config import ConfigError, models, parse_validated, xml_safety

NS = "urn:leap-orchestration:config:1"
GOOD_METER = f"""<?xml version="1.0" encoding="UTF-8"?>
<meter xmlns="{NS}"
       id="0b6b6c0e-1f0a-5c39-9a53-3b1f8f0d2a11"
       meterNumber="7"
       source="partner"
       meterType="device"
       deviceType="battery"
       customerClass="residential"
       region="CA"
       timezone="America/Los_Angeles">
  <ownership partner="sunrise-energy" from="2024-01-01T00:00:00Z"/>
  <enrollment program="caiso_dsgs" from="2024-01-01T00:00:00-08:00" to="2025-01-01T00:00:00Z"/>
</meter>
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "m.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _refused(path: Path, schema: str = "meter") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_validated(path, schema)
    return info.value


def test_good_meter_parses(tmp_path):
    root = parse_validated(_write(tmp_path, GOOD_METER), "meter")
    assert root.get("meterNumber") == "7"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7d1f9a")
    return path


def _xxe(secret: Path) -> str:
    body = GOOD_METER.split("\n", 1)[1].replace('region="CA"', 'region="&x;"')
    return f'<?xml version="1.0"?>\n<!DOCTYPE meter [<!ENTITY x SYSTEM "file://{secret}">]>\n{body}'


def test_xxe_is_refused_and_secret_never_appears(tmp_path, secret):
    err = _refused(_write(tmp_path, _xxe(secret)))
    assert "DOCTYPE" in err.message
    assert err.line == 2
    assert "TOP-SECRET" not in str(err) and "TOP-SECRET" not in repr(err)


def test_xxe_etc_passwd_is_refused(tmp_path):
    doc = '<?xml version="1.0"?>\n<!DOCTYPE meter [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<meter xmlns="urn:leap-orchestration:config:1">&x;</meter>'
    err = _refused(_write(tmp_path, doc))
    assert "DOCTYPE" in str(err) and "root:" not in str(err)


def test_utf16_doctype_is_refused(tmp_path, secret):
    err = _refused(
        _write(
            tmp_path,
            _xxe(secret).replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"),
        )
    )
    assert "DOCTYPE" in err.message


def test_parse_tree_guard_refuses_doctype_even_without_byte_scan(tmp_path, secret, monkeypatch):
    # The second line of defence: the parser itself never resolves the entity and the DTD is detected.
    monkeypatch.setattr(xml_safety, "_DOCTYPE_MARKERS", ())
    in_content = f'<?xml version="1.0"?>\n<!DOCTYPE meter [<!ENTITY x SYSTEM "file://{secret}">]>\n<meter xmlns="{NS}">&x;</meter>'
    err = _refused(_write(tmp_path, in_content))
    assert "DOCTYPE" in err.message
    assert "TOP-SECRET" not in str(err)
    # In an attribute libxml2 refuses the external entity itself (a syntax error): refused either way.
    err = _refused(_write(tmp_path, _xxe(secret)))
    assert "TOP-SECRET" not in str(err)


def test_billion_laughs_is_refused_quickly(tmp_path):
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE meter [{"".join(entities)}]>\n<meter xmlns="{NS}">&lol9;</meter>'
    started = time.monotonic()
    err = _refused(_write(tmp_path, doc))
    assert "DOCTYPE" in err.message
    assert time.monotonic() - started < 1.0


def test_external_dtd_is_refused_without_network(tmp_path):
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE meter SYSTEM "http://127.0.0.1:9/x.dtd">\n<meter xmlns="{NS}"/>'
    assert "DOCTYPE" in _refused(_write(tmp_path, doc)).message


@pytest.mark.parametrize(
    ("old", "new", "line", "pattern"),
    [
        # libxml2 gives an element the line where its start tag ends (line 10 for the root above)
        ('       meterNumber="7"\n', "", 9, r"meterNumber.*required but missing"),
        ("0b6b6c0e-1f0a", "0B6B6C0E-1F0A", 10, r"attribute 'id'.*pattern"),
        ('region="CA"', 'region="ca"', 10, r"attribute 'region'.*\[A-Z\]\{2\}"),
        ('from="2024-01-01T00:00:00Z"/>', 'from="2024-01-01T00:00:00"/>', 11, r"attribute 'from'.*pattern"),
        ('source="partner"', 'source="aggregator"', 10, r"attribute 'source'.*enumeration"),
        (
            '<ownership partner="sunrise-energy" from="2024-01-01T00:00:00Z"/>\n',
            "",
            11,
            r"enrollment.*ownership",
        ),
    ],
    ids=[
        "missing-attribute",
        "upper-case-uuid",
        "bad-region",
        "datetime-without-offset",
        "bad-enum",
        "no-ownership",
    ],
)
def test_xsd_violations_name_file_and_line(tmp_path, old, new, line, pattern):
    assert old in GOOD_METER
    path = _write(tmp_path, GOOD_METER.replace(old, new), "bad_meter.xml")
    err = _refused(path)
    assert err.path == path and err.line == line
    assert re.search(pattern, err.message), err.message
    assert "{urn:" not in err.message  # namespace noise stripped
    assert str(err).startswith(f"{path} line {line}: ") or str(err).startswith(f"bad_meter.xml line {line}: ")


def test_multiple_schema_errors_are_counted(tmp_path):
    err = _refused(
        _write(
            tmp_path,
            GOOD_METER.replace('region="CA"', 'region="ca"').replace('source="partner"', 'source="x"'),
        )
    )
    assert "1 more schema error" in err.message


def test_not_well_formed_reports_line(tmp_path):
    err = _refused(_write(tmp_path, GOOD_METER.replace("</meter>", "</metre>")))
    assert err.line == 13 and "not well-formed" in err.message


def test_wrong_root_or_missing_namespace_is_explained(tmp_path):
    err = _refused(_write(tmp_path, GOOD_METER.replace(f' xmlns="{NS}"', "")))
    assert "xmlns" in err.message and err.line == 10
    err = _refused(_write(tmp_path, GOOD_METER), schema="programs")
    assert "<programs" in err.message


def test_missing_and_oversized_files(tmp_path, monkeypatch):
    assert "cannot read" in _refused(tmp_path / "nope.xml").message
    monkeypatch.setattr(xml_safety, "MAX_FILE_BYTES", 100)
    assert "limited" in _refused(_write(tmp_path, GOOD_METER)).message


def test_unknown_schema_name_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        parse_validated(_write(tmp_path, GOOD_METER), "common")


def test_config_error_str_and_pickle():
    err = ConfigError(Path("/nowhere/config/meters/x.xml"), 12, "bad thing")
    assert str(err) == "/nowhere/config/meters/x.xml line 12: bad thing"
    assert str(ConfigError("/nowhere/p.xml", None, "gone")) == "/nowhere/p.xml: gone"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.line, copy.message, str(copy)) == (err.path, err.line, err.message, str(err))


def test_config_error_path_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(ConfigError(tmp_path / "config" / "x.xml", 3, "m")) == "config/x.xml line 3: m"


def _enumerations(schema: str, type_name: str) -> tuple[str, ...]:
    doc = etree.parse(str(xml_safety.SCHEMA_DIR / f"{schema}.xsd"), xml_safety.safe_parser())
    xs = "{http://www.w3.org/2001/XMLSchema}"
    (simple,) = [t for t in doc.iter(f"{xs}simpleType") if t.get("name") == type_name]
    return tuple(e.get("value") for e in simple.iter(f"{xs}enumeration"))


@pytest.mark.parametrize(
    ("schema", "type_name", "constant"),
    [
        ("meter", "Source", models.SOURCES),
        ("meter", "MeterType", models.METER_TYPES),
        ("meter", "DeviceType", models.DEVICE_TYPES),
        ("meter", "CustomerClass", models.CUSTOMER_CLASSES),
        ("programs", "BaselinePreset", models.BASELINE_PRESETS),
        ("programs", "Channel", models.CHANNELS),
        ("programs", "Clip", models.CLIP_RULES),
        ("properties", "FileFormat", models.FILE_FORMATS),
        ("properties", "Schedule", models.SCHEDULES),
    ],
)
def test_model_constants_match_xsd(schema, type_name, constant):
    assert _enumerations(schema, type_name) == constant

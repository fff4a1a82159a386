import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from leap_orchestration.config.demo_config import demo_meters
from leap_orchestration.config.loader import REPO_CONFIG_DIR, load_configuration
from leap_orchestration.intake.meters import PartnerMeters
from leap_orchestration.warehouse.config_tables import ownership_from_configuration

HEADER = (
    "meter_uuid,interval_start_time_utc,interval_end_time_utc,energy_net_kwh,energy_consumed_kwh,"
    "energy_generated_kwh,final,region"
)


@pytest.fixture
def leap_home(tmp_path, monkeypatch) -> Path:
    """A fresh LEAP_HOME with the demo configuration copied in."""
    home = tmp_path / "leap"
    shutil.copytree(REPO_CONFIG_DIR, home / "config")
    monkeypatch.setenv("LEAP_HOME", str(home))
    monkeypatch.setenv("LEAP_CONFIG", str(home / "config"))
    monkeypatch.setenv("LEAP_SETTLE_SECONDS", "0.2")
    return home


@pytest.fixture
def cli_env(leap_home) -> dict:
    """The environment of a real CLI run (dagster, dg, leap-orchestration) on a fresh LEAP_HOME, with its own
    Dagster instance configured by the project's dagster.yaml."""
    dagster_home = leap_home / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO_CONFIG_DIR.parent / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "LEAP_HOME": str(leap_home),
        "LEAP_CONFIG": str(leap_home / "config"),
        "LEAP_SETTLE_SECONDS": "0.2",
    }


WAREHOUSE_BACKENDS = ["duckdb", "ducklake"]


@pytest.fixture(scope="session")
def lake_catalogs():
    """One PostgreSQL server per test process for DuckLake catalogs, started when a test first needs one; each
    test gets a database of its own (`new_catalog()`)."""
    from pg_support import lake_catalogs as catalogs
    from pg_support import postgres_server

    with postgres_server("postgres_lakes") as env:
        yield catalogs(env)


@pytest.fixture(params=WAREHOUSE_BACKENDS)
def blank_warehouse(request, tmp_path):
    """An empty warehouse on each backend: the DuckDB file, and DuckLake (catalog in a real PostgreSQL, data
    files in a folder). Tests of the warehouse's users take this one, so the same tests run on both."""
    from leap_orchestration.warehouse import Warehouse

    if request.param == "duckdb":
        yield Warehouse(tmp_path / "w.duckdb")
        return
    from leap_orchestration.warehouse.lake import DuckLakeWarehouse

    lake = DuckLakeWarehouse(request.getfixturevalue("lake_catalogs")(), tmp_path / "lake")
    yield lake
    lake.release()


@pytest.fixture
def warehouse(leap_home):
    """A DuckDB warehouse file with the demo configuration loaded."""
    from leap_orchestration.warehouse import Warehouse
    from leap_orchestration.warehouse.config_tables import replace_configuration

    wh = Warehouse(leap_home / "warehouse.duckdb")
    with wh.connect() as con:
        replace_configuration(con, load_configuration(leap_home / "config"))
    return wh


@pytest.fixture(scope="session")
def demo_configuration():
    return load_configuration(REPO_CONFIG_DIR)


def meters_owned_since_start(partner: str) -> list[str]:
    """Every partner-created demo meter the partner has owned, alone, since the demo's start (2024-01-01)."""
    return [
        m.meter_id
        for m in demo_meters()
        if m.owner == partner and m.source == "partner" and len(m.ownerships) == 1
    ]


def partner_meter(partner: str, source: str = "partner"):
    """A demo meter the partner owns now and has owned since 2024 (not the transferred one)."""
    return next(
        m for m in demo_meters() if m.owner == partner and m.source == source and len(m.ownerships) == 1
    )


@pytest.fixture(scope="session")
def ownership(demo_configuration):
    return ownership_from_configuration(demo_configuration)


@pytest.fixture
def meters_of(ownership):
    def make(partner: str, at: dt.datetime | None = None) -> PartnerMeters:
        return PartnerMeters.from_ownership(ownership, partner, at or dt.datetime.now(dt.UTC))

    return make


def csv_text(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def good_row(
    meter_id: str,
    start: str = "2024-04-01T11:00:00Z",
    end: str = "2024-04-01T11:15:00Z",
    net: str = "",
    consumed: str = "5.01",
    generated: str = "0",
    final: str = "true",
    region: str = "CA",
) -> str:
    return ",".join([meter_id, start, end, net, consumed, generated, final, region])


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory):
    """One fake-gcs-server per test worker, stopped at the end of the session."""
    from gcs_support import fake_gcs_server

    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as endpoint:
        yield endpoint


@pytest.fixture
def gcs_client(gcs_endpoint):
    from gcs_support import client_for

    return client_for(gcs_endpoint)


@pytest.fixture
def landing_bucket(gcs_client):
    """A fresh bucket per test (names are unique, so tests never see each other's objects)."""
    import uuid

    return gcs_client.create_bucket(f"landing-{uuid.uuid4().hex[:12]}").name

"""Dagster resources, defined once and imported by assets, sensors and tests.

The landing store is abstract with one implementation per backend (a local folder, a GCS bucket), so the same
asset and sensor code runs on both (the `project_fully_featured` pattern).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_gcp import GCSResource

from leap_orchestration import settings
from leap_orchestration.config.loader import default_config_dir
from leap_orchestration.stores import LandingStore, LocalLandingStore
from leap_orchestration.warehouse import Warehouse


class LandingStoreResource(dg.ConfigurableResource):
    def store(self) -> LandingStore:
        raise NotImplementedError


class LocalLandingStoreResource(LandingStoreResource):
    """The embedded default: a folder, $LEAP_HOME/landing."""

    root: str

    def store(self) -> LandingStore:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return LocalLandingStore(self.root)


class GcsLandingStoreResource(LandingStoreResource):
    """The landing zone on GCS: a bucket whose tenants are the connectors of properties.xml.

    The client comes from `dagster_gcp.GCSResource` (so credentials and project are configured the Dagster way;
    with STORAGE_EMULATOR_HOST set, google-cloud-storage talks to an emulator instead).
    """

    gcs: GCSResource
    bucket: str = "landing_zone"
    config_path: str

    def store(self) -> LandingStore:
        from leap_orchestration.config.loader import load_configuration
        from leap_orchestration.stores.gcs import GcsLandingStore, connector_inboxes

        inboxes = connector_inboxes(load_configuration(Path(self.config_path)))
        return GcsLandingStore(self.gcs.get_client(), self.bucket, inboxes)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file, $LEAP_HOME/warehouse.duckdb."""

    path: str

    def warehouse(self) -> Warehouse:
        return Warehouse(self.path)


class ConfigurationResource(dg.ConfigurableResource):
    """The XML configuration folder (LEAP_CONFIG, else $LEAP_HOME/config, else the repo's demo config)."""

    path: str

    def folder(self) -> Path:
        return Path(self.path)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "landing_store": LocalLandingStoreResource(root=str(settings.landing_root())),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path())),
        "configuration": ConfigurationResource(path=str(default_config_dir())),
    }

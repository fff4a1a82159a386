"""Dagster resources, defined once and imported by assets, sensors and tests.

The landing store is abstract with one implementation per backend (local folder now, GCS next), so the same
asset and sensor code runs on both (the `project_fully_featured` pattern).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

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

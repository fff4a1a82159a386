"""The warehouse: one DuckDB file by default (one writer at a time), or DuckLake for several writers at once."""

from leap_orchestration import settings
from leap_orchestration.warehouse.duck import Warehouse

__all__ = ["Warehouse", "configured_warehouse"]


def configured_warehouse() -> Warehouse:
    """The warehouse the settings name (LEAP_WAREHOUSE, LEAP_DUCKLAKE_CATALOG, LEAP_DUCKLAKE_DATA_PATH)."""
    if settings.warehouse_backend() == "ducklake":
        from leap_orchestration.warehouse.lake import DuckLakeWarehouse  # loads the extensions' wheels

        return DuckLakeWarehouse(settings.ducklake_catalog(), settings.ducklake_data_path())
    return Warehouse(settings.warehouse_path())

"""The warehouse: one DuckDB file by default (one writer at a time), or DuckLake for several writers at once."""

from leap_orchestration import settings
from leap_orchestration.warehouse.duck import Warehouse

__all__ = ["Warehouse", "configured_warehouse", "warehouse_for"]


def warehouse_for(backend: str, *, path: str = "", catalog: str = "", data_path: str = "") -> Warehouse:
    """The DuckDB file at `path`, or (backend `ducklake`) the lake on `catalog` with its data in `data_path`."""
    if backend == "ducklake":
        from leap_orchestration.warehouse.lake import DuckLakeWarehouse  # loads the extensions' wheels

        return DuckLakeWarehouse(catalog, data_path)
    return Warehouse(path)


def configured_warehouse() -> Warehouse:
    """The warehouse the settings name (LEAP_WAREHOUSE, LEAP_DUCKLAKE_CATALOG, LEAP_DUCKLAKE_DATA_PATH)."""
    if settings.warehouse_backend() == "ducklake":
        return warehouse_for(
            "ducklake", catalog=settings.ducklake_catalog(), data_path=settings.ducklake_data_path()
        )
    return warehouse_for("duckdb", path=str(settings.warehouse_path()))

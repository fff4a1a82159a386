"""The warehouse: a DuckDB file by default (MotherDuck or BigQuery at scale), one writer at a time."""

from leap_orchestration.warehouse.duck import Warehouse

__all__ = ["Warehouse"]

"""Landing stores: where uploads arrive and where their results are published (local folder, GCS)."""

from leap_orchestration.stores.base import LandingStore, StoredObject, is_temp_name
from leap_orchestration.stores.local import LocalLandingStore

__all__ = ["LandingStore", "LocalLandingStore", "StoredObject", "is_temp_name"]

"""Dagster resources, defined once and imported by assets, sensors and tests.

The landing store is abstract with one implementation per backend (a local folder, a GCS bucket), so the same
asset and sensor code runs on both (the `project_fully_featured` pattern).

Nothing here imports google-cloud-storage (nor dagster_gcp, which pulls in BigQuery and pandas) at import time:
every run imports the code location again in a fresh process, so with the default local landing zone those
seconds would be paid on every run for nothing. The GCS client is imported and created on first use.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from leap_orchestration import settings
from leap_orchestration.config.loader import default_config_dir, load_properties
from leap_orchestration.stores import LandingStore, LocalLandingStore
from leap_orchestration.stores.buckets import BucketStore, GcsBuckets, LocalBuckets
from leap_orchestration.warehouse import Warehouse, warehouse_for


class LandingStoreResource(dg.ConfigurableResource):
    def store(self) -> LandingStore:
        raise NotImplementedError

    def connector_for_inbox(self) -> dict[str, str]:
        """inbox prefix -> connector id, for a landing zone of GCS connectors (empty for SFTP partners)."""
        return {}


class LocalLandingStoreResource(LandingStoreResource):
    """The embedded default for SFTP partners: a folder, $LEAP_HOME/landing."""

    root: str

    def store(self) -> LandingStore:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return LocalLandingStore(self.root)


class _ConnectorLandingZone(LandingStoreResource):
    """A landing zone whose tenants are the connectors of properties.xml (read on every use: no restart)."""

    config_path: str

    def inboxes(self) -> list[tuple[str, str]]:
        return load_properties(Path(self.config_path)).connector_inboxes()

    def connector_for_inbox(self) -> dict[str, str]:
        return {c.inbox_prefix: c.connector_id for c in load_properties(Path(self.config_path)).connectors}


class LocalLandingZoneResource(_ConnectorLandingZone):
    """The landing zone on one machine: a folder standing in for the bucket, $LEAP_HOME/buckets/landing_zone."""

    root: str

    def store(self) -> LandingStore:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return LocalLandingStore(self.root, inboxes=self.inboxes())


class GcsClientResource(dg.ConfigurableResource):
    """A google-cloud-storage client, configured like `dagster_gcp.GCSResource` (the same `project` field and
    the same `storage.Client(project=...)`: application default credentials; with STORAGE_EMULATOR_HOST set,
    an emulator), but imported only when a client is made."""

    project: str | None = None

    def get_client(self):
        from google.cloud import storage

        return storage.Client(project=self.project)


class GcsLandingStoreResource(_ConnectorLandingZone):
    """The landing zone on GCS: the `landing_zone` bucket.

    `gcs` is any resource whose `get_client()` returns a `google.cloud.storage.Client`: `GcsClientResource`, or
    `dagster_gcp.GCSResource` if a deployment already configures one.
    """

    gcs: dg.ConfigurableResource
    bucket: str = "landing_zone"

    def store(self) -> LandingStore:
        from leap_orchestration.stores.gcs import GcsLandingStore

        return GcsLandingStore(self.gcs.get_client(), self.bucket, self.inboxes())


class BucketStoreResource(dg.ConfigurableResource):
    """Participant buckets, where standardized meter-hours are published for download by path."""

    def buckets(self) -> BucketStore:
        raise NotImplementedError


class LocalBucketsResource(BucketStoreResource):
    """One folder per bucket under $LEAP_HOME/buckets."""

    root: str

    def buckets(self) -> BucketStore:
        return LocalBuckets(self.root)


class GcsBucketsResource(BucketStoreResource):
    gcs: dg.ConfigurableResource  # as in GcsLandingStoreResource: anything with get_client()
    max_workers: int = 32  # parallel uploads: each small object is one HTTP request

    def buckets(self) -> BucketStore:
        return GcsBuckets(self.gcs.get_client(), self.max_workers)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: the DuckDB file at `path` ($LEAP_HOME/warehouse.duckdb), or with backend `ducklake` a
    DuckLake whose catalog is `catalog` and whose data files go to `data_path` (docs/deployment.md)."""

    path: str = ""
    backend: str = "duckdb"
    catalog: str = ""
    data_path: str = ""

    def warehouse(self) -> Warehouse:
        return warehouse_for(self.backend, path=self.path, catalog=self.catalog, data_path=self.data_path)


def default_warehouse_resource() -> WarehouseResource:
    """The warehouse the settings name (as warehouse.configured_warehouse)."""
    if settings.warehouse_backend() == "ducklake":
        return WarehouseResource(
            backend="ducklake", catalog=settings.ducklake_catalog(), data_path=settings.ducklake_data_path()
        )
    return WarehouseResource(path=str(settings.warehouse_path()))


class ConfigurationResource(dg.ConfigurableResource):
    """The XML configuration folder (LEAP_CONFIG, else $LEAP_HOME/config, else the repo's demo config)."""

    path: str

    def folder(self) -> Path:
        return Path(self.path)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Embedded defaults; LEAP_LANDING_ZONE=gcs puts the landing zone and participant buckets on GCS."""
    config = str(default_config_dir())
    resources: dict[str, dg.ConfigurableResource] = {
        "landing_store": LocalLandingStoreResource(root=str(settings.landing_root())),
        "warehouse": default_warehouse_resource(),
        "configuration": ConfigurationResource(path=config),
    }
    if settings.landing_zone_backend() == "gcs":
        gcs = GcsClientResource(project=settings.gcs_project())
        resources["landing_zone"] = GcsLandingStoreResource(
            gcs=gcs, bucket=settings.landing_zone_bucket(), config_path=config
        )
        resources["participant_buckets"] = GcsBucketsResource(gcs=gcs)
    else:
        resources["landing_zone"] = LocalLandingZoneResource(
            root=str(settings.buckets_root() / settings.landing_zone_bucket()), config_path=config
        )
        resources["participant_buckets"] = LocalBucketsResource(root=str(settings.buckets_root()))
    return resources

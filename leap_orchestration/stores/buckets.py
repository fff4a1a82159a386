"""Participant buckets: where the landing-zone connector publishes standardized data for download by path.

Unlike the landing store, this is a plain object namespace the pipeline owns: objects are overwritten when an
hour is republished. GCS at scale (one bucket per participant); a folder per bucket on one machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from leap_orchestration.stores.base import check_key
from leap_orchestration.stores.local import LocalLandingStore

XML_CONTENT_TYPE = "application/xml"


class BucketStore(ABC):
    @abstractmethod
    def put_many(
        self, bucket: str, objects: list[tuple[str, bytes]], content_type: str = XML_CONTENT_TYPE
    ) -> list[Exception | None]:
        """Write (key, bytes) objects, overwriting; one result per object (None = written)."""

    @abstractmethod
    def get(self, bucket: str, key: str) -> bytes | None: ...


class LocalBuckets(BucketStore):
    """`<root>/<bucket>/<key>`, written whole and path-checked by the local landing store's own `write_bytes`."""

    def __init__(self, root: str | Path):
        self.files = LocalLandingStore(root)

    def put_many(
        self, bucket: str, objects: list[tuple[str, bytes]], content_type: str = XML_CONTENT_TYPE
    ) -> list[Exception | None]:
        results: list[Exception | None] = []
        for key, data in objects:
            try:
                self.files.write_bytes(f"{check_key(bucket)}/{key}", data)
                results.append(None)
            except OSError as exc:
                results.append(exc)
        return results

    def get(self, bucket: str, key: str) -> bytes | None:
        full = f"{check_key(bucket)}/{key}"
        return self.files.read_bytes(full) if self.files.exists(full) else None


class GcsBuckets(BucketStore):
    """Uploads in parallel threads, one multipart request per object.

    GCS has no batch upload (its batch API covers metadata only), so throughput comes from concurrency. Not
    through `transfer_manager.upload_many`: it uploads file objects of unknown size, which costs a resumable
    session (two requests) per object, and measured slower than a plain loop (BENCHMARKS.md). The client's
    connection pool is widened to the thread count, or threads would queue for (and re-open) connections.
    """

    def __init__(self, client, max_workers: int = 32):
        from requests.adapters import HTTPAdapter

        self.client, self.max_workers = client, max_workers
        session = client._http  # the client's requests session (google-auth AuthorizedSession)
        for scheme in ("http://", "https://"):
            session.mount(scheme, HTTPAdapter(pool_connections=4, pool_maxsize=max_workers))

    def put_many(
        self, bucket: str, objects: list[tuple[str, bytes]], content_type: str = XML_CONTENT_TYPE
    ) -> list[Exception | None]:
        from google.cloud.storage.retry import DEFAULT_RETRY

        target = self.client.bucket(bucket)

        def put(item: tuple[str, bytes]) -> Exception | None:
            key, data = item
            try:  # rewriting the same bytes is idempotent, so retrying is safe
                target.blob(check_key(key)).upload_from_string(
                    data, content_type=content_type, retry=DEFAULT_RETRY
                )
                return None
            except Exception as exc:  # reported per object; the caller records what was written
                return exc

        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="gcs-put") as pool:
            return list(pool.map(put, objects))

    def get(self, bucket: str, key: str) -> bytes | None:
        blob = self.client.bucket(bucket).get_blob(check_key(key))
        return None if blob is None else blob.download_as_bytes()

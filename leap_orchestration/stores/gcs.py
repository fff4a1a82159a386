"""The landing store on Google Cloud Storage (the `landing_zone` bucket of docs/landing-zone.md).

Tenants are the connectors configured in properties.xml, each with its inbox prefix; only the pipeline lists
(a connector's service account can't). Versions are object generations; objects are complete once visible.
GCS has no rename, so a move is a copy that must not overwrite (`if_generation_match=0`) of the expected
source generation, then a delete of exactly that generation: a crash between the two leaves both copies, and
the re-run sees the target holds the same bytes and only deletes the source (`intake/process.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage

from leap_orchestration.stores.base import FileChangedError, LandingStore, StoredObject, check_key

READ_CHUNK = 8 * 1024 * 1024


class GcsLandingStore(LandingStore):
    def __init__(self, client: storage.Client, bucket: str, inboxes: list[tuple[str, str]]):
        """`inboxes`: (tenant, inbox prefix) pairs; for a connector the tenant is its participant, whose meters
        the uploads must be for (see `Properties.connector_inboxes`)."""
        self.client, self.bucket = client, client.bucket(bucket)
        self.inboxes = sorted(
            (tenant, prefix if prefix.endswith("/") else prefix + "/") for tenant, prefix in inboxes
        )

    def list_tenant_inboxes(self) -> list[tuple[str, str]]:
        return list(self.inboxes)

    def list_files(self, prefix: str) -> list[StoredObject]:
        return sorted(self.list_dir(prefix)[1], key=lambda o: (o.mtime_ns, o.key))

    def list_dir(self, prefix: str) -> tuple[list[str], list[StoredObject]]:
        pages = self.client.list_blobs(self.bucket, prefix=prefix, delimiter="/")
        files = [_stored(b) for b in pages if b.name != prefix]
        folders = sorted(p[len(prefix) :].rstrip("/") for p in pages.prefixes)
        return folders, sorted(files, key=lambda o: o.key)

    def stat(self, key: str) -> StoredObject | None:
        blob = self.bucket.get_blob(check_key(key))
        return _stored(blob) if blob is not None else None

    def open_read(self, key: str) -> BinaryIO:
        blob = self.bucket.get_blob(check_key(key))
        if blob is None:
            raise FileNotFoundError(key)
        # pinned to the generation that was stat'ed: a concurrent replacement can't mix two versions
        return blob.open("rb", chunk_size=READ_CHUNK, if_generation_match=blob.generation)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.bucket.blob(check_key(key)).upload_from_string(data)  # a GCS object appears whole or not at all

    def move(self, src: str, dst: str, *, expected_version: str | None = None) -> None:
        source = self.bucket.get_blob(check_key(src))
        if source is None or (expected_version is not None and str(source.generation) != expected_version):
            raise FileChangedError(f"{src} changed while it was processed")
        if self.bucket.get_blob(check_key(dst)) is not None:
            # real GCS refuses by the precondition below; fake-gcs-server ignores it on copies, so check first
            raise FileExistsError(dst)
        try:
            self.bucket.copy_blob(
                source,
                self.bucket,
                check_key(dst),
                if_generation_match=0,
                if_source_generation_match=source.generation,
            )
        except gexc.PreconditionFailed:
            if self.stat(dst) is not None:
                raise FileExistsError(dst) from None
            raise FileChangedError(f"{src} changed while it was moved") from None
        try:
            source.delete(if_generation_match=source.generation)
        except gexc.NotFound:
            pass  # already gone: a repeated move after a crash

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(check_key(key)).delete()
        except gexc.NotFound:
            pass

    def publish(self, key: str, source: Path) -> StoredObject:
        blob = self.bucket.blob(check_key(key))
        try:
            blob.upload_from_filename(str(source), if_generation_match=0)  # never overwrites
        except gexc.PreconditionFailed:
            raise FileExistsError(key) from None
        Path(source).unlink()
        return _stored(self.bucket.get_blob(key))


def _stored(blob) -> StoredObject:
    updated = blob.updated
    mtime_ns = int(updated.timestamp() * 1e9) if updated is not None else 0
    return StoredObject(
        key=blob.name, size=blob.size or 0, mtime_ns=mtime_ns, version=str(blob.generation), complete=True
    )

"""Where a partner's statements go: its own channel, at names it can derive without listing.

    SFTP partner:        <landing store> <partner>/performance/<path>     (its SFTP tree: /performance/<path>)
    GCS participant:     <output bucket of each connector> <connector>/performance/<path>

The SFTP server shows `/performance/` read-only (sftp/view.py): a partner can list and download, never write.
A participant reads its bucket by object name, beside its connector's standardized output.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from leap_orchestration.config.models import Properties
from leap_orchestration.stores.base import LandingStore, check_key
from leap_orchestration.stores.buckets import BucketStore
from leap_orchestration.stores.local import PERFORMANCE_FOLDER

CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".txt": "text/plain"}

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A statement file could not be written: the version is not recorded, so the next run writes it again."""


@dataclass
class Destinations:
    landing: LandingStore  # SFTP partners' trees
    buckets: BucketStore  # participants' output buckets
    properties: Properties

    def places(self, partner_id: str) -> list[str]:
        """Where `partner_id`'s files go, as text (for logs and metadata)."""
        if partner_id in self.properties.partner_ids:
            return [f"sftp:{partner_id}/{PERFORMANCE_FOLDER}/"]
        return [
            f"gs://{c.output_bucket}/{c.connector_id}/{PERFORMANCE_FOLDER}/"
            for c in self._connectors(partner_id)
        ]

    def channels_digest(self) -> str:
        """What decides where every partner's files go: when it changes, statements are built again (a partner
        that gets a channel gets its statements)."""
        places = {
            p: self.places(p) for p in sorted(self.properties.partner_ids | self.properties.participant_ids)
        }
        return json.dumps(places, sort_keys=True)

    def _connectors(self, partner_id: str):
        for participant in self.properties.participants:
            if participant.participant_id == partner_id:
                return participant.connectors
        return ()

    def write(self, partner_id: str, files: dict[str, bytes]) -> None:
        """Write `files` ({path below performance/: bytes}) wherever the partner reads; raise DeliveryError if
        any could not be written (written ones are rewritten whole next time: every write replaces an object)."""
        for path in files:
            check_key(path)
        if partner_id in self.properties.partner_ids:
            try:
                for path, data in files.items():
                    self.landing.write_bytes(f"{partner_id}/{PERFORMANCE_FOLDER}/{path}", data)
            except (OSError, ValueError) as exc:
                raise DeliveryError(f"{partner_id}: {exc}") from exc
            return
        connectors = self._connectors(partner_id)
        if not connectors:
            log.warning(
                "partner %s has no SFTP login and no connector: its statements are not delivered", partner_id
            )
            return
        for connector in connectors:
            by_type: dict[str, list[tuple[str, bytes]]] = {}
            for path, data in files.items():
                kind = CONTENT_TYPES.get(path[path.rfind(".") :], "application/octet-stream")
                by_type.setdefault(kind, []).append(
                    (f"{connector.connector_id}/{PERFORMANCE_FOLDER}/{path}", data)
                )
            for content_type, objects in by_type.items():
                errors = [
                    e for e in self.buckets.put_many(connector.output_bucket, objects, content_type) if e
                ]
                if errors:
                    raise DeliveryError(f"{partner_id} ({connector.output_bucket}): {errors[0]}")

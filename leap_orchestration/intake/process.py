"""Process one upload end to end, safely repeatable after a crash at any point.

Order of effects: (1) uploads row PROCESSING; (2) validate, then load rows + record the outcome in one
warehouse transaction; (3) write reports and the status object; (4) move the original out of the inbox.
The warehouse row is the journal: a re-run finds the outcome there and only redoes (3) and (4); the file
leaving the inbox is the very last step, so a crash anywhere leaves it pending and it is taken again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from dataclasses import dataclass

from leap_orchestration.intake import layout
from leap_orchestration.intake.meters import PartnerMeters
from leap_orchestration.intake.reports import errors_csv, feedback_text, status_json
from leap_orchestration.intake.validate import validate_upload
from leap_orchestration.stores.base import FileChangedError, LandingStore, StoredObject
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse import intake_tables as tables
from leap_orchestration.warehouse.duck import run

log = logging.getLogger(__name__)
INTAKE_DUCKDB_MEMORY = "512MB"


@dataclass(frozen=True)
class Upload:
    tenant: str
    inbox: str  # prefix ending in '/'
    obj: StoredObject
    connector_id: str | None = None  # the GCS connector whose inbox it is (None: an SFTP partner's)

    @property
    def job_id(self) -> str:
        return layout.job_id_for(self.tenant, self.obj.key, self.obj.version)

    @property
    def upload_id(self) -> str:
        return layout.upload_id_for(self.tenant, self.obj.name, self.obj.version)

    @property
    def received_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.obj.mtime_ns / 1e9, dt.UTC)


@dataclass(frozen=True)
class Outcome:
    upload: Upload
    status: str  # COMPLETED, FAILED, or SKIPPED (gone or changed meanwhile)
    rows: int = 0
    errors: int = 0


class _HashingReader(io.RawIOBase):
    def __init__(self, raw):
        self._raw, self.sha256 = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        self.sha256.update(data)
        buffer[: len(data)] = data
        return len(data)


def process_upload(store: LandingStore, warehouse: Warehouse, upload: Upload, run_id: str | None = None) -> Outcome:
    obj = store.stat(upload.obj.key)
    if obj is None or obj.version != upload.obj.version:
        return Outcome(upload, "SKIPPED")  # already processed, or replaced by a newer version (its own job)
    with warehouse.connect() as con:
        row = tables.get_upload(con, upload.upload_id)
        if row is None or row["status"] not in ("COMPLETED", "FAILED"):
            write_pending_status(store, upload, "PROCESSING")
            if not _validate_and_load(store, con, upload, run_id):
                return Outcome(upload, "SKIPPED")
            row = tables.get_upload(con, upload.upload_id)
        errors = tables.error_rows(con, upload.job_id) if row["status"] == "FAILED" else []
        previous = tables.previous_job_at(
            con, upload.tenant, upload.obj.name, upload.job_id,
            layout.original_key(upload.inbox, _outcome_folder(row["status"]), upload.obj.name),
        )
    _publish(store, upload, row, previous, errors)
    return Outcome(upload, row["status"], rows=row["rows_total"] or 0, errors=row["error_count"] or 0)


def _outcome_folder(status: str) -> str:
    return layout.ACCEPTED if status == "COMPLETED" else layout.FAILED


def _validate_and_load(store: LandingStore, con, upload: Upload, run_id: str | None) -> bool:
    now = dt.datetime.now(dt.UTC)
    # DuckDB spills the staged rows beyond this; with the reader's chunks in flight a 10M-row file stays < 2 GB
    run(con, f"SET memory_limit = '{INTAKE_DUCKDB_MEMORY}'")
    tables.start_job(
        con, upload_id=upload.upload_id, tenant=upload.tenant, name=upload.obj.name, key=upload.obj.key,
        version=upload.obj.version, size=upload.obj.size, job_id=upload.job_id, received_at=upload.received_at,
        run_id=run_id, connector_id=upload.connector_id,
    )
    meters = PartnerMeters.from_ownership(tables.partner_ownership(con), upload.tenant, upload.received_at)
    with store.open_read(upload.obj.key) as raw:
        hashing = _HashingReader(raw)
        report = validate_upload(io.BufferedReader(hashing, 1024 * 1024), upload.obj.name, meters, now=now, con=con)
        hashing.read()  # hash what validation did not need to read (after a fatal file-level error)
    current = store.stat(upload.obj.key)
    if current is None or current.version != upload.obj.version:
        log.warning("%s changed while it was validated; the new version will be processed as a new upload", upload.obj.key)
        tables.abandon_job(con, upload.upload_id, upload.job_id)
        return False
    folder = layout.ACCEPTED if report.valid else layout.FAILED
    keys = [layout.original_key(upload.inbox, folder, upload.obj.name),
            layout.feedback_key(upload.inbox, folder, upload.obj.name, upload.job_id)]
    if not report.valid:
        keys.append(layout.errors_key(upload.inbox, upload.obj.name, upload.job_id))
    tables.finish_job(
        con, upload_id=upload.upload_id, job_id=upload.job_id, received_at=upload.received_at, report=report,
        sha256=hashing.sha256.hexdigest(), result_keys=keys, processed_at=dt.datetime.now(dt.UTC),
    )
    return True


def _publish(store: LandingStore, upload: Upload, row: dict, previous_job: str | None, errors: list) -> None:
    """Reports and status first, the original last: its leaving the inbox marks the job done."""
    name, inbox, job = upload.obj.name, upload.inbox, upload.job_id
    folder = _outcome_folder(row["status"])
    summary = json.loads(row["summary"] or "[]")
    store.write_bytes(
        layout.feedback_key(inbox, folder, name, job),
        feedback_text(row["rows_total"] or 0, row["elapsed_ms"] or 0, row["error_count"] or 0, row["error_lines"] or 0, summary).encode(),
    )
    if folder == layout.FAILED:
        store.write_bytes(layout.errors_key(inbox, name, job), errors_csv(errors))
    store.write_bytes(
        layout.status_key(inbox, name),
        status_json(file=name, job_id=job, status=row["status"], rows=row["rows_total"], errors=row["error_count"],
                    received_at=row["received_at"], processed_at=row["processed_at"], result_keys=row["result_keys"]),
    )
    _move_original(store, upload, layout.original_key(inbox, folder, name), previous_job)


def _move_original(store: LandingStore, upload: Upload, target: str, previous_job: str | None) -> None:
    existing = store.stat(target)
    if existing is not None:
        if _same_content(store, upload.obj.key, target):
            store.delete(upload.obj.key)  # a crash after copy, or an identical re-upload: nothing is lost
            return
        # a re-upload of a processed name: the earlier original stays, under its own job id
        aside = target.rsplit("/", 1)[0] + f"/{previous_job or 'earlier-' + existing.version}.{upload.obj.name}"
        store.move(target, aside)
    try:
        store.move(upload.obj.key, target, expected_version=upload.obj.version)
    except FileChangedError:
        log.warning("%s was replaced after validation; the new version stays pending", upload.obj.key)


def _same_content(store: LandingStore, a: str, b: str) -> bool:
    digests = []
    for key in (a, b):
        sha = hashlib.sha256()
        with store.open_read(key) as fh:
            while chunk := fh.read(1024 * 1024):
                sha.update(chunk)
        digests.append(sha.digest())
    return digests[0] == digests[1]


def write_pending_status(store: LandingStore, upload: Upload, status: str) -> None:
    """QUEUED (sensor) or PROCESSING: the status object before there is an outcome."""
    store.write_bytes(
        layout.status_key(upload.inbox, upload.obj.name),
        status_json(file=upload.obj.name, job_id=upload.job_id, status=status, rows=None, errors=None,
                    received_at=upload.received_at, processed_at=None, result_keys=[]),
    )

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb

from leap_orchestration.intake import layout
from leap_orchestration.intake.codes import Finding
from leap_orchestration.intake.limits import DEFAULT_LIMITS, IntakeLimits
from leap_orchestration.intake.meters import PartnerMeters
from leap_orchestration.intake.reports import errors_csv, feedback_text, status_json
from leap_orchestration.intake.validate import ValidationReport, validate_upload
from leap_orchestration.stores.base import FileChangedError, LandingStore, StoredObject
from leap_orchestration.warehouse import Warehouse
from leap_orchestration.warehouse import intake_tables as tables
from leap_orchestration.warehouse.duck import is_write_conflict, run
from leap_orchestration.warehouse.intake_tables import ConfigurationNotLoaded

log = logging.getLogger(__name__)
COMMIT_QUEUE = "intake commit"  # Warehouse.hold name the loads' commits queue on
MAX_ATTEMPTS = 3  # starts of one file version's checks whose process died before an outcome: then SYS_0002


@dataclass(frozen=True)
class Upload:
    tenant: str
    inbox: str  # prefix ending in '/'
    obj: StoredObject
    connector_id: str | None = None  # the GCS connector whose inbox it is (None: an SFTP partner's)

    @property
    def channel_root(self) -> str:
        """What the tenant's own channel shows as its root: result keys in status objects are relative to it
        (an SFTP partner's root is `<partner>/`; a GCS connector reads object names in the bucket)."""
        root = f"{self.tenant}/"
        return root if self.connector_id is None and self.inbox.startswith(root) else ""

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


class StoreUnavailable(RuntimeError):
    """The store failed while an upload was read or its status written: not the file's fault, so it stays
    pending for the next run (never SYS_0001)."""


class _HashingReader(io.RawIOBase):
    def __init__(self, raw):
        self._raw, self.sha256 = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._raw.read(len(buffer))
        except Exception as exc:
            raise StoreUnavailable(f"reading the upload failed: {exc}") from exc
        self.sha256.update(data)
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> str:
        """Hash what validation did not need to read (after a fatal file-level error), 1 MB at a time."""
        while self.read(1024 * 1024):
            pass
        return self.sha256.hexdigest()


def _from_store(call, *args):
    try:
        return call(*args)
    except Exception as exc:
        raise StoreUnavailable(f"{getattr(call, '__name__', call)} failed: {exc}") from exc


def process_upload(
    store: LandingStore,
    warehouse: Warehouse,
    upload: Upload,
    run_id: str | None = None,
    limits: IntakeLimits = DEFAULT_LIMITS,
) -> Outcome:
    """Take one upload to its end state. Whatever the file holds or does to the checks, it ends in accepted/ or
    failed/ (SYS_0001/0002 for faults that are ours); only infrastructure faults (no configuration loaded, the
    warehouse or store unreachable) raise, leaving the file pending for the next run."""
    # The upload is held (the DuckDB file's lock, or DuckLake's advisory lock on its key) until the original has
    # moved, so two processes on one home take an upload in turns: the second finds it gone, never half-moved.
    with warehouse.hold(f"upload {upload.obj.key}"), warehouse.connect() as con:
        obj = store.stat(upload.obj.key)
        if obj is None or obj.version != upload.obj.version:
            return Outcome(
                upload, "SKIPPED"
            )  # already processed, or replaced by a newer version (its own job)
        row = tables.get_upload(con, upload.upload_id)
        if row is None or row["status"] not in ("COMPLETED", "FAILED"):
            if row is not None and (row.get("attempts") or 0) >= MAX_ATTEMPTS:
                log.error(
                    "%s: processing was interrupted %d times (job %s); it goes to failed/ as SYS_0002",
                    upload.obj.key,
                    row["attempts"],
                    upload.job_id,
                )
                _record_fault(
                    con,
                    upload,
                    run_id,
                    "SYS_0002",
                    f"Processing this file was interrupted {MAX_ATTEMPTS} "
                    f"times (reference {upload.job_id}); operators have been alerted. Upload it again under "
                    "a new name, split into smaller files if it is large.",
                )
            elif not _checked(store, warehouse, con, upload, run_id, limits):
                return Outcome(upload, "SKIPPED")
            row = tables.get_upload(con, upload.upload_id)
        errors = tables.error_rows(con, upload.job_id) if row["status"] == "FAILED" else []
        previous = tables.previous_job_at(
            con,
            upload.tenant,
            upload.obj.name,
            upload.job_id,
            layout.original_key(upload.inbox, _outcome_folder(row["status"]), upload.obj.name),
        )
        _publish(store, upload, row, previous, errors)
    return Outcome(upload, row["status"], rows=row["rows_total"] or 0, errors=row["error_count"] or 0)


def _checked(
    store: LandingStore, warehouse: Warehouse, con, upload: Upload, run_id: str | None, limits: IntakeLimits
) -> bool:
    """Validate and load, turning any fault of the checks into a SYS_0001 outcome; False if the file changed."""
    try:
        _from_store(write_pending_status, store, upload, "PROCESSING")
        return _validate_and_load(store, warehouse, con, upload, run_id, limits)
    except ConfigurationNotLoaded:
        raise  # ours, and not this file's: every upload waits for the configuration
    except Exception as exc:
        # the store, the warehouse's disk, or writers that kept winning every commit: not the file's fault,
        # it stays pending for the next run, and this start doesn't count (the process did not die)
        if isinstance(exc, StoreUnavailable | duckdb.IOException) or is_write_conflict(exc):
            tables.undo_attempt(con, upload.upload_id)
            raise
        log.exception(
            "internal error while checking %s (job %s); it goes to failed/ as SYS_0001",
            upload.obj.key,
            upload.job_id,
        )
    _record_fault(
        con,
        upload,
        run_id,
        "SYS_0001",
        f"The file could not be checked because of an internal error "
        f"(reference {upload.job_id}); operators have been alerted. Upload it again under a new name later, "
        "or contact support with the reference.",
    )
    return True


def _outcome_folder(status: str) -> str:
    return layout.ACCEPTED if status == "COMPLETED" else layout.FAILED


def _result_keys(upload: Upload, valid: bool) -> list[str]:
    folder = layout.ACCEPTED if valid else layout.FAILED
    keys = [
        layout.original_key(upload.inbox, folder, upload.obj.name),
        layout.feedback_key(upload.inbox, folder, upload.obj.name, upload.job_id),
    ]
    if not valid:
        keys.append(layout.errors_key(upload.inbox, upload.obj.name, upload.job_id))
    return keys


def _start(con, upload: Upload, run_id: str | None) -> None:
    tables.start_job(
        con,
        upload_id=upload.upload_id,
        tenant=upload.tenant,
        name=upload.obj.name,
        key=upload.obj.key,
        version=upload.obj.version,
        size=upload.obj.size,
        job_id=upload.job_id,
        received_at=upload.received_at,
        run_id=run_id,
        connector_id=upload.connector_id,
    )


def _validate_and_load(
    store: LandingStore, warehouse: Warehouse, con, upload: Upload, run_id: str | None, limits: IntakeLimits
) -> bool:
    now = dt.datetime.now(dt.UTC)
    # DuckDB spills the staged rows beyond this; with the reader's chunks in flight a 10M-row file stays < 2 GB
    run(con, f"SET memory_limit = '{limits.duckdb_memory}'")
    _start(con, upload, run_id)
    meters = PartnerMeters.from_ownership(tables.partner_ownership(con), upload.tenant, upload.received_at)
    with _from_store(store.open_read, upload.obj.key) as raw:
        hashing = _HashingReader(raw)
        report = validate_upload(
            io.BufferedReader(hashing, 1024 * 1024), upload.obj.name, meters, now=now, con=con, limits=limits
        )
        sha256 = hashing.finish()
    current = _from_store(store.stat, upload.obj.key)
    if current is None or current.version != upload.obj.version:
        log.warning(
            "%s changed while it was validated; the new version will be processed as a new upload",
            upload.obj.key,
        )
        tables.abandon_job(con, upload.upload_id, upload.job_id)
        return False
    # every load's commit conflicts with any other's (both write `uploads`): on a multi-writer backend they
    # queue for it here rather than race and redo the loser's work (validation above runs in parallel)
    with warehouse.hold(COMMIT_QUEUE):
        _finish(con, upload, report, sha256)
    return True


def _finish(con, upload: Upload, report: ValidationReport, sha256: str | None) -> None:
    tables.finish_job(
        con,
        upload_id=upload.upload_id,
        job_id=upload.job_id,
        received_at=upload.received_at,
        report=report,
        sha256=sha256,
        result_keys=_result_keys(upload, report.valid),
        processed_at=dt.datetime.now(dt.UTC),
    )


def _record_fault(con, upload: Upload, run_id: str | None, code: str, message: str) -> None:
    """Fail the upload with one file-level finding of ours (SYS_*): it leaves the inbox like any failed file."""
    report = ValidationReport()
    report.counts[("", code)] = 1
    report.details.append(Finding(0, "", code, message))
    report.error_lines = 1
    _start(con, upload, run_id)
    _finish(con, upload, report, sha256=None)


def _publish(store: LandingStore, upload: Upload, row: dict, previous_job: str | None, errors: list) -> None:
    """Reports and status first, the original last: its leaving the inbox marks the job done."""
    name, inbox, job = upload.obj.name, upload.inbox, upload.job_id
    folder = _outcome_folder(row["status"])
    summary = json.loads(row["summary"] or "[]")
    store.write_bytes(
        layout.feedback_key(inbox, folder, name, job),
        feedback_text(
            row["rows_total"] or 0,
            row["elapsed_ms"] or 0,
            row["error_count"] or 0,
            row["error_lines"] or 0,
            summary,
        ).encode(),
    )
    if folder == layout.FAILED:
        store.write_bytes(layout.errors_key(inbox, name, job), errors_csv(errors))
    status_key = layout.status_key(inbox, name)
    final = status_json(
        file=name,
        job_id=job,
        status=row["status"],
        rows=row["rows_total"],
        errors=row["error_count"],
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        result_keys=[k.removeprefix(upload.channel_root) for k in row["result_keys"] or []],
    )
    store.write_bytes(status_key, final)
    _move_original(store, upload, layout.original_key(inbox, folder, name), previous_job)
    # A sensor tick that listed the file before it moved may have written QUEUED over the final status since
    if _status_job(store, status_key) == job and store.read_bytes(status_key) != final:
        store.write_bytes(status_key, final)


def _move_original(store: LandingStore, upload: Upload, target: str, previous_job: str | None) -> None:
    existing = store.stat(target)
    if existing is not None:
        if store.stat(upload.obj.key) is None:
            return  # already moved (a crash after the move, before this run)
        if _same_content(store, upload.obj.key, target):
            store.delete(upload.obj.key)  # a crash after copy, or an identical re-upload: nothing is lost
            return
        # a re-upload of a processed name: the earlier original stays, under its own job id
        aside = (
            target.rsplit("/", 1)[0]
            + f"/{previous_job or 'earlier-' + existing.version}.{layout.result_name(upload.obj.name)}"
        )
        if store.stat(aside) is None:
            store.move(target, aside)
        elif _same_content(store, target, aside):
            store.delete(
                target
            )  # a crash between the two halves (link/copy, then unlink/delete) of that move
        else:
            raise FileExistsError(f"{aside} holds another file: {target} can't be set aside")
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


def _status_job(store: LandingStore, key: str) -> str | None:
    try:
        return json.loads(store.read_bytes(key)).get("job_id")
    except (FileNotFoundError, ValueError):
        return None


def mark_queued(store: LandingStore, uploads: list[Upload]) -> None:
    """Status QUEUED for the uploads a run was requested for, in parallel (an hourly tick may name 1,000). A
    status that already names the upload's job is left alone: a run may have finished the file since it was
    listed, and a final status must never be overwritten by QUEUED."""

    def queue(upload: Upload) -> None:
        if _status_job(store, layout.status_key(upload.inbox, upload.obj.name)) != upload.job_id:
            write_pending_status(store, upload, "QUEUED")

    with ThreadPoolExecutor(16, thread_name_prefix="mark-queued") as pool:
        list(pool.map(queue, uploads))


def write_pending_status(store: LandingStore, upload: Upload, status: str) -> None:
    """QUEUED (sensor) or PROCESSING: the status object before there is an outcome."""
    store.write_bytes(
        layout.status_key(upload.inbox, upload.obj.name),
        status_json(
            file=upload.obj.name,
            job_id=upload.job_id,
            status=status,
            rows=None,
            errors=None,
            received_at=upload.received_at,
            processed_at=None,
            result_keys=[],
        ),
    )

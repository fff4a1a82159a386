"""Uploads in progress: what was received, and whether it may be published.

Only what was fully received and closed is published. Each upload writes a private spool file and records
the byte ranges written to it; it is published when the client closes its handle and those ranges cover
`[0, size)` exactly. Anything else aborts it: a refused or malformed write, a remove of the open upload, a
size change by setstat, the channel closing with the handle open, a second upload of the same name. An
aborted upload publishes nothing, its spool file is removed and one `upload_aborted` audit line says why.

A temporary name (`x.csv.filepart`, `x.csv.<hex>.partial`, `.in.x.csv`, ...) makes a *staged* upload: it is
never published on close, but renaming it to a final name publishes it under that name (same rules). Staged
uploads are shown to the partner's sessions (clients stat them) but never to the pipeline: they are not in
the store. One still un-renamed when its connection ends is discarded.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from leap_orchestration.stores.base import LandingStore
from leap_orchestration.stores.local import SFTP_INBOX

OPEN, CLOSED, PUBLISHING, ENDED = "open", "closed", "publishing", "ended"
MAX_FRAGMENTS = 4096  # disjoint written ranges one upload may hold (real clients keep a few dozen at most)
MAX_OPEN_UPLOADS = 32  # per partner: each holds a spool descriptor, and descriptors are shared by everyone


class UploadError(Exception):
    """The request fails; `permission` marks a refusal (permission denied) rather than a failure."""

    def __init__(self, message: str, permission: bool = False):
        super().__init__(message)
        self.permission = permission


class Ranges:
    """Disjoint, merged [start, end) byte ranges."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        starts, ends = self._starts, self._ends
        i = bisect.bisect_left(starts, start)
        if i > 0 and ends[i - 1] >= start:  # touches or overlaps the range before
            i -= 1
        j = i
        while j < len(starts) and starts[j] <= end:  # and every range after that it touches
            j += 1
        if j > i:
            start, end = min(start, starts[i]), max(end, ends[j - 1])
        starts[i:j], ends[i:j] = [start], [end]

    @property
    def end(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __len__(self) -> int:
        return len(self._starts)

    def whole(self) -> bool:
        """True if the ranges are exactly [0, end) (or nothing at all: an empty file)."""
        return not self._starts or (len(self._starts) == 1 and self._starts[0] == 0)

    def first_gap(self) -> tuple[int, int] | None:
        if self.whole():
            return None
        if self._starts[0] > 0:
            return 0, self._starts[0]
        return self._ends[0], self._starts[1]


class Upload:
    """One file being received into a spool file; `key` is None for a staged (temporary-name) upload."""

    def __init__(self, partner: str, name: str, key: str | None, spool_dir: Path, owner: object):
        self.partner, self.name, self.key, self.owner = partner, name, key, owner
        self.staged = key is None
        self.path = spool_dir / f"{partner}-{uuid.uuid4().hex}.upload"
        self.ranges = Ranges()
        self.state = OPEN
        self.reason: str | None = None
        self.reserved = 0  # bytes counted against the partner's quota: the furthest end any write asked for
        self.mtime = time.time()
        self.sha256: str | None = None
        # every use of the fd holds this lock, so an abort can't close it under a write in a worker thread
        self._io = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    @property
    def size(self) -> int:
        return self.ranges.end

    @property
    def live(self) -> bool:
        return self.state in (OPEN, CLOSED)

    def write_at(self, offset: int, data: bytes) -> None:
        """Worker thread: write `data` at `offset` (nothing if the upload was disposed of meanwhile)."""
        with self._io:
            view = memoryview(data)
            while view and self._fd >= 0:
                done = os.pwrite(self._fd, view, offset)
                view, offset = view[done:], offset + done

    def seal(self) -> None:
        """Worker thread: fsync and close the spool file, and take its sha256 for the audit line."""
        with self._io:
            if self._fd < 0:
                return
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            sha = hashlib.sha256()
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    sha.update(chunk)
            self.sha256 = sha.hexdigest()

    def dispose(self) -> None:
        """Close and remove the spool file (any thread; waits for a write in progress)."""
        with self._io:
            self._release()

    def dispose_soon(self) -> None:
        if self._io.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._io.release()
        else:  # a worker thread is using the file: remove it once that is done
            asyncio.get_running_loop().run_in_executor(None, self.dispose)

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)


class Uploads:
    """Every live upload of the server, by (partner, name), with the partners' quota accounting.

    Used on the event loop only; the blocking work (writes, fsync, publish) runs in worker threads.
    """

    def __init__(
        self, store: LandingStore, audit: Callable[..., None], max_upload_bytes: int, quota_bytes: int
    ):
        self.store, self.audit = store, audit
        self.max_upload_bytes, self.quota_bytes = max_upload_bytes, quota_bytes
        self._live: dict[tuple[str, str], Upload] = {}
        self._receiving: Counter[str] = Counter()  # bytes of live uploads, per partner
        # bytes waiting in the partner's inbox, as of its last upload start (plus what it published since)
        self._pending: dict[str, int] = {}

    def get(self, partner: str, name: str) -> Upload | None:
        return self._live.get((partner, name))

    def staged(self, partner: str) -> list[Upload]:
        return [u for (p, _), u in self._live.items() if p == partner and u.staged]

    def remove_stale_spool(self, older_than_seconds: float) -> int:
        """At start: spool files left by a server that died mid-upload (a live upload of another server on the
        same store writes at least once per idle timeout, so an older file is nobody's)."""
        removed, cutoff = 0, time.time() - older_than_seconds
        for path in self.store.spool_dir().glob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        if removed:
            self.audit("spool_cleaned", files=removed)
        return removed

    async def start(self, partner: str, name: str, key: str | None, owner: object) -> Upload:
        if sum(1 for (p, _), u in self._live.items() if p == partner and u.state == OPEN) >= MAX_OPEN_UPLOADS:
            raise UploadError(
                f"too many uploads in progress ({MAX_OPEN_UPLOADS}): finish or close some before starting another"
            )
        pending = await asyncio.to_thread(self._pending_bytes, partner)
        self._pending[partner] = pending
        old = self._live.get((partner, name))
        if old is not None:
            if old.staged and old.state == CLOSED:  # a client writing its temporary file again
                self.abort(old, "replaced by a new upload of the same name")
            else:
                self.abort(old, "a second upload of the same name was opened")
                raise UploadError(
                    f"{name} was already being uploaded; both uploads were stopped: upload it again"
                )
        try:
            upload = Upload(partner, name, key, self.store.spool_dir(), owner)
        except OSError:  # the spool is unusable (full disk, ...): the open fails, audited by the session
            raise UploadError("the server could not store this upload; try again later") from None
        self._live[(partner, name)] = upload
        return upload

    async def write(self, upload: Upload, offset: int, data: bytes) -> int:
        self._check_open(upload)
        end = offset + len(data)
        if end > self.max_upload_bytes:
            self.abort(upload, "over the size limit")
            raise UploadError(
                f"upload exceeds the {self.max_upload_bytes // 1024**2} MB limit: split the file"
            )
        growth = max(0, end - upload.reserved)
        if (
            growth
            and self._pending[upload.partner] + self._receiving[upload.partner] + growth > self.quota_bytes
        ):
            self.abort(upload, "quota exceeded")
            raise UploadError(
                f"quota exceeded: at most {self.quota_bytes // 1024**2} MB may wait in "
                f"/{SFTP_INBOX}/ or be uploading at once; try again when files were processed"
            )
        if len(upload.ranges) >= MAX_FRAGMENTS:
            self.abort(upload, "too many separate pieces written")
            raise UploadError("too many separate pieces written: write the file in order")
        upload.reserved += growth
        self._receiving[upload.partner] += growth  # counted before the await, so parallel sessions see it
        try:
            await asyncio.to_thread(upload.write_at, offset, data)
        except OSError as exc:
            self.abort(upload, f"could not be stored: {exc.strerror or exc}")
            raise UploadError("the server could not store this upload; try again later") from None
        self._check_open(upload)  # aborted (by another session) while the data was being written
        upload.ranges.add(offset, end)
        upload.mtime = time.time()
        return len(data)

    async def finish(self, upload: Upload) -> None:
        """The client closed the handle: publish a final-name upload, keep a staged one for its rename."""
        self._check_open(upload)
        gap = upload.ranges.first_gap()
        if gap is not None:
            self.abort(upload, f"incomplete: bytes {gap[0]}-{gap[1]} were never written")
            raise UploadError(
                f"{upload.name} is incomplete (bytes {gap[0]}-{gap[1]} never arrived); upload it again"
            )
        if upload.staged:
            await asyncio.to_thread(upload.seal)
            self._check_open(upload)
            upload.state = CLOSED
            return
        await self._publish(upload, upload.key, upload.name)

    async def publish_staged(self, upload: Upload, key: str, name: str) -> None:
        """Publish a closed staged upload under its final name (the rename of its temporary name)."""
        if upload.state != CLOSED:
            self._check_open(upload)
            raise UploadError(f"close {upload.name} before renaming it")
        if self.get(upload.partner, name) is not None:
            raise UploadError(f"{name} is being uploaded by another session", permission=True)
        await self._publish(upload, key, name)

    async def _publish(self, upload: Upload, key: str, name: str) -> None:
        upload.state = PUBLISHING  # from here an abort is too late: the store decides

        def seal_and_publish() -> None:
            upload.seal()
            self.store.publish(key, upload.path)

        try:
            await asyncio.to_thread(seal_and_publish)
        except FileExistsError:
            message = f"{name} is waiting to be processed and can't be overwritten; upload under a new name"
            if upload.staged:  # the client may rename it to another name, or remove it
                upload.state = CLOSED
                raise UploadError(message, permission=True) from None
            upload.state = OPEN
            self.abort(upload, "name taken: a file of that name is waiting to be processed")
            raise UploadError(message, permission=True) from None
        except Exception as exc:  # noqa: BLE001 - any store failure: the client must hear the upload failed
            upload.state = OPEN
            self.abort(upload, f"could not be published: {exc}")
            raise UploadError("the server could not store this upload; try again later") from None
        self._forget(upload)
        upload.state = ENDED
        self._pending[upload.partner] = self._pending.get(upload.partner, 0) + upload.size
        extra = {"staged_as": upload.name} if upload.staged else {}
        self.audit(
            "upload", partner=upload.partner, name=name, size=upload.size, sha256=upload.sha256, **extra
        )

    def abort(self, upload: Upload, reason: str, event: str = "upload_aborted") -> bool:
        """Stop a live upload: nothing is published, its spool file goes, one audit line. False if too late."""
        if not upload.live:
            return False
        self._forget(upload)
        upload.state, upload.reason = ENDED, reason
        self.audit(event, partner=upload.partner, name=upload.name, reason=reason, bytes_received=upload.size)
        upload.dispose_soon()
        return True

    def connection_ended(self, owner: object) -> None:
        """Stop every upload the connection still holds: open ones are incomplete, staged ones never renamed."""
        for upload in [u for u in self._live.values() if u.owner is owner]:
            if upload.state == CLOSED:
                self.abort(upload, "temporary upload never renamed", event="upload_discarded")
            else:
                self.abort(upload, "the connection closed with the file still open")

    def _check_open(self, upload: Upload) -> None:
        if upload.state == ENDED:
            raise UploadError(f"the upload of {upload.name} was stopped ({upload.reason}); upload it again")

    def _forget(self, upload: Upload) -> None:
        if self._live.get((upload.partner, upload.name)) is upload:
            del self._live[(upload.partner, upload.name)]
        self._receiving[upload.partner] -= upload.reserved
        if self._receiving[upload.partner] <= 0:
            del self._receiving[upload.partner]

    def _pending_bytes(self, partner: str) -> int:
        return sum(o.size for o in self.store.list_files(f"{partner}/{SFTP_INBOX}/"))

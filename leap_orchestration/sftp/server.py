"""The asyncssh server: password logins with API keys, one virtual tree per partner, atomic publish.

An upload is written to a private spool file and published to the landing store (marked complete) only when
the client closes it; if the connection drops first, asyncssh still calls `close`, so `close` checks that the
channel is alive and otherwise discards the spool file. Everything a partner may not do is refused with a
permission error and audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from leap_orchestration.sftp.audit import AuditTrail
from leap_orchestration.sftp.credentials import PartnerCredentials
from leap_orchestration.sftp.throttle import LoginThrottle, ThrottlePolicy
from leap_orchestration.sftp.view import Entry, NotFound, PartnerView, Refused, display, parse_path
from leap_orchestration.stores.base import LandingStore

DEFAULT_BANNER = """============ LEAP SFTP SERVER ============
You can use this server to upload meter
interval data. Use your partner ID as the
username and one of your API keys as the
password. Upload CSV files into
interval-data/; results appear in
interval-data/accepted/, failed/ and
status/ within a minute.
==========================================
"""
_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC


@dataclass(frozen=True)
class SftpSettings:
    host: str = "127.0.0.1"
    port: int = 2222  # 0 = any free port
    banner: str = DEFAULT_BANNER
    max_upload_bytes: int = 2 * 1024**3
    max_sessions_per_partner: int = 8
    idle_timeout_seconds: float = 600
    login_timeout_seconds: float = 60
    failed_login_delay_seconds: float = 1.0
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)


class SftpService:
    """State shared by every connection of one running server."""

    def __init__(self, store: LandingStore, credentials: PartnerCredentials, host_keys: list, settings: SftpSettings,
                 audit_log: Path | None = None):
        self.store, self.credentials, self.host_keys, self.settings = store, credentials, host_keys, settings
        self.audit = AuditTrail(audit_log)
        self.throttle = LoginThrottle(settings.throttle)
        self.sessions: Counter[str] = Counter()
        self.last_activity: dict[object, float] = {}

    async def start(self) -> asyncssh.SSHAcceptor:
        self.store.spool_dir().mkdir(parents=True, exist_ok=True)
        return await asyncssh.create_server(
            lambda: _Connection(self), self.settings.host, self.settings.port, server_host_keys=self.host_keys,
            sftp_factory=lambda chan: _PartnerSftp(chan, self), allow_scp=False,
            login_timeout=self.settings.login_timeout_seconds, keepalive_interval=60,
        )


class _Connection(asyncssh.SSHServer):
    def __init__(self, service: SftpService):
        self.service, self.partner, self.conn, self.address = service, None, None, "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.address = (conn.get_extra_info("peername") or ("?",))[0]

    def begin_auth(self, username: str) -> bool:
        if self.service.settings.banner:
            self.conn.send_auth_banner(self.service.settings.banner)
        return True  # every user authenticates (no enumeration by a shortcut)

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        service = self.service
        reason = None
        if service.throttle.locked(username, self.address) > 0:
            reason = "locked"  # even a right key fails until the lock expires
        elif await asyncio.to_thread(service.credentials.verify, username, password) is None:
            reason = "bad credentials"
            if service.throttle.failure(username, self.address):
                service.audit("lockout", partner=username, address=self.address)
        elif service.sessions[username] >= service.settings.max_sessions_per_partner:
            reason = "too many sessions"
        if reason:
            service.audit("login", partner=username, address=self.address, ok=False, reason=reason)
            await asyncio.sleep(service.settings.failed_login_delay_seconds)
            return False
        service.throttle.success(username, self.address)
        service.sessions[username] += 1
        self.partner = username
        service.audit("login", partner=username, address=self.address, ok=True)
        return True

    def auth_completed(self) -> None:
        self.service.last_activity[self.conn] = asyncio.get_running_loop().time()
        self.conn.create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        limit = self.service.settings.idle_timeout_seconds
        while True:
            await asyncio.sleep(min(limit / 4, 30))
            idle = asyncio.get_running_loop().time() - self.service.last_activity.get(self.conn, 0)
            if idle >= limit:
                self.service.audit("idle_timeout", partner=self.partner, address=self.address, idle_seconds=round(idle))
                self.conn.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.last_activity.pop(self.conn, None)
        if self.partner:
            self.service.sessions[self.partner] -= 1
            self.service.audit("logout", partner=self.partner, address=self.address)


class _Upload:
    def __init__(self, key: str, name: str, path: Path):
        self.key, self.name, self.path = key, name, path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size, self.failed = 0, False


class _Download:
    def __init__(self, fh, size: int):
        self.fh, self.size = fh, size


class _PartnerSftp(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, service: SftpService):
        super().__init__(chan)
        self.service = service
        self.partner = chan.get_extra_info("username")
        self.view = PartnerView(service.store, self.partner)

    # ------------------------------------------------------------ helpers

    def _touch(self) -> None:
        self.service.last_activity[self.connection] = asyncio.get_running_loop().time()

    def _parts(self, path: bytes) -> tuple[str, ...]:
        self._touch()
        try:
            return parse_path(path)
        except NotFound as exc:
            raise asyncssh.SFTPNoSuchFile(str(exc)) from None

    async def _call(self, fn, *args):
        """Run a (blocking) store call off the event loop, mapping our errors to SFTP ones."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (NotFound, ValueError) as exc:  # ValueError: the store refused the key (a link, an escape)
            raise asyncssh.SFTPNoSuchFile(f"no such file or folder: {exc}") from None
        except Refused as exc:
            self._refused("upload", str(exc))
            raise asyncssh.SFTPPermissionDenied(str(exc)) from None

    def _refused(self, operation: str, detail: str) -> None:
        self.service.audit("refused", partner=self.partner, operation=operation, detail=detail)

    def _deny(self, operation: str, path: bytes | str):
        shown = path.decode("utf-8", "replace") if isinstance(path, bytes) else path
        self._touch()
        self._refused(operation, shown)
        raise asyncssh.SFTPPermissionDenied(f"{operation} is not allowed on this server: files are processed as soon "
                                            "as they arrive (contact your Partner Success Manager to remove one)")

    # ------------------------------------------------------------ reading the tree

    async def realpath(self, path: bytes) -> bytes:
        return display(self._parts(path)).encode()

    async def stat(self, path: bytes) -> SFTPAttrs:
        return _attrs(await self._call(self.view.stat, self._parts(path)))

    lstat = stat  # there are no links in this tree

    async def fstat(self, file_obj) -> SFTPAttrs:
        self._touch()
        return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=file_obj.size,
                         permissions=stat.S_IFREG | (0o644 if isinstance(file_obj, _Upload) else 0o444))

    async def scandir(self, path: bytes):
        parts = self._parts(path)
        entries = await self._call(self.view.list, parts)
        for entry in [Entry(".", True), Entry("..", True), *entries]:
            yield SFTPName(entry.name.encode(), attrs=_attrs(entry))

    # ------------------------------------------------------------ files

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs):
        parts = self._parts(path)
        if pflags & _WRITE_FLAGS:
            if pflags & (asyncssh.FXF_READ | asyncssh.FXF_APPEND):
                self._deny("read-write or append open", path)
            key = await self._call(self.view.upload_key, parts)
            spool = self.service.store.spool_dir() / f"{self.partner}-{uuid.uuid4().hex}.upload"
            return _Upload(key, parts[-1], spool)
        key, entry = await self._call(self.view.file, parts)
        return _Download(await self._call(self.service.store.open_read, key), entry.size)

    async def read(self, file_obj, offset: int, size: int) -> bytes:
        self._touch()
        if not isinstance(file_obj, _Download):
            raise asyncssh.SFTPPermissionDenied("this file was opened for writing")

        def read_at() -> bytes:
            file_obj.fh.seek(offset)
            return file_obj.fh.read(size)
        return await asyncio.to_thread(read_at)

    async def write(self, file_obj, offset: int, data: bytes) -> int:
        self._touch()
        if not isinstance(file_obj, _Upload):
            raise asyncssh.SFTPPermissionDenied("this file was opened for reading")
        limit = self.service.settings.max_upload_bytes
        if file_obj.failed or offset + len(data) > limit:
            file_obj.failed = True
            self._refused("upload over limit", file_obj.name)
            raise asyncssh.SFTPFailure(f"upload exceeds the {limit // 1024**2} MB limit: split the file")
        written = await asyncio.to_thread(os.pwrite, file_obj.fd, data, offset)
        file_obj.size = max(file_obj.size, offset + written)
        return written

    async def close(self, file_obj) -> None:
        if isinstance(file_obj, _Download):
            file_obj.fh.close()
            return
        # asyncssh also calls close() for handles still open when a connection drops: publish nothing then
        dropped = self.channel.is_closing() or self.connection.is_closed()
        if dropped or file_obj.failed:
            os.close(file_obj.fd)
            file_obj.path.unlink(missing_ok=True)
            self.service.audit("upload_discarded", partner=self.partner, name=file_obj.name, bytes_received=file_obj.size,
                  reason="connection dropped" if dropped else "over limit")
            return
        self._touch()
        try:
            digest = await asyncio.to_thread(_seal, file_obj)
            await asyncio.to_thread(self.service.store.publish, file_obj.key, file_obj.path)
        except FileExistsError:
            file_obj.path.unlink(missing_ok=True)
            self._refused("overwrite", file_obj.name)
            raise asyncssh.SFTPPermissionDenied(f"{file_obj.name} is waiting to be processed; upload under a new name") from None
        self.service.audit("upload", partner=self.partner, name=file_obj.name, size=file_obj.size, sha256=digest)

    # ------------------------------------------------------------ refused

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        parts = self._parts(path)
        try:
            existing = await asyncio.to_thread(self.view.stat, parts)
        except NotFound:
            existing = None
        if existing is not None:  # "make sure the folder exists" clients expect an ordinary failure
            raise asyncssh.SFTPFailure(f"{display(parts)} already exists")
        self._deny("mkdir", path)

    def remove(self, path: bytes) -> None:
        self._deny("remove", path)

    def rmdir(self, path: bytes) -> None:
        self._deny("rmdir", path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("rename", oldpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("rename", oldpath)

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._deny("setstat", path)

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._deny("setstat", path)

    def fsetstat(self, file_obj, attrs: SFTPAttrs) -> None:
        self._deny("setstat", getattr(file_obj, "name", "(open file)"))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("symlink", newpath)

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("link", newpath)

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile("there are no links on this server")


def _seal(upload: _Upload) -> str:
    """fsync and close the spool file; its sha256 for the audit line."""
    os.fsync(upload.fd)
    os.close(upload.fd)
    sha = hashlib.sha256()
    with open(upload.path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            sha.update(chunk)
    return sha.hexdigest()


def _attrs(entry: Entry) -> SFTPAttrs:
    if entry.is_dir:
        return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=stat.S_IFDIR | 0o755, uid=0, gid=0,
                         size=0, atime=int(entry.mtime), mtime=int(entry.mtime))
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=stat.S_IFREG | 0o444, uid=0, gid=0,
                     size=entry.size, atime=int(entry.mtime), mtime=int(entry.mtime))


@contextlib.contextmanager
def running_in_thread(service: SftpService) -> Iterator[int]:
    """Run the server on its own event loop in a thread (tests, the demo); yields the bound port."""
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["server"] = loop.run_until_complete(service.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            started["error"] = exc
        ready.set()
        if "server" in started:
            loop.run_forever()

    thread = threading.Thread(target=main, name="sftp-server", daemon=True)
    thread.start()
    ready.wait()
    if "error" in started:
        raise started["error"]
    server = started["server"]
    try:
        yield server.get_port()
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # connections' watchdogs and handlers
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def serve_forever(service: SftpService) -> None:
    server = await service.start()
    service.audit("server_started", host=service.settings.host, port=server.get_port())
    try:
        await asyncio.Event().wait()  # until cancelled (Ctrl-C, SIGTERM)
    finally:
        server.close()

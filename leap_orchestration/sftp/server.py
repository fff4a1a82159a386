"""The asyncssh server: password logins with API keys, sessions and their limits, one SFTP tree per partner.

Logins: every attempt costs one Argon2 check (unknown user, wrong key, locked pair alike), so timing reveals
nothing; failures are throttled per (user, address) and slowed per address (`throttle.py`). Sessions: a
partner may hold `max_sessions_per_partner` sessions, counted by SFTP channel (a connection without one
counts as one), and a connection at most `max_channels_per_connection` channels. A connection with no SFTP
request for `idle_timeout_seconds` is closed. What a channel may do is `session.py`; uploads are
`uploads.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from leap_orchestration.sftp.audit import AuditTrail
from leap_orchestration.sftp.channel import SftpChannel
from leap_orchestration.sftp.credentials import PartnerCredentials
from leap_orchestration.sftp.session import PartnerSftp
from leap_orchestration.sftp.throttle import LoginThrottle, ThrottlePolicy
from leap_orchestration.sftp.uploads import Uploads
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


@dataclass(frozen=True)
class SftpSettings:
    host: str = "127.0.0.1"
    port: int = 2222  # 0 = any free port
    banner: str = DEFAULT_BANNER
    max_upload_bytes: int = 2 * 1024**3
    quota_bytes: int = 10 * 1024**3  # per partner: waiting in its inbox plus being received
    max_sessions_per_partner: int = 8  # SFTP channels (a connection without one counts as one)
    max_channels_per_connection: int = 4
    idle_timeout_seconds: float = 600
    login_timeout_seconds: float = 60
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)


class SftpService:
    """State shared by every connection of one running server."""

    def __init__(
        self,
        store: LandingStore,
        credentials: PartnerCredentials,
        host_keys: list,
        settings: SftpSettings,
        audit_log: Path | None = None,
    ):
        self.store, self.credentials, self.host_keys, self.settings = store, credentials, host_keys, settings
        self.audit = AuditTrail(audit_log)
        self.throttle = LoginThrottle(settings.throttle)
        self.uploads = Uploads(store, self.audit, settings.max_upload_bytes, settings.quota_bytes)
        self.sessions: Counter[str] = Counter()  # per partner: open channels, a connection without one as one
        self.connections: set[Connection] = set()
        self.started_at = time.time()  # the time of folders the store can't date
        # Argon2 checks on their own two threads: a flood of logins can't starve uploads of worker threads
        self.login_checks = ThreadPoolExecutor(2, thread_name_prefix="sftp-login")

    async def start(self) -> asyncssh.SSHAcceptor:
        self.store.spool_dir().mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.uploads.remove_stale_spool, self.settings.idle_timeout_seconds)
        _raise_open_file_limit()
        return await asyncssh.create_server(
            lambda: Connection(self),
            self.settings.host,
            self.settings.port,
            server_host_keys=self.host_keys,
            login_timeout=self.settings.login_timeout_seconds,
            keepalive_interval=60,
        )

    def close_connections(self) -> None:
        """On stop: every connection closed (their uploads aborted and audited), the login threads released."""
        for connection in list(self.connections):
            connection.conn.close()
        self.login_checks.shutdown(wait=False, cancel_futures=True)


class Connection(asyncssh.SSHServer):
    def __init__(self, service: SftpService):
        self.service, self.partner, self.conn, self.address = service, None, None, "?"
        self.channels = 0  # SFTP session channels open now
        self.closed = False
        self.last_activity = 0.0
        self._busy = 0  # requests in progress (a long publish is not idleness)
        self._watchdog: asyncio.Task | None = None
        self._channel_refusal_audited = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.address = (conn.get_extra_info("peername") or ("?",))[0]
        self.service.connections.add(self)

    def begin_auth(self, username: str) -> bool:
        if self.service.settings.banner:
            self.conn.send_auth_banner(self.service.settings.banner)
        return True  # every user authenticates (no enumeration by a shortcut)

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        service, throttle = self.service, self.service.throttle
        locked = throttle.locked(username, self.address) > 0
        # always one Argon2 check, locked or not, known user or not: timing tells an attacker nothing
        key_id = await asyncio.get_running_loop().run_in_executor(
            service.login_checks, service.credentials.verify, username, password
        )
        reason = None
        if locked:
            reason = "locked"  # even a right key fails until the lock expires
            throttle.address_failure(self.address)
        elif key_id is None:
            reason = "bad credentials"
            lockout = throttle.failure(username, self.address)
            if lockout:
                service.audit("lockout", partner=username, address=self.address, seconds=lockout)
        elif service.sessions[username] >= service.settings.max_sessions_per_partner:
            reason = "too many sessions"
        if reason:
            service.audit("login", partner=username, address=self.address, ok=False, reason=reason)
            await asyncio.sleep(throttle.delay(self.address))
            return False
        throttle.success(username, self.address)
        if self.closed:  # the client gave up while its key was checked: nothing to count
            return False
        service.sessions[username] += 1
        self.partner = username
        service.audit("login", partner=username, address=self.address, ok=True)
        return True

    def auth_completed(self) -> None:
        self.touch()
        self._watchdog = self.conn.create_task(self._close_when_idle())

    # ------------------------------------------------------------ channels

    def session_requested(self):
        settings, service = self.service.settings, self.service
        why = None
        if self.channels >= settings.max_channels_per_connection:
            why = f"at most {settings.max_channels_per_connection} SFTP sessions per connection"
        elif self.channels >= 1 and service.sessions[self.partner] >= settings.max_sessions_per_partner:
            why = f"at most {settings.max_sessions_per_partner} SFTP sessions per partner"
        if why:
            if not self._channel_refusal_audited:  # one line per connection, however often it retries
                self._channel_refusal_audited = True
                service.audit("refused", partner=self.partner, operation="session", detail=why)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, why)
        if self.channels >= 1:  # the first channel of a connection is the session its login counted
            service.sessions[self.partner] += 1
        self.channels += 1
        return SftpChannel(lambda chan: PartnerSftp(chan, self), self._channel_closed)

    def _channel_closed(self) -> None:
        if self.closed:
            return  # connection_lost already released this connection's count
        if self.channels > 1:
            self.service.sessions[self.partner] -= 1
        self.channels -= 1

    # ------------------------------------------------------------ idleness

    def touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self.touch()

    async def _close_when_idle(self) -> None:
        limit = self.service.settings.idle_timeout_seconds
        loop = asyncio.get_running_loop()
        while not self.closed:
            idle = loop.time() - self.last_activity
            if self._busy:
                idle = 0.0
            elif idle >= limit:
                self.service.audit(
                    "idle_timeout", partner=self.partner, address=self.address, idle_seconds=round(idle)
                )
                self.conn.close()
                return
            await asyncio.sleep(max(limit - idle, 0.05))  # wakes when the limit could first be reached

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.service.connections.discard(self)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.partner:
            self.service.sessions[self.partner] -= max(1, self.channels)
            if self.service.sessions[self.partner] <= 0:
                del self.service.sessions[self.partner]
            self.service.uploads.connection_ended(self)
            self.service.audit("logout", partner=self.partner, address=self.address)


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
            service.close_connections()  # their uploads are aborted and audited
            await asyncio.sleep(0.1)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # connections' watchdogs and handlers
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _raise_open_file_limit() -> None:
    """Every upload and download holds a descriptor: use the hard limit, not the (often 1,024) soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )


async def serve_forever(service: SftpService) -> None:
    server = await service.start()
    service.audit("server_started", host=service.settings.host, port=server.get_port())
    try:
        await asyncio.Event().wait()  # until cancelled (Ctrl-C, SIGTERM)
    finally:
        server.close()
        service.close_connections()

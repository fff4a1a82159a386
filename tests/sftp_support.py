"""A real SFTP server (asyncssh, in a thread, on a free port) and the clients the guide names."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import process_upload
from leap_orchestration.sftp import hostkeys
from leap_orchestration.sftp.credentials import PartnerCredentials
from leap_orchestration.sftp.server import SftpService, SftpSettings, running_in_thread
from leap_orchestration.sftp.throttle import ThrottlePolicy
from leap_orchestration.stores import LocalLandingStore
from leap_orchestration.stores.base import LandingStore

FAST_SETTINGS = SftpSettings(
    port=0,
    throttle=ThrottlePolicy(lockout_seconds=3, failure_delay_seconds=0.05, address_delay_step_seconds=0.01),
)
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    port: int
    home: Path
    store: LandingStore
    credentials: PartnerCredentials
    keys: list
    service: SftpService

    def key_for(self, partner: str) -> str:
        return self.credentials.add(partner)[1]

    def paramiko(self, partner: str, password: str, source: str = "127.0.0.1") -> paramiko.SSHClient:
        """A logged-in client; `source` is the client's address (any 127.x.y.z: another host to the server)."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=20, source_address=(source, 0))
        try:
            client.connect(
                hostname="127.0.0.1",
                port=self.port,
                username=partner,
                password=password,
                sock=sock,
                allow_agent=False,
                look_for_keys=False,
                timeout=20,
                banner_timeout=20,
                auth_timeout=20,
            )
        except BaseException:
            client.close()
            sock.close()
            raise
        return client

    def openssh(
        self, partner: str, password: str, commands: list[str], timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """OpenSSH's sftp in batch mode; a leading '-' on a command lets the batch go on after it fails."""
        batch = self.home / "batch.txt"
        batch.write_text("\n".join(commands) + "\n")
        return subprocess.run(
            [
                sshpass(),
                "-e",
                "sftp",
                "-oBatchMode=no",
                "-oStrictHostKeyChecking=no",
                "-oUserKnownHostsFile=/dev/null",
                "-oPreferredAuthentications=password",
                "-oPubkeyAuthentication=no",
                "-P",
                str(self.port),
                "-b",
                str(batch),
                f"{partner}@127.0.0.1",
            ],
            env={**os.environ, "SSHPASS": password},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@contextlib.contextmanager
def sftp_server(home: Path, settings: SftpSettings = FAST_SETTINGS, store=None):
    store = store if store is not None else LocalLandingStore(home / "landing")
    credentials = PartnerCredentials(home / "partners.sqlite")
    keys = hostkeys.load_or_create(home / "sftp")
    service = SftpService(store, credentials, keys, settings, audit_log=home / "logs" / "sftp-audit.log")
    with running_in_thread(service) as port:
        yield Server(port, home, store, credentials, keys, service)


def binary(name: str) -> str:
    """A client the tests drive (sshpass, psftp, lftp, curl, rclone), installed by scripts/system-packages when
    missing; the test is skipped if it still can't be found (no root to install it)."""
    found = shutil.which(name)
    if found is None:
        subprocess.run([str(ROOT / "scripts" / "system-packages")], capture_output=True, timeout=600)
        found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (run scripts/system-packages as root)")
    return found


def sshpass() -> str:
    """The sshpass binary (OpenSSH password logins in batch mode)."""
    return binary("sshpass")


def audit_lines(home: Path) -> list[dict]:
    path = home / "logs" / "sftp-audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout: float = 20, message: str = "condition"):
    """Poll until `predicate()` is truthy (server-side effects of a disconnect happen a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {message}"
            return value
        time.sleep(0.05)


def strict_close(ftp: paramiko.SFTPClient, fh: paramiko.SFTPFile) -> None:
    """Close `fh`, raising the server's answer: paramiko's own close() swallows a failed CLOSE."""
    paramiko.file.BufferedFile.close(fh)  # flush, and mark it closed so paramiko never closes it again
    if fh.pipelined:
        ftp._finish_responses(fh)
    ftp._request(paramiko.sftp.CMD_CLOSE, fh.handle)


FXP_INIT, FXP_OPEN, FXP_CLOSE, FXP_WRITE, FXP_STATUS, FXP_HANDLE = 1, 3, 4, 6, 101, 102
FX_OK, FX_FAILURE, FX_BAD_MESSAGE = 0, 4, 5


class RawSftp:
    """Bare SFTP v3 requests on a paramiko channel: packets real clients send that paramiko itself won't."""

    def __init__(self, client: paramiko.SSHClient):
        self.chan = client.get_transport().open_session()
        self.chan.invoke_subsystem("sftp")
        self._send(struct.pack(">BI", FXP_INIT, 3))
        self._recv()
        self._id = 0

    def _send(self, payload: bytes) -> None:
        self.chan.sendall(struct.pack(">I", len(payload)) + payload)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.chan.recv(n - len(data))
            assert chunk, "the server closed the SFTP channel"
            data += chunk
        return data

    def _recv(self) -> tuple[int, bytes]:
        (length,) = struct.unpack(">I", self._exact(4))
        packet = self._exact(length)
        return packet[0], packet[1:]

    def request(self, kind: int, body: bytes) -> tuple[int, bytes]:
        self._id += 1
        self._send(struct.pack(">BI", kind, self._id) + body)
        reply, payload = self._recv()
        assert struct.unpack(">I", payload[:4])[0] == self._id
        return reply, payload[4:]

    @staticmethod
    def string(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    def open_write(self, path: str) -> bytes:
        flags = 0x02 | 0x08 | 0x10  # WRITE | CREAT | TRUNC
        reply, payload = self.request(FXP_OPEN, self.string(path.encode()) + struct.pack(">II", flags, 0))
        assert reply == FXP_HANDLE, payload
        (length,) = struct.unpack(">I", payload[:4])
        return payload[4 : 4 + length]

    def status(self, kind: int, body: bytes) -> int:
        reply, payload = self.request(kind, body)
        assert reply == FXP_STATUS
        return struct.unpack(">I", payload[:4])[0]

    def write(self, handle: bytes, offset: int, data: bytes, trailing: bytes = b"") -> int:
        """A WRITE request; `trailing` bytes follow the data inside the packet (as pkg/sftp < 1.13.6 sends)."""
        return self.status(
            FXP_WRITE, self.string(handle) + struct.pack(">Q", offset) + self.string(data) + trailing
        )

    def write_raw(self, handle: bytes, body_after_handle: bytes) -> int:
        return self.status(FXP_WRITE, self.string(handle) + body_after_handle)

    def close(self, handle: bytes) -> int:
        return self.status(FXP_CLOSE, self.string(handle))


def process_pending(store, warehouse) -> list:
    """What the pipeline does for each complete pending upload (the Dagster wiring is tested elsewhere)."""
    return [process_upload(store, warehouse, u) for u in pending_uploads(store)]

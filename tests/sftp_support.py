"""A real SFTP server (asyncssh, in a thread, on a free port) and the clients the guide names."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import paramiko

from leap_orchestration.intake.discovery import pending_uploads
from leap_orchestration.intake.process import process_upload
from leap_orchestration.sftp import hostkeys
from leap_orchestration.sftp.credentials import PartnerCredentials
from leap_orchestration.sftp.server import SftpService, SftpSettings, running_in_thread
from leap_orchestration.sftp.throttle import ThrottlePolicy
from leap_orchestration.stores import LocalLandingStore
from leap_orchestration.stores.base import LandingStore

FAST_SETTINGS = SftpSettings(port=0, failed_login_delay_seconds=0.05,
                             throttle=ThrottlePolicy(max_failures_per_user=5, lockout_seconds=3))


@dataclass
class Server:
    port: int
    home: Path
    store: LandingStore
    credentials: PartnerCredentials
    keys: list

    def key_for(self, partner: str) -> str:
        return self.credentials.add(partner)[1]

    def paramiko(self, partner: str, password: str) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(hostname="127.0.0.1", port=self.port, username=partner, password=password,
                       allow_agent=False, look_for_keys=False, timeout=20, banner_timeout=20, auth_timeout=20)
        return client

    def openssh(self, partner: str, password: str, commands: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """OpenSSH's sftp in batch mode; a leading '-' on a command lets the batch go on after it fails."""
        batch = self.home / "batch.txt"
        batch.write_text("\n".join(commands) + "\n")
        return subprocess.run(
            [sshpass(), "-e", "sftp", "-oBatchMode=no", "-oStrictHostKeyChecking=no", "-oUserKnownHostsFile=/dev/null",
             "-oPreferredAuthentications=password", "-oPubkeyAuthentication=no", "-P", str(self.port),
             "-b", str(batch), f"{partner}@127.0.0.1"],
            env={**os.environ, "SSHPASS": password}, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def sftp_server(home: Path, settings: SftpSettings = FAST_SETTINGS, store=None):
    store = store if store is not None else LocalLandingStore(home / "landing")
    credentials = PartnerCredentials(home / "partners.sqlite")
    keys = hostkeys.load_or_create(home / "sftp")
    service = SftpService(store, credentials, keys, settings, audit_log=home / "logs" / "sftp-audit.log")
    with running_in_thread(service) as port:
        yield Server(port, home, store, credentials, keys)


def sshpass() -> str:
    """The sshpass binary, installed from Debian's packages when missing (the test setup's one system package)."""
    found = shutil.which("sshpass")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "sshpass"], check=True, capture_output=True, timeout=300)
        found = shutil.which("sshpass")
    assert found, "sshpass is needed for OpenSSH password logins in batch mode"
    return found


def process_pending(store, warehouse) -> list:
    """What the pipeline does for each complete pending upload (the Dagster wiring is tested elsewhere)."""
    return [process_upload(store, warehouse, u) for u in pending_uploads(store)]

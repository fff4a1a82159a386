"""Real SFTP clients, each with its default settings: upload, list, and fetch the results.

PuTTY's psftp, lftp, curl (libssh2), rclone and OpenSSH's sftp, plus the ways they upload that need more of
the server: rclone's concurrent writes on a multi-MB file, lftp's temp-file-then-rename, and clients killed
mid-transfer. Host keys are trusted the way a partner would: psftp `-hostkey` and curl `--hostpubsha256` with
the printed fingerprint, lftp's ssh through a known_hosts file holding the server's keys. The clients come
from scripts/system-packages.
"""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import csv_text, good_row, partner_meter
from sftp_support import audit_lines, binary, process_pending, sftp_server, wait_for

A = "sunrise-energy"
CLIENTS = ["psftp", "lftp", "curl", "rclone", "openssh"]


@pytest.fixture
def server(leap_home):
    with sftp_server(leap_home) as srv:
        yield srv


class Client:
    """One command-line client against the test server, run with its defaults apart from host-key trust."""

    def __init__(self, name: str, srv, partner: str, key: str, work):
        self.name, self.srv, self.partner, self.key, self.work = name, srv, partner, key, work
        self.env = {**os.environ, "HOME": str(work)}  # nothing of the clients' state lands in the real home
        self.url = f"sftp://127.0.0.1:{srv.port}"

    def run(self, args: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)
        assert done.returncode == 0, (self.name, done.returncode, done.stdout, done.stderr)
        return done

    def ed25519_fingerprint(self) -> str:
        return next(k for k in self.srv.keys if k.get_algorithm() == "ssh-ed25519").get_fingerprint("sha256")

    def known_hosts(self) -> str:
        path = self.work / "known_hosts"
        path.write_text(
            "".join(f"[127.0.0.1]:{self.srv.port} {k.export_public_key().decode()}" for k in self.srv.keys)
        )
        return str(path)

    def rclone_remote(self) -> str:
        obscured = self.run([binary("rclone"), "obscure", self.key]).stdout.strip()
        return f":sftp,host=127.0.0.1,port={self.srv.port},user={self.partner},pass={obscured}:"

    def lftp(self, commands: str, **kwargs) -> subprocess.CompletedProcess:
        # lftp runs OpenSSH's ssh; it is told only where the server's host key is (ssh would otherwise ask)
        trust = f"set sftp:connect-program 'ssh -a -x -oUserKnownHostsFile={self.known_hosts()}'"
        return self.run(
            [binary("lftp"), "-u", f"{self.partner},{self.key}", self.url, "-e", f"{trust}; {commands}; bye"],
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def batch(self, commands: list[str]) -> subprocess.CompletedProcess:
        if self.name == "psftp":
            script = self.work / "psftp.batch"
            script.write_text("\n".join(commands) + "\n")
            return self.run(
                [
                    binary("psftp"),
                    "-batch",
                    "-pw",
                    self.key,
                    "-P",
                    str(self.srv.port),
                    "-hostkey",
                    self.ed25519_fingerprint(),
                    "-b",
                    str(script),
                    f"{self.partner}@127.0.0.1",
                ]
            )
        done = self.srv.openssh(self.partner, self.key, commands)
        assert done.returncode == 0, done.stderr
        return done

    def upload(self, local, name: str) -> None:
        if self.name in ("psftp", "openssh"):
            self.batch([f"put {local} interval-data/{name}"])
        elif self.name == "lftp":
            self.lftp(f"put {local} -o interval-data/{name}")
        elif self.name == "curl":
            self.run(self.curl("-T", str(local), f"{self.url}/interval-data/{name}"))
        else:
            self.run([binary("rclone"), "copyto", str(local), f"{self.rclone_remote()}interval-data/{name}"])

    def listing(self, folder: str) -> str:
        """The client's long listing of `folder` (names with dates)."""
        if self.name == "psftp":
            return self.batch([f"ls {folder}"]).stdout
        if self.name == "openssh":
            return self.batch([f"ls -l {folder}"]).stdout
        if self.name == "lftp":
            return self.lftp(f"ls {folder}").stdout
        if self.name == "curl":
            return self.run(self.curl(f"{self.url}/{folder}/")).stdout
        return self.run([binary("rclone"), "lsf", "--format", "tp", f"{self.rclone_remote()}{folder}"]).stdout

    def download(self, remote: str, local) -> bytes:
        if self.name in ("psftp", "openssh"):
            self.batch([f"get {remote} {local}"])
        elif self.name == "lftp":
            self.lftp(f"get {remote} -o {local}")
        elif self.name == "curl":
            self.run(self.curl("-o", str(local), f"{self.url}/{remote}"))
        else:
            self.run([binary("rclone"), "copyto", f"{self.rclone_remote()}{remote}", str(local)])
        return local.read_bytes()

    def curl(self, *args: str) -> list[str]:
        sha256 = self.ed25519_fingerprint().removeprefix("SHA256:")
        return [
            binary("curl"),
            "-sS",
            "--user",
            f"{self.partner}:{self.key}",
            "--hostpubsha256",
            sha256,
            *args,
        ]


@pytest.mark.parametrize("name", CLIENTS)
def test_client_with_defaults_uploads_lists_and_fetches_results(name, server, warehouse, tmp_path):
    client = Client(name, server, A, server.key_for(A), tmp_path)
    local = tmp_path / "readings.csv"
    local.write_bytes(csv_text(good_row(partner_meter(A).meter_id)))
    upload = f"{name}-readings.csv"
    client.upload(local, upload)
    assert server.store.stat(f"{A}/interval-data/{upload}").complete
    listed = client.listing("interval-data")
    assert upload in listed and "accepted" in listed
    assert "1970" not in listed and "1970" not in client.listing("/")  # folders carry real times
    assert [o.status for o in process_pending(server.store, warehouse)] == ["COMPLETED"]
    status = json.loads(client.download(f"interval-data/status/{upload}.json", tmp_path / "status.json"))
    assert status["status"] == "COMPLETED" and status["file"] == upload
    assert upload in client.listing(f"interval-data/accepted/{upload}")
    original = client.download(f"interval-data/accepted/{upload}/{upload}", tmp_path / "original.csv")
    assert original == local.read_bytes()
    events = audit_lines(server.home)
    assert [e["event"] for e in events if e["event"].startswith("upload")] == ["upload"]
    assert [
        e for e in events if e["event"] == "refused"
    ] == []  # rclone sets the mtime: accepted, not refused


def test_lftp_temp_file_then_rename(server, tmp_path):
    client = Client("lftp", server, A, server.key_for(A), tmp_path)
    local = tmp_path / "temp.csv"
    local.write_bytes(os.urandom(300_000))
    client.lftp(f"set xfer:use-temp-file yes; put {local} -o interval-data/temp.csv")
    assert server.store.read_bytes(f"{A}/interval-data/temp.csv") == local.read_bytes()
    (upload,) = [e for e in audit_lines(server.home) if e["event"] == "upload"]
    assert upload["staged_as"] == ".in.temp.csv"  # lftp's default xfer:temp-file-name, `.in.*`


@pytest.mark.slow
def test_rclone_concurrent_writes_of_multi_mb_files(server, tmp_path):
    """rclone's defaults: 4 transfers, concurrent (pipelined) writes of 32 KiB, modtime set afterwards."""
    client = Client("rclone", server, A, server.key_for(A), tmp_path)
    obscured = client.run([binary("rclone"), "obscure", client.key]).stdout.strip()
    config = tmp_path / "rclone.conf"
    config.write_text(
        f"[leap]\ntype = sftp\nhost = 127.0.0.1\nport = {server.port}\nuser = {A}\npass = {obscured}\n"
    )
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    sizes = {"big-1.csv": 6_000_000, "big-2.csv": 3_500_000, "big-3.csv": 2_000_001, "big-4.csv": 65_537}
    for file_name, size in sizes.items():
        (outbox / file_name).write_bytes(os.urandom(size))
    client.run(
        [binary("rclone"), "--config", str(config), "copy", str(outbox), "leap:interval-data"], timeout=120
    )
    for file_name in sizes:
        stored = server.store.read_bytes(f"{A}/interval-data/{file_name}")
        assert hashlib.sha256(stored).digest() == hashlib.sha256((outbox / file_name).read_bytes()).digest()
    events = audit_lines(server.home)
    assert sorted(e["name"] for e in events if e["event"] == "upload") == sorted(sizes)
    assert not [
        e for e in events if e["event"] in ("upload_aborted", "refused") and e.get("operation") != "remove"
    ]


def children(pid: int) -> list[int]:
    return [int(c) for c in (Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def kill_mid_upload(server, command: list[str], env: dict, name: str, victim: str) -> None:
    """Run `command`, and once the server holds some of the upload, kill -9 its process named `victim`."""
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        spool = server.store.spool_dir()
        wait_for(
            lambda: any(p.stat().st_size > 0 for p in spool.iterdir()),
            message="bytes of the upload to arrive",
        )
        pids = [process.pid, *children(process.pid)]
        (pid,) = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == victim]
        os.kill(pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    wait_for(
        lambda: [e for e in audit_lines(server.home) if e["event"] == "upload_aborted" and e["name"] == name],
        message="the upload_aborted line",
    )
    time.sleep(0.2)  # an upload wrongly published would appear by now


@pytest.mark.slow
@pytest.mark.parametrize("name", ["curl", "openssh"])
def test_client_killed_mid_upload_publishes_nothing(name, server, tmp_path):
    client = Client(name, server, A, server.key_for(A), tmp_path)
    local = tmp_path / "killed.csv"
    local.write_bytes(os.urandom(8_000_000))
    if name == "curl":  # slowed down so the kill lands mid-transfer
        command = client.curl(
            "--limit-rate", "200k", "-T", str(local), f"{client.url}/interval-data/killed.csv"
        )
    else:
        batch = tmp_path / "batch.txt"
        batch.write_text(f"put {local} interval-data/killed.csv\n")
        command = [
            "sftp",
            "-l",
            "1600",
            "-oBatchMode=no",
            "-oStrictHostKeyChecking=no",
            "-oUserKnownHostsFile=/dev/null",
            "-oPreferredAuthentications=password",
            "-oPubkeyAuthentication=no",
            "-P",
            str(server.port),
            "-b",
            str(batch),
            f"{A}@127.0.0.1",
        ]
        command = [binary("sshpass"), "-e", *command]
        client.env["SSHPASS"] = client.key
    # curl: the TCP connection drops; sftp: its ssh child closes the channel, the handle still open
    kill_mid_upload(server, command, client.env, "killed.csv", victim=name if name == "curl" else "sftp")
    assert not server.store.exists(f"{A}/interval-data/killed.csv")
    assert list(server.store.spool_dir().iterdir()) == []
    assert not [e for e in audit_lines(server.home) if e["event"] == "upload"]


def test_every_result_key_is_readable_over_sftp(server, warehouse):
    """The status object's result_keys are paths in the partner's SFTP tree."""
    ftp = server.paramiko(A, server.key_for(A)).open_sftp()
    with ftp.open("interval-data/keys.csv", "wb") as fh:
        fh.write(csv_text(good_row(partner_meter(A).meter_id), good_row("not-a-meter")))
    process_pending(server.store, warehouse)
    with ftp.open("interval-data/status/keys.csv.json") as fh:
        status = json.loads(fh.read())
    assert len(status["result_keys"]) == 3  # failed: the original, its feedback and its errors
    for key in status["result_keys"]:
        with ftp.open(key) as fh:
            assert fh.read()

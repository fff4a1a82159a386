"""The SFTP front door with real clients: the guide's paramiko example and OpenSSH's sftp (via sshpass)."""

import io
import json
import socket
import time

import paramiko
import pytest
from conftest import csv_text, good_row, partner_meter
from sftp_support import FAST_SETTINGS, process_pending, sftp_server

from leap_orchestration.sftp import hostkeys
from leap_orchestration.sftp.server import DEFAULT_BANNER

A, B = "sunrise-energy", "gridflex"


@pytest.fixture
def server(leap_home):
    with sftp_server(leap_home) as srv:
        yield srv


def audit_lines(home):
    path = home / "logs" / "sftp-audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_guide_paramiko_example_then_results_listable(server, warehouse, leap_home, tmp_path):
    # The guide's example, as written apart from host, port, username and password.
    ssh_client = paramiko.SSHClient()
    host, username, password = "127.0.0.1", A, server.key_for(A)
    ssh_client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh_client.connect(
        hostname=host,
        port=server.port,
        username=username,
        password=password,
        allow_agent=False,
        look_for_keys=False,
    )
    ftp = ssh_client.open_sftp()
    local = tmp_path / "interval-data.csv"
    local.write_bytes(csv_text(good_row(partner_meter(A).meter_id)))
    ftp.put(str(local), "interval-data/dummy-file.csv")  # OPTION 1
    data_string = """meter_uuid,interval_start_time_utc,interval_end_time_utc,energy_net_kwh,energy_consumed_kwh,energy_generated_kwh
5be80922-2345-4ed8-ae70-e7d8114cd2a3,2024-04-01T11:00:00Z,2024-04-01T11:15:00Z,,5.01,0"""
    fl = io.StringIO(data_string)
    ftp.putfo(fl, "interval-data/dummy.csv")  # OPTION 2
    assert sorted(ftp.listdir("interval-data")) == [
        "accepted",
        "dummy-file.csv",
        "dummy.csv",
        "failed",
        "status",
    ]

    outcomes = {o.upload.obj.name: o.status for o in process_pending(server.store, warehouse)}
    assert outcomes == {"dummy-file.csv": "COMPLETED", "dummy.csv": "FAILED"}  # the guide's meter is not ours
    assert ftp.listdir("interval-data/accepted") == ["dummy-file.csv"]
    failed = sorted(ftp.listdir("interval-data/failed/dummy.csv"))
    assert len(failed) == 3 and "dummy.csv" in failed
    errors_name = next(n for n in failed if n.endswith(".errors.csv"))
    with ftp.open(f"interval-data/failed/dummy.csv/{errors_name}") as fh:
        errors = fh.read().decode()
    assert errors.startswith("line,column,code,message") and "MTR_0003" in errors
    with ftp.open("interval-data/status/dummy.csv.json") as fh:
        assert json.loads(fh.read())["status"] == "FAILED"
    assert "dummy.csv" not in ftp.listdir("interval-data")
    ftp.close()
    ssh_client.close()
    events = [(e["event"], e.get("name")) for e in audit_lines(leap_home)]
    assert ("upload", "dummy-file.csv") in events and ("upload", "dummy.csv") in events
    upload = next(e for e in audit_lines(leap_home) if e["event"] == "upload" and e["name"] == "dummy.csv")
    assert upload["size"] == len(data_string) and len(upload["sha256"]) == 64 and upload["partner"] == A


def test_openssh_batch_put_get_and_refusals(server, warehouse, tmp_path):
    key = server.key_for(B)
    good = tmp_path / "good.csv"
    good.write_bytes(csv_text(good_row(partner_meter(B).meter_id)))
    put = server.openssh(B, key, ["ls", f"put {good} interval-data/", "ls interval-data"])
    assert put.returncode == 0, put.stderr
    assert "interval-data" in put.stdout and "good.csv" in put.stdout
    assert "LEAP SFTP SERVER" in put.stderr  # the login banner
    assert [o.status for o in process_pending(server.store, warehouse)] == ["COMPLETED"]
    got = tmp_path / "got.csv"
    after = server.openssh(
        B,
        key,
        [
            "ls interval-data/accepted",
            f"get interval-data/accepted/good.csv/good.csv {got}",
            "-rm interval-data/accepted/good.csv/good.csv",
            "-rename interval-data/accepted/good.csv/good.csv x.csv",
            "-chmod 777 interval-data/accepted/good.csv/good.csv",
            "-ln -s /etc/passwd interval-data/link.csv",
            "-mkdir interval-data",
            "-mkdir interval-data/new",
            "-rmdir interval-data/accepted",
        ],
    )
    assert after.returncode == 0, after.stderr
    assert got.read_bytes() == good.read_bytes()
    assert after.stderr.count("Permission denied") >= 5, after.stderr
    assert "interval-data/accepted/good.csv/good.csv" in [
        str(p.relative_to(server.store.root / B))
        for p in (server.store.root / B).rglob("good.csv")
        if p.is_file()
    ]


def test_partner_cannot_reach_another_partner(server):
    a, b = server.key_for(A), server.key_for(B)
    client_b = server.paramiko(B, b)
    ftp_b = client_b.open_sftp()
    ftp_b.putfo(io.BytesIO(b"secret"), "interval-data/b-only.csv")
    client_b.close()
    client = server.paramiko(A, a)
    ftp = client.open_sftp()
    assert ftp.listdir("/") == ["interval-data", "performance"]
    for trick in [
        f"../{B}",
        f"/../{B}/interval-data",
        f"interval-data/../../{B}/interval-data",
        "..",
        "../..",
        f"/{B}",
        f"%2e%2e/{B}",
        "/etc",
        "interval-data/../../../etc",
        f"./../{B}/./interval-data",
    ]:
        try:
            listed = ftp.listdir(trick)
        except OSError:
            continue
        assert "b-only.csv" not in listed and "passwd" not in listed, trick
    for trick in [
        f"../{B}/interval-data/b-only.csv",
        f"/{B}/interval-data/b-only.csv",
        f"interval-data/../../{B}/interval-data/b-only.csv",
        "/etc/passwd",
        "../../../../etc/passwd",
    ]:
        with pytest.raises(OSError):
            ftp.open(trick).read()
    for target in [
        f"../{B}/interval-data/x.csv",
        f"/{B}/interval-data/x.csv",
        "interval-data/../x.csv",
        "x.csv",
        "interval-data/accepted/x.csv",
        "interval-data/accepted/.x.csv.part",
    ]:
        with pytest.raises(OSError):
            ftp.putfo(io.BytesIO(b"data"), target)
    for staged in [
        "interval-data/.hidden.csv",
        "interval-data/x.csv.part",
    ]:  # temporary names: never published
        ftp.putfo(io.BytesIO(b"data"), staged)
    with pytest.raises(OSError):
        ftp.symlink(f"/{B}", "interval-data/b")
    assert ftp.normalize("../../..") == "/"
    client.close()
    assert sorted(p.name for p in (server.store.root / B / "interval-data").iterdir() if p.is_file()) == [
        "b-only.csv"
    ]
    assert not (server.store.root / A / "interval-data" / "x.csv").exists()


def test_symlink_planted_in_the_store_is_not_followed(server):
    key = server.key_for(A)
    inbox = server.store.root / A / "interval-data"
    inbox.mkdir(parents=True, exist_ok=True)
    (server.store.root / B / "interval-data").mkdir(parents=True, exist_ok=True)
    (server.store.root / B / "interval-data" / "secret.csv").write_text("secret")
    (inbox / "accepted").mkdir(exist_ok=True)
    (inbox / "accepted" / "escape").symlink_to(server.store.root / B / "interval-data")
    (inbox / "leak.csv").symlink_to(server.store.root / B / "interval-data" / "secret.csv")
    ftp = server.paramiko(A, key).open_sftp()
    assert "leak.csv" not in ftp.listdir("interval-data")
    assert "escape" not in ftp.listdir("interval-data/accepted")
    for path in ["interval-data/leak.csv", "interval-data/accepted/escape/secret.csv"]:
        with pytest.raises(OSError):
            ftp.open(path).read()


def test_wrong_revoked_and_locked_out_keys(server, leap_home):
    key = server.key_for(A)
    key_id = key.split("_", 2)[1]
    with pytest.raises(paramiko.AuthenticationException):
        server.paramiko(A, key + "x")
    with pytest.raises(paramiko.AuthenticationException):
        server.paramiko(B, key)  # A's key is not B's
    server.paramiko(A, key).close()
    second = server.key_for(A)
    server.credentials.revoke(A, key_id)
    with pytest.raises(paramiko.AuthenticationException):
        server.paramiko(A, key)
    server.paramiko(A, second).close()  # the other key still works
    for _ in range(FAST_SETTINGS.throttle.failures_before_lockout):
        with pytest.raises(paramiko.AuthenticationException):
            server.paramiko(A, "leap_000000000000_wrongwrongwrongwrongwrong")
    with pytest.raises(paramiko.AuthenticationException):
        server.paramiko(A, second)  # locked: even the right key fails for a while
    time.sleep(FAST_SETTINGS.throttle.lockout_seconds + 0.5)
    server.paramiko(A, second).close()
    events = audit_lines(leap_home)
    assert any(e["event"] == "lockout" and e["partner"] == A for e in events)
    assert any(e["event"] == "login" and not e["ok"] and e["reason"] == "locked" for e in events)
    stored = (leap_home / "partners.sqlite").read_bytes()
    assert second.encode() not in stored and second.split("_", 2)[2].encode() not in stored  # hashes only


def test_upload_dropped_mid_transfer_publishes_nothing(server):
    key = server.key_for(A)
    client = server.paramiko(A, key)
    ftp = client.open_sftp()
    fh = ftp.open("interval-data/partial.csv", "wb")
    fh.set_pipelined(True)
    fh.write(b"x" * 1_000_000)
    fh.flush()
    client.get_transport().sock.shutdown(socket.SHUT_RDWR)  # the connection drops; the file is never closed
    client.close()
    deadline = time.time() + 10
    spool = server.store.spool_dir()
    while time.time() < deadline and any(spool.iterdir()):
        time.sleep(0.1)
    assert not any(spool.iterdir())
    assert not server.store.exists(f"{A}/interval-data/partial.csv")
    ftp = server.paramiko(A, key).open_sftp()
    assert "partial.csv" not in ftp.listdir("interval-data")


def test_published_upload_is_complete_and_never_overwritten(server):
    key = server.key_for(A)
    ftp = server.paramiko(A, key).open_sftp()
    ftp.putfo(io.BytesIO(b"first"), "interval-data/same.csv")
    obj = server.store.stat(f"{A}/interval-data/same.csv")
    assert obj.complete  # the sensor takes it at once, without waiting for it to settle
    with pytest.raises(OSError):
        ftp.putfo(io.BytesIO(b"second"), "interval-data/same.csv")
    assert server.store.read_bytes(f"{A}/interval-data/same.csv") == b"first"
    with pytest.raises(OSError, match="(?i)exists|failure"):
        ftp.mkdir("interval-data")  # an ordinary failure, so "make sure it exists" clients carry on
    with pytest.raises(PermissionError):
        ftp.mkdir("interval-data/sub")


def test_limits_sessions_size_and_idle(leap_home):
    from dataclasses import replace

    settings = replace(
        FAST_SETTINGS, max_sessions_per_partner=2, max_upload_bytes=1000, idle_timeout_seconds=1.0
    )
    with sftp_server(leap_home, settings) as srv:
        key = srv.key_for(A)
        first, second = srv.paramiko(A, key), srv.paramiko(A, key)
        with pytest.raises(paramiko.AuthenticationException):
            srv.paramiko(A, key)  # a third concurrent session
        first.close()
        time.sleep(0.2)
        third = srv.paramiko(A, key)
        with pytest.raises(OSError):
            third.open_sftp().putfo(io.BytesIO(b"y" * 5000), "interval-data/big.csv")
        assert not srv.store.exists(f"{A}/interval-data/big.csv") and not any(srv.store.spool_dir().iterdir())
        time.sleep(2.5)  # idle: the server closes both sessions
        assert not second.get_transport().is_active() and not third.get_transport().is_active()


def test_banner_and_fingerprints_match_what_clients_see(server):
    client = server.paramiko(A, server.key_for(A))
    transport = client.get_transport()
    assert transport.get_banner().decode() == DEFAULT_BANNER
    seen = transport.get_remote_server_key()
    printed = hostkeys.fingerprints(server.keys)
    assert any(line.startswith(seen.get_name()) and line.endswith(seen.fingerprint) for line in printed), (
        printed,
        seen.fingerprint,
    )
    assert {line.split()[0] for line in printed} == {"ssh-ed25519", "ssh-rsa"}
    assert "ssh-rsa 2048 SHA256:" in "\n".join(printed)
    client.close()


def write_valid_file(path, meter_ids, target_bytes):
    """Meter-major 15-minute rows from 2024-01-01, written by DuckDB, about `target_bytes` long.

    Rows carry all three energy values and an extra (ignored, warned about) `comment` column, so that 200 MB
    needs few enough intervals per meter to stay in the past.
    """
    import duckdb

    per_meter = target_bytes // 160 // len(meter_ids) + 1  # rows are ~163 bytes
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false").fetchall()
    con.execute(
        f"""COPY (SELECT m AS meter_uuid, strftime(t, '%Y-%m-%dT%H:%M:%SZ') AS interval_start_time_utc,
                         strftime(t + INTERVAL 15 MINUTE, '%Y-%m-%dT%H:%M:%SZ') AS interval_end_time_utc,
                         printf('%.3f', 0.2 + (i % 97) / 50.0) AS energy_net_kwh,
                         printf('%.3f', 0.2 + (i % 97) / 50.0) AS energy_consumed_kwh,
                         '0.000' AS energy_generated_kwh, 'true' AS final, 'CA' AS region,
                         'generated for the 200 MB upload test of the SFTP server' AS comment
                  FROM unnest(?) u(m), range({per_meter}) r(i),
                       LATERAL (SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_minutes(15 * i) AS t))
            TO '{path}' (HEADER, DELIMITER ',', QUOTE '')""",
        [meter_ids],
    ).fetchall()
    return per_meter * len(meter_ids)


@pytest.mark.slow
def test_200_mb_upload_completes_and_is_processed(server, warehouse, tmp_path):
    from conftest import meters_owned_since_start

    big = tmp_path / "big.csv"
    rows = write_valid_file(big, meters_owned_since_start(A), 200_000_000)
    assert big.stat().st_size > 200_000_000
    done = server.openssh(A, server.key_for(A), [f"put {big} interval-data/big.csv"], timeout=600)
    assert done.returncode == 0, done.stderr
    assert server.store.stat(f"{A}/interval-data/big.csv").size == big.stat().st_size
    (outcome,) = process_pending(server.store, warehouse)
    assert (outcome.status, outcome.rows, outcome.errors) == ("COMPLETED", rows, 0)
    with warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interval_readings").fetchall() == [(rows,)]


@pytest.mark.slow
def test_twenty_partners_ten_files_each_at_once(server, warehouse):
    from concurrent.futures import ThreadPoolExecutor

    partners = [f"partner-{i:02d}" for i in range(20)]
    keys = {p: server.key_for(p) for p in partners}

    def upload_all(partner):
        client = server.paramiko(partner, keys[partner])
        ftp = client.open_sftp()
        for n in range(10):
            ftp.putfo(
                io.BytesIO(csv_text(good_row(partner_meter(A).meter_id, consumed=str(n + 1)))),
                f"interval-data/f{n}.csv",
            )
        client.close()
        return partner

    with ThreadPoolExecutor(20) as pool:
        assert sorted(pool.map(upload_all, partners)) == partners
    outcomes = process_pending(server.store, warehouse)
    assert len(outcomes) == 200 and len({(o.upload.tenant, o.upload.obj.name) for o in outcomes}) == 200
    assert {o.status for o in outcomes} == {
        "FAILED"
    }  # none of these partners owns the meter (OWN/MTR errors)
    assert process_pending(server.store, warehouse) == []  # nothing left, nothing taken twice
    for p in partners:
        inbox = server.store.root / p / "interval-data"
        assert sorted(d.name for d in (inbox / "failed").iterdir()) == [f"f{n}.csv" for n in range(10)]
        assert [f for f in inbox.iterdir() if f.is_file()] == []
    with warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT upload_id) FROM uploads").fetchall() == [
            (200, 200)
        ]


@pytest.mark.slow
def test_cli_partners_and_sftp_serve(leap_home, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("leap-orchestration"))
    env = {**os.environ, "LEAP_HOME": str(leap_home)}

    def run(*args):
        return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=60)

    added = run("partners", "add", A)
    assert added.returncode == 0, added.stderr
    api_key = added.stdout.splitlines()[-1]
    assert api_key.startswith("leap_") and api_key not in (leap_home / "partners.sqlite").read_text(
        errors="ignore"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [cli, "sftp", "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            "127.0.0.1", port=port, username=A, password=api_key, allow_agent=False, look_for_keys=False
        )
        seen = client.get_transport().get_remote_server_key()
        client.open_sftp().putfo(io.BytesIO(b"x"), "interval-data/via-cli.csv")
        client.close()
        printed = run("sftp", "fingerprint").stdout.splitlines()
        assert any(line.endswith(seen.fingerprint) for line in printed) and all(
            "SHA256:" in line for line in printed
        )
        assert run("partners", "revoke", A).returncode == 0
        with pytest.raises(paramiko.AuthenticationException):
            client.connect(
                "127.0.0.1", port=port, username=A, password=api_key, allow_agent=False, look_for_keys=False
            )
        listed = run("partners", "list").stdout.splitlines()
        assert (
            listed[0].startswith("partner_id") and A in listed[1] and listed[1].split("\t")[3]
        )  # revoked_at set
        assert run("partners", "revoke", A).returncode == 2  # nothing left to revoke
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (leap_home / "landing" / A / "interval-data" / "via-cli.csv").exists()
    audit = (leap_home / "logs" / "sftp-audit.log").read_text()
    assert '"event": "upload"' in audit and '"reason": "bad credentials"' in audit

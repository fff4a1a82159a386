"""Only what was fully received and closed is published (paramiko, and raw SFTP packets real clients send)."""

import hashlib
import io
import os
import struct

import pytest
from sftp_support import FX_BAD_MESSAGE, FX_OK, RawSftp, audit_lines, sftp_server, strict_close, wait_for

from leap_orchestration.sftp.uploads import Ranges

A, B = "sunrise-energy", "gridflex"


@pytest.fixture
def server(leap_home):
    with sftp_server(leap_home) as srv:
        yield srv


def inbox_files(server, partner=A):
    inbox = server.store.root / partner / "interval-data"
    return sorted(p.name for p in inbox.iterdir() if p.is_file()) if inbox.exists() else []


def spool_files(server):
    return list(server.store.spool_dir().iterdir())


def aborted(home, name):
    return [e for e in audit_lines(home) if e["event"] == "upload_aborted" and e["name"] == name]


def test_written_ranges_merge_and_only_a_whole_file_is_complete():
    ranges = Ranges()
    assert ranges.whole() and ranges.end == 0  # an empty file is complete
    for start, end in [(100, 200), (300, 400), (0, 50), (50, 100), (150, 320), (390, 390)]:
        ranges.add(start, end)
    assert (ranges.whole(), ranges.end, len(ranges)) == (True, 400, 1)
    ranges.add(500, 600)
    assert not ranges.whole() and ranges.first_gap() == (400, 500)
    late = Ranges()
    late.add(10, 20)
    assert late.first_gap() == (0, 10)


def test_channel_closed_with_the_handle_open_publishes_nothing(server, leap_home):
    # The tester's repro: the SFTP channel (not the connection) closes while the handle is still open. asyncssh
    # then closes the handle itself; that must never look like the client's CLOSE, however the timing falls.
    key = server.key_for(A)
    for n in range(5):
        ssh = server.paramiko(A, key)
        sftp = ssh.open_sftp()
        fh = sftp.open(f"interval-data/half{n}.csv", "w")
        fh.write(b"meter_uuid,interval_start_time_utc\n" * 100)
        fh.flush()
        sftp.close()
        ssh.close()
    wait_for(
        lambda: all(aborted(leap_home, f"half{n}.csv") for n in range(5)), message="five upload_aborted lines"
    )
    assert inbox_files(server) == [] and spool_files(server) == []
    assert not [e for e in audit_lines(leap_home) if e["event"] == "upload"]
    assert all(len(aborted(leap_home, f"half{n}.csv")) == 1 for n in range(5))


def test_trailing_bytes_after_a_writes_data_are_ignored(server):
    # pkg/sftp < 1.13.6 (rclone < 1.62) sends, with concurrent writes, packets that carry the rest of its buffer
    # after the data; the data length decides, as in OpenSSH's sftp-server.
    client = server.paramiko(A, server.key_for(A))
    raw = RawSftp(client)
    handle = raw.open_write("/interval-data/rclone-shape.csv")
    first, second = b"a,b\n" * 1024, b"1,2\n" * 2048
    assert raw.write(handle, 0, first, trailing=b"\0" * 28672) == FX_OK
    assert raw.write(handle, len(first), second, trailing=b"stale buffer") == FX_OK
    assert raw.close(handle) == FX_OK
    assert server.store.read_bytes(f"{A}/interval-data/rclone-shape.csv") == first + second
    client.close()


def test_a_malformed_write_aborts_the_upload(server, leap_home):
    client = server.paramiko(A, server.key_for(A))
    raw = RawSftp(client)
    handle = raw.open_write("/interval-data/malformed.csv")
    assert raw.write(handle, 0, b"a,b\n") == FX_OK
    # the data's length field promises more bytes than the packet holds
    assert raw.write_raw(handle, struct.pack(">QI", 4, 1000) + b"1,2\n") == FX_BAD_MESSAGE
    assert raw.close(handle) != FX_OK
    assert inbox_files(server) == [] and spool_files(server) == []
    assert [e["reason"] for e in aborted(leap_home, "malformed.csv")] == ["malformed write request"]
    client.close()


def test_out_of_order_writes_publish_exactly_and_a_gap_publishes_nothing(server, leap_home):
    ftp = server.paramiko(A, server.key_for(A)).open_sftp()
    data = os.urandom(300_000)
    chunks = [(offset, data[offset : offset + 32768]) for offset in range(0, len(data), 32768)]
    with ftp.open("interval-data/shuffled.csv", "wb") as fh:
        fh.set_pipelined(True)
        for offset, chunk in [*chunks[1::2], *reversed(chunks[0::2]), chunks[3]]:  # out of order, one twice
            fh.seek(offset)
            fh.write(chunk)
    assert server.store.read_bytes(f"{A}/interval-data/shuffled.csv") == data

    fh = ftp.open("interval-data/gap.csv", "wb")
    fh.write(data[:1000])
    fh.seek(2000)
    fh.write(data[2000:3000])
    with pytest.raises(OSError, match="incomplete"):
        strict_close(ftp, fh)
    assert not server.store.exists(f"{A}/interval-data/gap.csv") and spool_files(server) == []
    assert [e["reason"] for e in aborted(leap_home, "gap.csv")] == [
        "incomplete: bytes 1000-2000 were never written"
    ]


def test_remove_resize_or_a_second_writer_abort_an_open_upload(server, leap_home):
    key = server.key_for(A)
    ftp, other = server.paramiko(A, key).open_sftp(), server.paramiko(A, key).open_sftp()
    fh = ftp.open("interval-data/removed.csv", "wb")
    fh.write(b"a,b\n")
    ftp.remove("interval-data/removed.csv")  # an upload in progress may be cancelled
    with pytest.raises(OSError, match="removed by the client"):
        strict_close(ftp, fh)

    fh = ftp.open("interval-data/removed-elsewhere.csv", "wb")
    fh.write(b"a,b\n")
    other.remove("interval-data/removed-elsewhere.csv")  # another session of the partner
    with pytest.raises(OSError, match="removed by the client"):
        strict_close(ftp, fh)

    fh = ftp.open("interval-data/truncated.csv", "wb")
    fh.write(b"a,b\n1,2\n")
    with pytest.raises(OSError, match="size was changed"):
        fh.truncate(4)  # fsetstat with a size
    with pytest.raises(OSError, match="stopped"):
        strict_close(ftp, fh)

    fh = ftp.open("interval-data/resized-elsewhere.csv", "wb")
    fh.write(b"a,b\n")
    with pytest.raises(OSError, match="size was changed"):
        other.truncate("interval-data/resized-elsewhere.csv", 0)  # setstat by path, from another session
    with pytest.raises(OSError, match="stopped"):
        strict_close(ftp, fh)

    fh = ftp.open("interval-data/twice.csv", "wb")
    fh.write(b"a,b\n")
    with pytest.raises(OSError, match="already being uploaded"):
        other.open("interval-data/twice.csv", "wb")
    with pytest.raises(OSError, match="stopped"):
        strict_close(ftp, fh)

    names = ["removed.csv", "removed-elsewhere.csv", "truncated.csv", "resized-elsewhere.csv", "twice.csv"]
    assert inbox_files(server) == [] and spool_files(server) == []
    reasons = {n: [e["reason"] for e in aborted(leap_home, n)] for n in names}
    assert reasons == {
        "removed.csv": ["removed by the client"],
        "removed-elsewhere.csv": ["removed by the client"],
        "truncated.csv": ["size changed by setstat"],
        "resized-elsewhere.csv": ["size changed by setstat"],
        "twice.csv": ["a second upload of the same name was opened"],
    }
    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/twice.csv")  # once nothing is open, the name is free again
    with pytest.raises(PermissionError):
        ftp.remove("interval-data/twice.csv")  # a published file is never deleted
    with pytest.raises(FileNotFoundError):
        ftp.remove("interval-data/never-there.csv")


def test_harmless_setstat_is_accepted_and_a_size_change_refused(server, leap_home):
    ftp = server.paramiko(A, server.key_for(A)).open_sftp()
    with ftp.open("interval-data/timed.csv", "wb") as fh:
        fh.write(b"a,b\n")
        fh.chmod(0o600)  # fsetstat of the open upload: permissions
        fh.utime((1_700_000_000, 1_700_000_000))  # and times
    for path in ["interval-data/timed.csv", "interval-data", "interval-data/accepted"]:
        ftp.utime(path, (1_700_000_000, 1_700_000_000))  # what rclone and `put -p` do after an upload
        ftp.chmod(path, 0o644)
        ftp.chown(path, 1000, 1000)
    with pytest.raises(PermissionError):
        ftp.truncate("interval-data/timed.csv", 1)
    assert server.store.read_bytes(f"{A}/interval-data/timed.csv") == b"a,b\n"
    with pytest.raises(FileNotFoundError):
        ftp.utime("interval-data/missing.csv", None)
    assert not [e for e in audit_lines(leap_home) if e["event"] == "refused" and e["operation"] == "setstat"]


def test_temporary_name_then_rename_publishes_under_the_final_name(server, leap_home):
    # WinSCP's default above 100 KB: upload to name.filepart, then rename it to name.
    client = server.paramiko(A, server.key_for(A))
    ftp = client.open_sftp()
    data = os.urandom(250_000)
    attrs = ftp.putfo(io.BytesIO(data), "interval-data/x.csv.filepart")  # paramiko stats it after the upload
    assert attrs.st_size == len(data)
    assert "x.csv.filepart" in ftp.listdir("interval-data")  # the session sees it ...
    assert (
        inbox_files(server) == [] and server.store.list_files(f"{A}/interval-data/") == []
    )  # ... the pipeline not
    ftp.rename("interval-data/x.csv.filepart", "interval-data/x.csv")
    obj = server.store.stat(f"{A}/interval-data/x.csv")
    assert (
        obj.complete
        and hashlib.sha256(server.store.read_bytes(obj.key)).digest() == hashlib.sha256(data).digest()
    )
    assert "x.csv.filepart" not in ftp.listdir("interval-data") and spool_files(server) == []
    (upload,) = [e for e in audit_lines(leap_home) if e["event"] == "upload"]
    assert (upload["name"], upload["staged_as"], upload["size"]) == ("x.csv", "x.csv.filepart", len(data))

    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/y.csv.1a2b3c.partial")  # rclone >= 1.63, posix-rename
    ftp.posix_rename("interval-data/y.csv.1a2b3c.partial", "interval-data/y.csv")
    assert server.store.read_bytes(f"{A}/interval-data/y.csv") == b"a,b\n"

    ftp.putfo(io.BytesIO(b"other"), "interval-data/x.csv.part")
    with pytest.raises(PermissionError, match="waiting to be processed"):
        ftp.rename("interval-data/x.csv.part", "interval-data/x.csv")  # the final name is taken
    with pytest.raises(PermissionError, match="rename"):
        ftp.rename("interval-data/x.csv", "interval-data/z.csv")  # an uploaded file
    with pytest.raises(PermissionError):
        ftp.rename("interval-data/x.csv.part", "interval-data/accepted/x.csv")
    with pytest.raises(PermissionError):
        ftp.rename("interval-data/x.csv.part", "interval-data/.x.csv")  # a final name, not another temp
    fh = ftp.open("interval-data/open.tmp", "wb")
    fh.write(b"a")
    with pytest.raises(OSError, match="close"):
        ftp.rename("interval-data/open.tmp", "interval-data/open.csv")  # not closed yet
    fh.close()
    client.close()
    wait_for(
        lambda: len([e for e in audit_lines(leap_home) if e["event"] == "upload_discarded"]) == 2,
        message="two upload_discarded lines",
    )
    discarded = sorted(e["name"] for e in audit_lines(leap_home) if e["event"] == "upload_discarded")
    assert discarded == ["open.tmp", "x.csv.part"]  # staged, never renamed, discarded with their connection
    assert inbox_files(server) == ["x.csv", "y.csv"] and spool_files(server) == []


def test_folders_carry_real_times(server):
    ftp = server.paramiko(A, server.key_for(A)).open_sftp()
    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/dated.csv")
    started = server.store.root.stat().st_mtime - 60
    root = {a.filename: a for a in ftp.listdir_attr("/")}
    inbox = {a.filename: a for a in ftp.listdir_attr("interval-data")}
    assert root["interval-data"].st_mtime == int((server.store.root / A / "interval-data").stat().st_mtime)
    assert ftp.stat("/").st_mtime == int((server.store.root / A).stat().st_mtime)
    for folder in ["accepted", "failed", "status"]:  # not created yet: the server's start time
        assert inbox[folder].st_mtime >= started, folder
    assert ftp.stat("interval-data").st_mtime == root["interval-data"].st_mtime


def test_partner_quota_counts_waiting_and_receiving_bytes(leap_home):
    from dataclasses import replace

    from sftp_support import FAST_SETTINGS

    with sftp_server(leap_home, replace(FAST_SETTINGS, quota_bytes=1_000_000)) as srv:
        key = srv.key_for(A)
        ftp, other = srv.paramiko(A, key).open_sftp(), srv.paramiko(B, srv.key_for(B)).open_sftp()
        ftp.putfo(io.BytesIO(b"x" * 600_000), "interval-data/waiting.csv")
        with pytest.raises(OSError, match="quota exceeded"):
            with ftp.open(
                "interval-data/too-much.csv", "wb", bufsize=0
            ) as fh:  # each write waits for its answer
                for _ in range(50):
                    fh.write(b"y" * 10_000)
        other.putfo(io.BytesIO(b"z" * 500_000), "interval-data/other-partner.csv")  # a quota per partner
        ftp.putfo(io.BytesIO(b"w" * 300_000), "interval-data/fits.csv")
        assert not srv.store.exists(f"{A}/interval-data/too-much.csv") and not spool_files(srv)
        assert [e["reason"] for e in aborted(leap_home, "too-much.csv")] == ["quota exceeded"]  # one line
        assert inbox_files(srv) == ["fits.csv", "waiting.csv"]


def test_over_limit_upload_is_aborted_with_one_audit_line(leap_home):
    from dataclasses import replace

    from sftp_support import FAST_SETTINGS

    with sftp_server(leap_home, replace(FAST_SETTINGS, max_upload_bytes=1000)) as srv:
        ftp = srv.paramiko(A, srv.key_for(A)).open_sftp()
        fh = ftp.open("interval-data/big.csv", "wb")
        fh.set_pipelined(True)
        for _ in range(65):
            fh.write(b"y" * 32768)
        with pytest.raises(OSError, match="limit"):
            strict_close(ftp, fh)
        assert not srv.store.exists(f"{A}/interval-data/big.csv") and not spool_files(srv)
    lines = [
        e for e in audit_lines(leap_home) if e.get("name") == "big.csv" or "big.csv" in e.get("detail", "")
    ]
    assert [(e["event"], e["reason"]) for e in lines] == [("upload_aborted", "over the size limit")]


def test_names_over_the_intake_limit_are_refused_at_the_door(server):
    """Names of 201-255 bytes used to be accepted and then blocked intake (status/<name>.json too long)."""
    client = server.paramiko(A, server.key_for(A))
    ftp = client.open_sftp()
    long_name = "n" * 197 + ".csv"  # 201 bytes
    with pytest.raises(PermissionError, match="at most 200 bytes"):
        ftp.putfo(io.BytesIO(b"a,b\n"), f"interval-data/{long_name}")
    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/long.csv.filepart")
    with pytest.raises(PermissionError, match="at most 200 bytes"):
        ftp.rename("interval-data/long.csv.filepart", f"interval-data/{long_name}")
    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/" + "n" * 196 + ".csv")  # exactly 200 bytes is fine
    client.close()
    assert inbox_files(server) == ["n" * 196 + ".csv"]


def test_open_handles_are_capped_so_one_partner_cannot_exhaust_descriptors(server):
    """Hundreds of upload handles left open (nothing written, no quota used) exhausted the server's file
    descriptors, and other partners could no longer connect."""
    from leap_orchestration.sftp.session import MAX_OPEN_DOWNLOADS
    from leap_orchestration.sftp.uploads import MAX_OPEN_UPLOADS

    client = server.paramiko(A, server.key_for(A))
    ftp = client.open_sftp()
    ftp.putfo(io.BytesIO(b"a,b\n"), "interval-data/readable.csv")
    readers = [ftp.open("interval-data/readable.csv", "rb") for _ in range(MAX_OPEN_DOWNLOADS)]
    with pytest.raises(OSError, match="too many files open"):
        ftp.open("interval-data/readable.csv", "rb")
    handles = [ftp.open(f"interval-data/h{i}.csv", "wb") for i in range(MAX_OPEN_UPLOADS)]
    with pytest.raises(OSError, match="too many uploads in progress"):
        ftp.open("interval-data/one-more.csv", "wb")
    other = server.paramiko(B, server.key_for(B)).open_sftp()  # another partner is unaffected
    other.putfo(io.BytesIO(b"a,b\n"), "interval-data/fine.csv")
    assert "fine.csv" in other.listdir("interval-data")
    for h in readers + handles:
        h.close()
    ftp.open("interval-data/readable.csv", "rb").close()  # closing frees the slots
    client.close()


def test_spool_files_of_a_server_that_died_are_removed_at_start(leap_home):
    """A server killed mid-upload left its spool files (up to 2 GB each) behind for good."""
    spool = leap_home / "landing" / ".spool"
    spool.mkdir(parents=True)
    stale, fresh = spool / "dead.upload", spool / "live.upload"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    os.utime(stale, (1, 1))
    with sftp_server(leap_home):
        assert not stale.exists() and fresh.exists()  # fresh: perhaps another server's upload in progress

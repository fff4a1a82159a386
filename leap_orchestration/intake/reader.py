"""Read an upload into frames of raw string fields, each row tagged with its physical line number.

Chunks of ~64 MB keep memory flat for very large files. A clean chunk (no quotes, no blank lines, every line
with the header's field count) goes through polars' CSV reader; anything else takes an exact line-by-line
path that reports LIN_0001/0002/0003 and FIL_0002 per line. Records never span lines: interval data has no
multi-line values, and one record per line keeps error line numbers exact.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import polars as pl

from leap_orchestration.intake.codes import FileLevelError, Finding
from leap_orchestration.intake.header import Header

CHUNK_BYTES = 64 * 1024 * 1024
MAX_EXPANDED_BYTES = 4 * 1024**3  # a .csv.gz may expand to at most this (zip-bomb guard)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Chunk:
    frame: pl.DataFrame  # column "line" + one string column per header field (null = empty)
    findings: list[Finding] = field(default_factory=list)


class _LimitedReader(io.RawIOBase):
    """Decompresses a gzip stream, failing cleanly when it is corrupt or expands beyond the limit."""

    def __init__(self, raw: BinaryIO, limit: int):
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limit, self._total = limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._gz.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise FileLevelError(Finding(0, "", "FIL_0003", f"The compressed file is corrupt or truncated ({exc}).")) from exc
        self._total += len(data)
        if self._total > self._limit:
            raise FileLevelError(
                Finding(0, "", "FIL_0004", f"The compressed file expands beyond {self._limit // 1024**2} MB; split it.")
            )
        buffer[: len(data)] = data
        return len(data)


def open_upload(raw: BinaryIO, max_expanded: int | None = None) -> BinaryIO:
    """Transparently decompress gzip (by magic bytes, whatever the name says)."""
    max_expanded = MAX_EXPANDED_BYTES if max_expanded is None else max_expanded
    buffered = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return io.BufferedReader(_LimitedReader(buffered, max_expanded), buffer_size=1024 * 1024)
    return buffered


def read_header(stream: BinaryIO) -> bytes:
    """The first line, without BOM and line ending."""
    first = stream.readline(1024 * 1024)
    if not first.strip(b"\xef\xbb\xbf \t\r\n"):
        raise FileLevelError(Finding(0, "", "FIL_0001", "The file is empty: expected a header line and data rows."))
    text = first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    return text.rstrip(b"\r\n")


def iter_chunks(stream: BinaryIO, header: Header, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Yield the data rows (lines 2..) chunk by chunk."""
    next_line, carry = 2, b""
    while True:
        block = stream.read(chunk_bytes)
        data = carry + block
        if not block:
            if data:
                yield _parse(data + b"\n", next_line, header)
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        body, carry = data[: cut + 1], data[cut + 1 :]
        yield _parse(body, next_line, header)
        next_line += body.count(b"\n")


def _parse(body: bytes, first_line: int, header: Header) -> Chunk:
    lines = body.count(b"\n")
    width = len(header.names)
    clean = (
        b'"' not in body
        and b"\x00" not in body
        and b"\n\n" not in body
        and b"\n\r\n" not in body
        and not body.startswith((b"\n", b"\r\n"))
        and body.count(b",") == (width - 1) * lines
    )
    if clean:
        try:
            frame = pl.read_csv(
                body, has_header=False, new_columns=header.names, infer_schema=False, quote_char=None,
                encoding="utf8", truncate_ragged_lines=False, raise_if_empty=False,
            )
        except Exception:  # noqa: BLE001 - invalid UTF-8 or a surprise: the exact path explains it
            frame = None
        if frame is not None and frame.height == lines and frame.width == width:
            if b" " in body or b"\t" in body or b"\r" in body:
                frame = frame.with_columns(pl.all().str.strip_chars(" \t\r"))
            frame = frame.with_columns(pl.all().replace("", None))
            return Chunk(frame.with_columns(pl.int_range(first_line, first_line + lines, dtype=pl.Int64).alias("line")))
    return _parse_exact(body, first_line, header)


def _parse_exact(body: bytes, first_line: int, header: Header) -> Chunk:
    width = len(header.names)
    findings: list[Finding] = []
    rows: list[list[str | None]] = []
    line_numbers: list[int] = []
    for offset, raw_line in enumerate(body.split(b"\n")[:-1]):
        line_no = first_line + offset
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw_line[exc.start : exc.start + 4]
            findings.append(Finding(line_no, "", "FIL_0002", f"Line is not UTF-8 text: invalid bytes {bad!r} at position {exc.start + 1}."))
            continue
        if "\x00" in text:
            findings.append(Finding(line_no, "", "FIL_0002", "Line contains a NUL byte: the file is not text."))
            continue
        text = text.rstrip("\r")
        if not text.strip():
            continue  # blank lines (often a trailing newline) carry no data
        if '"' in text:
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                findings.append(Finding(line_no, "", "LIN_0003", f"A quoted field is not closed on this line ({exc})."))
                continue
        else:
            fields = text.split(",")
        if len(fields) != width:
            code = "LIN_0001" if len(fields) < width else "LIN_0002"
            findings.append(Finding(line_no, "", code, f"Line has {len(fields)} fields; the header has {width}."))
            continue
        rows.append([f.strip(" \t") or None for f in fields])
        line_numbers.append(line_no)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header.names)}
    frame = pl.DataFrame({**columns, "line": line_numbers}, schema={**dict.fromkeys(header.names, pl.String), "line": pl.Int64})
    return Chunk(frame, findings)

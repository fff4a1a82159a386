"""Read an upload into frames of raw string fields, each row tagged with its physical line number.

Chunks of at most 32 MB keep memory flat for very large files. A vectorised byte scan (numpy) finds the odd lines of
a chunk (quotes, NULs, blank lines, a field count unlike the header's); every other line goes through polars'
CSV reader in one block, and only the odd ones take an exact line-by-line path that reports LIN_0001/0002/0003
and FIL_0002 per line. A chunk that is not UTF-8 takes the exact path whole. Records never span lines: interval data has no
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

import numpy as np
import polars as pl

from leap_orchestration.intake.codes import FileLevelError, Finding
from leap_orchestration.intake.header import Header

CHUNK_BYTES = 32 * 1024 * 1024
FIRST_CHUNK_BYTES = 8 * 1024 * 1024  # small first chunk: checking starts early while the next one is read
MAX_EXPANDED_BYTES = 4 * 1024**3  # a .csv.gz may expand to at most this (zip-bomb guard)
GZIP_MAGIC = b"\x1f\x8b"
NL, COMMA, QUOTE, NUL = b"\n"[0], b","[0], b'"'[0], 0


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
    next_line, carry, size = 2, b"", min(FIRST_CHUNK_BYTES, chunk_bytes)
    while True:
        block = stream.read(size)
        size = min(size * 2, chunk_bytes)
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
    """Well-formed lines go through polars' CSV reader in one block; only the odd ones take the exact path."""
    width = len(header.names)
    data = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(data == NL)  # body ends with a newline: one end per line
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.diff(np.searchsorted(np.flatnonzero(data == COMMA), ends), prepend=0)
    odd = (commas != width - 1) | (ends - starts <= 1)  # wrong field count, or blank ('' or a lone CR)
    for special in (QUOTE, NUL):  # quoted fields and NULs are rare: mark only the lines holding one
        found = np.flatnonzero(data == special)
        if found.size:
            odd[np.unique(np.searchsorted(ends, found))] = True
    del data
    if odd.all():
        return _parse_exact(body, first_line, header)
    good = np.flatnonzero(~odd)
    clean = body if good.size == ends.size else b"".join(_runs(body, starts, ends, odd))
    frame = _read_clean(clean, header)
    if frame is None or frame.height != good.size:  # invalid UTF-8 (or a surprise): the exact path explains it
        return _parse_exact(body, first_line, header)
    frame = frame.with_columns(pl.Series("line", good + first_line, dtype=pl.Int64))
    if good.size == ends.size:
        return Chunk(frame)
    bad = np.flatnonzero(odd)
    exact = _parse_exact(b"".join(body[starts[i] : ends[i] + 1] for i in bad), 0, header, line_numbers=bad + first_line)
    return Chunk(pl.concat([frame, exact.frame]).sort("line"), exact.findings)


def _runs(body: bytes, starts: np.ndarray, ends: np.ndarray, odd: np.ndarray) -> Iterator[bytes]:
    """The byte ranges of consecutive good lines."""
    change = np.flatnonzero(np.diff(odd.astype(np.int8))) + 1
    bounds = np.concatenate(([0], change, [odd.size]))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if not odd[a]:
            yield body[starts[a] : ends[b - 1] + 1]


def _read_clean(body: bytes, header: Header) -> pl.DataFrame | None:
    try:
        frame = pl.read_csv(
            body, has_header=False, new_columns=header.names, infer_schema=False, quote_char=None,
            encoding="utf8", truncate_ragged_lines=False, raise_if_empty=False,
        )
    except Exception:  # noqa: BLE001 - the caller falls back to the exact path
        return None
    if frame.width != len(header.names):
        return None
    if b" " in body or b"\t" in body or b"\r" in body:
        frame = frame.with_columns(pl.all().str.strip_chars(" \t\r"))
    return frame.with_columns(pl.all().replace("", None))


def _parse_exact(body: bytes, first_line: int, header: Header, line_numbers: np.ndarray | None = None) -> Chunk:
    """Line by line with Python's csv module; `line_numbers` gives each line's number when they are not consecutive."""
    width = len(header.names)
    findings: list[Finding] = []
    rows: list[list[str | None]] = []
    kept_lines: list[int] = []
    for offset, raw_line in enumerate(body.split(b"\n")[:-1]):
        line_no = int(line_numbers[offset]) if line_numbers is not None else first_line + offset
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
        rows.append([f.strip(" \t\r") or None for f in fields])  # as the fast path: CR counts as whitespace
        kept_lines.append(line_no)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header.names)}
    frame = pl.DataFrame({**columns, "line": kept_lines}, schema={**dict.fromkeys(header.names, pl.String), "line": pl.Int64})
    return Chunk(frame, findings)

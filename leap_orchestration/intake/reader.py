"""Read an upload into frames of raw string fields, each row tagged with its physical line number.

Memory stays flat whatever the file holds: chunks are at most 32 MB and 500,000 lines, a line longer than the
limit is dropped as it is read (LIN_0004, never held whole), and the bytes read after decompression are capped
(`intake/limits.py`). A vectorised byte scan (numpy) sorts the lines of a chunk: blank lines are skipped, lines
with the wrong field count or over the length limit are reported as such, lines holding quotes, NULs or invalid
UTF-8 take an exact line-by-line path (LIN_0001/0002/0003, FIL_0002), and every other line goes through
polars' CSV reader in one block. Records never span lines: interval data has no multi-line values, and one
record per line keeps error line numbers exact. Old-Mac files (CR-only line endings) are read as if they had
LF endings.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import polars as pl

from leap_orchestration.intake.codes import FileLevelError, Finding
from leap_orchestration.intake.header import Header
from leap_orchestration.intake.limits import DEFAULT_LIMITS, IntakeLimits

CHUNK_BYTES = 32 * 1024 * 1024
FIRST_CHUNK_BYTES = 8 * 1024 * 1024  # small first chunk: checking starts early while the next one is read
CHUNK_LINES = 500_000  # real lines are ~150 bytes (~220,000 per chunk); this bounds a chunk of tiny lines
KEEP_FINDINGS = 10_000  # findings with messages per chunk (the errors.csv cap); counts stay exact beyond it
GZIP_MAGIC = b"\x1f\x8b"
NL, CR, COMMA, QUOTE, NUL = b"\n"[0], b"\r"[0], b","[0], b'"'[0], 0
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[ord(" "), ord("\t"), CR, NL]] = True


@dataclass
class Chunk:
    frame: pl.DataFrame  # column "line" + one string column per header field (null = empty)
    findings: list[Finding] = field(default_factory=list)  # in line order; the first KEEP_FINDINGS only
    counts: Counter = field(default_factory=Counter)  # (column, code) -> exact number of the chunk's findings
    error_lines: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # every finding's line

    @property
    def lines(self) -> int:
        """Data lines this chunk accounts for (rows and lines with findings; blank lines are not counted)."""
        return self.frame.height + len(self.error_lines)


class _CappedReader(io.RawIOBase):
    """Decompresses gzip (or passes bytes through), failing cleanly when the stream is corrupt or too large."""

    def __init__(self, raw: BinaryIO, limit: int, compressed: bool):
        self._src = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        self._limit, self._total, self._compressed = limit, 0, compressed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._src.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            if not self._compressed:
                raise
            raise FileLevelError(
                Finding(0, "", "FIL_0003", f"The compressed file is corrupt or truncated ({exc}).")
            ) from exc
        self._total += len(data)
        if self._total > self._limit:
            what = "expands to more than" if self._compressed else "is larger than"
            raise FileLevelError(
                Finding(0, "", "FIL_0004", f"The file {what} {self._limit // 1024**2:,} MB; split it.")
            )
        buffer[: len(data)] = data
        return len(data)


class _CrAsNewline(io.RawIOBase):
    """An old-Mac file (CR-only line endings): every CR read as LF, which keeps byte lengths and line numbers."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer)).replace(b"\r", b"\n")
        buffer[: len(data)] = data
        return len(data)


def open_upload(raw: BinaryIO, limits: IntakeLimits = DEFAULT_LIMITS) -> BinaryIO:
    """Decompress gzip (by magic bytes, whatever the name says), cap the bytes read, and read CR-only files."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    compressed = buffered.peek(2)[:2] == GZIP_MAGIC
    stream = io.BufferedReader(_CappedReader(buffered, limits.max_expanded_bytes, compressed), 1024 * 1024)
    start = stream.peek(1024 * 1024)
    if b"\n" not in start and b"\r" in start:
        return io.BufferedReader(_CrAsNewline(stream), 1024 * 1024)
    return stream


def read_header(stream: BinaryIO, limits: IntakeLimits = DEFAULT_LIMITS) -> bytes:
    """The first line, without BOM and line ending."""
    first = stream.readline(limits.max_line_bytes + 1)
    if len(first) > limits.max_line_bytes and not first.endswith(b"\n"):
        raise FileLevelError(Finding(1, "", "LIN_0004", _too_long(None, limits)))
    if not first.strip(b"\xef\xbb\xbf \t\r\n"):
        raise FileLevelError(
            Finding(0, "", "FIL_0001", "The file is empty: expected a header line and data rows.")
        )
    text = first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    return text.rstrip(b"\r\n")


def iter_chunks(
    stream: BinaryIO,
    header: Header,
    chunk_bytes: int = CHUNK_BYTES,
    limits: IntakeLimits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> Iterator[Chunk]:
    """Yield the data rows (lines 2..) chunk by chunk; raise FileLevelError when a file-wide limit is passed."""
    next_line, carry, size = 2, b"", min(FIRST_CHUNK_BYTES, chunk_bytes)
    dropping = False  # the current line passed the length limit: its bytes are skipped up to its end
    while True:
        check_deadline(deadline, limits)
        block = stream.read(size)
        size = min(size * 2, chunk_bytes)
        if dropping:
            end = block.find(b"\n")
            if end < 0 and block:
                continue
            finding = Finding(next_line, "", "LIN_0004", _too_long(None, limits))
            yield Chunk(_empty(header), [finding], Counter({("", "LIN_0004"): 1}), np.array([next_line]))
            next_line, dropping = next_line + 1, False
            if end < 0:
                return
            block = block[end + 1 :]
            if not block:  # the long line ended exactly at the block's end: not the end of the file
                continue
        data = carry + block
        if not block:
            if data:
                _check_lines(next_line, 1, limits)
                yield _parse(data + b"\n", next_line, header, limits, deadline)
            return
        cut = data.rfind(b"\n")
        body, carry = (b"", data) if cut < 0 else (data[: cut + 1], data[cut + 1 :])
        if len(carry) > limits.max_line_bytes:
            carry, dropping = b"", True
        if not body:
            continue
        ends = np.flatnonzero(np.frombuffer(body, np.uint8) == NL)
        _check_lines(next_line, ends.size, limits)
        for start in range(0, ends.size, CHUNK_LINES):
            stop = min(start + CHUNK_LINES, ends.size)
            first_byte = 0 if start == 0 else int(ends[start - 1]) + 1
            yield _parse(
                body[first_byte : int(ends[stop - 1]) + 1], next_line + start, header, limits, deadline
            )
        next_line += ends.size


def _check_lines(next_line: int, more: int, limits: IntakeLimits) -> None:
    if next_line - 2 + more > limits.max_lines:
        raise FileLevelError(
            Finding(0, "", "FIL_0007", f"The file has more than {limits.max_lines:,} lines; split it.")
        )


def check_deadline(deadline: float | None, limits: IntakeLimits) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise FileLevelError(
            Finding(
                0,
                "",
                "FIL_0008",
                f"Checking the file took longer than {limits.max_seconds:,.0f} "
                "seconds; split it into smaller files.",
            )
        )


def _too_long(length: int | None, limits: IntakeLimits) -> str:
    size = f"{length:,} bytes long" if length is not None else "too long"
    return f"Line is {size}: lines may be at most {limits.max_line_bytes:,} bytes."


def _empty(header: Header) -> pl.DataFrame:
    return pl.DataFrame(schema={**{name: pl.String for _, name in header.kept}, "line": pl.Int64})


def _per_line(mask: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True for each line (given its end offsets) holding at least one byte where `mask` is True."""
    found = np.zeros(ends.size, dtype=bool)
    at = np.flatnonzero(mask)
    if at.size:
        found[np.unique(np.searchsorted(ends, at))] = True
    return found


def _parse(
    body: bytes,
    first_line: int,
    header: Header,
    limits: IntakeLimits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> Chunk:
    """Sort the lines by a byte scan; only lines with quotes, NULs or invalid UTF-8 take the exact path."""
    width = len(header.names)
    if not body:
        return Chunk(_empty(header))
    data = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(data == NL)  # body ends with a newline: one end per line
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    commas = np.diff(np.searchsorted(np.flatnonzero(data == COMMA), ends), prepend=0)
    blank = _blank_lines(body, data, starts, ends, commas)
    long = lengths > limits.max_line_bytes
    exact = _per_line((data == QUOTE) | (data == NUL), ends)
    exact |= _starts_with_bom(data, starts, lengths)  # polars would strip a BOM at the start of its buffer
    high = _per_line(data >= 0x80, ends)
    del data
    if high.any() and not _is_utf8(body):
        exact |= high  # only lines with non-ASCII bytes can hold the invalid UTF-8
    exact &= ~long & ~blank
    miscounted = (commas != width - 1) & ~exact & ~long & ~blank
    good = ~(exact | miscounted | long | blank)
    lines = np.arange(ends.size, dtype=np.int64) + first_line
    findings = [
        Finding(int(lines[i]), "", "LIN_0004", _too_long(int(lengths[i]), limits))
        for i in np.flatnonzero(long)[:KEEP_FINDINGS]
    ]
    fields = commas[miscounted] + 1
    findings += [
        Finding(
            int(n),
            "",
            "LIN_0001" if f < width else "LIN_0002",
            f"Line has {f} fields; the header has {width}.",
        )
        for n, f in zip(lines[miscounted][:KEEP_FINDINGS], fields[:KEEP_FINDINGS], strict=True)
    ]
    counts = Counter(
        {
            ("", "LIN_0004"): int(long.sum()),
            ("", "LIN_0001"): int((fields < width).sum()),
            ("", "LIN_0002"): int((fields > width).sum()),
        }
    )
    error_lines = [lines[long], lines[miscounted]]
    frames = []
    if good.any():
        clean = body if good.all() else b"".join(_runs(body, starts, ends, good))
        frame = _read_clean(clean, header)
        if frame is None or frame.height != int(good.sum()):  # a surprise: the exact path explains every line
            return _parse_exact(body, first_line, header, limits=limits, deadline=deadline)
        frames.append(frame.with_columns(pl.Series("line", lines[good], dtype=pl.Int64)))
    if exact.any():
        picked = np.flatnonzero(exact)
        slow = _parse_exact(
            b"".join(body[starts[i] : ends[i] + 1] for i in picked),
            0,
            header,
            line_numbers=lines[picked],
            limits=limits,
            deadline=deadline,
        )
        frames.append(slow.frame)
        findings += slow.findings
        counts.update(slow.counts)
        error_lines.append(slow.error_lines)
    frame = pl.concat(frames).sort("line") if len(frames) > 1 else frames[0] if frames else _empty(header)
    counts = +counts  # drop zero counts
    findings = sorted(findings, key=lambda f: f.line)[:KEEP_FINDINGS]
    return Chunk(frame, findings, counts, np.concatenate(error_lines))


def _blank_lines(
    body: bytes, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, commas: np.ndarray
) -> np.ndarray:
    """Lines of nothing but spaces, tabs and CRs. Only comma-free lines can be blank: usually a handful, checked
    one by one; a flood of them is checked with a byte mask (its ~100 ms per 32 MB is then worth it)."""
    candidates = np.flatnonzero(commas == 0)
    if candidates.size <= 10_000:
        blank = np.zeros(ends.size, dtype=bool)
        for i in candidates:
            blank[i] = not body[starts[i] : ends[i]].strip(b" \t\r")
        return blank
    solid = _WHITESPACE[data]
    np.logical_not(solid, out=solid)  # in place: a chunk-sized mask is the largest temporary here
    return np.add.reduceat(solid, starts, dtype=np.int32) == 0


def _starts_with_bom(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    found = np.zeros(starts.size, dtype=bool)
    room = np.flatnonzero(lengths >= 3)
    at = starts[room]
    found[room] = (data[at] == 0xEF) & (data[at + 1] == 0xBB) & (data[at + 2] == 0xBF)
    return found


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _runs(body: bytes, starts: np.ndarray, ends: np.ndarray, good: np.ndarray) -> Iterator[bytes]:
    """The byte ranges of consecutive good lines."""
    change = np.flatnonzero(np.diff(good.astype(np.int8))) + 1
    bounds = np.concatenate(([0], change, [good.size]))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if good[a]:
            yield body[starts[a] : ends[b - 1] + 1]


def _read_clean(body: bytes, header: Header) -> pl.DataFrame | None:
    kept = header.kept
    projected = len(kept) < len(
        header.names
    )  # parse only the known columns (projection costs time otherwise)
    try:
        frame = pl.read_csv(
            body,
            has_header=False,
            columns=[i for i, _ in kept] if projected else None,
            infer_schema=False,
            quote_char=None,
            encoding="utf8",
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except Exception:  # noqa: BLE001 - the caller falls back to the exact path
        return None
    if frame.width != len(kept):
        return None
    frame.columns = [name for _, name in kept]
    if b" " in body or b"\t" in body or b"\r" in body:
        frame = frame.with_columns(pl.all().str.strip_chars(" \t\r"))
    return frame.with_columns(pl.all().replace("", None))


def _parse_exact(
    body: bytes,
    first_line: int,
    header: Header,
    line_numbers: np.ndarray | None = None,
    limits: IntakeLimits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> Chunk:
    """Line by line with Python's csv module; `line_numbers` gives each line's number when they are not consecutive."""
    width = len(header.names)
    kept = [i for i, _ in header.kept]
    findings: list[Finding] = []
    counts: Counter = Counter()
    error_lines: list[int] = []
    rows: list[list[str | None]] = []
    kept_lines: list[int] = []

    def report(line_no: int, code: str, message: str) -> None:
        counts[("", code)] += 1
        error_lines.append(line_no)
        if len(findings) < KEEP_FINDINGS:
            findings.append(Finding(line_no, "", code, message))

    pos, offset = 0, 0
    while (end := body.find(b"\n", pos)) >= 0:
        raw_line, pos, index = body[pos:end], end + 1, offset
        offset += 1
        if offset % 65_536 == 0:
            check_deadline(deadline, limits)
        line_no = int(line_numbers[index]) if line_numbers is not None else first_line + index
        if len(raw_line) > limits.max_line_bytes:
            report(line_no, "LIN_0004", _too_long(len(raw_line), limits))
            continue
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw_line[exc.start : exc.start + 4]
            report(
                line_no,
                "FIL_0002",
                f"Line is not UTF-8 text: invalid bytes {bad!r} at position {exc.start + 1}.",
            )
            continue
        if "\x00" in text:
            report(line_no, "FIL_0002", "Line contains a NUL byte: the file is not text.")
            continue
        text = text.rstrip("\r")
        if not text.strip(" \t\r"):
            continue  # blank lines (often a trailing newline) carry no data; the byte scan's notion of blank
        if '"' in text:
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                report(line_no, "LIN_0003", f"A quoted field is not closed on this line ({exc}).")
                continue
        else:
            fields = text.split(",")
        if len(fields) != width:
            report(
                line_no,
                "LIN_0001" if len(fields) < width else "LIN_0002",
                f"Line has {len(fields)} fields; the header has {width}.",
            )
            continue
        rows.append([fields[i].strip(" \t\r") or None for i in kept])  # as the fast path: CR is whitespace
        kept_lines.append(line_no)
    columns = {name: [r[j] for r in rows] for j, (_, name) in enumerate(header.kept)}
    frame = pl.DataFrame({**columns, "line": kept_lines}, schema=_empty(header).schema)
    return Chunk(frame, findings, counts, np.array(error_lines, dtype=np.int64))

"""Hostile uploads built by streaming (never held in memory): gzip members are written once and repeated, since a
gzip file may be a concatenation of members."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from conftest import HEADER


def _member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _repeat(path: Path, head: bytes, block: bytes, times: int) -> Path:
    member = _member(block)
    with path.open("wb") as fh:
        fh.write(_member(head))
        for _ in range(times):
            fh.write(member)
    return path


def zeros_without_newline(path: Path, expanded_gb: int = 5) -> Path:
    """A header, then `expanded_gb` GB of '0' bytes and no line end: one endless line."""
    return _repeat(path, HEADER.encode() + b"\n", b"0" * 64 * 1024**2, expanded_gb * 16)


def repeated_lines(path: Path, line: bytes, lines: int) -> Path:
    """A header, then `line` (with its newline) `lines` times."""
    per_block = max(1, (8 * 1024**2) // len(line))
    times, rest = divmod(lines, per_block)
    _repeat(path, HEADER.encode() + b"\n", line * per_block, times)
    with path.open("ab") as fh:
        fh.write(_member(line * rest))
    return path


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b" and zlib is not None

"""Bounds on everything a partner controls in one upload, so that no file can exhaust memory or time.

Documented in docs/error-codes.md ("Limits"); each bound ends the file with its own code, never the run.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_NAME_BYTES = 200  # longer names fail FIL_0009 (and the SFTP server refuses them at the door)


@dataclass(frozen=True)
class IntakeLimits:
    max_line_bytes: int = 64 * 1024  # a longer line is LIN_0004; interval-data lines are ~150 bytes
    max_expanded_bytes: int = 2 * 1024**3  # bytes read after decompression (FIL_0004), as the SFTP upload cap
    max_lines: int = 10_000_000  # physical data lines (FIL_0007): a year of 15-minute data for ~285 meters
    max_seconds: float = 300.0  # time to check one file (FIL_0008); 10M valid lines take ~15 s on 2 cores
    duckdb_memory: str = (
        "256MB"  # the validator's DuckDB; staged rows beyond it spill to disk (peak RSS < 2 GB)
    )


DEFAULT_LIMITS = IntakeLimits()

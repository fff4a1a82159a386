"""Partner API keys: several per partner, each revocable, stored only as salted Argon2id hashes.

A key reads `leap_<key id>_<secret>`: the key id finds the one hash to check (no scan over every key), and
the secret is never stored. An unknown partner or key id still costs one hash check, so response time does
not tell an attacker which partners exist. SQLite (not the DuckDB warehouse): the long-running SFTP server
reads it while the CLI writes it, and DuckDB allows a single writer process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_KEY = re.compile(r"^leap_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
PARTNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("leap-timing-equaliser")

_SCHEMA = """CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL, revoked_at TEXT)"""


@dataclass(frozen=True)
class KeyInfo:
    partner_id: str
    key_id: str
    created_at: str
    revoked_at: str | None


class PartnerCredentials:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        con = sqlite3.connect(self.path, timeout=30)
        if new:
            self.path.chmod(0o600)  # hashes only, but still nobody else's business
        try:
            con.execute(_SCHEMA)
            with con:  # one transaction
                yield con
        finally:
            con.close()

    def add(self, partner_id: str) -> tuple[str, str]:
        """Create a key for the partner; returns (key id, API key). The key is shown once, never stored."""
        if not PARTNER_ID.match(partner_id):
            raise ValueError(f"not a valid partner id: {partner_id!r}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        api_key = f"leap_{key_id}_{secret}"
        with self._db() as con:
            con.execute(
                "INSERT INTO api_keys (key_id, partner_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
                (key_id, partner_id, _HASHER.hash(api_key), _now()),
            )
        return key_id, api_key

    def revoke(self, partner_id: str, key_id: str | None = None) -> int:
        """Revoke one key of the partner, or all its keys; returns how many were revoked."""
        with self._db() as con:
            sql = "UPDATE api_keys SET revoked_at = ? WHERE partner_id = ? AND revoked_at IS NULL"
            args: tuple = (_now(), partner_id)
            if key_id is not None:
                sql, args = sql + " AND key_id = ?", (*args, key_id)
            return con.execute(sql, args).rowcount

    def list(self) -> list[KeyInfo]:
        with self._db() as con:
            rows = con.execute(
                "SELECT partner_id, key_id, created_at, revoked_at FROM api_keys ORDER BY partner_id, created_at"
            )
            return [KeyInfo(*row) for row in rows]

    def partners(self) -> set[str]:
        return {k.partner_id for k in self.list() if k.revoked_at is None}

    def verify(self, partner_id: str, api_key: str) -> str | None:
        """The key id if `api_key` is a live key of this partner, else None (constant work either way)."""
        match = _KEY.match(api_key)
        row = None
        if match:
            with self._db() as con:
                row = con.execute(
                    "SELECT key_hash FROM api_keys WHERE key_id = ? AND partner_id = ? AND revoked_at IS NULL",
                    (match.group(1), partner_id),
                ).fetchone()
        try:
            ok = _HASHER.verify(row[0] if row else _DUMMY_HASH, api_key) and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        return match.group(1) if ok and match else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

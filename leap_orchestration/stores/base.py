"""The landing-store interface: keys are '/'-separated, tenants are top-level prefixes.

Everything above this interface (sensor, validation, results, SFTP server) is the same for every store.
"""

from __future__ import annotations

import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Names a client writes while a transfer is in progress (WinSCP, FileZilla, rsync, editors) or hidden files.
_TEMP_SUFFIXES = (".part", ".filepart", ".tmp", ".temp", ".partial", ".crdownload", ".swp", "~")
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()+,=@-]{0,254}$")


def is_temp_name(name: str) -> bool:
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith(_TEMP_SUFFIXES)


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix; keys come from listings, but never trust them."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in (".", "..")
    ):
        raise ValueError(f"unsafe store key: {key!r}")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"unsafe store key: {key!r}")
    return key


class FileChangedError(RuntimeError):
    """The object was replaced between the time it was read and the time it was moved."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    mtime_ns: int  # last modification, ns since epoch (GCS: the object's update time)
    version: str  # changes whenever the content may have changed (local: size+mtime, GCS: generation)
    complete: bool = False  # published whole (SFTP server, GCS): no need to wait for it to settle

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class LandingStore(ABC):
    """A flat key/value store with prefixes; the local folder and GCS implement it."""

    @abstractmethod
    def list_tenant_inboxes(self) -> list[tuple[str, str]]:
        """(tenant, inbox prefix) for every tenant inbox that exists in the store."""

    @abstractmethod
    def list_files(self, prefix: str) -> list[StoredObject]:
        """Objects directly under `prefix` (not in sub-folders), any name."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None: ...

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old object or the whole new one."""

    @abstractmethod
    def move(self, src: str, dst: str, *, expected_version: str | None = None) -> None:
        """Move src to dst; safe to repeat after a crash. Refuses to clobber an existing dst."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list_dir(self, prefix: str) -> tuple[list[str], list[StoredObject]]:
        """(sub-folder names, objects) directly under `prefix`, as a file browser shows them."""

    @abstractmethod
    def publish(self, key: str, source: Path) -> StoredObject:
        """Make the local file `source` appear at `key` whole, in one step, marked complete.

        Raises FileExistsError if `key` exists (never overwrites). `source` is consumed.
        """

    def spool_dir(self) -> Path:
        """Where an uploader stages files before `publish` (local disk, private to the server)."""
        return Path(tempfile.gettempdir()) / "leap-spool"

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as fh:
            return fh.read()

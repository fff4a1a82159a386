"""The embedded default landing store: a folder on local disk ($LEAP_HOME/landing)."""

from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
import tempfile
from pathlib import Path
from typing import BinaryIO

from leap_orchestration.stores.base import FileChangedError, LandingStore, StoredObject, check_key

SFTP_INBOX = "interval-data"
PERFORMANCE_FOLDER = "performance"  # <tenant>/performance/: statements for the partner, read-only over SFTP
# Hidden folders at the store root, outside every tenant's root: never listed as inboxes, never served.
SPOOL = ".spool"  # uploads being received (same file system, so publishing is a link)
PUBLISHED = ".published"  # <key> -> version of a file that was published whole


class LocalLandingStore(LandingStore):
    def __init__(self, root: str | Path, inboxes: list[tuple[str, str]] | None = None):
        """`inboxes`: fixed (tenant, inbox prefix) pairs, as for a landing zone of connectors; by default every
        `<partner>/interval-data/` folder is an inbox (SFTP partners)."""
        self.root = Path(root).resolve()
        self.inboxes = None if inboxes is None else sorted(inboxes)

    def path(self, key: str) -> Path:
        """The file of `key`; refuses keys that escape the root or pass through a symlink (even one pointing
        inside the store: it could lead into another tenant's folder)."""
        path = self.root / check_key(key)
        current = self.root
        for part in path.relative_to(self.root).parts:
            current = current / part
            if current.is_symlink():
                raise ValueError(f"key passes through a link: {key!r}")
        return path

    def list_tenant_inboxes(self) -> list[tuple[str, str]]:
        if self.inboxes is not None:
            return list(self.inboxes)
        # A tenant inbox is any '<tenant>/interval-data/' folder: SFTP partners get one when they are added.
        if not self.root.is_dir():
            return []
        inboxes = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                if os.path.isdir(os.path.join(entry.path, SFTP_INBOX)):
                    inboxes.append((entry.name, f"{entry.name}/{SFTP_INBOX}/"))
        return inboxes

    def list_files(self, prefix: str) -> list[StoredObject]:
        folder = self.path(prefix.rstrip("/")) if prefix else self.root
        if not folder.is_dir():
            return []
        found = []
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):  # symlinks are never taken: they could point anywhere
                st = entry.stat(follow_symlinks=False)
                found.append(self._with_mark(_stored(prefix + entry.name, st)))
        return sorted(found, key=lambda o: (o.mtime_ns, o.key))

    def list_dir(self, prefix: str) -> tuple[list[str], list[StoredObject]]:
        folder = self.path(prefix.rstrip("/")) if prefix else self.root
        if not folder.is_dir():
            return [], []
        folders = sorted(e.name for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
        return folders, sorted(self.list_files(prefix), key=lambda o: o.key)

    def publish(self, key: str, source: Path) -> StoredObject:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)  # atomic, and refuses an existing target (FileExistsError)
        os.unlink(source)
        published = _stored(key, os.stat(target, follow_symlinks=False))
        mark = self._mark_path(key)
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(published.version)
        return dataclasses.replace(published, complete=True)

    def spool_dir(self) -> Path:
        return self.root / SPOOL

    def _mark_path(self, key: str) -> Path:
        return self.root / PUBLISHED / check_key(key)

    def _with_mark(self, obj: StoredObject) -> StoredObject:
        try:
            marked = self._mark_path(obj.key).read_text() == obj.version
        except (OSError, ValueError):  # ValueError: a name no key may have (listed, never taken)
            marked = False
        return dataclasses.replace(obj, complete=True) if marked else obj

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = os.stat(self.path(key), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return self._with_mark(_stored(key, st)) if stat_mod.S_ISREG(st.st_mode) else None

    def open_read(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def move(self, src: str, dst: str, *, expected_version: str | None = None) -> None:
        source, target = self.path(src), self.path(dst)
        if expected_version is not None:
            current = self.stat(src)
            if current is None or current.version != expected_version:
                raise FileChangedError(f"{src} changed while it was processed")
        target.parent.mkdir(parents=True, exist_ok=True)
        # link + unlink instead of rename: a rename would silently replace an existing dst.
        os.link(source, target)
        os.unlink(source)
        self._mark_path(src).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        self._mark_path(key).unlink(missing_ok=True)


def _stored(key: str, st: os.stat_result) -> StoredObject:
    return StoredObject(
        key=key, size=st.st_size, mtime_ns=st.st_mtime_ns, version=f"{st.st_size}-{st.st_mtime_ns}"
    )

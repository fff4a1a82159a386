"""The embedded default landing store: a folder on local disk ($LEAP_HOME/landing)."""

from __future__ import annotations

import os
import stat as stat_mod
import tempfile
from pathlib import Path
from typing import BinaryIO

from leap_orchestration.stores.base import FileChangedError, LandingStore, StoredObject, check_key

SFTP_INBOX = "interval-data"


class LocalLandingStore(LandingStore):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root != path and self.root not in path.parents:
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def list_tenant_inboxes(self) -> list[tuple[str, str]]:
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
                found.append(_stored(prefix + entry.name, st))
        return sorted(found, key=lambda o: (o.mtime_ns, o.key))

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = os.stat(self.path(key), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return _stored(key, st) if stat_mod.S_ISREG(st.st_mode) else None

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

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


def _stored(key: str, st: os.stat_result) -> StoredObject:
    return StoredObject(key=key, size=st.st_size, mtime_ns=st.st_mtime_ns, version=f"{st.st_size}-{st.st_mtime_ns}")

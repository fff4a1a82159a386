"""What a partner sees over SFTP: a virtual tree over the landing store, and what they may do in it.

    /                       the partner's root: `interval-data/` and `performance/`
    /interval-data/         uploads waiting to be processed, and the folders below (always shown)
    /interval-data/accepted/ failed/ status/   results, read-only
    /performance/           statements and the missing-intervals report (statements/render.py), read-only

Client paths are never trusted: they are decoded, made absolute against `/` and normalised, so `..` can't
climb above the partner's root; hidden names (starting with '.') don't exist in the store's tree (a client
may only use one as a temporary upload name, which the session keeps outside the store); and every store
key is `<partner>/` + the normalised path, checked again by the store. There are no links to follow.
Folders carry real times: the store folder's mtime where it has one, else its newest file's, else the
server's start.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from leap_orchestration.intake.layout import RESULT_FOLDERS
from leap_orchestration.intake.limits import MAX_NAME_BYTES
from leap_orchestration.stores.base import SAFE_SEGMENT, LandingStore, StoredObject, is_temp_name
from leap_orchestration.stores.local import PERFORMANCE_FOLDER, SFTP_INBOX, LocalLandingStore

# A temporary upload name: a usual temp suffix on a safe name, or a dot-name (lftp's `.in.x.csv`).
_HIDDEN_TEMP = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9._ ()+,=@-]{0,253}$")


class Refused(Exception):
    """An operation this server never allows (permission denied)."""


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0


def parse_path(raw: bytes | str) -> tuple[str, ...]:
    """Normalise a client path to its parts below the partner's root ('/' -> ())."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NotFound("path is not UTF-8") from None
    if "\x00" in raw or "\\" in raw:
        raise NotFound("invalid path")
    normal = posixpath.normpath("/" + raw)
    parts = tuple(p for p in normal.split("/") if p)
    if any(p.startswith(".") for p in parts[:-1]) or (parts and parts[-1] in (".", "..")):
        raise NotFound("no such file")  # no hidden folders (and nothing like '..' that survived)
    return parts


def is_staged_name(name: str) -> bool:
    """A temporary name a client uploads to before renaming (`x.csv.filepart`, `.in.x.csv`, ...)."""
    if name.startswith("."):
        return bool(_HIDDEN_TEMP.match(name))
    return bool(SAFE_SEGMENT.match(name)) and is_temp_name(name)


def display(parts: tuple[str, ...]) -> str:
    return "/" + "/".join(parts)


class PartnerView:
    def __init__(self, store: LandingStore, partner: str, started_at: float = 0.0):
        self.store, self.partner, self.started_at = store, partner, started_at

    def key(self, parts: tuple[str, ...]) -> str:
        return "/".join((self.partner, *parts))

    def _fixed_dir(self, parts: tuple[str, ...]) -> bool:
        return parts in ((), (SFTP_INBOX,), (PERFORMANCE_FOLDER,)) or (
            len(parts) == 2 and parts[0] == SFTP_INBOX and parts[1] in RESULT_FOLDERS
        )

    def stat(self, parts: tuple[str, ...]) -> Entry:
        name = parts[-1] if parts else "/"
        if self._fixed_dir(parts):
            return self._folder(name, parts)
        if not parts or parts[0] not in (SFTP_INBOX, PERFORMANCE_FOLDER) or parts[-1].startswith("."):
            raise NotFound(display(parts))
        obj = self.store.stat(self.key(parts))
        if obj is not None:
            return _file(name, obj)
        folders, files = self.store.list_dir(self.key(parts) + "/")
        if folders or files:
            return Entry(name, True, mtime=self._folder_mtime(parts, files))
        raise NotFound(display(parts))

    def list(self, parts: tuple[str, ...]) -> list[Entry]:
        if parts == ():
            return [self._folder(name, (name,)) for name in (SFTP_INBOX, PERFORMANCE_FOLDER)]
        if not self.stat(parts).is_dir:
            raise NotFound(f"{display(parts)} is not a folder")
        folders, files = self.store.list_dir(self.key(parts) + "/")
        if parts == (SFTP_INBOX,):
            folders = [f for f in folders if f in RESULT_FOLDERS]
            folders += [f for f in RESULT_FOLDERS if f not in folders]
        entries = [self._folder(f, (*parts, f)) for f in folders if not f.startswith(".")]
        entries += [_file(o.name, o) for o in files if not o.name.startswith(".")]
        return sorted(entries, key=lambda e: e.name)

    def _folder(self, name: str, parts: tuple[str, ...]) -> Entry:
        return Entry(name, True, mtime=self._folder_mtime(parts))

    def _folder_mtime(self, parts: tuple[str, ...], files: list[StoredObject] | None = None) -> float:
        key = self.key(parts)
        try:
            if isinstance(self.store, LocalLandingStore):
                try:
                    return os.stat(self.store.path(key), follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    pass  # a result folder not created yet
            if files is None:
                files = self.store.list_dir(key + "/")[1]
        except (OSError, ValueError):  # ValueError: a link in the store, which is never followed
            return self.started_at
        newest = max((o.mtime_ns for o in files), default=0)
        return newest / 1e9 if newest else self.started_at

    def upload_target(self, parts: tuple[str, ...]) -> str | None:
        """The store key an upload to `parts` publishes to, or None for a temporary (staged) name; Refused where
        uploads are not allowed."""
        if len(parts) != 2 or parts[0] != SFTP_INBOX or parts[1] in RESULT_FOLDERS:
            raise Refused(f"uploads go directly into /{SFTP_INBOX}/, not {display(parts)}")
        name = parts[1]
        if is_staged_name(name):
            return None
        if not SAFE_SEGMENT.match(name) or is_temp_name(name):
            raise Refused(
                f"'{name}' is not an accepted upload name: use letters, digits and . _ - ( ), ending in .csv "
                "or .csv.gz"
            )
        if len(name.encode()) > MAX_NAME_BYTES:
            raise Refused(
                f"'{name}' is {len(name.encode())} bytes long: upload names may be at most {MAX_NAME_BYTES} bytes"
            )
        if self.store.exists(self.key(parts)):
            raise Refused(
                f"{display(parts)} is waiting to be processed and can't be overwritten; upload under a new name"
            )
        return self.key(parts)

    def file(self, parts: tuple[str, ...]) -> tuple[str, Entry]:
        """The store key and entry of a file the partner may read; NotFound for folders and missing files."""
        entry = self.stat(parts)
        if entry.is_dir:
            raise NotFound(f"{display(parts)} is a folder")
        return self.key(parts), entry


def _file(name: str, obj: StoredObject) -> Entry:
    return Entry(name, False, obj.size, obj.mtime_ns / 1e9)

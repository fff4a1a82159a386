"""What one SFTP channel of a partner may do: read its tree, upload into interval-data/, nothing else.

Uploads follow `uploads.py` (published only when fully received and closed; temporary names staged until
renamed). Harmless attribute changes (times, permissions, owner) are accepted and ignored, since clients set
them after an upload; a size change aborts an upload in progress and is refused elsewhere. Everything else
a partner may not do is refused with a permission error and audited.
"""

from __future__ import annotations

import asyncio
import stat
from typing import TYPE_CHECKING

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from leap_orchestration.sftp.uploads import ENDED, Upload, UploadError
from leap_orchestration.sftp.view import Entry, NotFound, PartnerView, Refused, display, parse_path
from leap_orchestration.stores.local import SFTP_INBOX

if TYPE_CHECKING:
    from leap_orchestration.sftp.server import Connection

_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
_RENAME_HELP = (
    f"only a temporary upload (name.csv.filepart, name.csv.part, name.csv.tmp, .name.csv, ...) in "
    f"/{SFTP_INBOX}/ may be renamed, to its final name there; uploaded files can't be renamed"
)


MAX_OPEN_DOWNLOADS = 16  # per channel: each holds a descriptor (clients read results one or two at a time)


class _Download:
    def __init__(self, fh, size: int):
        self.fh, self.size = fh, size


class PartnerSftp(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, connection: Connection):
        super().__init__(chan)
        self.conn_state = connection
        self.service = connection.service
        self.uploads = connection.service.uploads
        self.partner = connection.partner
        self.view = PartnerView(self.service.store, self.partner, started_at=self.service.started_at)
        self.channel_ending = False  # set by SftpHandler when the channel ends (see channel.py)
        self.open_downloads = 0

    # ------------------------------------------------------------ helpers

    def _parts(self, path: bytes) -> tuple[str, ...]:
        self.conn_state.touch()
        try:
            return parse_path(path)
        except NotFound as exc:
            raise asyncssh.SFTPNoSuchFile(str(exc)) from None

    async def _call(self, fn, *args, operation: str = "upload"):
        """Run a (blocking) store call off the event loop, mapping our errors to SFTP ones."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (NotFound, ValueError) as exc:  # ValueError: the store refused the key (a link, an escape)
            raise asyncssh.SFTPNoSuchFile(f"no such file or folder: {exc}") from None
        except Refused as exc:
            self._refused(operation, str(exc))
            raise asyncssh.SFTPPermissionDenied(str(exc)) from None

    async def _upload_call(self, coro):
        """Await an upload step, answering its failure as the SFTP error the client should see."""
        with self.conn_state.busy():
            try:
                return await coro
            except UploadError as exc:
                if exc.permission:
                    raise asyncssh.SFTPPermissionDenied(str(exc)) from None
                raise asyncssh.SFTPFailure(str(exc)) from None

    def _live(self, parts: tuple[str, ...]) -> Upload | None:
        """The partner's upload in progress (any session) at `parts`, if there is one."""
        if len(parts) == 2 and parts[0] == SFTP_INBOX:
            return self.uploads.get(self.partner, parts[1])
        return None

    def _refused(self, operation: str, detail: str) -> None:
        self.service.audit("refused", partner=self.partner, operation=operation, detail=detail)

    def _deny(self, operation: str, path: bytes | str, why: str | None = None):
        shown = path.decode("utf-8", "replace") if isinstance(path, bytes) else path
        self.conn_state.touch()
        self._refused(operation, shown)
        raise asyncssh.SFTPPermissionDenied(
            why
            or f"{operation} is not allowed on this server: files are processed "
            "as soon as they arrive (contact your Partner Success Manager to remove one)"
        )

    # ------------------------------------------------------------ reading the tree

    async def realpath(self, path: bytes) -> bytes:
        return display(self._parts(path)).encode()

    async def stat(self, path: bytes) -> SFTPAttrs:
        parts = self._parts(path)
        upload = self._live(parts)
        if upload is not None and upload.staged:  # clients stat their temporary file
            return _attrs(Entry(upload.name, False, upload.size, upload.mtime))
        return _attrs(await self._call(self.view.stat, parts))

    lstat = stat  # there are no links in this tree

    async def fstat(self, file_obj) -> SFTPAttrs:
        self.conn_state.touch()
        return SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR,
            size=file_obj.size,
            permissions=stat.S_IFREG | (0o644 if isinstance(file_obj, Upload) else 0o444),
        )

    async def scandir(self, path: bytes):
        parts = self._parts(path)
        entries = await self._call(self.view.list, parts)
        here = await self._call(self.view.stat, parts)
        up = await self._call(self.view.stat, parts[:-1]) if parts else here
        if parts == (SFTP_INBOX,):
            shown = {e.name for e in entries}
            entries += [
                Entry(u.name, False, u.size, u.mtime)
                for u in self.uploads.staged(self.partner)
                if u.name not in shown
            ]
        for entry in [Entry(".", True, mtime=here.mtime), Entry("..", True, mtime=up.mtime), *entries]:
            yield SFTPName(entry.name.encode(), attrs=_attrs(entry))

    # ------------------------------------------------------------ files

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs):
        parts = self._parts(path)
        if pflags & _WRITE_FLAGS:
            if pflags & (asyncssh.FXF_READ | asyncssh.FXF_APPEND):
                self._deny("read-write or append open", path)
            key = await self._call(self.view.upload_target, parts)
            try:
                return await self._upload_call(
                    self.uploads.start(self.partner, parts[-1], key, self.conn_state)
                )
            except asyncssh.SFTPError as exc:
                self._refused("upload", f"{display(parts)}: {exc.reason}")
                raise
        if self.open_downloads >= MAX_OPEN_DOWNLOADS:
            raise asyncssh.SFTPFailure(f"too many files open ({MAX_OPEN_DOWNLOADS}): close some first")
        key, entry = await self._call(self.view.file, parts)
        download = _Download(await self._call(self.service.store.open_read, key), entry.size)
        self.open_downloads += 1
        return download

    async def read(self, file_obj, offset: int, size: int) -> bytes:
        self.conn_state.touch()
        if not isinstance(file_obj, _Download):
            raise asyncssh.SFTPPermissionDenied("this file was opened for writing")

        def read_at() -> bytes:
            file_obj.fh.seek(offset)
            return file_obj.fh.read(size)

        return await asyncio.to_thread(read_at)

    async def write(self, file_obj, offset: int, data: bytes) -> int:
        self.conn_state.touch()
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("this file was opened for reading")
        return await self._upload_call(self.uploads.write(file_obj, offset, data))

    def malformed_write(self, file_obj) -> None:
        if isinstance(file_obj, Upload):
            self.uploads.abort(file_obj, "malformed write request")

    async def close(self, file_obj) -> None:
        if isinstance(file_obj, _Download):
            file_obj.fh.close()
            self.open_downloads -= 1
            return
        if self.channel_ending:  # asyncssh closing a handle the client left open: never a publish
            self.uploads.abort(file_obj, "the channel closed with the file still open")
            return
        self.conn_state.touch()
        await self._upload_call(self.uploads.finish(file_obj))

    # ------------------------------------------------------------ attributes

    def _setstat_upload(self, upload: Upload, attrs: SFTPAttrs) -> None:
        if attrs.size is not None and attrs.size != upload.size:
            if self.uploads.abort(upload, "size changed by setstat"):
                raise asyncssh.SFTPFailure(f"the upload of {upload.name} was stopped: its size was changed")
            self._deny("setstat (size)", upload.name, "files can't be truncated or resized on this server")
        if upload.state == ENDED:
            raise asyncssh.SFTPFailure(f"the upload of {upload.name} was stopped ({upload.reason})")

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        parts = self._parts(path)
        upload = self._live(parts)
        if upload is not None:
            return self._setstat_upload(upload, attrs)
        entry = await self._call(self.view.stat, parts)
        if attrs.size is not None and (entry.is_dir or attrs.size != entry.size):
            self._deny(
                "setstat (size)", path, f"{display(parts)} can't be truncated or resized on this server"
            )
        # times, permissions, owner: accepted and ignored (nothing here depends on them)

    lsetstat = setstat

    async def fsetstat(self, file_obj, attrs: SFTPAttrs) -> None:
        self.conn_state.touch()
        if isinstance(file_obj, Upload):
            return self._setstat_upload(file_obj, attrs)
        if attrs.size is not None and attrs.size != file_obj.size:
            self._deny("setstat (size)", "(open file)", "files can't be truncated or resized on this server")

    # ------------------------------------------------------------ remove and rename

    async def remove(self, path: bytes) -> None:
        parts = self._parts(path)
        upload = self._live(parts)
        if upload is not None and self.uploads.abort(upload, "removed by the client"):
            return  # an upload in progress may be cancelled: nothing of it was published
        if upload is None:
            await self._call(
                self.view.stat, parts
            )  # nothing there: "no such file" (lftp removes before a rename)
        self._deny("remove", path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._parts(oldpath), self._parts(newpath)
        upload = self._live(old)
        if upload is None or not upload.staged:
            self._deny("rename", oldpath, f"rename is not allowed here: {_RENAME_HELP}")
        key = await self._call(self.view.upload_target, new, operation="rename")
        if key is None:
            self._deny("rename", newpath, f"rename {display(old)} to its final name, not to a temporary one")
        try:
            await self._upload_call(self.uploads.publish_staged(upload, key, new[-1]))
        except asyncssh.SFTPPermissionDenied as exc:
            self._refused("rename", f"{display(old)} -> {display(new)}: {exc.reason}")
            raise

    posix_rename = rename

    # ------------------------------------------------------------ refused

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        parts = self._parts(path)
        try:
            existing = await asyncio.to_thread(self.view.stat, parts)
        except NotFound:
            existing = None
        if existing is not None:  # "make sure the folder exists" clients expect an ordinary failure
            raise asyncssh.SFTPFailure(f"{display(parts)} already exists")
        self._deny("mkdir", path)

    def rmdir(self, path: bytes) -> None:
        self._deny("rmdir", path)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("symlink", newpath)

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        self._deny("link", newpath)

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile("there are no links on this server")


def _attrs(entry: Entry) -> SFTPAttrs:
    mtime = int(entry.mtime)
    if entry.is_dir:
        return SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_DIRECTORY,
            permissions=stat.S_IFDIR | 0o755,
            uid=0,
            gid=0,
            size=0,
            atime=mtime,
            mtime=mtime,
        )
    return SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_REGULAR,
        permissions=stat.S_IFREG | 0o444,
        uid=0,
        gid=0,
        size=entry.size,
        atime=mtime,
        mtime=mtime,
    )

"""The asyncssh plumbing of one SFTP channel: the session object and a stricter/laxer SFTP request handler.

Two things asyncssh's own handler can't tell the server, so the channel runs a subclass of it:

- **Whose close is it?** A client's CLOSE request and the cleanup of handles still open when the channel ends
  both reach `SFTPServer.close`. The handler's `_cleanup` runs only when the channel ends, before it closes
  the leftover handles, so it flags the server first: every close after that flag is cleanup, never a
  client's CLOSE, with no reliance on timing or on the channel's state.
- **Trailing bytes after a WRITE.** pkg/sftp before 1.13.6 (rclone before 1.62, e.g. Debian 12's 1.60)
  sends, with concurrent writes, write requests whose packet still carries the rest of its buffer after the
  data. OpenSSH's sftp-server ignores whatever follows a request's fields; asyncssh answers BAD_MESSAGE and the
  client's upload broke. Here the data length decides and the rest is ignored, as OpenSSH does. A write that
  can't be decoded at all aborts its upload.

These use asyncssh internals (`SFTPServerHandler`, its `_packet_handlers` and `_cleanup`); uv.lock pins the
version they were read from (2.24.1), and tests/test_sftp.py covers both behaviours.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncssh
from asyncssh.packet import PacketDecodeError, SSHPacket
from asyncssh.sftp import FXP_WRITE, MIN_SFTP_VERSION, SFTPServerHandler


class SftpHandler(SFTPServerHandler):
    async def _cleanup(self, exc: Exception | None) -> None:
        if self._server is not None:
            self._server.channel_ending = True  # closes from here on are cleanup, not a client's CLOSE
        await super()._cleanup(exc)

    async def _process_lenient_write(self, packet: SSHPacket) -> int:
        handle = packet.get_string()
        file_obj = self._file_handles.get(handle)
        try:
            offset = packet.get_uint64()
            data = packet.get_string()
        except PacketDecodeError:
            if file_obj is not None:
                self._server.malformed_write(file_obj)
            raise
        # no packet.check_end(): bytes after the data are ignored (see the module docstring)
        if file_obj is None:
            raise asyncssh.SFTPInvalidHandle("Invalid file handle")
        return await self._server.write(file_obj, offset, data)

    _packet_handlers = {**SFTPServerHandler._packet_handlers, FXP_WRITE: _process_lenient_write}


class SftpChannel(asyncssh.stream.SSHServerStreamSession):
    """A session channel that runs only the SFTP subsystem (no shell, exec or scp), with `SftpHandler`."""

    def __init__(
        self,
        make_server: Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer],
        on_closed: Callable[[], None],
    ):
        super().__init__(None, sftp_factory=make_server)
        self._on_closed = on_closed

    def session_started(self) -> None:
        # reached only for the 'sftp' subsystem: every other request is refused by the base class
        server = self._init_sftp_server()
        reader = asyncssh.SSHReader(self, self._chan)
        writer = asyncssh.SSHWriter(self, self._chan)
        handler = SftpHandler(server, reader, writer, MIN_SFTP_VERSION)
        self._conn.create_task(handler.run(), reader.logger)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_closed()

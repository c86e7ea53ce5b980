"""Messages over an authenticated manager connection, read with one system call each.

The framing is :class:`procframe.connection.Connection`'s (a 4-byte length,
or ``0xFFFFFFFF`` and an 8-byte one), but reads are buffered: a small
message and its header arrive in one ``read``.  Only manager connections use
it, where nothing else reads the socket.
"""

from __future__ import annotations

import os

from procframe.posix.connection import _ESCAPE, _LONG, _SHORT, Connection, read_growing

_CHUNK = 1 << 16


class Stream:
    """Framed messages on the descriptor of ``connection``, which stays its owner."""

    __slots__ = ("_fd", "_pending", "connection")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._fd = connection.fileno()
        self._pending = b""

    def send(self, data: bytes) -> None:
        """Write ``data`` as one message (the Connection's own framing and writes)."""
        self.connection._write_message(data)

    def recv(self) -> bytes | bytearray:
        """The next message; ``EOFError`` once the peer has closed."""
        pending = self._pending
        while len(pending) < 4:
            pending = self._more(pending, "header")
        (size,) = _SHORT.unpack_from(pending)
        start = 4
        if size == _ESCAPE:
            while len(pending) < 12:
                pending = self._more(pending, "header")
            (size,) = _LONG.unpack_from(pending, 4)
            start = 12
        end = start + size
        if end - len(pending) > _CHUNK:
            self._pending = b""
            return read_growing(self._fd, size, pending[start:])
        while len(pending) < end:
            pending = self._more(pending, "body")
        self._pending = pending[end:]
        return pending[start:end]

    def _more(self, pending: bytes, what: str) -> bytes:
        chunk = os.read(self._fd, _CHUNK)
        if not chunk:
            if not pending:
                raise EOFError("connection closed by the peer")
            raise EOFError(f"connection closed in the middle of a message {what}")
        return pending + chunk

    def close(self) -> None:
        self.connection.close()

"""Messages over an authenticated manager connection, read with one system call each.

The framing is :class:`procframe.connection.Connection`'s (a 4-byte length,
or ``0xFFFFFFFF`` and an 8-byte one), cut by a :class:`~._framing.Framer`: reads
are buffered (a small message and its header arrive in one ``read``), an absurd
length prefix is refused, and a big message's buffer grows as its bytes arrive.
Only manager connections use it, where nothing else reads the socket.
"""

from __future__ import annotations

from procframe.managers._framing import Framer
from procframe.posix.connection import Connection


class Stream:
    """Framed messages on the descriptor of ``connection``, which stays its owner."""

    __slots__ = ("_fd", "connection", "framer")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._fd = connection.fileno()
        self.framer = Framer()

    def send(self, data: bytes) -> None:
        """Write ``data`` as one message (the Connection's own framing and writes)."""
        self.connection._write_message(data)

    def recv(self) -> bytes | bytearray:
        """The next message; ``EOFError`` once the peer has closed."""
        framer = self.framer
        messages = framer.messages
        while not messages:
            if not framer.read_from(self._fd):
                raise framer.eof_error()
        return messages.popleft()

    def close(self) -> None:
        self.connection.close()

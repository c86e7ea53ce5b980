"""Cutting a manager connection's byte stream into messages, as the bytes arrive.

The framing is :class:`procframe.connection.Connection`'s (a 4-byte length,
or ``0xFFFFFFFF`` and an 8-byte one).  A :class:`Framer` never blocks and never
trusts a length prefix with memory: a prefix above
:data:`~procframe.posix.connection.MAX_MESSAGE_SIZE` is refused as corrupt, and
a big message's buffer grows with the bytes that came (at most twice them, plus
:data:`GROWTH_FLOOR`), so a peer that announces a huge message and sends little
costs little.  The server's loop feeds it from many connections; a client's
:class:`~procframe.managers._stream.Stream` from one, blocking.
"""

from __future__ import annotations

import os
from collections import deque

from procframe.posix.connection import _ESCAPE, _LONG, _SHORT, MAX_MESSAGE_SIZE

CHUNK = 1 << 16
"""Bytes read at a time while no big message is in progress."""
GROWTH_FLOOR = 1 << 20
"""A big message's buffer grows by at least this much (and at most by what it holds)."""


class CorruptStream(OSError):
    """A length prefix no sender writes: the connection is out of step for good."""


class Framer:
    """Messages cut from the bytes read from one descriptor."""

    __slots__ = ("_big", "_big_size", "_fill", "_pending", "messages")

    def __init__(self) -> None:
        self._pending = bytearray()
        """Bytes read and not yet part of a message: headers and small bodies."""
        self._big: bytearray | None = None
        """The body of a message longer than :data:`CHUNK`, while it arrives."""
        self._big_size = 0
        self._fill = 0
        """How many bytes of ``_big`` arrived."""
        self.messages: deque[bytes | bytearray] = deque()
        """Whole messages, oldest first."""

    @property
    def mid_message(self) -> bool:
        """True if part of a message has arrived (an end of stream now cuts it)."""
        return bool(self._pending) or self._big is not None

    def buffered(self) -> int:
        """Bytes this framer holds for messages not yet whole (what a peer costs now)."""
        return len(self._pending) + (0 if self._big is None else len(self._big))

    def read_from(self, fd: int) -> int:
        """Read once from ``fd`` (blocking only if ``fd`` blocks and has nothing); the byte
        count, 0 at the end of the stream.  ``CorruptStream`` on an absurd length prefix."""
        big = self._big
        if big is None:
            chunk = os.read(fd, CHUNK)
            if (
                not self._pending
                and len(chunk) >= 4
                and _SHORT.unpack_from(chunk)[0] + 4 == len(chunk)
            ):
                self.messages.append(chunk[4:])  # the common case: exactly one small message
            elif chunk:
                self._pending += chunk
                self._cut()
            return len(chunk)
        if self._fill == len(big):
            big.extend(bytes(min(self._big_size - self._fill, max(self._fill, GROWTH_FLOOR))))
        with memoryview(big) as view:
            count = os.readv(fd, [view[self._fill :]])
        self._fill += count
        if self._fill == self._big_size:
            self._big = None
            self.messages.append(big)
        return count

    def _cut(self) -> None:
        pending = self._pending
        while len(pending) >= 4:
            (size,) = _SHORT.unpack_from(pending)
            start = 4
            if size == _ESCAPE:
                if len(pending) < 12:
                    return
                (size,) = _LONG.unpack_from(pending, 4)
                start = 12
            if size > MAX_MESSAGE_SIZE:
                raise CorruptStream(
                    f"refusing a message of {size} bytes: the length prefix is corrupt "
                    f"(more than {MAX_MESSAGE_SIZE} bytes)"
                )
            end = start + size
            if len(pending) >= end:
                self.messages.append(bytes(pending[start:end]))
                del pending[:end]
                continue
            if size - (len(pending) - start) > CHUNK:
                self._big = pending[start:]
                self._big_size = size
                self._fill = len(self._big)
                del pending[:]
            return

    def eof_error(self) -> EOFError:
        """The error for an end of stream now."""
        if self.mid_message:
            return EOFError("connection closed in the middle of a message")
        return EOFError("connection closed by the peer")

"""What a pool and its workers say to each other: frames on one socket per worker.

A frame is a header (payload length, task id, a one-byte code, and from a
worker how long the task ran) and a payload.
Parent to worker, the code is the task's kind and the payload its call: the
function's pickle (its length first), then the pickle of the rest;
worker to parent, the code says how the task ended and the payload holds the
result or the error.  Both sides read with :class:`FrameReader`, which takes
every whole frame out of what one ``recv`` brought.

A big call or outcome (more than :data:`INLINE_MAX` bytes, or holding a big
buffer) is a slab (:mod:`procframe._core.messages`): its frame has
:data:`SLAB` added to its code, and the slab's descriptor rides on the frame's
first byte (``SCM_RIGHTS``).  The kernel never delivers the descriptors of
two writes in one read, so the reader takes them in the order of the frames.

This module is imported by every pool worker: it imports nothing heavy.
"""

from __future__ import annotations

import array
import os
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct("<QQBI")
"""Payload length, task id, code, microseconds the task ran (0 from the parent)."""
TICKET = struct.Struct("<q")
"""A task's ticket: its id, which a worker reads from its ticket pipe before it starts the task."""
READY = -1
"""In a worker's slot of shared memory, where it records the id of the task it starts: the
worker is ready (its initializer done); the pool sets the slot to 0 before it starts a worker."""
FUNC_LENGTH = struct.Struct("<I")
"""Before a task's function pickle: its length."""

# Task kinds (parent to worker).
APPLY = 0
"""The rest of the payload: pickle of (args, kwds)."""
MAP = 1
"""The rest of the payload: pickle of (items,); the result is ``[func(x) for x in items]``."""
STARMAP = 2
"""The rest of the payload: pickle of (items,); the result is ``[func(*x) for x in items]``."""
SAME_FUNC = 0x80
"""Added to the kind when the function is pickled by name: workers may keep it, unpickled."""
SLAB = 0x40
"""Added to a kind or an outcome code when the rest of the payload is in the slab whose
descriptor came with the frame: the payload is then (the bytes in the frame, the descriptor)."""
INLINE_MAX = 1 << 16
"""The biggest pickle of a call's arguments or of an outcome sent in its frame."""

# How a task ended (worker to parent).
DONE = 0
"""Payload: the result's pickle."""
TASK_RAISED = 1
"""Payload: pickle of (the exception's repr, formatted traceback, the exception's own pickle)."""
UNPICKLABLE = 2
"""Payload: pickle of (repr of the pickling error, repr of the result or exception it could
not pickle, a formatted traceback, the pickling error's own pickle or None)."""
ABORTED = 3
"""Payload: as TASK_RAISED, for a BaseException that is not an Exception (its pickle or None)."""
BAD_TASK = 4
"""Payload: as TASK_RAISED: the error unpickling the task raised in the worker (or None)."""
INIT_FAILED = 5
"""Payload: as TASK_RAISED, for the initializer (task id 0); the worker then exits."""

RECV_SIZE = 1 << 16
"""How much one read asks for (below malloc's mmap threshold: a cheap buffer per read)."""
_FD_SIZE = array.array("i").itemsize
_ANCILLARY = socket.CMSG_SPACE(4 * _FD_SIZE)


def frame(task_id: int, code: int, payload: bytes, micros: int = 0) -> bytes:
    """One frame, ready to send."""
    return HEADER.pack(len(payload), task_id, code, min(micros, 0xFFFFFFFF)) + payload


def close_slab(code: int, payload: Any) -> None:
    """Close the slab descriptor of a frame that is dropped unread."""
    if code & SLAB and payload[1] >= 0:
        os.close(payload[1])


class FrameReader:
    """Cuts a byte stream into frames.

    Small frames come many to a read; a payload bigger than one read is read
    straight into a buffer of its own size.
    """

    __slots__ = ("_big", "_buffer", "_fds", "_start")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0
        self._big: list[Any] | None = None  # [task id, code, micros, buffer, bytes filled]
        self._fds: list[int] = []  # slab descriptors received ahead of their frames

    def receive(self, sock: socket.socket) -> list[tuple[int, int, int, Any]] | None:
        """One read from ``sock``; the frames it completed (None: the stream has ended)."""
        big = self._big
        if big is not None:
            buffer, filled = big[3], big[4]
            with memoryview(buffer) as view:
                count = os.readv(sock.fileno(), [view[filled:]])
            if not count:
                return None
            big[4] = filled = filled + count
            if filled < len(buffer):
                return []
            self._big = None
            payload: Any = buffer  # a slab frame's: (its bytes, the descriptor)
            if big[1] & SLAB:
                payload = (buffer, self._fds.pop(0) if self._fds else -1)
            return [(big[0], big[1], big[2], payload)]
        data, ancillary, _, _ = sock.recvmsg(RECV_SIZE, _ANCILLARY)
        if ancillary:
            for level, kind, fds in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    self._fds += array.array("i", fds[: len(fds) - len(fds) % _FD_SIZE])
        if not data:
            return None
        return self.feed(data)

    def close(self) -> None:
        """Close the slab descriptors received for frames that never came whole."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def feed(self, data: bytes) -> list[tuple[int, int, int, Any]]:
        """Add ``data``; return (task id, code, microseconds, payload) of each frame now whole
        (a slab frame's payload is (its bytes, the slab's descriptor))."""
        buffer = self._buffer
        buffer += data
        frames = []
        start = self._start
        end = len(buffer)
        header_size = HEADER.size
        unpack = HEADER.unpack_from
        while end - start >= header_size:
            size, task_id, code, micros = unpack(buffer, start)
            stop = start + header_size + size
            if stop > end:
                if size > RECV_SIZE:  # read the rest of it into its own buffer
                    rest = bytearray(size)
                    have = end - start - header_size
                    rest[:have] = buffer[start + header_size : end]
                    self._big = [task_id, code, micros, rest, have]
                    start = end
                break
            payload: Any = bytes(buffer[start + header_size : stop])
            if code & SLAB:
                payload = (payload, self._fds.pop(0) if self._fds else -1)
            frames.append((task_id, code, micros, payload))
            start = stop
        if start == end:
            buffer.clear()
            start = 0
        elif start > RECV_SIZE:
            del buffer[:start]
            start = 0
        self._start = start
        return frames

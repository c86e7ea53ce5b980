"""The transport under every queue: one item, one atomic packet, any number of readers and writers.

Small items (a pickle of at most ``PIPE_BUF`` bytes) travel as one packet of a
pipe in packet mode (``O_DIRECT``): the kernel writes a packet whole or not at
all, and each ``read`` returns exactly one packet to exactly one reader.  So
readers and writers need no lock, and a process killed in the middle of a
``put`` or ``get`` cannot leave half an item behind or a lock held.

A bigger item is written to a memfd, whose descriptor is sent on a side
``SOCK_SEQPACKET`` socket in a record tagged with a random token; the pipe
then carries a small *marker* packet with the same token, in the item's place
in the queue order.  A reader that takes a marker takes the record with that
token from the side socket, handing back any other record it meets on the way.

Where packet-mode pipes do not exist, every item goes through the side socket.
"""

from __future__ import annotations

import array
import os
import select
import socket
import time
from typing import Any

from procframe import reduction
from procframe._fdwait import wait_readable, wait_writable

PACKET_MAX = select.PIPE_BUF
"""Items whose pickle fits travel as one pipe packet."""
_MARKER = b"\x00PROCFRAME-BIG\x00"
"""A marker packet: this prefix and a token (a pickle never starts with a zero byte)."""
_TOKEN_SIZE = 16
_FD_SIZE = array.array("i").itemsize
_ANCILLARY = socket.CMSG_SPACE(_FD_SIZE)
_PIPE_SIZE = 1 << 20
LOST_ITEM_TIMEOUT = 5.0
"""Seconds a reader looks for a big item's record before declaring its holder dead."""


class ItemLostError(OSError):
    """A big item's data vanished: a reader holding it was killed."""


def _packet_pipe() -> tuple[int, int] | None:
    direct = getattr(os, "O_DIRECT", 0)
    if not direct or not hasattr(os, "pipe2"):
        return None
    try:
        read_fd, write_fd = os.pipe2(direct | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    import fcntl

    try:
        fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
    except OSError:
        pass  # the system's limit is lower: the default size works too
    return read_fd, write_fd


class Channel:
    """A packet pipe for small items and a side socket for big ones (see the module doc)."""

    def __init__(self, fds: tuple[int, int, int, int] | None = None) -> None:
        if fds is None:
            pipe = _packet_pipe()
            side_reader, side_writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.side_reader, self.side_writer = side_reader, side_writer
            self.read_fd, self.write_fd = pipe if pipe is not None else (-1, -1)
        else:
            self.read_fd, self.write_fd = fds[0], fds[1]
            self.side_reader = socket.socket(fileno=fds[2])
            self.side_writer = socket.socket(fileno=fds[3])
        self.packets = self.read_fd >= 0

    # -- writing -------------------------------------------------------------

    def packet(self, data: bytes) -> bytes:
        """What goes in the queue order for ``data``: itself, or a marker for a big item.

        A big item's record is sent on the side socket here (blocking while the
        side socket is full).
        """
        if self.packets and len(data) <= PACKET_MAX:
            return data
        token = os.urandom(_TOKEN_SIZE)
        fd = _memfd_with(data)
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self.side_writer.sendmsg([token], rights)
        finally:
            os.close(fd)  # the record holds its own reference while in flight
        return _MARKER + token

    def send_now(self, packet: bytes) -> bool:
        """Write ``packet`` if there is room right now; False if the queue is full."""
        if not self.packets:
            return self._send_side_marker(packet, socket.MSG_DONTWAIT)
        try:
            os.write(self.write_fd, packet)
        except BlockingIOError:
            return False
        return True

    def send(self, packet: bytes) -> None:
        """Write ``packet``, waiting for room."""
        while not self.send_now(packet):
            wait_writable(self.write_fd if self.packets else self.side_writer.fileno(), None)

    def _send_side_marker(self, packet: bytes, flags: int) -> bool:
        try:
            self.side_writer.send(b"M" + packet, flags)
        except BlockingIOError:
            return False
        return True

    def wait_writable(self, timeout: float) -> None:
        """Wait up to ``timeout`` for room in the queue."""
        wait_writable(self.write_fd if self.packets else self.side_writer.fileno(), timeout)

    # -- reading -------------------------------------------------------------

    def receive(self, timeout: float | None) -> bytes | None:
        """The next item's pickle, or None if none comes within ``timeout`` (None: forever)."""
        if not self.packets:
            return self._receive_side_only(timeout)
        read_fd = self.read_fd
        deadline = None
        while True:
            try:
                packet = os.read(read_fd, PACKET_MAX)
            except BlockingIOError:
                if deadline is None and timeout is not None:
                    deadline = time.monotonic() + timeout
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                wait_readable([read_fd], remaining)
                continue
            if not packet:
                raise EOFError("the queue is closed")
            if packet[0]:
                return packet
            return self._fetch_big(packet[len(_MARKER) :])

    def readable(self, timeout: float | None) -> bool:
        """True if an item is waiting (or arrives within ``timeout``)."""
        fd = self.read_fd if self.packets else self.side_reader.fileno()
        return bool(wait_readable([fd], timeout))

    def _fetch_big(self, token: bytes) -> bytes:
        """Take the side record tagged ``token``, handing back the others."""
        deadline = time.monotonic() + LOST_ITEM_TIMEOUT
        while True:
            record = self._take_side_record(deadline)
            if record is None:
                raise ItemLostError(
                    "a big item put on the queue is gone: a process holding it was killed"
                )
            data, fds = record
            if data == token and len(fds) == 1:
                try:
                    return _read_memfd(fds[0])
                finally:
                    os.close(fds[0])
            self._hand_back(data, fds)

    def _take_side_record(self, deadline: float | None) -> tuple[bytes, list[int]] | None:
        """The next side record and its descriptors, or None past ``deadline``."""
        while True:
            try:
                data, ancillary, _, _ = self.side_reader.recvmsg(
                    PACKET_MAX + 1, _ANCILLARY, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                wait_readable([self.side_reader.fileno()], remaining)
                continue
            return data, _received_fds(ancillary)

    def _hand_back(self, data: bytes, fds: list[int]) -> None:
        """Put a side record someone else is looking for back on the side socket."""
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            self.side_writer.sendmsg([data], rights if fds else [])
        finally:
            for fd in fds:
                os.close(fd)

    def _receive_side_only(self, timeout: float | None) -> bytes | None:
        # Without packet pipes, markers ("M" records) and big items' records share
        # the side socket; a big item's record met here goes back for its reader.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self._take_side_record(deadline)
            if record is None:
                return None
            data, fds = record
            if data[:1] != b"M" or fds:
                self._hand_back(data, fds)
                continue
            packet = data[1:]
            return packet if packet[0] else self._fetch_big(packet[len(_MARKER) :])

    # -- life ------------------------------------------------------------------

    def close_reader(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        self.side_reader.close()

    def close_writer(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
        self.side_writer.close()

    @property
    def writer_closed(self) -> bool:
        return self.side_writer.fileno() < 0

    def __reduce__(self) -> tuple[Any, ...]:
        fds = (self.read_fd, self.write_fd, self.side_reader.fileno(), self.side_writer.fileno())
        if min(fds[2:]) < 0 or (self.packets and min(fds[:2]) < 0):
            raise ValueError("a closed queue cannot be passed to another process")
        tokens = [reduction.export_fd(fd, "a queue") if fd >= 0 else -1 for fd in fds]
        return _rebuild_channel, tuple(tokens)

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        for name in ("read_fd", "write_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                setattr(self, name, -1)
                _close(fd)
        for name in ("side_reader", "side_writer"):
            side = getattr(self, name, None)
            if side is not None:
                side.close()


def _rebuild_channel(*tokens: int) -> Channel:
    fds = [reduction.import_fd(token) if token >= 0 else -1 for token in tokens]
    return Channel((fds[0], fds[1], fds[2], fds[3]))


def _memfd_with(data: bytes) -> int:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("procframe-item", os.MFD_CLOEXEC)
    else:  # pragma: no cover - an unlinked temporary file where memfd does not exist
        import tempfile

        fd, path = tempfile.mkstemp(prefix="procframe-item-")
        os.unlink(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_memfd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            raise EOFError("a big queue item was cut short")
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _FD_SIZE
            fds.extend(array.array("i", data[:usable]))
    return fds

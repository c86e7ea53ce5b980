"""The transport under every queue: one item, one atomic packet, any number of readers and writers.

Small items (a pickle of at most ``PIPE_BUF`` bytes) travel as one packet of a
pipe in packet mode (``O_DIRECT``): the kernel writes a packet whole or not at
all, and each ``read`` returns exactly one packet to exactly one reader.  So
readers and writers need no lock, and a process killed in the middle of a
``put`` or ``get`` cannot leave half an item behind or a lock held.

A bigger item is written to a memfd whose descriptor is sent as one record of
a side ``SOCK_SEQPACKET`` socket; then a one-byte *look* packet goes into the
pipe, in the item's place in the queue order.  A reader that takes a look
packet takes whatever record the side socket holds (any record is a whole
item), and a reader that finds the pipe empty also takes a waiting record: a
record whose look packet was never written (its writer was killed) or whose
look packet was taken by a reader that died is still delivered.  Readers never
write, so a full side socket cannot block them.

Where packet-mode pipes do not exist, every item is a side-socket record.
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
_LOOK = b"\x00"
"""The packet standing for a big item (a pickle never starts with a zero byte)."""
_IN_MEMFD = b"\x00"
"""A side record whose item is in the attached memfd."""
_SIDE_INLINE_MAX = 1 << 15
"""Without packet pipes, items up to this size ride in the side record itself."""
_FD_SIZE = array.array("i").itemsize
_ANCILLARY = socket.CMSG_SPACE(_FD_SIZE)
_PIPE_SIZE = 1 << 20


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
            self.read_fd, self.write_fd = pipe if pipe is not None else (-1, -1)
            self.side_reader, self.side_writer = socket.socketpair(
                socket.AF_UNIX, socket.SOCK_SEQPACKET
            )
        else:
            self.read_fd, self.write_fd = fds[0], fds[1]
            self.side_reader = socket.socket(fileno=fds[2])
            self.side_writer = socket.socket(fileno=fds[3])
        self.packets = self.read_fd >= 0

    # -- writing -------------------------------------------------------------

    def send_now(self, item: bytes) -> bytes | None:
        """Send what fits right now of ``item`` (a pickle, or a look packet).

        Returns what is still to send, to be passed again later (keeping its
        place in the order): ``None`` once all of it is sent.
        """
        if self.packets and len(item) <= PACKET_MAX:
            try:
                os.write(self.write_fd, item)
            except BlockingIOError:
                return item
            return None
        try:
            self._send_record(item)
        except BlockingIOError:
            return item
        if not self.packets:
            return None
        try:
            os.write(self.write_fd, _LOOK)
        except BlockingIOError:
            return _LOOK
        return None

    def send(self, item: bytes) -> None:
        """Send ``item``, waiting for room."""
        rest = self.send_now(item)
        while rest is not None:
            self.wait_writable(None, rest)
            rest = self.send_now(rest)

    def wait_writable(self, timeout: float | None, item: bytes = _LOOK) -> None:
        """Wait up to ``timeout`` for room for ``item``."""
        small = self.packets and len(item) <= PACKET_MAX
        wait_writable(self.write_fd if small else self.side_writer.fileno(), timeout)

    def _send_record(self, item: bytes) -> None:
        if not self.packets and len(item) <= _SIDE_INLINE_MAX:
            self.side_writer.send(item, socket.MSG_DONTWAIT)
            return
        fd = _memfd_with(item)
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self.side_writer.sendmsg([_IN_MEMFD], rights, socket.MSG_DONTWAIT)
        finally:
            os.close(fd)  # the record holds its own reference while in flight

    # -- reading -------------------------------------------------------------

    def receive(self, timeout: float | None) -> bytes | None:
        """The next item's pickle, or None if none comes within ``timeout`` (None: forever)."""
        read_fd = self.read_fd
        deadline = None
        while True:
            if read_fd >= 0:
                try:
                    packet = os.read(read_fd, PACKET_MAX)
                except BlockingIOError:
                    pass
                else:
                    if not packet:
                        raise EOFError("the queue is closed")
                    if packet[0]:
                        return packet
                    # A look packet: its record, unless a reader that found the
                    # pipe empty took it already.
            item = self._take_record()
            if item is not None:
                return item
            if deadline is None and timeout is not None:
                deadline = time.monotonic() + timeout
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            fds = [self.side_reader.fileno()] + ([read_fd] if read_fd >= 0 else [])
            wait_readable(fds, remaining)

    def _take_record(self) -> bytes | None:
        """A waiting side record's item, or None if there is none."""
        try:
            data, ancillary, _, _ = self.side_reader.recvmsg(
                _SIDE_INLINE_MAX, _ANCILLARY, socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            return None
        fds = _received_fds(ancillary)
        try:
            if not fds:
                return data
            if data != _IN_MEMFD or len(fds) != 1:
                raise OSError("malformed record on a queue's side socket")
            return _read_memfd(fds[0])
        finally:
            for fd in fds:
                os.close(fd)

    def readable(self, timeout: float | None) -> bool:
        """True if an item is waiting (or arrives within ``timeout``)."""
        fds = [self.side_reader.fileno()] + ([self.read_fd] if self.read_fd >= 0 else [])
        return bool(wait_readable(fds, timeout))

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

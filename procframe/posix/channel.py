"""The transport under every queue: one item, one atomic packet, any number of readers and writers.

Small items (a pickle of at most ``PIPE_BUF`` bytes) travel as one packet of a
pipe in packet mode (``O_DIRECT``): the kernel writes a packet whole or not at
all, and each ``read`` returns exactly one packet to exactly one reader.  So
readers and writers need no lock, and a process killed in the middle of a
``put`` or ``get`` cannot leave half an item behind or a lock held.

A bigger item is a slab (:mod:`procframe._core.messages`: the pickle and its
big buffers, written once into shared memory that receivers map). The writer
puts a *look* packet carrying a random token into the pipe, in the item's
place in the queue order, then sends the slab's descriptor as one record of a
side ``SOCK_SEQPACKET`` socket, tagged with the token. A reader takes packets
into its slot of the channel's claims board (:mod:`procframe.posix.claims`),
so a look packet it takes is a claim every process can see; it then takes side
records until it meets its token, handing every other record straight back
(writers fill the side socket only half way, so a record handed back always
has room) and dropping those whose claimant is dead or gave up. Items thus
come out in the order of the pipe, whatever the writers' interleaving, and a
killed reader strands nothing: its record is dropped by whoever meets it next
(a writer that finds the side socket full looks for such records). A reader
looks through the records once per pass and pauses between passes (a little
longer each time), so it never spins; if its record does not come (the process
holding it was killed, or its writer was killed between the look packet and
the record), it gets :class:`ItemLostError` after ``LOST_ITEM_TIMEOUT``.

Where packet-mode pipes do not exist, every item is a side-socket record.
Unix ``SOCK_SEQPACKET`` sockets are needed either way: where the system has
none (macOS), making a channel raises an ``OSError`` that says so.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from procframe._core import messages, osutil, reduction
from procframe._core.fdwait import wait_readable, wait_writable
from procframe.posix.claims import ClaimsBoard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.posix.claims import ReaderSlot

PACKET_MAX = select.PIPE_BUF
"""Items whose pickle fits travel as one pipe packet."""
_LOOK = b"\x00"
"""The first byte of a look packet (a pickle never starts with a zero byte); a token follows."""
_TOKEN_SIZE = 16
_IN_SLAB = b"\x00"
"""A side record whose item is in the attached slab (side-socket-only mode)."""
_SIDE_INLINE_MAX = 1 << 15
"""Without packet pipes, items up to this size ride in the side record itself."""
_ANCILLARY = osutil.rights_space(1)
LOST_ITEM_TIMEOUT = 10.0
"""Seconds a reader searches for a big item's record before declaring it lost."""
_SIDE_FILL_LIMIT = 0.5
"""Writers put records in the side socket up to this share of its buffer (room for hand-backs)."""
_FIRST_PAUSE = 0.0001
_LONGEST_PAUSE = 0.02
"""Seconds a reader pauses between passes over the side records: doubling up to this."""
_SWEEP_INTERVAL = 0.1
"""Seconds between two looks for orphaned records by writers of one channel in one process."""
_FULL_POLL = 0.01
"""Seconds a writer waits before it looks again at a side socket filled to its limit."""


class ItemLostError(OSError):
    """A big item's record vanished: the process holding it was killed."""


class HeldRecord:
    """The record of a big item whose look packet is in the pipe, waiting for room."""

    __slots__ = ("fd", "token")

    def __init__(self, token: bytes, fd: int) -> None:
        self.token = token
        self.fd = fd

    def close(self) -> None:
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            _close(fd)


if TYPE_CHECKING:
    Outgoing = bytes | messages.Outbound | HeldRecord
    """What a writer sends: a pickle, a slab, or the record of a big item whose look packet
    is out."""
    Incoming = bytes | int
    """What a reader receives: a pickle, or the descriptor of a slab (the reader's to close)."""


class Channel:
    """A packet pipe for small items and a side socket for big ones (see the module doc)."""

    def __init__(self, fds: tuple[int, ...] | None = None) -> None:
        self.board: ClaimsBoard | None = None
        self._last_sweep = 0.0
        if fds is None:
            self.side_reader, self.side_writer = _side_socketpair()
            pipe = osutil.packet_pipe(nonblocking=True)
            self.read_fd, self.write_fd = pipe if pipe is not None else (-1, -1)
            if pipe is not None:
                try:
                    self.board = ClaimsBoard()
                except BaseException:
                    self.close_reader()
                    self.close_writer()
                    raise
        else:
            self.read_fd, self.write_fd = fds[0], fds[1]
            self.side_reader = osutil.socket_from_fd(fds[2], socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.side_writer = osutil.socket_from_fd(fds[3], socket.AF_UNIX, socket.SOCK_SEQPACKET)
            if len(fds) > 4 and fds[4] >= 0:
                self.board = ClaimsBoard(fds[4])
        self.packets = self.read_fd >= 0
        self.inline_max = PACKET_MAX if self.packets else _SIDE_INLINE_MAX
        """The longest pickle sent as it is; bigger items are slabs."""

    # -- writing -------------------------------------------------------------

    def send_now(self, item: Outgoing) -> Outgoing | None:
        """Send what fits right now of ``item``: a pickle of at most :attr:`inline_max`
        bytes, a slab, or a held record.

        Returns what is still to send, to be passed again later (keeping its
        place in the order): ``None`` once all of it is sent.
        """
        if type(item) is bytes and len(item) > self.inline_max:
            item = messages.pack_bytes(item)  # a pickle too big for a packet: a slab
        if type(item) is bytes:
            try:
                if self.packets:
                    os.write(self.write_fd, item)
                else:
                    self.side_writer.send(item, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return item
            return None
        if isinstance(item, HeldRecord):
            return self._send_held(item)
        if not self.packets:
            try:
                self._send_slab(item, _IN_SLAB)  # type: ignore[arg-type]
            except BlockingIOError:
                return item
            return None
        if self._side_too_full():
            self._sweep()
            if self._side_too_full():
                return item
        # The look packet first: once it is in the pipe the record follows at once, so a
        # record in the side socket has its look packet in the pipe or taken by a claimant.
        token = os.urandom(_TOKEN_SIZE)
        try:
            os.write(self.write_fd, _LOOK + token)
        except BlockingIOError:
            return item  # nothing is sent: the whole item keeps its place
        return self._send_held(HeldRecord(token, item.detach()))  # type: ignore[union-attr]

    def _send_held(self, held: HeldRecord) -> HeldRecord | None:
        try:
            self.side_writer.sendmsg([held.token], [osutil.rights(held.fd)], socket.MSG_DONTWAIT)
        except BlockingIOError:
            return held  # its reader waits for it: it goes before anything else
        held.close()  # the record holds its own reference while in flight
        return None

    def _side_too_full(self) -> bool:
        import fcntl
        import struct
        import termios

        unsent = getattr(termios, "TIOCOUTQ", None)  # Linux's SIOCOUTQ: bytes not yet read
        if unsent is None:
            return False
        try:
            queued = struct.unpack("i", fcntl.ioctl(self.side_writer, unsent, b"\0" * 4))
        except OSError:
            return False
        capacity = self.side_writer.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return bool(queued[0] > capacity * _SIDE_FILL_LIMIT)

    def _sweep(self) -> None:
        """Drop the orphaned records of the side socket (at most every ``_SWEEP_INTERVAL``)."""
        now = time.monotonic()
        if self.board is None or self.side_reader.fileno() < 0:
            return
        if now - self._last_sweep < _SWEEP_INTERVAL:
            return
        self._last_sweep = now
        self._pass(None)

    def send(self, item: bytes | messages.Outbound) -> None:
        """Send ``item`` (as :meth:`send_now`), waiting for room."""
        rest = self.send_now(item)
        while rest is not None:
            self.wait_writable(None, rest)
            rest = self.send_now(rest)

    def wait_writable(self, timeout: float | None, item: Outgoing = _LOOK) -> None:
        """Wait up to ``timeout`` for room for ``item``."""
        if isinstance(item, HeldRecord):
            wait_writable(self.side_writer.fileno(), timeout)
            return
        if self.packets and type(item) is not bytes and self._side_too_full():
            # No event says that readers took records: look again after a pause.
            self._sweep()
            pause = _FULL_POLL if timeout is None else max(0.0, min(timeout, _FULL_POLL))
            time.sleep(pause)
            return
        wait_writable(self.write_fd if self.packets else self.side_writer.fileno(), timeout)

    def _send_slab(self, item: messages.Outbound, tag: bytes) -> None:
        """Send the slab ``item`` as a side record tagged ``tag``."""
        self.side_writer.sendmsg([tag], [osutil.rights(item.fd)], socket.MSG_DONTWAIT)
        item.close()  # the record holds its own reference while in flight

    # -- reading -------------------------------------------------------------

    def receive(self, timeout: float | None) -> Incoming | None:
        """The next item (a pickle, or a slab's descriptor that the caller must close), or
        None if none comes within ``timeout`` (None: forever)."""
        if self.read_fd < 0:
            return self._receive_records(timeout)
        read_fd = self.read_fd
        # Packets are read into this thread's slot of the claims board: a look packet
        # taken is a claim the other processes see (see procframe.posix.claims).
        slot = None if self.board is None else self.board.reader_slot()
        deadline = None
        while True:
            try:
                packet = os.read(read_fd, PACKET_MAX) if slot is None else slot.read(read_fd)
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
            return self._fetch(packet[len(_LOOK) : len(_LOOK) + _TOKEN_SIZE], slot)

    def _fetch(self, token: bytes, slot: ReaderSlot | None) -> int:
        """The item of the side record tagged ``token``, claimed by this thread's ``slot``."""
        try:
            return self._search(token)
        except BaseException:
            if self.board is not None:  # whoever meets its record now drops it
                self.board.abandon(token)
            raise
        finally:
            if slot is not None:
                slot.release_claim()

    def _search(self, token: bytes) -> int:
        """Pass over the side records until the one tagged ``token`` comes, pausing between
        passes; ``ItemLostError`` once ``LOST_ITEM_TIMEOUT`` has passed."""
        deadline = time.monotonic() + LOST_ITEM_TIMEOUT
        pause = _FIRST_PAUSE
        side = self.side_reader.fileno()
        while True:
            fd, seen = self._pass(token)
            if fd is not None:
                return fd
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ItemLostError(
                    "a big item put on the queue is gone: a process holding it was killed"
                )
            if seen:  # only others' records: they may hand ours back, or it may come late
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, _LONGEST_PAUSE)
            else:
                wait_readable([side], remaining)

    def _pass(self, wanted: bytes | None) -> tuple[int | None, int]:
        """Take each side record once: return the slab of the one tagged ``wanted`` (and how
        many others were seen), hand the others back, drop those that are orphaned."""
        board = self.board
        claims: dict[bytes, tuple[int, int, int]] | None = None
        seen: set[bytes] = set()
        while True:
            record = self._take_record(0.0)
            if record is None:
                return None, len(seen)
            tag, fds = record
            if tag == wanted and len(fds) == 1:
                return fds[0], len(seen)
            if tag in seen:  # round the whole socket once
                self._hand_back(tag, fds)
                return None, len(seen)
            seen.add(tag)
            if board is not None:
                if claims is None:
                    claims = board.claims()
                if len(fds) != 1 or board.orphaned(tag, claims):
                    for fd in fds:
                        os.close(fd)
                    continue
            self._hand_back(tag, fds)

    def _hand_back(self, tag: bytes, fds: list[int]) -> None:
        try:
            self.side_writer.sendmsg([tag], [osutil.rights(*fds)] if fds else [])
        finally:
            for fd in fds:
                os.close(fd)

    def _receive_records(self, timeout: float | None) -> Incoming | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            record = self._take_record(remaining)
            if record is None:
                return None
            data, fds = record
            if not fds:
                return data
            if data == _IN_SLAB and len(fds) == 1:
                return fds[0]
            for fd in fds:
                os.close(fd)
            raise OSError("malformed record on a queue's side socket")

    def _take_record(self, timeout: float | None) -> tuple[bytes, list[int]] | None:
        """The next side record and its descriptors, arriving within ``timeout``, or None."""
        side = self.side_reader
        while True:
            try:
                data, ancillary, _, _ = side.recvmsg(
                    _SIDE_INLINE_MAX, _ANCILLARY, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                if timeout is not None and timeout <= 0:
                    return None
                if not wait_readable([side.fileno()], timeout):
                    return None
                timeout = None if timeout is None else 0.0
                continue
            return data, osutil.received_fds(ancillary)

    def readable(self, timeout: float | None) -> bool:
        """True if an item is waiting (or arrives within ``timeout``)."""
        fd = self.read_fd if self.read_fd >= 0 else self.side_reader.fileno()
        return bool(wait_readable([fd], timeout))

    # -- life ------------------------------------------------------------------

    def close_reader(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        self.side_reader.close()
        if self.board is not None:
            self.board.free_my_slots()

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
        board = self.board.fd if self.board is not None else -1
        tokens = [reduction.export_fd(fd, "a queue") if fd >= 0 else -1 for fd in (*fds, board)]
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


def _side_socketpair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of Unix ``SOCK_SEQPACKET`` sockets: reader end, writer end."""
    kind = getattr(socket, "SOCK_SEQPACKET", None)
    try:
        if kind is None:
            raise OSError(errno.EPROTONOSUPPORT, os.strerror(errno.EPROTONOSUPPORT))
        reader, writer = socket.socketpair(socket.AF_UNIX, kind)
        reader.setblocking(True)  # whatever socket.setdefaulttimeout() says
        writer.setblocking(True)
        return reader, writer
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
        raise OSError(
            exc.errno,
            "procframe's queues need Unix SOCK_SEQPACKET sockets, which this system "
            f"does not have ({exc.strerror})",
        ) from exc


_UNSUPPORTED = (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EPROTOTYPE, errno.EOPNOTSUPP)
"""What ``socketpair()`` fails with where a socket type does not exist."""


def _rebuild_channel(*tokens: int) -> Channel:
    return Channel(tuple(reduction.import_fd(token) if token >= 0 else -1 for token in tokens))

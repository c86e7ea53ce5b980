"""Connections between processes: ``Pipe``, ``Listener``/``Client`` and ``wait``.

The API of ``multiprocessing.connection``, and its wire format: a message is a
4-byte big-endian length (above 2 GiB - 1, ``0xFFFFFFFF`` and an 8-byte length)
followed by the bytes, written with one system call.  Nothing is ever read
ahead: a connection handed to a child carries every message its parent has
not received.  Pipe ends are packet-mode pipes (:class:`PacketConnection`),
one read per message; sockets from ``Listener``/``Client`` read the length,
then exactly the message.  ``Listener`` and ``Client`` authenticate with the
standard library's handshake (:mod:`procframe.posix.handshake`), so they talk
to its ``Listener`` and ``Client`` too.

A Pipe end also holds a side ``SOCK_SEQPACKET`` socket for big messages (at
most a few wait unread: then ``send`` blocks): one
of at least :data:`SLAB_MIN` bytes (or holding a big buffer) is written once
into a slab (:mod:`procframe._core.messages`), whose descriptor goes through
the side socket tagged with a random token, then a *slab mark* with that token
goes through the pipe in the message's place.  The receiver of the mark takes
side records up to the one with its token, keeping the others for their marks
(threads that send at once may put records and marks in different orders).
One process reads a Pipe end at a time, as with ``multiprocessing``.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import struct
import sys
from collections.abc import Iterable
from pickle import loads

from procframe._core import checks, messages, osutil, reduction, serializing
from procframe._core.checks import message_slice
from procframe._core.errors import BufferTooShort
from procframe._core.fdwait import wait_readable
from procframe.posix.handshake import HANDSHAKE_TIMEOUT, answer_challenge, deliver_challenge
from procframe.posix.handshake_steps import complete

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe._core.fdshare import SharedFds
    from procframe.posix.acceptor import Acceptor

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "AddressFamilyError",
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "answer_challenge",
    "deliver_challenge",
    "wait",
]

_SHORT = struct.Struct("!I")
_LONG = struct.Struct("!Q")
_ESCAPE = 0xFFFFFFFF
_SHORT_MAX = 0x7FFFFFFF
"""The longest message with a 4-byte length: the standard library reads it as signed."""
_SINGLE_WRITE_LIMIT = 1 << 14
"""Messages up to this size are written as one copied buffer; bigger ones with writev."""
MAX_MESSAGE_SIZE = 1 << 40
"""A length prefix above this is refused as corrupt before anything is allocated."""
_GROWTH_STEP = 1 << 26
"""Big messages are allocated as their bytes arrive, at most this much ahead."""


class Connection:
    """One end of a connection: send and receive whole messages (bytes or picklable objects)."""

    def __init__(
        self, fd: int, readable: bool = True, writable: bool = True, serializer: str | None = None
    ) -> None:
        if not (readable or writable):
            raise ValueError("a connection must be readable, writable, or both")
        self._fd = fd
        self._write_fd = fd
        self._readable = readable
        self._writable = writable
        self._serializer = serializing.of(serializer)
        self._pickle = self._serializer.dumps

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._fd < 0

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def fileno(self) -> int:
        """The file descriptor of the connection."""
        self._check_open()
        return self._fd

    def close(self, _close: Any = os.close) -> None:  # os may be gone by the last __del__
        """Close the connection; further use raises ``OSError``."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            _close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ("r" if self._readable else "") + ("w" if self._writable else "")
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<procframe Connection {state} {mode}>"

    def _check_open(self) -> None:
        if self._fd < 0:
            raise OSError("connection is closed")

    def _check_readable(self) -> None:
        if self._fd < 0:
            raise OSError("connection is closed")
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self) -> None:
        if self._fd < 0:
            raise OSError("connection is closed")
        if not self._writable:
            raise OSError("connection is read-only")

    # -- sending ---------------------------------------------------------------

    def send(self, obj: Any) -> None:
        """Send a picklable object."""
        self._check_writable()
        self._write_message(self._pickle(obj))

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send ``buf[offset:offset + size]`` (any bytes-like object) as one message."""
        self._check_writable()
        self._write_message(message_slice(buf, offset, size))

    def _write_message(self, data: bytes | memoryview) -> None:
        size = len(data)
        header = message_header(size)
        fd = self._write_fd
        if size <= _SINGLE_WRITE_LIMIT:
            message = header + data
            written = os.write(fd, message)
            if written != len(message):
                _write_rest(fd, memoryview(message)[written:])
            return
        _write_rest(fd, memoryview(header), memoryview(data))

    # -- receiving ----------------------------------------------------------

    def recv(self) -> Any:
        """Receive an object sent with ``send``; ``EOFError`` once the peer has closed."""
        self._check_readable()
        return loads(self._read_message(None))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as bytes; ``OSError`` if it is longer than ``maxlength``."""
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        return bytes(self._read_message(maxlength))

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive one message into ``buf`` at ``offset``; return its size.

        ``BufferTooShort`` (holding the message as ``args[0]``) if it does not fit.
        """
        self._check_readable()
        with memoryview(buf) as view:
            target = view.cast("B") if view.itemsize != 1 or view.ndim != 1 else view
            if not 0 <= offset <= len(target):
                raise ValueError("offset out of range")
            message = self._read_message(None)
            size = len(message)
            if size > len(target) - offset:
                raise BufferTooShort(bytes(message))
            target[offset : offset + size] = message
        return size

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if data can be read now, or arrives within ``timeout`` (``None``: forever)."""
        self._check_readable()
        return bool(wait_readable([self._fd], timeout))

    def _refuse(self, size: int, maxlength: int) -> None:
        self._readable = False  # the stream is out of step now, as in multiprocessing
        raise OSError(f"message of {size} bytes is longer than maxlength {maxlength}")

    def _check_size(self, size: int, maxlength: int | None) -> None:
        if size > MAX_MESSAGE_SIZE:
            self._readable = False
            raise OSError(
                f"refusing a message of {size} bytes: the length prefix is corrupt "
                f"(more than {MAX_MESSAGE_SIZE} bytes)"
            )
        if maxlength is not None and size > maxlength:
            self._refuse(size, maxlength)

    def _read_exactly(self, size: int, what: str) -> bytes:
        chunks = []
        missing = size
        while missing:
            chunk = os.read(self._fd, missing)
            if not chunk:
                if missing == size and what == "header":
                    raise EOFError("connection closed by the peer")
                raise EOFError(
                    f"connection closed in the middle of a message {what} "
                    f"({size - missing} of {size} bytes arrived)"
                )
            chunks.append(chunk)
            missing -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _read_message(self, maxlength: int | None) -> bytes | bytearray | memoryview:
        (size,) = _SHORT.unpack(self._read_exactly(4, "header"))
        if size == _ESCAPE:
            (size,) = _LONG.unpack(self._read_exactly(8, "header"))
        self._check_size(size, maxlength)
        if size <= _GROWTH_STEP:
            return self._read_exactly(size, "body")
        return read_growing(self._fd, size)

    # -- crossing to a child ---------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        serializer = self._serializer.name
        if reduction.collecting():  # a child's start: its payload carries the descriptor
            token = reduction.export_fd(self._fd, "a Connection")
            return _rebuild_connection, (token, self._readable, self._writable, serializer)
        shared = reduction.share_fds([self._fd])  # a message to a process already running
        return _rebuild_shared_connection, (shared, self._readable, self._writable, serializer)


def message_header(size: int) -> bytes:
    """The length prefix of a ``size``-byte message, as the standard library writes it."""
    return _SHORT.pack(size) if size <= _SHORT_MAX else _SHORT.pack(_ESCAPE) + _LONG.pack(size)


def read_growing(fd: int, size: int, head: bytes = b"") -> bytearray:
    """Read the rest of a ``size``-byte message (``head`` arrived already) from ``fd``, into a
    buffer that grows as its bytes arrive: a lying length prefix costs no more memory than
    the bytes that came."""
    message = bytearray(head)
    received = len(head)
    while received < size:
        if len(message) == received:
            message.extend(bytes(min(_GROWTH_STEP, size - received)))
        with memoryview(message) as view:
            count = os.readv(fd, [view[received:]])
        if count == 0:
            raise EOFError(
                f"connection closed in the middle of a message ({received} of {size} bytes arrived)"
            )
        received += count
    return message


def _rebuild_connection(
    token: int, readable: bool, writable: bool, serializer: str = "pickle"
) -> Connection:
    return Connection(reduction.import_fd(token), readable, writable, serializer)


def _rebuild_shared_connection(
    shared: SharedFds, readable: bool, writable: bool, serializer: str = "pickle"
) -> Connection:
    (fd,) = shared.collect()
    return Connection(fd, readable, writable, serializer)


_PAGE = max(select.PIPE_BUF, mmap.PAGESIZE)
"""No packet of a packet-mode pipe is longer than a page."""
_PACKET_PAYLOAD = select.PIPE_BUF - _SHORT.size
SLAB_MIN = messages.OUT_OF_BAND_MIN
"""Pipe messages from this size go through a slab."""
_SLAB_MARK = _SHORT.pack(0xFFFFFFFE)
"""The start of a slab mark: a length no message of the pipe's can have (it escapes above
2 GiB - 1 as 0xFFFFFFFF); then the token."""
_MARK_TOKEN = 8
_MARK_SIZE = len(_SLAB_MARK) + _MARK_TOKEN
_SIDE_ANCILLARY = osutil.rights_space(1)
_EARLY_MAX = 64
"""Side records kept for marks still to come (those of writers killed between a record and
its mark never come: the oldest beyond this many are dropped)."""
_pack_short = _SHORT.pack
_unpack_short = _SHORT.unpack_from


class PacketConnection(Connection):
    """A Pipe end over packet-mode pipes: one read per message, nothing read ahead.

    A message of up to a page is one packet; a longer one is split by the kernel
    into page-sized packets.  With nothing buffered in user space, a Pipe end
    handed to a child carries every message not yet received, as in
    ``multiprocessing``.
    """

    def __init__(
        self, read_fd: int, write_fd: int, side_fd: int = -1, serializer: str | None = None
    ) -> None:
        super().__init__(
            read_fd if read_fd >= 0 else write_fd, read_fd >= 0, write_fd >= 0, serializer
        )
        self._write_fd = write_fd
        self._side = (
            None
            if side_fd < 0
            else osutil.socket_from_fd(side_fd, socket.AF_UNIX, socket.SOCK_SEQPACKET)
        )
        """The side socket for slabs (None: every message goes through the pipe)."""
        self._early: dict[bytes, int] = {}
        """Side records taken before their marks came: token -> slab descriptor."""

    def close(self, _close: Any = os.close) -> None:  # os may be gone by the last __del__
        if self._fd >= 0:
            write_fd, self._write_fd = self._write_fd, -1
            if write_fd >= 0 and write_fd != self._fd:
                _close(write_fd)
            side, self._side = self._side, None
            if side is not None:
                side.close()
            early, self._early = self._early, {}
            for fd in early.values():
                _close(fd)
            super().close(_close)

    def send(self, obj: Any) -> None:
        """Send a picklable object (one packet, one system call, for most objects)."""
        if self._write_fd < 0 or not self._writable:
            self._check_writable()
        if self._side is None:
            data: bytes | messages.Outbound = self._pickle(obj)
        else:
            data = messages.dumps(obj, SLAB_MIN - 1, False, self._pickle)
            if type(data) is not bytes:
                self._send_slab(data)  # type: ignore[arg-type]
                return
        size = len(data)  # type: ignore[arg-type]
        if size <= _PACKET_PAYLOAD:  # a write of at most PIPE_BUF bytes is whole
            os.write(self._write_fd, _pack_short(size) + data)  # type: ignore[operator]
        else:
            self._write_message(data)  # type: ignore[arg-type]

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send ``buf[offset:offset + size]`` (any bytes-like object) as one message."""
        self._check_writable()
        data = message_slice(buf, offset, size)
        if self._side is not None and len(data) >= SLAB_MIN:
            self._send_slab(messages.pack_bytes(data))
        else:
            self._write_message(data)

    def _send_slab(self, message: messages.Outbound) -> None:
        assert self._side is not None
        token = os.urandom(_MARK_TOKEN)
        try:
            self._side.sendmsg([token], [osutil.rights(message.fd)])
        finally:
            message.close()  # the record holds its own reference while in flight
        os.write(self._write_fd, _SLAB_MARK + token)

    def recv(self) -> Any:
        """Receive an object sent with ``send``; ``EOFError`` once the peer has closed."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        first = os.read(self._fd, _PAGE)
        if len(first) >= 4 and _unpack_short(first)[0] == len(first) - 4:  # one whole packet
            return loads(first[4:])  # a page at most: copying beats a memoryview here
        if first[:4] == _SLAB_MARK:
            return messages.loads(self._take_slab(first))
        return loads(self._read_message(None, first))

    def _take_slab(self, mark: bytes) -> int:
        """The slab descriptor that the slab mark ``mark`` announced (the caller closes it)."""
        side = self._side
        if len(mark) != _MARK_SIZE or side is None:
            self._readable = False
            raise OSError(f"corrupt stream: a slab mark of {len(mark)} bytes")
        token = mark[len(_SLAB_MARK) :]
        early = self._early.pop(token, -1)
        if early >= 0:
            return early
        while True:
            data, ancillary, _, _ = side.recvmsg(_MARK_TOKEN, _SIDE_ANCILLARY)
            fds = osutil.received_fds(ancillary)
            if data == token and len(fds) == 1:
                return fds[0]
            if not data:
                raise EOFError("the side socket of the connection is closed")
            if len(fds) != 1:  # malformed: dropped
                for fd in fds:
                    os.close(fd)
                continue
            if len(self._early) >= _EARLY_MAX:  # the oldest's mark will never come
                os.close(self._early.pop(next(iter(self._early))))
            self._early[data] = fds[0]  # its mark comes later

    def _read_message(
        self, maxlength: int | None, first: bytes | None = None
    ) -> bytes | bytearray | memoryview:
        fd = self._fd
        if first is None:
            first = os.read(fd, _PAGE)
        if not first:
            raise EOFError("connection closed by the peer")
        header = 4
        size = _SHORT.unpack_from(first)[0] if len(first) >= header else 0
        if size == _ESCAPE:
            header = 12
            size = _LONG.unpack_from(first, 4)[0] if len(first) >= header else 0
        if len(first) < header:
            self._readable = False
            raise EOFError(f"a message header cut short ({len(first)} of {header} bytes)")
        if first[:4] == _SLAB_MARK:
            return messages.read_bytes(self._take_slab(first), maxlength)
        self._check_size(size, maxlength)
        if len(first) - header == size:
            return first[header:]
        message = bytearray(first[header:])
        while len(message) < size:
            chunk = os.read(fd, _PAGE)
            if not chunk:
                raise EOFError(
                    f"connection closed in the middle of a message ({len(message)} of "
                    f"{size} bytes arrived)"
                )
            message += chunk
        if len(message) != size:
            self._readable = False
            raise OSError(f"corrupt stream: a message of {size} bytes carried {len(message)}")
        return message

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        side = -1 if self._side is None else self._side.fileno()
        fds = (self._fd if self._readable else -1, self._write_fd, side)
        serializer = self._serializer.name
        if reduction.collecting():
            tokens = tuple(reduction.export_fd(fd, "a Connection") if fd >= 0 else -1 for fd in fds)
            return _rebuild_packet_connection, (serializer, *tokens)
        shared = reduction.share_fds([fd for fd in fds if fd >= 0])
        return _rebuild_shared_packet_connection, (shared, serializer, *(fd >= 0 for fd in fds))


def _rebuild_packet_connection(serializer: str, *tokens: int) -> PacketConnection:
    read_fd, write_fd, side_fd = (reduction.import_fd(t) if t >= 0 else -1 for t in tokens)
    return PacketConnection(read_fd, write_fd, side_fd, serializer)


def _rebuild_shared_packet_connection(
    shared: SharedFds, serializer: str, *present: bool
) -> PacketConnection:
    fds = shared.collect()
    read_fd, write_fd, side_fd = (fds.pop(0) if here else -1 for here in present)
    return PacketConnection(read_fd, write_fd, side_fd, serializer)


def _write_rest(fd: int, *views: memoryview) -> None:
    pending = [v for v in views if len(v)]
    while pending:
        written = os.writev(fd, pending)
        while written and pending:
            first = pending[0]
            if written >= len(first):
                written -= len(first)
                pending.pop(0)
            else:
                pending[0] = first[written:]
                written = 0


def Pipe(duplex: bool = True, *, serializer: str | None = None) -> tuple[Connection, Connection]:
    """A pair of connected ends; with ``duplex=False``, (read-only end, write-only end).

    Their messages are pickled by ``serializer`` (the program's default when ``None``).
    """
    one_way = osutil.packet_pipe(nonblocking=False)
    if one_way is not None:
        side = _side_pair()
        if not duplex:
            return PacketConnection(one_way[0], -1, side[0], serializer), PacketConnection(
                -1, one_way[1], side[1], serializer
            )
        other_way = osutil.packet_pipe(nonblocking=False)
        if other_way is not None:
            return (
                PacketConnection(one_way[0], other_way[1], side[0], serializer),
                PacketConnection(other_way[0], one_way[1], side[1], serializer),
            )
        for fd in (*one_way, *side):
            if fd >= 0:
                os.close(fd)
    if duplex:
        left, right = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return Connection(left.detach(), serializer=serializer), Connection(
            right.detach(), serializer=serializer
        )
    read_fd, write_fd = os.pipe()
    osutil.enlarge_pipe(write_fd)
    return (
        Connection(read_fd, writable=False, serializer=serializer),
        Connection(write_fd, readable=False, serializer=serializer),
    )


def _side_pair() -> tuple[int, int]:
    """The side sockets of a Pipe's two ends, for slabs; (-1, -1) where the system has none
    (big messages then go through the pipe).

    Their send buffers are the smallest the system allows: a few records (six on Linux),
    so ``send`` blocks once that many big messages wait unread, as a full pipe blocks it:
    a fast sender cannot pile up slabs.
    """
    try:
        left, right = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (AttributeError, OSError):
        return -1, -1
    for end in (left, right):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    return left.detach(), right.detach()


def wait(object_list: Iterable[Any], timeout: float | None = None) -> list[Any]:
    """The objects of ``object_list`` that are ready to read (or closed), within ``timeout``.

    Objects are connections, sockets, objects with ``fileno()``, descriptors,
    and ``Process.sentinel`` values.
    """
    by_fd: dict[int, list[Any]] = {}
    for obj in object_list:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd.setdefault(fd, []).append(obj)
    return [obj for fd in wait_readable(list(by_fd), timeout) for obj in by_fd[fd]]


# -- Listener and Client ------------------------------------------------------

ABSTRACT_SOCKETS = sys.platform.startswith("linux")
"""Linux has abstract Unix socket addresses (``"\\0name"``): names in the kernel, not files."""


class AddressFamilyError(ValueError, TypeError):
    """An address that does not belong to the family given, or to any family procframe knows.

    Both a ``ValueError`` (what procframe reports bad input with) and the
    ``TypeError`` the standard library's ``Listener`` lets its socket raise.
    """


def is_abstract(address: Any) -> bool:
    """True for a Linux abstract Unix socket address: a ``str`` or ``bytes`` starting with NUL."""
    return isinstance(address, (str, bytes)) and address[:1] in ("\0", b"\0")


def address_type(address: Any) -> str:
    """The family of ``address``: ``"AF_UNIX"`` for a path or an abstract ``"\\0name"``,
    ``"AF_INET"`` for (host, port)."""
    if isinstance(address, (str, bytes, os.PathLike)):
        return "AF_UNIX"
    if isinstance(address, tuple) and len(address) == 2:
        return "AF_INET"
    raise AddressFamilyError(
        f"address {address!r} is neither a path or abstract name (AF_UNIX) nor "
        "(host, port) (AF_INET)"
    )


def _socket_family(address: Any, family: str | None, who: str) -> int:
    """The socket family of ``address`` under ``family`` (None: inferred); a clear error when
    the two do not match."""
    families = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET}
    if family is None:
        family = address_type(address)
    elif family not in families:
        raise ValueError(f"{who}: family must be 'AF_UNIX' or 'AF_INET', got {family!r}")
    if address is not None:
        try:
            found = address_type(address)
        except AddressFamilyError:
            found = None
        if found != family:
            shape = "a path or an abstract '\\0name'" if family == "AF_UNIX" else "(host, port)"
            raise AddressFamilyError(
                f"{who}: family {family!r} takes {shape} as its address, got {address!r}"
                + (f" (an {found} address)" if found else "")
            )
        if family == "AF_UNIX" and is_abstract(address) and not ABSTRACT_SOCKETS:
            raise AddressFamilyError(
                f"{who}: abstract Unix socket addresses exist only on Linux, got {address!r}"
            )
    return families[family]


def _check_authkey(authkey: bytes | None) -> None:
    if authkey is not None and not isinstance(authkey, (bytes, bytearray)):
        raise TypeError(f"authkey must be bytes, got {type(authkey).__name__}")


class Listener:
    """A bound, listening socket whose ``accept()`` returns connections.

    ``address`` is a path or, on Linux, an abstract name (``"\\0name"``) for
    ``AF_UNIX``, or ``(host, port)`` for ``AF_INET``; ``family`` defaults to the
    address's.  With an ``authkey``, every peer must pass the standard library's
    HMAC challenge (so the standard library's ``Client`` can connect too), all
    of it within ``handshake_timeout`` seconds (default :data:`HANDSHAKE_TIMEOUT`);
    ``accept()`` drives the handshakes of every peer at once (see
    :mod:`procframe.posix.acceptor`), so a slow one holds nobody up.  Accepted
    connections pickle with ``serializer`` (the program's default when ``None``).
    """

    def __init__(
        self,
        address: Any = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: bytes | None = None,
        *,
        handshake_timeout: float | None = None,
        serializer: str | None = None,
    ) -> None:
        _check_authkey(authkey)
        self._serializer = serializing.of(serializer).name
        self._handshake_timeout = checks.timeout(
            "handshake_timeout", handshake_timeout, positive=True
        )
        family = family or (address_type(address) if address is not None else "AF_UNIX")
        socket_family = _socket_family(address, family, "Listener")
        self._private_dir: str | None = None
        self._authkey = authkey
        if address is None:
            address = self._private_address(family)
        self._family = family
        self._socket = osutil.blocking_socket(socket_family, socket.SOCK_STREAM)
        try:
            if socket_family == socket.AF_INET:
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(address)
            self._socket.listen(backlog)
        except BaseException:
            self._socket.close()
            raise
        self._address = self._socket.getsockname()
        unix_path = socket_family == socket.AF_UNIX and not is_abstract(address)
        self._unlink = os.fspath(address) if unix_path else None
        self._last_accepted: Any = None
        self._creator = os.getpid()
        self._closed = False
        self._acceptor: Acceptor | None = None
        if authkey is not None:
            from procframe.posix.acceptor import Acceptor

            self._socket.setblocking(False)
            self._acceptor = Acceptor(self._socket, authkey)

    def _private_address(self, family: str) -> Any:
        if family == "AF_INET":
            return ("127.0.0.1", 0)
        if self._authkey is not None and ABSTRACT_SOCKETS:
            # An abstract address (Linux): nothing in the filesystem that a killed
            # process could leave behind.  Any local process may connect to it, so it
            # serves only listeners that authenticate their peers.
            return b"\0procframe-" + os.urandom(12).hex().encode()
        import tempfile

        self._private_dir = tempfile.mkdtemp(prefix="procframe-")
        return os.path.join(self._private_dir, "listener")

    @property
    def address(self) -> Any:
        """The address clients connect to."""
        return self._address

    @property
    def last_accepted(self) -> Any:
        """The address of the last accepted peer."""
        return self._last_accepted

    @property
    def handshake_timeout(self) -> float:
        """Seconds a peer gets for its whole authentication handshake."""
        return HANDSHAKE_TIMEOUT if self._handshake_timeout is None else self._handshake_timeout

    def fileno(self) -> int:
        """A descriptor that is readable when ``accept()`` has something to do.

        With an authkey on Linux, that of the poller of the handshakes in
        progress (new peers included), else the listening socket's.
        """
        if self._acceptor is not None:
            return self._acceptor.fileno()
        return self._socket.fileno()

    def accept(self) -> Connection:
        """Wait for a client; with an authkey, the next one that passes its handshake.

        A client that fails the handshake (a wrong key, garbage, or not over
        within :attr:`handshake_timeout`) raises ``AuthenticationError`` here,
        one per call; the listener itself stays usable, and other clients'
        handshakes go on meanwhile.
        """
        if self._acceptor is None:
            return Connection(self.accept_socket().detach(), serializer=self._serializer)
        try:
            return Connection(
                self._acceptor.accept(self.handshake_timeout), serializer=self._serializer
            )
        finally:
            self._last_accepted = self._acceptor.last_address

    def accept_socket(self) -> socket.socket:
        """Wait for a client and return its socket, not yet authenticated (see
        :meth:`authenticate`); :meth:`accept` does both, many clients at once."""
        if self._closed:
            raise OSError("listener is closed")
        while True:
            try:
                sock, self._last_accepted = self._socket.accept()
                break
            except BlockingIOError:  # an authenticating listener's socket does not block
                wait_readable([self._socket.fileno()], None)
        sock.setblocking(True)  # it took the default timeout, if the program set one
        no_delay(sock)
        return sock

    def authenticate(self, sock: socket.socket) -> Connection:
        """The Connection over an accepted ``sock``, once it passed the handshake (if any)
        within :attr:`handshake_timeout`."""
        if self._authkey is None:
            return Connection(sock.detach(), serializer=self._serializer)
        return _authenticated(
            sock, self._authkey, True, self.handshake_timeout, serializer=self._serializer
        )

    def close(self) -> None:
        """Stop listening; remove the socket file of an AF_UNIX listener.

        An ``accept()`` blocked in another thread raises ``OSError``.
        """
        if not self._closed:
            self._closed = True
            if os.getpid() == self._creator:  # a forked child's close must not stop ours
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
                except OSError:
                    pass
            if self._acceptor is not None:
                self._acceptor.close()  # the socket too, once a running accept() is out
            else:
                self._socket.close()
            for remove, path in ((os.unlink, self._unlink), (os.rmdir, self._private_dir)):
                if path:
                    try:
                        remove(path)
                    except OSError:
                        pass
            self._unlink = self._private_dir = None

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<procframe Listener {self._family} {self._address!r}>"


def Client(
    address: Any,
    family: str | None = None,
    authkey: bytes | None = None,
    *,
    serializer: str | None = None,
) -> Connection:
    """Connect to a Listener at ``address`` (procframe's or the standard library's);
    authenticate if there is an authkey.  The Connection's messages are pickled by
    ``serializer`` (the program's default when ``None``)."""
    _check_authkey(authkey)
    serializer = serializing.of(serializer).name
    sock = osutil.blocking_socket(_socket_family(address, family, "Client"), socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    no_delay(sock)
    if authkey is None:
        return Connection(sock.detach(), serializer=serializer)
    return _authenticated(sock, authkey, False, HANDSHAKE_TIMEOUT, serializer=serializer)


def no_delay(sock: socket.socket) -> None:
    """Send small TCP messages at once: each message is one write, and a request waits for
    its answer, so Nagle's algorithm would only add a delayed-ACK wait."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _authenticated(
    sock: socket.socket, authkey: bytes, server: bool, timeout: float, serializer: str | None
) -> Connection:
    """Run the handshake on ``sock``, all of it within ``timeout``; the Connection, or raise."""
    try:
        sock.setblocking(False)
        complete(sock.fileno(), authkey, server, timeout)
        sock.setblocking(True)
    except BaseException:
        sock.close()
        raise
    return Connection(sock.detach(), serializer=serializer)

"""``Pipe``: two connected ends in this process, with ``multiprocessing``'s Connection API.

Messages are held in the process, never written anywhere: ``send(obj)``
hands ``obj`` itself to the receiver (shared, not copied, as in
``multiprocessing.dummy``), ``send_bytes`` a copy of the bytes.  A Connection
sent (through a Pipe or a queue) arrives as a handle of its own on the same
channel (:func:`handed_over`), as a process's copy would: the sender may close
its own, and each direction closes when the last handle of its end closes.
Each end's
``fileno()`` is a real descriptor for ``procframe.connection.wait`` and
``select``: the read end of a notification pipe that holds one byte while
messages wait and reports end of file once the peer has closed; a write-only
end's is the write end of its peer's notification pipe.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from pickle import HIGHEST_PROTOCOL, dumps, loads

from procframe._core.checks import message_slice
from procframe._core.errors import BufferTooShort

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Connection", "Pipe"]


class _Sent:
    """An object sent with ``send()``: delivered as it is."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


class _Way:
    """The messages going one way, and the pipe that tells a reader they are there.

    Under ``cond``: the notification pipe holds one byte exactly while
    ``items`` is not empty, and its write end is closed once the sender has
    closed, so its read end is readable while there is something to receive.
    ``senders`` and ``receivers`` count the open handles of each side: a side
    closes when its last handle does.
    """

    __slots__ = (
        "cond",
        "items",
        "read_fd",
        "receiver_closed",
        "receivers",
        "sender_closed",
        "senders",
        "write_fd",
    )

    def __init__(self) -> None:
        self.items: deque[bytes | _Sent] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.read_fd, self.write_fd = os.pipe()
        self.sender_closed = False
        self.receiver_closed = False
        self.senders = self.receivers = 0

    def open_handle(self, sender: bool) -> None:
        """Count one more handle of the sending (or receiving) side, which must be open."""
        with self.cond:
            if self.sender_closed if sender else self.receiver_closed:
                raise OSError("connection is closed")
            if sender:
                self.senders += 1
            else:
                self.receivers += 1

    def put(self, message: bytes | _Sent) -> None:
        with self.cond:
            if self.receiver_closed:
                raise BrokenPipeError(errno.EPIPE, "the receiving end of the connection is closed")
            self.items.append(message)
            if len(self.items) == 1:
                os.write(self.write_fd, b"\0")
            self.cond.notify()

    def take(self) -> bytes | _Sent:
        with self.cond:
            while not self.items:
                if self.receiver_closed:
                    raise OSError("connection is closed")
                if self.sender_closed:
                    raise EOFError("connection closed by the peer")
                self.cond.wait()
            message = self.items.popleft()
            if not self.items:
                os.read(self.read_fd, 1)
            return message

    def ready(self, timeout: float | None) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(lambda: self.items or self.sender_closed, timeout))

    def close_sender(self, _close: Any = os.close) -> None:
        """One handle of the sending side closes; the side closes with its last."""
        with self.cond:
            self.senders -= 1
            if self.senders <= 0 and not self.sender_closed:
                self.sender_closed = True
                _close(self.write_fd)
                self.cond.notify_all()

    def close_receiver(self, _close: Any = os.close) -> None:
        """One handle of the receiving side closes; the side closes with its last, and
        what nobody will read is dropped."""
        unread: list[bytes | _Sent] = []
        with self.cond:
            self.receivers -= 1
            if self.receivers <= 0 and not self.receiver_closed:
                self.receiver_closed = True
                unread.extend(self.items)
                self.items.clear()
                _close(self.read_fd)
                self.cond.notify_all()
        del unread  # outside the lock: a Connection among them closes its handle


class Connection:
    """One end of a :func:`Pipe` (the API of ``multiprocessing.connection.Connection``)."""

    def __init__(self, incoming: _Way | None, outgoing: _Way | None) -> None:
        self._closed = True  # until both sides are counted
        if incoming is not None:
            incoming.open_handle(sender=False)
        if outgoing is not None:
            try:
                outgoing.open_handle(sender=True)
            except BaseException:
                if incoming is not None:
                    incoming.close_receiver()
                raise
        self._in = incoming
        self._out = outgoing
        self._closed = False

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    @property
    def readable(self) -> bool:
        return self._in is not None

    @property
    def writable(self) -> bool:
        return self._out is not None

    def fileno(self) -> int:
        """A descriptor readable while messages wait or once the peer has closed."""
        self._check_open()
        return self._in.read_fd if self._in is not None else self._out.write_fd  # type: ignore[union-attr]

    def close(self, _close: Any = os.close) -> None:  # os may be gone by the last __del__
        """Close this handle; once every handle of this end is closed, the peer meets
        ``EOFError`` after it has read what was sent."""
        if not self._closed:
            self._closed = True
            if self._in is not None:
                self._in.close_receiver(_close)
            if self._out is not None:
                self._out.close_sender(_close)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(
            "a Connection of the 'threads' backend is shared by the threads of this "
            "process, not pickled"
        )

    def __repr__(self) -> str:
        mode = ("r" if self.readable else "") + ("w" if self.writable else "")
        state = "closed" if self._closed else "open"
        return f"<procframe threads Connection {state} {mode}>"

    def _check_open(self) -> None:
        if self._closed:
            raise OSError("connection is closed")

    def _incoming(self) -> _Way:
        self._check_open()
        if self._in is None:
            raise OSError("connection is write-only")
        return self._in

    def _outgoing(self) -> _Way:
        self._check_open()
        if self._out is None:
            raise OSError("connection is read-only")
        return self._out

    # -- sending ---------------------------------------------------------------

    def send(self, obj: Any) -> None:
        """Send ``obj`` itself: the receiver gets this very object, not a copy (a Connection
        arrives as a handle of its own: :func:`handed_over`)."""
        way = self._outgoing()
        delivered = handed_over(obj)
        try:
            way.put(_Sent(delivered))
        except BaseException:
            if delivered is not obj:
                delivered.close()
            raise

    def _handle(self) -> Connection:
        """Another handle of this end: the end stays open until every handle is closed."""
        self._check_open()
        return Connection(self._in, self._out)

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send a copy of ``buf[offset:offset + size]`` (any bytes-like object) as one message."""
        way = self._outgoing()
        way.put(bytes(message_slice(buf, offset, size)))

    # -- receiving ----------------------------------------------------------

    def recv(self) -> Any:
        """The next object sent; ``EOFError`` once the peer has closed and all was read."""
        message = self._incoming().take()
        return message.obj if isinstance(message, _Sent) else loads(message)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """The next message as bytes (an object sent with ``send`` comes pickled)."""
        way = self._incoming()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = _as_bytes(way.take())
        if maxlength is not None and len(data) > maxlength:
            raise OSError(f"message of {len(data)} bytes is longer than maxlength {maxlength}")
        return data

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive one message into ``buf`` at ``offset``; return its size.

        ``BufferTooShort`` (holding the message as ``args[0]``) if it does not fit.
        """
        way = self._incoming()
        with memoryview(buf) as view:
            target = view.cast("B") if view.itemsize != 1 or view.ndim != 1 else view
            if not 0 <= offset <= len(target):
                raise ValueError("offset out of range")
            data = _as_bytes(way.take())
            size = len(data)
            if size > len(target) - offset:
                raise BufferTooShort(data)
            target[offset : offset + size] = data
        return size

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if a message (or the end) can be read now, or within ``timeout`` (``None``:
        forever)."""
        return self._incoming().ready(timeout)


def handed_over(obj: Any) -> Any:
    """What sending or putting ``obj`` delivers: ``obj`` itself, but a Connection as a new
    handle of it, which the receiver closes on its own (the caller closes the new handle if
    the delivery fails)."""
    return obj._handle() if isinstance(obj, Connection) else obj


def _as_bytes(message: bytes | _Sent) -> bytes:
    return dumps(message.obj, HIGHEST_PROTOCOL) if isinstance(message, _Sent) else message


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """A pair of connected ends; with ``duplex=False``, (read-only end, write-only end)."""
    one_way = _Way()
    if not duplex:
        return Connection(one_way, None), Connection(None, one_way)
    other_way = _Way()
    return Connection(one_way, other_way), Connection(other_way, one_way)

"""``Queue``, ``SimpleQueue`` and ``JoinableQueue`` between processes.

Items travel over a ``SOCK_SEQPACKET`` socket pair: each item is one record,
which the kernel delivers whole to exactly one reader.  So readers need no
lock, writers need no lock, and a process killed in the middle of a ``put``
or a ``get`` can never leave half an item behind or a lock held.  An item
too big for one record travels in a memfd whose descriptor rides in the
record.  ``put`` pickles in the caller (an unpicklable item fails there, not
later in a thread) and writes at once; only when the kernel buffer is full
do items wait in the process, for a feeder thread to send as readers catch up.
"""

from __future__ import annotations

import array
import os
import socket
import sys
import threading
import time
import weakref
from collections import deque
from pickle import HIGHEST_PROTOCOL, dumps, loads
from queue import Empty, Full
from typing import Any

from procframe import reduction
from procframe._fdwait import wait_readable, wait_writable
from procframe.api import process
from procframe.api.synchronize import BoundedSemaphore, Condition, Semaphore

__all__ = ["Empty", "Full", "JoinableQueue", "Queue", "SimpleQueue"]

INLINE_MAX = 1 << 16
"""Items whose pickle is larger than this travel in a memfd instead of the record itself."""
_BIG = b"PROCFRAME-BIG"
_FD_SIZE = array.array("i").itemsize
_ANCILLARY = socket.CMSG_SPACE(_FD_SIZE)
_FEEDER_POLL = 0.1
"""Seconds the feeder sleeps at most between checks of a full socket (and of close)."""
FLUSH_WARNING_DELAY = 5.0
"""Seconds a process waits at exit for readers of its queued items before it says so."""


class Channel:
    """A SEQPACKET socket pair: one record per item, whole or not at all."""

    def __init__(self, reader: socket.socket | None = None, writer: socket.socket | None = None):
        if reader is None or writer is None:
            reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes, flags: int = 0) -> None:
        """Send one item's pickle; with ``MSG_DONTWAIT``, ``BlockingIOError`` when full."""
        if len(data) <= INLINE_MAX:
            self.writer.send(data, flags)
        else:
            self._send_big(data, flags)

    def _send_big(self, data: bytes, flags: int) -> None:
        fd = _item_fd(data)
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self.writer.sendmsg([_BIG], rights, flags)
        finally:
            os.close(fd)  # the record holds its own reference while in flight

    def receive(self, flags: int = 0) -> bytes:
        """Receive one item's pickle (blocking unless ``MSG_DONTWAIT``)."""
        data, ancillary, _msg_flags, _ = self.reader.recvmsg(INLINE_MAX, _ANCILLARY, flags)
        fds = _received_fds(ancillary)
        if not fds:
            if not data:
                raise EOFError("the queue's channel is closed")
            return data
        try:
            if data != _BIG or len(fds) != 1:
                raise OSError("malformed big-item record on the queue")
            return _read_item_fd(fds[0])
        finally:
            for fd in fds:
                os.close(fd)

    def readable(self, timeout: float | None) -> bool:
        return bool(wait_readable([self.reader.fileno()], timeout))

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def __reduce__(self) -> tuple[Any, ...]:
        reader = reduction.export_fd(self.reader.fileno(), "a queue")
        writer = reduction.export_fd(self.writer.fileno(), "a queue")
        return _rebuild_channel, (reader, writer)


def _rebuild_channel(reader: int, writer: int) -> Channel:
    return Channel(
        socket.socket(fileno=reduction.import_fd(reader)),
        socket.socket(fileno=reduction.import_fd(writer)),
    )


def _item_fd(data: bytes) -> int:
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


def _read_item_fd(fd: int) -> bytes:
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


class SimpleQueue:
    """A queue with no size and no thread: ``put`` writes (and may block), ``get`` reads."""

    def __init__(self) -> None:
        self._channel = Channel()
        self._closed = False

    def put(self, obj: Any) -> None:
        """Put ``obj``; an unpicklable one raises here."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        self._channel.send(dumps(obj, HIGHEST_PROTOCOL))

    def get(self) -> Any:
        """Remove and return an item, waiting for one."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return loads(self._channel.receive())

    def empty(self) -> bool:
        """True if no item is waiting (a snapshot)."""
        return not self._channel.readable(0.0)

    def close(self) -> None:
        """Close the queue in this process."""
        if not self._closed:
            self._closed = True
            self._channel.close()

    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return {"_channel": self._channel, "_closed": False}

    def __repr__(self) -> str:
        return f"<procframe SimpleQueue{' closed' if self._closed else ''}>"


class Queue:
    """A FIFO queue between processes (the API of ``multiprocessing.Queue``)."""

    def __init__(self, maxsize: int = 0) -> None:
        if not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        self._maxsize = maxsize if maxsize > 0 else 0
        self._channel = Channel()
        self._slots = BoundedSemaphore(maxsize) if maxsize > 0 else None
        self._count = Semaphore(0)
        self._setup_local()

    def _setup_local(self) -> None:
        """The per-process part: items waiting to be sent, and the feeder sending them."""
        self._closed = False
        self._pending: deque[bytes] = deque()
        self._pending_lock = threading.Lock()
        self._feeder: threading.Thread | None = None
        self._cancel_join = False
        _live_queues.add(self)

    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return {
            "_maxsize": self._maxsize,
            "_channel": self._channel,
            "_slots": self._slots,
            "_count": self._count,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_local()

    # -- putting ---------------------------------------------------------------

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj``; ``queue.Full`` if the queue stays full past ``timeout``.

        An unpicklable object raises its pickling error here, in the caller.
        """
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        data = dumps(obj, HIGHEST_PROTOCOL)
        if self._slots is not None and not self._slots.acquire(block, timeout):
            raise Full
        self._count.release()
        if not self._pending:
            try:
                self._channel.send(data, socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                pass
        self._hold(data)

    def put_nowait(self, obj: Any) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def _hold(self, data: bytes) -> None:
        """Queue ``data`` behind the items already held, and send what the socket takes now.

        The putting thread does the sending while it can, so items flow as fast as
        readers take them; the feeder thread only finishes the job once puts stop.
        """
        with self._pending_lock:
            self._pending.append(data)
            self._drain()
            if self._pending and self._feeder is None:
                self._feeder = threading.Thread(
                    target=self._feed, name="procframe-queue-feeder", daemon=True
                )
                self._feeder.start()
                process.on_exit_before_services(self._flush_at_exit)

    def _drain(self) -> None:
        """Send held items until the socket is full (the caller holds ``_pending_lock``)."""
        pending = self._pending
        send = self._channel.send
        try:
            while pending:
                send(pending[0], socket.MSG_DONTWAIT)  # removed only once sent: order kept
                pending.popleft()
        except BlockingIOError:
            pass

    def _feed(self) -> None:
        """Send the held items as readers make room, until none are left."""
        writer = self._channel.writer
        while True:
            with self._pending_lock:
                if writer.fileno() < 0:  # closed: nobody can read them any more
                    self._pending.clear()
                if not self._pending or self._cancel_join:
                    self._feeder = None
                    return
                try:
                    self._drain()
                except OSError:
                    self._pending.clear()  # the socket is gone: nobody can read them
                    self._feeder = None
                    return
                if not self._pending:
                    self._feeder = None
                    return
            wait_writable(writer.fileno(), _FEEDER_POLL)

    def _flush_at_exit(self) -> None:
        feeder = self._feeder
        if feeder is None or self._cancel_join:
            return
        feeder.join(FLUSH_WARNING_DELAY)
        if feeder.is_alive():
            sys.stderr.write(
                f"procframe: process {os.getpid()} waits to exit until readers take the "
                f"{len(self._pending)} item(s) it put on a Queue; read them (before join()), "
                "or call cancel_join_thread() to drop them\n"
            )
            sys.stderr.flush()
            feeder.join()

    # -- getting ---------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; ``queue.Empty`` if none comes within ``timeout``."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if block and timeout is None:
            data = self._channel.receive()
        else:
            data = self._receive_within(timeout if block else 0.0)
        self._count.acquire(False)
        if self._slots is not None:
            self._slots.release()
        return loads(data)

    def _receive_within(self, timeout: float | None) -> bytes:
        deadline = time.monotonic() + max(timeout or 0.0, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            if not self._channel.readable(max(remaining, 0.0)):
                raise Empty
            try:
                return self._channel.receive(socket.MSG_DONTWAIT)
            except BlockingIOError:  # another reader took it first
                if remaining <= 0:
                    raise Empty from None

    def get_nowait(self) -> Any:
        """``get(False)``."""
        return self.get(False)

    # -- state -------------------------------------------------------------------

    def qsize(self) -> int:
        """The approximate number of items in the queue."""
        return self._count.get_value()

    def empty(self) -> bool:
        """True if no item is waiting (a snapshot)."""
        return not self._pending and not self._channel.readable(0.0)

    def full(self) -> bool:
        """True if a bounded queue has no room (a snapshot)."""
        return self._slots is not None and self._slots.get_value() == 0

    def close(self) -> None:
        """This process will put no more items; the feeder sends what it holds, then stops."""
        if self._closed:
            return
        self._closed = True
        self._channel.reader.close()
        with self._pending_lock:
            idle = self._feeder is None
        if idle:
            self._channel.writer.close()
        else:
            threading.Thread(target=self._close_after_flush, daemon=True).start()

    def _close_after_flush(self) -> None:
        feeder = self._feeder
        if feeder is not None:
            feeder.join()
        self._channel.writer.close()

    def join_thread(self) -> None:
        """Wait until the items this process put have been handed to the OS (after close())."""
        if not self._closed:
            raise ValueError("join_thread() is only allowed after close()")
        feeder = self._feeder
        if feeder is not None:
            feeder.join()

    def cancel_join_thread(self) -> None:
        """Do not wait at exit for held items to be sent: they may be lost."""
        self._cancel_join = True

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        size = f" maxsize={self._maxsize}" if self._maxsize else ""
        return f"<procframe {type(self).__name__}{size}{state}>"


class JoinableQueue(Queue):
    """A Queue whose consumers call ``task_done()`` and whose ``join()`` waits for all of them."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._unfinished = Semaphore(0)
        self._cond = Condition()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_unfinished"] = self._unfinished
        state["_cond"] = self._cond
        return state

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj``, counting it as a task until ``task_done()``."""
        with self._cond:
            self._unfinished.release()
        try:
            super().put(obj, block, timeout)
        except BaseException:
            with self._cond:
                self._unfinished.acquire(False)
                if self._unfinished.get_value() == 0:
                    self._cond.notify_all()
            raise

    def task_done(self) -> None:
        """Mark one item taken with ``get()`` as processed."""
        with self._cond:
            if not self._unfinished.acquire(False):
                raise ValueError("task_done() called more times than there were items")
            if self._unfinished.get_value() == 0:
                self._cond.notify_all()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        with self._cond:
            while self._unfinished.get_value() != 0:
                self._cond.wait()


_live_queues: weakref.WeakSet[Queue] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # The feeder thread did not survive the fork, and the held items are the parent's.
    for queue in list(_live_queues):
        closed = queue._closed
        queue._setup_local()
        queue._closed = closed


os.register_at_fork(after_in_child=_reset_after_fork)

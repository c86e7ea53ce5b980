"""Pipe on the cluster: each direction a ``distributed.Queue`` of messages.

An end reads one queue and writes the other (a one-way Pipe has one queue).  EOF:
the copies of each writing end are counted on the cluster (one for the end made
here, one more each time it is pickled for a child); when the last copy is closed,
an end-of-file mark follows its messages.  A copy in a process that dies without
closing it is never counted down, so its reader waits rather than seeing EOF.
``fileno()`` starts a thread that reads ahead into this process and keeps a local
pipe readable while messages wait, so ``connection.wait`` and ``select`` work; each
call also looks at the cluster once (:meth:`DaskConnection.fileno`), so a message sent
before it is seen at once.  ``send``/``recv`` never pay for that.

A connection pickles by name, at any time (through a Pipe or a Queue too, as a
``multiprocessing`` Connection): the copy that arrives reads and writes the same
queues, and counts as a writing end from the moment it was pickled, so the sender
may close its own end at once.  Messages this end had read ahead travel with it.
A message pickled twice (the serializer's retries) counts it once; one that is made
and then dropped (never unpickled) leaves its count behind: its reader then waits
rather than seeing EOF.
"""

from __future__ import annotations

import collections
import os
import pickle
import threading
from typing import Any

from procframe_dask import _sliced, _wire
from procframe_dask._objects import NOW, dask_queue, new_name

EOF_MARK = b""
"""What follows the last message of a direction (a message is never empty: it is tagged)."""
READ_AHEAD_POLL = 0.2
"""Seconds the read-ahead thread waits on the cluster before looking whether it should stop."""
IN_FLIGHT_WAIT = 0.05
"""Seconds ``fileno()`` waits for the read-ahead's pending get, which takes a message sent
meanwhile before any new look could (the scheduler serves gets in order)."""


class DaskConnection:
    """One end of a Pipe: ``multiprocessing.connection.Connection``'s API."""

    def __init__(
        self,
        inbox: str | None,
        outbox: str | None,
        *,
        _count: bool = True,
        _pending: tuple[bytes, ...] = (),
        _eof: bool = False,
        serializer: str | None = None,
    ) -> None:
        """``serializer``: what pickles what ``send`` sends (see :mod:`procframe_dask._wire`)."""
        self._serializer = serializer or _wire.default()
        self._inbox_name = inbox
        self._outbox_name = outbox
        self._inbox = dask_queue(inbox) if inbox else None
        self._outbox = dask_queue(outbox) if outbox else None
        self._writers = dask_queue(f"{outbox}-writers") if outbox else None
        if self._writers is not None and _count:
            self._writers.put(1)
        self._pending: collections.deque[bytes] = collections.deque(_pending)
        self._eof = _eof
        self._in_flight = False  # the read-ahead thread waits in a get
        self._closed = False
        self._reader: threading.Thread | None = None
        self._ready_r = self._ready_w = -1
        self._guard = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        if self._closed:
            raise OSError("handle is closed")
        writers = self._writers
        if writers is not None:  # the copy: counted before this end may close
            _wire.once_pickled(self, lambda: writers.put(1))
        return _attach, (
            self._inbox_name,
            self._outbox_name,
            tuple(self._pending),
            self._eof,
            self._serializer,
        )

    # -- state ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return self._inbox is not None

    @property
    def writable(self) -> bool:
        return self._outbox is not None

    def _check(self, reading: bool) -> None:
        if self._closed:
            raise OSError("handle is closed")
        if reading and self._inbox is None:
            raise OSError("connection is write-only")
        if not reading and self._outbox is None:
            raise OSError("connection is read-only")

    # -- sending ----------------------------------------------------------------

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        self._check(reading=False)
        view = memoryview(buf).cast("B")
        if offset < 0 or offset > len(view):
            raise ValueError("offset is negative or too large")
        if size is None:
            size = len(view) - offset
        if size < 0 or offset + size > len(view):
            raise ValueError("size is negative or buffer too small")
        assert self._outbox is not None
        self._outbox.put(b"m" + bytes(view[offset : offset + size]))

    def send(self, obj: Any) -> None:
        self.send_bytes(_wire.dumps(obj, self._serializer))

    # -- receiving ---------------------------------------------------------------

    def _fetch(self, timeout: float | None) -> bool:
        """Have a message (or EOF) in ``_pending`` within ``timeout``; False if none came."""
        if self._pending or self._eof:
            return True
        if self._reader is not None:
            self._look()
            if not (self._pending or self._eof):
                self._reader_has(timeout)
            return bool(self._pending) or self._eof
        assert self._inbox is not None
        try:
            data = _sliced.get(self._inbox, timeout)
        except TimeoutError:
            return False
        self._take(data)
        return True

    def _take(self, data: bytes) -> None:
        if data == EOF_MARK:
            self._eof = True
        else:
            self._pending.append(data[1:])

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._check(reading=True)
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        self._fetch(None)
        if not self._pending:
            raise EOFError
        if maxlength is not None and len(self._pending[0]) > maxlength:
            self._pending.popleft()
            self.close()
            raise OSError("bad message length")
        data = self._pending.popleft()
        self._settle()
        return data

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        self._check(reading=True)
        view = memoryview(buf).cast("B")
        if offset < 0 or offset > len(view):
            raise ValueError("negative offset or offset too large")
        self._fetch(None)
        if not self._pending:
            raise EOFError
        data = self._pending[0]
        if len(data) > len(view) - offset:
            from procframe import BufferTooShort

            self._pending.popleft()
            self._settle()
            raise BufferTooShort(data)
        view[offset : offset + len(data)] = data
        self._pending.popleft()
        self._settle()
        return len(data)

    def recv(self) -> Any:
        return pickle.loads(self.recv_bytes())

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check(reading=True)
        if timeout is not None:
            timeout = max(float(timeout), NOW)
        return self._fetch(timeout)

    # -- fileno: a read-ahead thread and a local pipe ------------------------------

    def fileno(self) -> int:
        """A descriptor readable while a message (or EOF) waits here.

        Looks at the cluster once before it returns (``connection.wait`` calls it first):
        a message sent before the call makes it readable at once.
        """
        self._check(reading=False) if self._inbox is None else self._check(reading=True)
        with self._guard:
            if self._reader is None:
                self._ready_r, self._ready_w = os.pipe()
                os.set_blocking(self._ready_r, False)
                self._cond = threading.Condition()
                self._look()
                self._settle()  # what a poll() fetched before counts too
                self._reader = threading.Thread(
                    target=self._read_ahead, name=f"{self._inbox_name}-read-ahead", daemon=True
                )
                self._reader.start()
                return self._ready_r
        self._look()
        return self._ready_r

    def _look(self) -> None:
        """One look for a message on the cluster, without waiting for one to be sent."""
        with self._cond:
            if self._pending or self._eof or self._closed or self._inbox is None:
                return
            if self._in_flight:  # its get is first in line: what was sent goes to it
                self._cond.wait_for(lambda: not self._in_flight, IN_FLIGHT_WAIT)
                return
            try:
                data = self._inbox.get(timeout=NOW)
            except TimeoutError:
                return
            except Exception:  # the cluster is gone: a recv will say so
                return
            self._take(data)
            self._settle()

    def _read_ahead(self) -> None:
        assert self._inbox is not None
        while not self._closed and not self._eof:
            with self._cond:
                self._in_flight = True
            try:
                data = self._inbox.get(timeout=READ_AHEAD_POLL)
            except TimeoutError:
                data = None
            except Exception:  # the cluster went away: nothing more will come
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()
                break
            with self._cond:
                self._in_flight = False
                if data is not None:
                    self._take(data)
                    self._settle()
                self._cond.notify_all()

    def _reader_has(self, timeout: float | None) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._eof or self._closed, timeout)

    def _settle(self) -> None:
        """Make the local pipe readable exactly while something waits (fileno's promise)."""
        if self._ready_w < 0:
            return
        try:
            while os.read(self._ready_r, 4096):
                pass
        except BlockingIOError:
            pass
        if self._pending or self._eof:
            os.write(self._ready_w, b"x")

    # -- closing --------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writers is not None and self._outbox is not None:
            try:
                self._writers.get(timeout=NOW)
                if self._writers.qsize() == 0:
                    self._outbox.put(EOF_MARK)
            except Exception:  # the cluster is gone: nobody is left to read
                pass
        if self._reader is not None:
            self._reader.join(READ_AHEAD_POLL * 5)
            os.close(self._ready_r)
            os.close(self._ready_w)
            self._ready_r = self._ready_w = -1

    def __enter__(self) -> DaskConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DaskConnection in={self._inbox_name} out={self._outbox_name}>"


def _attach(
    inbox: str | None,
    outbox: str | None,
    pending: tuple[bytes, ...] = (),
    eof: bool = False,
    serializer: str | None = None,
) -> DaskConnection:
    return DaskConnection(
        inbox, outbox, _count=False, _pending=pending, _eof=eof, serializer=serializer
    )


def make_pipe(duplex: bool, serializer: str | None = None) -> tuple[DaskConnection, DaskConnection]:
    """Two connected ends; with ``duplex=False`` the first receives and the second sends.
    ``serializer``: what pickles what they send (see :mod:`procframe_dask._wire`)."""
    name = new_name("pipe")
    s = serializer
    if duplex:
        a, b = f"{name}-ab", f"{name}-ba"
        return DaskConnection(b, a, serializer=s), DaskConnection(a, b, serializer=s)
    return DaskConnection(name, None, serializer=s), DaskConnection(None, name, serializer=s)

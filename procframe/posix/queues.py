"""``Queue``, ``SimpleQueue`` and ``JoinableQueue`` between processes.

Items travel as atomic packets (:mod:`procframe.posix.channel`): no reader or
writer lock, and no half item left behind by a process killed mid-``put`` or
mid-``get``.  The semaphores that count items and bound the queue are the
context's (``ctx.Semaphore``, ``ctx.BoundedSemaphore``).  ``put`` pickles in
the caller (an unpicklable item fails there, not later in a thread) and writes
at once; only when the kernel's buffer is full do items wait in the process,
sent on by the next ``put`` or by a feeder thread as readers catch up.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections import deque
from pickle import loads
from queue import Empty, Full

from procframe._core import checks, messages, process, serializing
from procframe._core.generic import Generic, T
from procframe.posix.channel import Channel
from procframe.posix.synchronize import RobustCondition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context
    from procframe.posix.channel import Incoming, Outgoing

__all__ = ["Empty", "Full", "JoinableQueue", "Queue", "SimpleQueue"]

_FEEDER_BATCH_DELAY = 0.0005
_PUTTER_ACTIVE = 0.002
"""Seconds since the last held put during which the putting thread counts as busy."""
_FEEDER_POLL = 0.1
"""Seconds the feeder sleeps at most between checks of a full queue (and of close)."""
FLUSH_WARNING_DELAY = 5.0
"""Seconds a process waits at exit for readers of its queued items before it says so."""


class SimpleQueue(Generic[T]):
    """A queue with no size and no thread: ``put`` writes (and may block), ``get`` reads."""

    def __init__(self, *, ctx: Context | None = None) -> None:
        self._channel = Channel()
        self._closed = False
        self._pickle = serializing.of(None if ctx is None else ctx.serializer).dumps

    def put(self, obj: T) -> None:
        """Put ``obj``; an unpicklable one raises here."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        self._channel.send(messages.dumps(obj, self._channel.inline_max, False, self._pickle))

    def get(self) -> T:
        """Remove and return an item, waiting for one."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        data = self._channel.receive(None)
        assert data is not None  # no timeout: receive() waits for an item
        return _load(data)  # type: ignore[no-any-return]

    def empty(self) -> bool:
        """True if no item is waiting (a snapshot)."""
        return not self._channel.readable(0.0)

    def close(self) -> None:
        """Close the queue in this process."""
        if not self._closed:
            self._closed = True
            self._channel.close_reader()
            self._channel.close_writer()

    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return {"_channel": self._channel, "_closed": False, "_pickle": self._pickle}

    def __repr__(self) -> str:
        return f"<procframe SimpleQueue{' closed' if self._closed else ''}>"


class Queue(Generic[T]):
    """A FIFO queue between processes (the API of ``multiprocessing.Queue``)."""

    # ``ctx`` is optional only for type checkers, which see ``procframe.Queue`` as this class
    # (as typeshed shows ``multiprocessing.Queue``): ``procframe.Queue()`` passes its context.
    def __init__(self, maxsize: int = 0, *, ctx: Context | None = None) -> None:
        if ctx is None:
            raise TypeError(
                f"{type(self).__name__}() needs ctx=, the context that makes its semaphores: "
                f"make one with procframe.{type(self).__name__}() or a context's"
            )
        self._maxsize = maxsize if maxsize > 0 else 0
        self._pickle = serializing.of(ctx.serializer).dumps
        self._channel = Channel()
        self._slots = ctx.BoundedSemaphore(maxsize) if maxsize > 0 else None
        self._count = ctx.Semaphore(0)
        self._setup_local()

    def _setup_local(self) -> None:
        """The per-process part: items waiting to be sent, and the feeder sending them."""
        self._closed = False
        self._pending: deque[Outgoing] = deque()
        self._pending_lock = threading.Lock()
        self._feeder: threading.Thread | None = None
        self._last_hold = 0.0
        self._cancel_join = False
        _live_queues.add(self)

    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return {
            "_maxsize": self._maxsize,
            "_pickle": self._pickle,
            "_channel": self._channel,
            "_slots": self._slots,
            "_count": self._count,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_local()

    # -- putting ---------------------------------------------------------------

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj``; ``queue.Full`` if the queue stays full past ``timeout``.

        An unpicklable object raises its pickling error here, in the caller.
        """
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if timeout is not None:
            timeout = checks.wait_timeout(timeout)
        data = messages.dumps(obj, self._channel.inline_max, False, self._pickle)
        if self._slots is not None and not self._slots.acquire(block, timeout):
            raise Full
        self._count.release()
        if not self._pending:
            rest = self._channel.send_now(data)
            if rest is None:
                return
            self._hold(rest)
            return
        self._hold(data)

    def put_nowait(self, obj: T) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def _hold(self, item: Outgoing) -> None:
        """Queue ``item`` behind the items already held, and send what fits now.

        The putting thread does the sending while it can, so items flow as fast as
        readers take them; the feeder thread only finishes the job once puts stop.
        """
        with self._pending_lock:
            self._pending.append(item)
            self._last_hold = time.monotonic()
            self._drain()
            if self._pending and self._feeder is None:
                self._feeder = threading.Thread(
                    target=self._feed, name="procframe-queue-feeder", daemon=True
                )
                self._feeder.start()
                process.on_exit_before_services(self._flush_at_exit)

    def _drain(self) -> None:
        """Send held items until the queue is full (the caller holds ``_pending_lock``)."""
        pending = self._pending
        send_now = self._channel.send_now
        while pending:
            rest = send_now(pending[0])  # removed only once sent: the order is kept
            if rest is not None:
                pending[0] = rest
                return
            pending.popleft()

    def _feed(self) -> None:
        """Send the held items as readers make room, until none are left."""
        channel = self._channel
        while True:
            pending = self._pending
            channel.wait_writable(_FEEDER_POLL, pending[0] if pending else b"")
            # While a thread keeps putting, it sends held items itself; stay out of its
            # way (taking the GIL from it on every write would slow it down tenfold).
            # Once it stops, and between wake-ups, let readers empty more of the
            # buffer, so that one wake-up sends many items.
            time.sleep(_FEEDER_BATCH_DELAY)
            if time.monotonic() - self._last_hold < _PUTTER_ACTIVE:
                continue
            with self._pending_lock:
                if channel.writer_closed:  # closed: nobody can read them any more
                    self._pending.clear()
                if not self._pending:
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

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item; ``queue.Empty`` if none comes within ``timeout``."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if timeout is not None:
            timeout = checks.wait_timeout(timeout)
        data = self._channel.receive(timeout if block else 0.0)
        if data is None:
            raise Empty
        self._count.acquire(False)
        if self._slots is not None:
            self._slots.release()
        return _load(data)  # type: ignore[no-any-return]

    def get_nowait(self) -> T:
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
        self._channel.close_reader()
        with self._pending_lock:
            idle = self._feeder is None
        if idle:
            self._channel.close_writer()
        else:
            threading.Thread(target=self._close_after_flush, daemon=True).start()

    def _close_after_flush(self) -> None:
        feeder = self._feeder
        if feeder is not None:
            feeder.join()
        self._channel.close_writer()

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


class JoinableQueue(Queue[T]):
    """A Queue whose consumers call ``task_done()`` and whose ``join()`` waits for all of them."""

    def __init__(self, maxsize: int = 0, *, ctx: Context | None = None) -> None:
        super().__init__(maxsize, ctx=ctx)
        assert ctx is not None  # Queue.__init__ refused None
        self._unfinished = ctx.Semaphore(0)
        self._cond = RobustCondition()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_unfinished"] = self._unfinished
        state["_cond"] = self._cond
        return state

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
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


_live_queues: weakref.WeakSet[Queue[Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # The feeder thread did not survive the fork, and the held items are the parent's.
    for queue in list(_live_queues):
        closed = queue._closed
        queue._setup_local()
        queue._closed = closed


os.register_at_fork(after_in_child=_reset_after_fork)


def _load(data: Incoming) -> Any:
    """The object of an item received: a pickle, or a slab's descriptor."""
    return loads(data) if type(data) is bytes else messages.loads(data)  # type: ignore[arg-type]

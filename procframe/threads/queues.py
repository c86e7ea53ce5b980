"""``Queue``, ``JoinableQueue`` and ``SimpleQueue`` on ``queue.Queue``: nothing is pickled.

An item put is the very object ``get`` returns, shared by the threads, not a
copy (as in ``multiprocessing.dummy``): changing it after ``put`` changes what
the reader sees.  A Connection put arrives as a handle of its own
(:func:`~procframe.threads.connection.handed_over`).  ``close()`` closes the
queue for the calling process only, as in ``multiprocessing``: a process run
by a thread that closes a queue before it ends leaves it open for the others.
"""

from __future__ import annotations

import queue
import weakref
from queue import Empty, Full

from procframe._core import checks
from procframe._core.generic import Generic, T
from procframe._core.process import current_process
from procframe.threads._shared import Shared
from procframe.threads.connection import handed_over

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Empty", "Full", "JoinableQueue", "Queue", "SimpleQueue"]


class _ClosedPerProcess(Shared):
    """A queue that each process closes for itself."""

    __slots__ = ("__weakref__", "_closed_in")

    def __init__(self) -> None:
        self._closed_in: weakref.WeakSet[Any] = weakref.WeakSet()

    def _check_open(self) -> None:
        if self._closed_in and current_process() in self._closed_in:
            raise ValueError(f"{self!r} is closed")

    def _closed_here(self) -> bool:
        return current_process() in self._closed_in

    def close(self) -> None:
        """Close the queue for the calling process: its ``put`` and ``get`` raise ValueError."""
        self._closed_in.add(current_process())


class SimpleQueue(_ClosedPerProcess, Generic[T]):
    """An unbounded FIFO: ``put``, ``get``, ``empty`` and ``close``."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        super().__init__()
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()

    def put(self, obj: T) -> None:
        """Put ``obj`` (the object itself, not a copy)."""
        self._check_open()
        self._queue.put(handed_over(obj))

    def get(self) -> T:
        """Remove and return an item, waiting for one."""
        self._check_open()
        return self._queue.get()

    def empty(self) -> bool:
        """True if no item is waiting (a snapshot)."""
        return self._queue.empty()

    def __repr__(self) -> str:
        return f"<procframe threads SimpleQueue{' closed' if self._closed_here() else ''}>"


class Queue(_ClosedPerProcess, Generic[T]):
    """A FIFO with the API of ``multiprocessing.Queue``; ``maxsize > 0`` bounds it."""

    __slots__ = ("_maxsize", "_queue")

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__()
        self._maxsize = maxsize if maxsize > 0 else 0
        self._queue: queue.Queue[T] = queue.Queue(self._maxsize)

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj``; ``queue.Full`` if the queue stays full past ``timeout``."""
        self._check_open()
        item = handed_over(obj)
        try:
            self._queue.put(item, block, checks.wait_timeout(timeout))
        except BaseException:
            if item is not obj:
                item.close()
            raise

    def put_nowait(self, obj: T) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item; ``queue.Empty`` if none comes within ``timeout``."""
        self._check_open()
        return self._queue.get(block, checks.wait_timeout(timeout))

    def get_nowait(self) -> T:
        """``get(False)``."""
        return self.get(False)

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self._queue.qsize()

    def empty(self) -> bool:
        """True if no item is waiting (a snapshot)."""
        return self._queue.empty()

    def full(self) -> bool:
        """True if a bounded queue has no room (a snapshot)."""
        return self._queue.full()

    def join_thread(self) -> None:
        """Return at once (no feeder thread: a put item is in the queue); after ``close()``."""
        if not self._closed_here():
            raise ValueError("join_thread() is only allowed after close()")

    def cancel_join_thread(self) -> None:
        """Accepted: there is never anything left to send at exit."""

    def __repr__(self) -> str:
        state = " closed" if self._closed_here() else ""
        size = f" maxsize={self._maxsize}" if self._maxsize else ""
        return f"<procframe threads {type(self).__name__}{size}{state}>"


class JoinableQueue(Queue[T]):
    """A Queue whose consumers call ``task_done()`` and whose ``join()`` waits for all of them."""

    __slots__ = ()

    def task_done(self) -> None:
        """Mark one item taken with ``get()`` as processed."""
        self._queue.task_done()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        self._queue.join()

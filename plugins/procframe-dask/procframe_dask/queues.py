"""Queue, SimpleQueue and JoinableQueue on the cluster: a ``distributed.Queue`` each.

Items cross as bytes made in the caller as procframe pickles a message
(:mod:`procframe_dask._wire`: an item refused fails in ``put``, and lambdas travel);
the scheduler keeps them, bounded by ``maxsize``, and ``put``/``get`` wait there
(``get`` in slices, so that a process killed while it waits leaves no get behind to
swallow the next item: :mod:`procframe_dask._sliced`), so ``queue.Full``/``queue.Empty``
come after the timeout wherever the processes run.
There is no feeder thread: ``put`` has returned once the item is on the cluster,
which makes ``close``/``join_thread`` bookkeeping only.
"""

from __future__ import annotations

import queue
from typing import Any

import procframe.queues
from procframe_dask import _sliced, _wire
from procframe_dask._objects import (
    dask_queue,
    loads,
    new_name,
    refuse_unless_spawning,
    timeout_of,
)
from procframe_dask.sync import DaskLock, _Cell


class DaskQueue:
    """``multiprocessing.Queue`` whose items wait on the cluster's scheduler."""

    _kind = "queue"

    def __init__(
        self, maxsize: int = 0, _name: str | None = None, *, serializer: str | None = None
    ) -> None:
        """``serializer``: what pickles the items (see :mod:`procframe_dask._wire`)."""
        self._maxsize = maxsize if maxsize > 0 else 0
        self._name = _name or new_name(self._kind)
        self._serializer = serializer or _wire.default()
        self._queue = dask_queue(self._name, maxsize=self._maxsize)
        self._closed = False

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return type(self)._attach, (self._maxsize, self._name, self._serializer)

    @classmethod
    def _attach(cls, maxsize: int, name: str, serializer: str | None = None) -> Any:
        return cls(maxsize, _name=name, serializer=serializer)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self._check_open()
        data = _wire.dumps(obj, self._serializer)
        try:
            self._queue.put(data, timeout=timeout_of(block, timeout))
        except TimeoutError:
            raise queue.Full from None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self._check_open()
        try:
            data = _sliced.get(self._queue, timeout_of(block, timeout))
        except TimeoutError:
            raise queue.Empty from None
        return loads(data)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        return int(self._queue.qsize())

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    def close(self) -> None:
        """No more ``put``/``get`` from this handle (the items stay for other processes)."""
        self._closed = True

    def join_thread(self) -> None:
        if not self._closed:
            raise ValueError("Queue.join_thread() called before close()")

    def cancel_join_thread(self) -> None:
        """Nothing to cancel: each ``put`` has reached the cluster when it returns."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._name}, maxsize={self._maxsize})>"


class DaskSimpleQueue(DaskQueue):
    """``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty`` and ``close``."""

    _kind = "simplequeue"

    def __init__(
        self, maxsize: int = 0, _name: str | None = None, *, serializer: str | None = None
    ) -> None:
        super().__init__(0, _name, serializer=serializer)

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(obj)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return super().get()

    def close(self) -> None:
        self._closed = True


class DaskJoinableQueue(DaskQueue):
    """A Queue with ``task_done()`` and ``join()``: unfinished items counted on the cluster
    (in a state cell: one round trip to take the count, one to give it back, as a
    Condition's state); ``join`` waits for a Lock that is held while any item is
    unfinished."""

    _kind = "joinablequeue"

    def __init__(
        self, maxsize: int = 0, _name: str | None = None, *, serializer: str | None = None
    ) -> None:
        new = _name is None
        super().__init__(maxsize, _name, serializer=serializer)
        self._unfinished = _Cell(f"{self._name}-unfinished", {"count": 0}, new=new)
        self._all_done = DaskLock(_name=f"{self._name}-alldone", _new=new)

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self._check_open()
        data = _wire.dumps(obj, self._serializer)
        with self._unfinished as unfinished:
            if unfinished["count"] == 0:
                self._all_done.acquire()  # free while nothing is unfinished
            unfinished["count"] += 1
        try:
            self._queue.put(data, timeout=timeout_of(block, timeout))
        except TimeoutError:
            self._finish_one()
            raise queue.Full from None

    def _finish_one(self) -> None:
        with self._unfinished as unfinished:
            if unfinished["count"] <= 0:
                raise ValueError("task_done() called too many times")
            unfinished["count"] -= 1
            if unfinished["count"] == 0:
                self._all_done.release()

    def task_done(self) -> None:
        self._finish_one()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        self._all_done.acquire()
        self._all_done.release()


procframe.queues.Queue.register(DaskQueue)
procframe.queues.SimpleQueue.register(DaskSimpleQueue)
procframe.queues.JoinableQueue.register(DaskJoinableQueue)

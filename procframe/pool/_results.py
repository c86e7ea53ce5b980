"""What pool methods return: results to wait for, and iterators over results as they come.

A pool delivers each task's outcome with ``job._set(index, ok, value)``
(``value`` is the exception when ``ok`` is false), from its own thread.
Callbacks run there, as in ``multiprocessing``; one that raises is reported
on stderr and does not stop the pool.  A backend's own pool uses the public
names of the same protocol: :meth:`ApplyResult.deliver`, and for the
iterators :meth:`IMapIterator.deliver`, ``room``, ``note_submitted``,
``deliver_input_error``, ``set_length`` and ``chunksize``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from procframe._core.errors import TimeoutError
from procframe._core.generic import Generic, T

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_CTRL_C_SLICE = 0.25
"""Longest wait of the main thread between two looks for a pending Ctrl-C."""


def _wait_for(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)``; in the main thread, in slices, so that Ctrl-C is never missed.

    A SIGINT that lands just before the main thread blocks, or on another thread
    (a pool's own), does not interrupt the wait: it would take effect only when
    the result came.  Waking up now and then lets it raise ``KeyboardInterrupt``.
    """
    if threading.current_thread() is not threading.main_thread():
        return event.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is None:
            if event.wait(_CTRL_C_SLICE):
                return True
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return event.is_set()
        if event.wait(min(left, _CTRL_C_SLICE)):
            return True


def _run_callback(callback: Callable[[Any], object], value: Any) -> None:
    try:
        callback(value)
    except Exception:
        import traceback

        sys.stderr.write(f"procframe: exception in pool callback {callback!r}:\n")
        traceback.print_exc()


class ApplyResult(Generic[T]):
    """The result of ``apply_async``: ``get`` it, ``wait`` for it, ask if it is ``ready``."""

    def __init__(
        self,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._event = threading.Event()
        self._callback = callback
        self._error_callback = error_callback
        self._success = False
        self._value: Any = None

    def ready(self) -> bool:
        """True once the task has ended."""
        return self._event.is_set()

    def successful(self) -> bool:
        """True if the task returned without raising; ``ValueError`` if it has not ended."""
        if not self._event.is_set():
            raise ValueError(f"{self!r} not ready")
        return self._success

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the task has ended, or ``timeout`` seconds."""
        _wait_for(self._event, timeout)

    def get(self, timeout: float | None = None) -> T:
        """The task's result; re-raises its exception; ``TimeoutError`` after ``timeout``."""
        if not _wait_for(self._event, timeout):
            raise TimeoutError(f"the result was not ready within {timeout} seconds")
        if self._success:
            return self._value  # type: ignore[no-any-return]
        raise self._value

    def _set(self, index: int, ok: bool, value: Any) -> None:
        if self._event.is_set():
            return
        self._success, self._value = ok, value
        callback = self._callback if ok else self._error_callback
        if callback is not None:
            _run_callback(callback, value)
        self._event.set()

    def deliver(self, index: int, ok: bool, value: Any) -> None:
        """Deliver the outcome of task ``index`` (a chunk's list of results, or the
        exception when ``ok`` is false); callbacks run in the caller's thread."""
        self._set(index, ok, value)

    def _set_many(self, outcomes: list[tuple[int, bool, Any]]) -> None:
        for index, ok, value in outcomes:
            self._set(index, ok, value)

    def __repr__(self) -> str:
        state = ("successful" if self._success else "failed") if self.ready() else "pending"
        return f"<{type(self).__name__} {state}>"


AsyncResult = ApplyResult


class MapResult(ApplyResult[list[T]]):
    """The result of ``map_async``: one list, ready once every chunk has ended."""

    def __init__(
        self,
        length: int,
        chunksize: int,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None:
        super().__init__(callback, error_callback)
        self._list: list[Any] = [None] * length  # filled chunk by chunk as they end
        self._chunksize = chunksize
        self._left = -(-length // chunksize) if length else 0
        self._lock = threading.Lock()
        if not length:
            super()._set(0, True, [])

    def _set(self, index: int, ok: bool, value: Any) -> None:
        if not ok:
            super()._set(index, False, value)  # the first error ends the map
            return
        start = index * self._chunksize
        with self._lock:
            self._list[start : start + len(value)] = value
            self._left -= 1
            done = self._left == 0
        if done:
            super()._set(index, True, self._list)


class IMapIterator(Iterator[T]):
    """The iterator ``imap`` returns: results in input order, as they come.

    The pool's feeder reads the input only ``ahead`` chunks beyond what has
    been consumed (:meth:`_room`), so an endless input works.
    """

    _ordered = True

    def __init__(self, ahead: int = 1 << 62) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the consumer waits here for results
        self._room_cond = threading.Condition(lock)  # the feeder waits here for room
        self._ahead = ahead
        self._arrived: dict[int, tuple[bool, Any]] = {}
        self._unordered: deque[tuple[bool, Any]] = deque()
        self._items: deque[T] = deque()
        self._consumed = 0
        self._submitted = 0
        self._chunks: int | None = None  # known once the input is exhausted
        self._input_error: BaseException | None = None  # raised after the chunks before it
        self._chunks_before_error = 0
        self._chunksize = 1  # of the pool's tasks (for the messages of its errors)

    def __iter__(self) -> IMapIterator[T]:
        return self

    def next(self, timeout: float | None = None) -> T:
        """The next result; ``TimeoutError`` if none comes within ``timeout``."""
        items = self._items
        if items:  # the common case, without the lock
            try:
                return items.popleft()
            except IndexError:  # another thread took it
                pass
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._items:
                    return self._items.popleft()
                chunk = self._take_chunk()
                if chunk is not None:
                    ok, value = chunk
                    self._consumed += 1
                    if self._submitted - self._consumed == self._ahead // 2:
                        self._room_cond.notify()  # refill half the window in one go
                    if not ok:
                        raise value
                    self._items.extend(value)
                    continue
                if self._input_error is not None and self._consumed == self._chunks_before_error:
                    error, self._input_error = self._input_error, None
                    self._consumed += 1
                    raise error
                if self._chunks is not None and self._consumed >= self._chunks:
                    raise StopIteration
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no result came within {timeout} seconds")
                self._cond.wait(remaining)

    __next__ = next

    def _take_chunk(self) -> tuple[bool, Any] | None:
        if self._ordered:
            return self._arrived.pop(self._consumed, None)
        return self._unordered.popleft() if self._unordered else None

    def _room(self, timeout: float) -> int:
        """How many more chunks the feeder may submit now (0 if none after ``timeout``)."""
        with self._cond:
            if self._submitted - self._consumed >= self._ahead:
                self._room_cond.wait(timeout)
            return max(0, self._ahead - (self._submitted - self._consumed))

    def _note_submitted(self, chunks: int) -> None:
        with self._cond:
            self._submitted += chunks

    def _set(self, index: int, ok: bool, value: Any) -> None:
        self._set_many([(index, ok, value)])

    def _set_many(self, outcomes: list[tuple[int, bool, Any]]) -> None:
        with self._cond:
            if self._ordered:
                for index, ok, value in outcomes:
                    self._arrived[index] = (ok, value)
            else:
                self._unordered.extend((ok, value) for _, ok, value in outcomes)
            self._cond.notify()

    def _set_input_error(self, index: int, error: BaseException) -> None:
        """Reading the input raised ``error`` after ``index`` chunks: it is the last outcome,
        raised once the results of those chunks have been taken."""
        with self._cond:
            self._submitted += 1
            self._input_error = error
            self._chunks_before_error = index
            self._chunks = index + 1
            self._cond.notify()

    def _set_length(self, chunks: int) -> None:
        """The input is exhausted: there are ``chunks`` chunks in all."""
        with self._cond:
            self._chunks = chunks
            self._cond.notify()

    # -- the same protocol, for a backend's own pool ---------------------------------------

    def deliver(self, index: int, ok: bool, value: Any) -> None:
        """Deliver the outcome of chunk ``index`` (its list of results, or the exception when
        ``ok`` is false)."""
        self._set(index, ok, value)

    def room(self, timeout: float) -> int:
        """How many more chunks the pool may submit now (0 if none after ``timeout``)."""
        return self._room(timeout)

    def note_submitted(self, chunks: int) -> None:
        """``chunks`` more chunks were submitted."""
        self._note_submitted(chunks)

    def deliver_input_error(self, index: int, error: BaseException) -> None:
        """Reading the input raised ``error`` after ``index`` chunks (the last outcome)."""
        self._set_input_error(index, error)

    def set_length(self, chunks: int) -> None:
        """The input is exhausted: there are ``chunks`` chunks in all."""
        self._set_length(chunks)

    @property
    def chunksize(self) -> int:
        """Items per chunk (for the messages of errors that name an item)."""
        return self._chunksize

    @chunksize.setter
    def chunksize(self, value: int) -> None:
        self._chunksize = value


class IMapUnorderedIterator(IMapIterator[T]):
    """The iterator ``imap_unordered`` returns: results as they come."""

    _ordered = False

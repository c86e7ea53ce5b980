"""``ProcessPoolExecutor``: ``concurrent.futures`` on procframe's process pool.

A drop-in for ``concurrent.futures.ProcessPoolExecutor`` whose workers are a
:class:`procframe.pool.Pool` on any backend (``mp_context``: a procframe
context; the default backend's when ``None``).  It differs from the standard
one where the standard one breaks:

* A worker that dies (killed, crashed, ``os._exit``) fails only the future it
  was running, with :class:`procframe.futures.WorkerLostError` (a
  ``procframe.pool.WorkerLostError`` that is also the
  ``concurrent.futures.process.BrokenProcessPool`` the standard executor
  raises); a new worker takes its place and the executor goes on.  The
  standard executor fails every pending future and refuses new ones.
* An ``initializer`` that raises fails the futures with
  :class:`procframe.futures.BrokenPoolError` (also a ``BrokenProcessPool``).
* ``max_tasks_per_child`` works with every backend, ``fork`` included.

A future is *pending* (``cancel()`` succeeds, and the call never runs) until
the executor hands it to the pool, and it does that only when a worker is free
for it: at most ``max_workers`` calls are in the pool at a time, the others
wait in the executor.  From then on the future is *running* and cannot be
cancelled.  (The standard executor also marks one call beyond ``max_workers``
running, queued for the next free worker.)  ``shutdown(cancel_futures=True)``
cancels the futures still waiting in the executor.

Exceptions raised by a call come back with their type and message, their
``__cause__`` a :class:`procframe.pool.RemoteTraceback` that shows the
worker's traceback; a ``SystemExit`` too, as in the standard executor.  A
call or result that cannot be pickled (or unpickled) fails its future with
the exception pickle raised, as the standard executor does; a note says
which part of the call it was.

The two error classes above are made when first needed: their base class
comes from ``concurrent.futures.process``, which imports the standard
``multiprocessing``, and procframe imports it only when a worker is lost or
the pool breaks.

The pool's processes start at the first ``submit``.  An executor dropped
without ``shutdown`` finishes the work it was given, then its workers exit;
at interpreter exit, every executor waits for its work, as the standard one
does.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from procframe._core import process

if TYPE_CHECKING:
    from typing import ParamSpec

    from procframe.pool import Pool

    P = ParamSpec("P")

__all__ = ["ProcessPoolExecutor"]

T = TypeVar("T")


class _WorkItem:
    """A submitted call waiting in the executor for a free worker."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs


_in_callback = threading.local()
"""Set while a future is being completed (its done-callbacks run then)."""


class _Dispatcher:
    """What an executor's pool calls back into: the queue of calls and the pool.

    Kept apart from the executor so that an executor dropped with work in
    flight can be collected: its pool's pending results hold this, not it.
    """

    def __init__(
        self,
        ctx: Any,
        workers: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        max_tasks: int | None,
    ) -> None:
        self._ctx = ctx
        self._workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._queue: deque[_WorkItem] = deque()
        self._in_pool = 0  # calls handed to the pool that have not ended
        self._pumping = False  # a thread is handing calls to the pool
        self._pool: Pool | None = None
        self.shut_down = False  # no new calls
        self._closed = threading.Event()  # the pool was told to close (or never started)

    # -- submitting -----------------------------------------------------------

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self.shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _exiting:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            if self._pool is None:
                self._pool = self._start_pool()
            self._queue.append(_WorkItem(future, fn, args, kwargs))
        self._pump()
        return future

    def _start_pool(self) -> Pool:
        pool: Pool = self._ctx.Pool(
            self._workers, self._initializer, self._initargs, self._max_tasks
        )
        _live.add(self)
        _wait_at_exit()  # registered after the pool's exit step, so that it runs first
        return pool

    def _pump(self) -> None:
        """Hand queued calls to the pool while a worker is free; close it once shut down.

        One thread pumps at a time; a thread that finds another at it leaves
        the work to that one (which looks again before it stops).
        """
        with self._lock:
            if self._pumping:
                return
            self._pumping = True
        while True:
            item = None
            close = False
            with self._lock:
                pool = self._pool
                if self._queue and self._in_pool < self._workers:
                    item = self._queue.popleft()
                    self._in_pool += 1
                elif self.shut_down and not self._queue and not self._closed.is_set():
                    close = True
                else:
                    self._pumping = False
                    return
            if close:
                if pool is not None:
                    pool.close()
                self._closed.set()
            else:
                assert item is not None and pool is not None  # a queued call implies a pool
                self._hand_over(pool, item)

    def _hand_over(self, pool: Pool, item: _WorkItem) -> None:
        future = item.future
        if not future.set_running_or_notify_cancel():  # cancelled while it waited
            self._release()
            return
        try:
            pool.apply_async(
                item.fn,
                item.args,
                item.kwargs,
                callback=lambda value: self._settle(future, True, value),
                error_callback=lambda error: self._settle(future, False, error),
            )
        except Exception as e:  # the pool is not running (terminated at exit)
            error = _broken_types()["BrokenPoolError"](
                f"the executor's pool cannot take the call: {e}"
            )
            error.__cause__ = e
            self._settle(future, False, error)

    def _release(self) -> None:
        with self._lock:
            self._in_pool -= 1

    def _settle(self, future: Future[Any], ok: bool, value: Any) -> None:
        """A call ended (in the pool's thread, or in ``_hand_over``'s): free its place, pass
        the next call on, then complete its future."""
        self._release()
        self._pump()
        outer = getattr(_in_callback, "active", False)  # (a done-callback may submit)
        _in_callback.active = True
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(_as_executor_error(value))
        finally:
            _in_callback.active = outer

    # -- ending ---------------------------------------------------------------

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self.shut_down = True
            cancelled: list[_WorkItem] = []
            if cancel_futures:
                cancelled = list(self._queue)
                self._queue.clear()
            if self._pool is None:
                self._closed.set()
        for item in cancelled:
            item.future.cancel()
        self._pump()
        if wait:
            if getattr(_in_callback, "active", False):
                raise RuntimeError(
                    "shutdown(wait=True) cannot wait from a future's done-callback: "
                    "the callback runs in the thread that completes the futures"
                )
            self._closed.wait()
            if self._pool is not None:
                self._pool.join()
                self._pool.terminate()  # nothing left to stop: this only lets the pool go

    def abandon(self) -> None:
        """The executor was dropped: finish the work, then let the workers go."""
        if os.getpid() == self._owner:
            self.shutdown(wait=False, cancel_futures=False)

    def at_exit(self) -> None:
        if os.getpid() == self._owner:
            self.shutdown(wait=True, cancel_futures=False)


_live: weakref.WeakSet[_Dispatcher] = weakref.WeakSet()
_exiting = False
_exit_handler_installed = False
_exit_lock = threading.Lock()


def _wait_at_exit() -> None:
    global _exit_handler_installed
    with _exit_lock:
        if not _exit_handler_installed:
            process.run_first_at_exit(_finish_all_at_exit)
            _exit_handler_installed = True


def _finish_all_at_exit() -> None:
    global _exiting
    _exiting = True
    for dispatcher in list(_live):
        dispatcher.at_exit()


class ProcessPoolExecutor(Executor):
    """Run calls in a pool of worker processes: ``concurrent.futures.ProcessPoolExecutor``.

    ``max_workers`` processes (default: ``os.process_cpu_count()`` where
    Python has it, else ``os.cpu_count()``, as the standard executor) of
    backend ``mp_context``: a procframe context, the default backend's when
    ``None``; a ``multiprocessing`` context stands for procframe's backend of
    the same name.  Each worker runs ``initializer(*initargs)`` first, and is
    replaced after ``max_tasks_per_child`` calls if that is set.

    ``cancel()`` succeeds while the future waits in the executor for a free
    worker: at most ``max_workers`` calls are handed to the pool at a time,
    and a call is marked running when it is handed over.  A cancelled call
    never runs.  A worker that dies fails only its call's future, with
    ``WorkerLostError`` (a ``BrokenProcessPool``); the executor keeps working.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        if max_workers is None:
            count = getattr(os, "process_cpu_count", os.cpu_count)()
            max_workers = count or 1
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._max_workers = max_workers
        self._mp_context = _as_procframe_context(mp_context)
        self._dispatcher = _Dispatcher(
            self._mp_context, max_workers, initializer, tuple(initargs), max_tasks_per_child
        )
        # Dropped without shutdown(): finish the work given, as the standard executor does.
        finalizer = weakref.finalize(self, self._dispatcher.abandon)
        finalizer.atexit = False  # at exit, _finish_all_at_exit waits instead

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; its future."""
        return self._dispatcher.submit(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``fn`` over ``zip(*iterables)``: the results, in order.

        Calls go to the workers ``chunksize`` at a time (one task each).
        ``timeout`` counts from this call: a result not ready by then raises
        ``TimeoutError``.  The input is read at once, as by the standard
        executor, unless ``buffersize`` is set (as in Python 3.14): then only
        that many tasks are submitted ahead of the results consumed, and an
        endless input works.  Leaving the results early cancels the tasks
        that have not started.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None:
            if not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        end = None if timeout is None else time.monotonic() + timeout
        arguments = zip(*iterables, strict=False)  # as long as the shortest, as map()
        calls: Iterator[tuple[Any, ...]]
        if chunksize == 1:
            calls = ((fn, *args) for args in arguments)
        else:
            calls = ((_run_chunk, fn, chunk) for chunk in _chunks(arguments, chunksize))
        if buffersize is None:
            submitted = deque(self.submit(*call) for call in calls)
            more: Iterator[tuple[Any, ...]] | None = None
        else:
            submitted = deque(self.submit(*call) for call in itertools.islice(calls, buffersize))
            more = calls
        results = _results(self, submitted, more, end)
        return _flatten(results) if chunksize > 1 else results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; ``cancel_futures`` cancels those that have not started.

        ``wait`` waits for the calls left to end and the workers to exit.
        """
        self._dispatcher.shutdown(wait, cancel_futures)


def _results(
    executor: ProcessPoolExecutor,
    submitted: deque[Future[Any]],
    more: Iterator[tuple[Any, ...]] | None,
    end: float | None,
) -> Iterator[Any]:
    """The results of ``submitted`` in order, submitting one of ``more`` per result taken."""
    try:
        while submitted:
            if more is not None:
                call = next(more, None)
                if call is None:
                    more = None
                else:
                    submitted.append(executor.submit(*call))
            future = submitted.popleft()
            try:
                yield future.result(None if end is None else end - time.monotonic())
            finally:
                future.cancel()
                del future
    finally:
        for future in submitted:
            future.cancel()


def _flatten(chunks: Iterator[list[T]]) -> Iterator[T]:
    """The items of ``chunks`` (lists), each dropped once taken."""
    try:
        for chunk in chunks:
            chunk.reverse()
            while chunk:
                yield chunk.pop()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _chunks(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _run_chunk(fn: Callable[..., T], chunk: list[tuple[Any, ...]]) -> list[T]:
    """One task of ``map``: ``fn`` over a chunk of argument tuples (runs in a worker)."""
    return [fn(*args) for args in chunk]


def _as_executor_error(error: BaseException) -> BaseException:
    """What ``result()`` raises for ``error``, an outcome of the pool.

    As the standard executor: a lost worker or a broken pool is a
    ``BrokenProcessPool``; a call or a result that cannot cross raises what
    pickling raised; a ``SystemExit`` (any BaseException) of the call is
    raised as it is.  An exception the call raised itself has its worker's
    traceback as ``__cause__``: it is raised unchanged.
    """
    from procframe._core.errors import ProcessPicklingError, add_note
    from procframe.pool import (
        BrokenPoolError,
        MaybeEncodingError,
        RemoteTraceback,
        TaskAbortedError,
        WorkerLostError,
    )

    cause = error.__cause__
    if isinstance(cause, RemoteTraceback) or type(error) in _broken.values():
        return error
    if isinstance(error, WorkerLostError):
        lost = _broken_types()["WorkerLostError"](error.pid, error.exitcode)
        lost.__cause__ = cause
        return lost
    if isinstance(error, BrokenPoolError):
        broken = _broken_types()["BrokenPoolError"](*error.args)
        broken.__cause__ = cause
        return broken
    if isinstance(cause, BaseException):
        if isinstance(error, (ProcessPicklingError, MaybeEncodingError)):
            add_note(cause, f"procframe: {error}")
            return cause
        if isinstance(error, TaskAbortedError):
            return cause
    return error


_BROKEN_TYPES = ("BrokenPoolError", "WorkerLostError")
_broken: dict[str, type[Exception]] = {}
_broken_lock = threading.Lock()


def _broken_types() -> dict[str, type[Exception]]:
    """The executor's ``WorkerLostError`` and ``BrokenPoolError``: the pool's, which are also
    ``concurrent.futures.process.BrokenProcessPool``.

    Made on first use: importing that module imports the standard library's
    ``multiprocessing``, which procframe does only when a worker is lost or
    the pool breaks.
    """
    with _broken_lock:
        if not _broken:
            from concurrent.futures.process import BrokenProcessPool

            from procframe import pool

            class WorkerLostError(pool.WorkerLostError, BrokenProcessPool):
                """The worker running the call died: only this call failed, the executor goes
                on.  A ``BrokenProcessPool``, which the standard executor raises instead."""

            class BrokenPoolError(pool.BrokenPoolError, BrokenProcessPool):
                """The executor's pool cannot run calls (its initializer failed, or it was
                terminated): a ``BrokenProcessPool``, as in the standard executor."""

            for kind in (WorkerLostError, BrokenPoolError):
                kind.__module__ = __name__
                kind.__qualname__ = kind.__name__
                _broken[kind.__name__] = kind
        return _broken


def __getattr__(name: str) -> Any:
    """``WorkerLostError`` and ``BrokenPoolError``, made when first asked for."""
    if name in _BROKEN_TYPES:
        return _broken_types()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _as_procframe_context(mp_context: Any) -> Any:
    from procframe.context import Context, get_context

    if mp_context is None:
        return get_context()
    if isinstance(mp_context, Context):
        return mp_context
    if type(mp_context).__module__.partition(".")[0] == "multiprocessing":
        # A standard library context, from code written for the standard executor.
        return get_context(mp_context.get_start_method())
    return mp_context

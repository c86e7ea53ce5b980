"""The pool ``ctx.Pool()`` makes on the dask backend: ``multiprocessing.pool.Pool`` on a cluster.

Each apply, and each chunk of a map, is one Dask task on a worker of the
cluster (:mod:`procframe_dask._pool_engine`).  ``processes`` (default: the
cluster's worker threads when the pool is made) sizes a map's chunks and how
far an ``imap`` reads ahead; how many tasks run at once is the cluster's
business (its worker threads), as with ``client.map``.

* Functions, arguments, results and exceptions are pickled as procframe pickles a
  message, by cloudpickle where pickle cannot (lambdas, closures, local classes,
  functions of ``__main__``, which a worker cannot import); a memoryview stays one.
* A task's exception is raised by ``get()`` with its type and message, the
  worker's traceback its ``__cause__`` (:class:`procframe.pool.RemoteTraceback`).
* ``initializer(*initargs)`` runs once in each worker process, before the
  first task of the pool there; if it raises, the pool is broken
  (:class:`procframe.pool.BrokenPoolError`).
* A worker lost mid-task: Dask reruns the task on another worker, up to its
  ``distributed.scheduler.allowed-failures``; after that the task fails with
  :class:`procframe.pool.WorkerLostError`.  The pool goes on.  A task's result
  stays in its worker's memory until the pool fetches it: a worker that dies
  loses the results not fetched yet (and the tasks its other threads ran), and
  Dask runs those calls again.  Calls run at least once, not exactly once,
  where a worker dies.
* ``task_timeout``: a task running longer fails with
  :class:`procframe.pool.TaskTimeoutError`.  Dask workers run tasks in
  threads, which cannot be killed: the task is abandoned (an exception is
  raised in its thread) and its worker's slot freed.
* ``maxtasksperchild`` is refused: Dask workers are long-lived processes
  the pool does not own, so it cannot replace one after so many tasks.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import procframe.pool
from procframe import NotSupportedError
from procframe.pool import ApplyResult, IMapIterator, MapResult
from procframe.util import Finalize
from procframe_dask import _pool_task as task
from procframe_dask import cluster
from procframe_dask._pool_engine import RUNNING, TERMINATED, Engine

__all__ = ["ClusterPool"]

T = TypeVar("T")

MAP_CHUNKS_PER_WORKER = 4
"""Chunks per worker thread a ``map`` makes without a ``chunksize`` (as the standard library).

Each chunk costs a Dask task (a few milliseconds of scheduling), so fewer,
larger chunks than procframe's local pool makes."""
IMAP_AHEAD = 64
"""Chunks, per worker, an ``imap`` submits beyond what has been consumed."""
FEED_BATCH_WINDOW = 0.001
"""Seconds an ``imap`` goes on reading its input before it submits what it read."""


EXIT_PRIORITY = 15
"""The exit priority of terminating the pools left open (``multiprocessing.pool.Pool``'s)."""

_live: weakref.WeakSet[Engine] = weakref.WeakSet()
_exit_handler = False


def _terminate_all() -> None:
    for engine in list(_live):
        engine.terminate()


class ClusterPool(procframe.pool.Pool):
    """A pool whose tasks run on a Dask cluster, with the API of ``multiprocessing.pool.Pool``.

    A :class:`procframe.pool.Pool` for ``isinstance``; none of its machinery
    (worker processes, sockets) is used.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        task_timeout: float | None = None,
    ) -> None:
        global _exit_handler
        if processes is not None and (isinstance(processes, bool) or processes < 1):
            raise ValueError(f"Number of processes must be at least 1, got {processes!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, got {initializer!r}")
        if maxtasksperchild is not None:
            raise NotSupportedError(
                "maxtasksperchild is not available on the dask backend: a pool's tasks run in "
                "the cluster's long-lived worker processes, which it does not own and cannot "
                "replace after so many tasks. Leave it None (restart the workers with "
                "client.restart() if they leak), or use a local backend ('spawn') for it"
            )
        self._task_timeout = self._check_timeout(task_timeout)
        init = None
        if initializer is not None:
            init = task.dumps((initializer, tuple(initargs)))
        client = cluster.client()
        if processes is None:
            processes = max(1, sum(client.nthreads().values()))
        engine = Engine(client, processes, init)
        engine.task_timeout = self._task_timeout
        self._engine = engine
        self._finalizer = weakref.finalize(self, _terminate_in_background, engine)
        self._finalizer.atexit = False
        _live.add(engine)
        if not _exit_handler:
            # At exit, while the cluster's client still works (it closes last, at -1000):
            # after the executors have finished their work, before children are joined.
            Finalize(None, _terminate_all, exitpriority=EXIT_PRIORITY)
            _exit_handler = True

    @property
    def _processes(self) -> int:
        return self._engine.processes

    def _check_running(self) -> None:
        if self._engine.state != RUNNING:
            raise ValueError(f"Pool not running ({self._engine.state})")

    # -- one call ------------------------------------------------------------------------

    def apply(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> T:
        """``func(*args, **kwds)`` on a worker; its result, or its exception raised here."""
        self._check_running()
        timeout = self._check_timeout(timeout if timeout is not None else self._task_timeout)
        result: ApplyResult[T] = ApplyResult()
        body = (tuple(args), dict(kwds) if kwds else {})
        try:  # this thread waits for the outcome: one hop fewer than apply_async().get()
            self._engine.submit(result, task.APPLY, func, [(0, body)], timeout, here=True)
        except KeyboardInterrupt:
            self._interrupted()
            raise
        return self._wait(result)

    def apply_async(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        timeout: float | None = None,
    ) -> ApplyResult[T]:
        """Run ``func(*args, **kwds)`` on a worker; ``timeout`` (seconds) fails it when over."""
        self._check_running()
        timeout = self._check_timeout(timeout if timeout is not None else self._task_timeout)
        result: ApplyResult[T] = ApplyResult(callback, error_callback)
        body = (tuple(args), dict(kwds) if kwds else {})
        self._engine.submit(result, task.APPLY, func, [(0, body)], timeout)
        return result

    applyAsync = apply_async

    # -- maps ------------------------------------------------------------------------------

    def _map_async(  # type: ignore[override]
        self,
        kind: int,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None,
        callback: Callable[[list[T]], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> MapResult[T]:
        self._check_running()
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * MAP_CHUNKS_PER_WORKER)
            chunksize += bool(extra)
        elif chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        size = max(chunksize, 1)
        result: MapResult[T] = MapResult(len(items), size, callback, error_callback)
        starts = range(0, len(items), size)
        chunks = [(i, list(items[start : start + size])) for i, start in enumerate(starts)]
        kind = task.STARMAP if kind == _STARMAP else task.MAP
        if chunks:
            self._engine.submit(
                result, kind, func, chunks, self._task_timeout, stream=False, chunksize=size
            )
        return result

    def map_async(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[T]:
        """``map`` without waiting: a result for the whole list."""
        return self._map_async(_MAP, func, iterable, chunksize, callback, error_callback)

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[T]:
        """``starmap`` without waiting: a result for the whole list."""
        return self._map_async(_STARMAP, func, iterable, chunksize, callback, error_callback)

    def _imap(
        self,
        kind: type[IMapIterator[T]],
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int,
    ) -> IMapIterator[T]:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        results = kind(IMAP_AHEAD * self._processes)
        results.chunksize = chunksize
        engine = self._engine
        engine.feeder_started()
        threading.Thread(
            target=_feed,
            args=(engine, weakref.ref(results), func, iter(iterable), chunksize),
            name="procframe-pool-feeder",
            daemon=True,
        ).start()
        return results

    # -- ending ---------------------------------------------------------------------------

    def _interrupted(self) -> None:
        self.terminate()

    def close(self) -> None:
        """Take no more tasks; the pool ends once the submitted ones have."""
        self._engine.close()

    def terminate(self) -> None:
        """Fail the tasks that have not ended (``BrokenPoolError``); cancel them on the cluster."""
        self._finalizer.detach()
        self._engine.terminate()

    def join(self) -> None:
        """Wait for the submitted tasks to end; call ``close()`` or ``terminate()`` first."""
        if self._engine.state == RUNNING:
            raise ValueError("join() needs close() or terminate() first")
        self._engine.join()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self._engine.state} pool_size={self._processes}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None and engine.state == RUNNING:
            message = f"unclosed running multiprocessing pool {self!r}"
            self._finalizer()
            _warn(message, ResourceWarning, source=self)


_MAP, _STARMAP = "map", "starmap"
"""What ``_map_async`` is asked for (procframe.pool.Pool's own codes are its business)."""


def _terminate_in_background(engine: Engine) -> None:
    threading.Thread(target=engine.terminate, name="procframe-pool-finalizer", daemon=True).start()


def _feed(
    engine: Engine,
    results_ref: weakref.ref[IMapIterator[Any]],
    func: Callable[..., Any],
    items: Iterator[Any],
    chunksize: int,
) -> None:
    """Read ``items`` as results are consumed, and submit them chunk by chunk.

    If reading ``items`` raises, the chunks read before are submitted and the
    exception is the outcome at the next place, as in ``multiprocessing``.
    """
    index = 0
    failure: BaseException | None = None
    exhausted = False
    try:
        while failure is None and not exhausted:
            results = results_ref()
            if results is None or engine.state == TERMINATED:
                return
            room = results.room(0.1)
            batch: list[tuple[int, Any]] = []
            started = time.monotonic()
            while len(batch) < room:
                chunk, failure = _read_chunk(items, chunksize)
                if chunk:
                    batch.append((index + len(batch), chunk))
                exhausted = failure is None and len(chunk) < chunksize
                if failure is not None or exhausted:
                    break
                if time.monotonic() - started > FEED_BATCH_WINDOW:
                    break
            if batch:
                results.note_submitted(len(batch))
                engine.submit(
                    results, task.MAP, func, batch, engine.task_timeout, chunksize=chunksize
                )
                index += len(batch)
            del results, batch
        results = results_ref()
        if results is None:
            return
        if failure is None:
            results.set_length(index)
        else:
            results.deliver_input_error(index, failure)
    except BaseException as e:  # a bug here: fail the iterator rather than leave it waiting
        results = results_ref()
        if results is not None:
            results.deliver_input_error(index, e)
    finally:
        engine.feeder_done()


def _read_chunk(items: Iterator[Any], size: int) -> tuple[list[Any], BaseException | None]:
    """Up to ``size`` items, and the exception reading the next one raised (if it did)."""
    chunk: list[Any] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == size:
                break
    except BaseException as e:  # the input's own error: the outcome at its place
        return chunk, e
    return chunk, None

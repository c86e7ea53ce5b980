"""``Pool`` and ``ThreadPool``: the API of ``multiprocessing.pool`` on processes or threads."""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping

from procframe._core import checks, process
from procframe._core.capabilities import PASSES_DESCRIPTORS, POSIX_SIGNALS
from procframe._core.errors import NotSupportedError
from procframe.pool import _frames
from procframe.pool._process_core import RUNNING, TERMINATED, ProcessCore
from procframe.pool._results import ApplyResult, IMapIterator, IMapUnorderedIterator, MapResult
from procframe.pool._thread_core import ThreadCore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from procframe.pool._process_core import Call

    S = TypeVar("S")
    T = TypeVar("T")
    R = TypeVar("R")
    PoolT = TypeVar("PoolT", bound="_BasePool")

_NEEDS = {
    POSIX_SIGNALS: "the pool stops its workers with signals: terminate(), task timeouts",
    PASSES_DESCRIPTORS: "each worker gets its own end of a socket pair, by descriptor",
}
"""The capabilities a backend needs for :class:`Pool` to run its workers, and why."""

MAP_CHUNKS_PER_WORKER = 16
"""Chunks per worker a ``map`` makes without a ``chunksize`` (the standard library makes 4).

An idle worker can take over only whole chunks that have not started, so with
uneven tasks the end of a map waits for at most one chunk: smaller chunks
bring it closer to the ideal time, for one more frame per chunk."""
IMAP_AHEAD = 256
"""Chunks, per worker, an ``imap`` reads from its iterable before their results are consumed."""
FEED_BATCH_WINDOW = 0.001
"""Seconds an ``imap`` goes on reading its input into one submission."""


class _BasePool:
    """The methods both pools share; the engine (``_core``) runs the tasks."""

    _core: ProcessCore | ThreadCore
    _task_timeout: float | None = None

    def _start(self, core: ProcessCore | ThreadCore) -> None:
        self._core = core
        # Dropped without close(): stop the engine from another thread (the collection
        # may run anywhere, even in the engine's own thread while it holds its lock).
        self._finalizer = weakref.finalize(self, _terminate_in_background, core)
        self._finalizer.atexit = False

    @property
    def _processes(self) -> int:
        return self._core.processes

    def _check_running(self) -> None:
        if self._core.state != RUNNING:
            raise ValueError(f"Pool not running ({self._core.state})")

    # -- one call ------------------------------------------------------------------

    def apply(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> T:
        """``func(*args, **kwds)`` in a worker; its result, or its exception raised here."""
        timeout = timeout if timeout is not None else self._task_timeout
        if timeout is None and isinstance(self._core, ProcessCore):
            self._check_running()
            result: ApplyResult[T] = ApplyResult()
            call = (func, tuple(args), dict(kwds) if kwds else {})
            try:
                if self._core.call((result, 0, _frames.APPLY, call)):
                    return result.get()
            except KeyboardInterrupt:
                self.terminate()
                raise
        return self._wait(self.apply_async(func, args, kwds, timeout=timeout))

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
        """Run ``func(*args, **kwds)`` in a worker; ``timeout`` stops it (its worker) when over."""
        self._check_running()
        timeout = self._check_timeout(timeout if timeout is not None else self._task_timeout)
        result: ApplyResult[T] = ApplyResult(callback, error_callback)
        call = (func, tuple(args), dict(kwds) if kwds else {})
        self._core.submit([(result, 0, _frames.APPLY, call)], timeout)
        return result

    applyAsync = apply_async

    def _check_timeout(self, timeout: float | None) -> float | None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"a task timeout must be > 0 seconds, got {timeout!r}")
        return timeout

    # -- maps -------------------------------------------------------------------------

    def map(
        self, func: Callable[[S], T], iterable: Iterable[S], chunksize: int | None = None
    ) -> list[T]:
        """``[func(x) for x in iterable]``, computed by the workers in chunks."""
        return self._wait(self.map_async(func, iterable, chunksize))

    def map_async(
        self,
        func: Callable[[S], T],
        iterable: Iterable[S],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[T]:
        """``map`` without waiting: a result for the whole list."""
        return self._map_async(_frames.MAP, func, iterable, chunksize, callback, error_callback)

    def starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[T]:
        """``[func(*args) for args in iterable]``, computed by the workers in chunks."""
        return self._wait(self.starmap_async(func, iterable, chunksize))

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[T]:
        """``starmap`` without waiting: a result for the whole list."""
        return self._map_async(_frames.STARMAP, func, iterable, chunksize, callback, error_callback)

    def _map_async(
        self,
        kind: int,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None,
        callback: Callable[[list[T]], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> MapResult[T]:
        self._check_running()
        # A sequence is sliced as it is (a range's chunks are ranges: tiny to send).
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * MAP_CHUNKS_PER_WORKER)
            chunksize += bool(extra)
        elif chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        chunks = [items[i : i + chunksize] for i in range(0, len(items), max(chunksize, 1))]
        result: MapResult[T] = MapResult(len(items), max(chunksize, 1), callback, error_callback)
        calls = [(result, index, kind, (func, chunk)) for index, chunk in enumerate(chunks)]
        # In groups, so that workers start on the first chunks while the others are pickled.
        group = max(1, min(256, len(calls) // (4 * self._processes)))
        for start in range(0, len(calls), group):
            self._core.submit(calls[start : start + group], self._task_timeout)
        return result

    def imap(
        self, func: Callable[[S], T], iterable: Iterable[S], chunksize: int = 1
    ) -> IMapIterator[T]:
        """Results of ``func`` over ``iterable`` in order, as they come; input read lazily."""
        return self._imap(IMapIterator, func, iterable, chunksize)

    def imap_unordered(
        self, func: Callable[[S], T], iterable: Iterable[S], chunksize: int = 1
    ) -> IMapIterator[T]:
        """Results of ``func`` over ``iterable`` in the order they end; the input is read lazily."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize)

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
        results._chunksize = chunksize
        core = self._core
        core.feeder_started()
        feeder = threading.Thread(
            target=_feed,
            args=(core, weakref.ref(results), func, iter(iterable), chunksize),
            name="procframe-pool-feeder",
            daemon=True,
        )
        feeder.start()
        return results

    # -- waiting and ending ----------------------------------------------------------

    def _wait(self, result: ApplyResult[R]) -> R:
        try:
            return result.get()
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def _interrupted(self) -> None:
        """Ctrl-C while waiting for a result: stop the workers too."""
        self.terminate()

    def close(self) -> None:
        """Take no more tasks; the workers exit once the submitted ones have ended."""
        self._core.close()

    def terminate(self) -> None:
        """Stop the workers now; tasks that have not ended fail (``BrokenPoolError``)."""
        self._finalizer.detach()
        self._core.terminate()

    def join(self) -> None:
        """Wait for the workers to exit; call ``close()`` or ``terminate()`` first."""
        if self._core.state == RUNNING:
            raise ValueError("join() needs close() or terminate() first")
        self._core.join()

    def __enter__(self: PoolT) -> PoolT:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self._core.state} pool_size={self._processes}>"

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Collected while running: stop the workers, and warn as multiprocessing does.
        # ``_warn`` is bound now: at exit the module's globals may be gone.
        core = getattr(self, "_core", None)
        if core is not None and core.state == RUNNING:
            # The standard library's words, which warning filters people wrote may match.
            message = f"unclosed running multiprocessing pool {self!r}"
            self._finalizer()  # before warning: the warning may be an error, which keeps self
            _warn(message, ResourceWarning, source=self)


def _feed(
    core: ProcessCore | ThreadCore,
    results_ref: weakref.ref[IMapIterator[Any]],
    func: Callable[..., Any],
    items: Iterator[Any],
    chunksize: int,
) -> None:
    """Read ``items`` as results are consumed, and submit them chunk by chunk.

    Chunks read within ``FEED_BATCH_WINDOW`` of each other go in one
    submission (one message per worker rather than one per chunk).  If
    reading ``items`` raises, the items read before are submitted, and the
    exception is the outcome at the next place, as in ``multiprocessing``.
    """
    index = 0
    failure: BaseException | None = None
    try:
        while failure is None:
            results = results_ref()
            if results is None or core.state == TERMINATED:
                return
            room = results._room(0.1)
            batch: list[Call] = []
            started = time.monotonic()
            while len(batch) < room:
                chunk, failure = _read_chunk(items, chunksize)
                if chunk:
                    batch.append((results, index + len(batch), _frames.MAP, (func, chunk)))
                if failure is None and len(chunk) < chunksize:
                    failure = _EXHAUSTED
                if failure is not None or time.monotonic() - started > FEED_BATCH_WINDOW:
                    break
            if batch:
                results._note_submitted(len(batch))
                core.submit(batch, core.task_timeout)
                index += len(batch)
            del results, batch
        results = results_ref()
        if results is None:
            return
        if failure is _EXHAUSTED:
            results._set_length(index)
        else:
            results._set_input_error(index, failure)
    except BaseException as e:  # a bug here: fail the iterator rather than leave it waiting
        results = results_ref()
        if results is not None:
            results._set_input_error(index, e)
    finally:
        core.feeder_done()


class _Exhausted(Exception):
    """Stands for the end of an ``imap``'s input."""


_EXHAUSTED = _Exhausted()


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


def _terminate_in_background(core: ProcessCore | ThreadCore) -> None:
    threading.Thread(target=core.terminate, name="procframe-pool-finalizer", daemon=True).start()


_live_cores: weakref.WeakSet[ProcessCore] = weakref.WeakSet()
_exit_handler_installed = False


def _terminate_all_at_exit() -> None:
    for core in list(_live_cores):
        core.terminate()


class Pool(_BasePool):
    """A pool of worker processes (``multiprocessing.pool.Pool``), robust to dying workers.

    ``task_timeout`` (seconds) stops any task that runs longer: its worker is
    killed and replaced, and the task fails with ``TaskTimeoutError``.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        task_timeout: float | None = None,
    ) -> None:
        global _exit_handler_installed
        from procframe.context import get_context

        ctx = context if context is not None else get_context()
        missing = [f"{need!r} ({why})" for need, why in _NEEDS.items() if not ctx.backend.has(need)]
        if missing:
            raise NotSupportedError(
                f"procframe's Pool of worker processes cannot run under backend {ctx.name!r}, "
                f"which does not declare {' or '.join(missing)}: use ctx.Pool(), the backend's "
                "own pool"
            )
        processes = _workers(processes, ctx.cpu_count)
        checks.optional_callable("initializer", initializer)
        checks.tasks_per_child(maxtasksperchild)
        self._task_timeout = self._check_timeout(task_timeout)
        core = ProcessCore(ctx, processes, initializer, tuple(initargs), maxtasksperchild)
        core.task_timeout = self._task_timeout
        self._start(core)
        _live_cores.add(core)
        if not _exit_handler_installed:  # first of procframe's exit work
            process.run_first_at_exit(_terminate_all_at_exit)
            _exit_handler_installed = True


class ThreadPool(_BasePool):
    """A pool of worker threads in this process, with the API of ``Pool``; nothing is pickled.

    With ``maxtasksperchild``, a thread that has run that many tasks is replaced
    by a new one (which runs the initializer again).  In a worker,
    ``get_start_method()`` is ``context``'s backend when one is given.  No task
    can be stopped, so there is no ``task_timeout``.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        from procframe._core.system import cpu_count

        processes = _workers(processes, cpu_count)
        checks.optional_callable("initializer", initializer)
        checks.tasks_per_child(maxtasksperchild)
        backend = None if context is None else context.get_start_method()
        self._start(ThreadCore(processes, initializer, tuple(initargs), maxtasksperchild, backend))

    def _check_timeout(self, timeout: float | None) -> float | None:
        if timeout is not None:
            raise ValueError("a ThreadPool cannot stop a running task: it takes no timeout")
        return None

    def _interrupted(self) -> None:
        """Ctrl-C: take no more tasks and raise at once; the running ones cannot be stopped,
        and end in their (daemonic) threads without anyone waiting for them."""
        self._finalizer.detach()
        core = self._core
        assert isinstance(core, ThreadCore)
        core.terminate(wait=False)


def _workers(processes: int | None, cpu_count: Callable[[], int]) -> int:
    """How many workers a pool starts: ``processes``, checked, or one per CPU."""
    size = checks.pool_size(processes)
    return max(1, cpu_count()) if size is None else size

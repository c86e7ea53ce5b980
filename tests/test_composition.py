"""A backend that overrides one factory hook gets its objects used inside every composite.

Each case registers a fork backend that implements exactly one factory hook
(by delegating to procframe's own implementation and recording what it
made), builds a composite object through that backend's context, and checks
that the composite asked the context for the part, and holds what it got.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

import procframe
from procframe import plugins
from procframe.backends.fork import ForkBackend
from procframe.context import Context
from procframe.hookspecs import hookimpl
from procframe.posix.plugin import plugin as posix
from procframe.testing.helpers.targets import noop


class Recorder(ForkBackend):
    """fork, plus one factory hook of its own; ``made`` lists what that hook made."""

    name = "composed"
    description = "fork with one factory of its own"

    def __init__(self) -> None:
        self.made: list[Any] = []

    def keep(self, obj: Any) -> Any:
        self.made.append(obj)
        return obj


class Semaphores(Recorder):
    @hookimpl
    def procframe_make_semaphore(self, value: int) -> Any:
        return self.keep(posix.procframe_make_semaphore(value))


class BoundedSemaphores(Recorder):
    @hookimpl
    def procframe_make_bounded_semaphore(self, value: int) -> Any:
        return self.keep(posix.procframe_make_bounded_semaphore(value))


class Locks(Recorder):
    @hookimpl
    def procframe_make_lock(self) -> Any:
        return self.keep(posix.procframe_make_lock())


class RLocks(Recorder):
    @hookimpl
    def procframe_make_rlock(self) -> Any:
        return self.keep(posix.procframe_make_rlock())


class RawArrays(Recorder):
    @hookimpl
    def procframe_make_raw_array(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        return self.keep(posix.procframe_make_raw_array(typecode_or_type, size_or_initializer))


class RawValues(Recorder):
    @hookimpl
    def procframe_make_raw_value(self, typecode_or_type: Any, args: tuple[Any, ...]) -> Any:
        return self.keep(posix.procframe_make_raw_value(typecode_or_type, args))


class Pipes(Recorder):
    @hookimpl
    def procframe_make_pipe(self, ctx: Any, duplex: bool) -> Any:
        return self.keep(posix.procframe_make_pipe(ctx, duplex))


class Pools(Recorder):
    @hookimpl
    def procframe_make_pool(
        self,
        ctx: Context,
        processes: int | None,
        initializer: Any,
        initargs: tuple[Any, ...],
        maxtasksperchild: int | None,
        task_timeout: float | None,
    ) -> Any:
        from procframe.pool import Pool

        made = Pool(processes, initializer, initargs, maxtasksperchild, ctx)
        return self.keep(made)


class Launches(Recorder):
    def launch(self, process: Any, backend: Any) -> Any:
        self.keep(process)
        return super().launch(process, backend)


def _queue(ctx: Context) -> Iterator[Any]:
    queue = ctx.Queue()
    yield queue
    queue.close()


def _bounded_queue(ctx: Context) -> Iterator[Any]:
    queue = ctx.Queue(3)
    yield queue
    queue.close()


def _joinable_queue(ctx: Context) -> Iterator[Any]:
    queue = ctx.JoinableQueue()
    yield queue
    queue.close()


def _condition(ctx: Context) -> Iterator[Any]:
    yield ctx.Condition()


def _event(ctx: Context) -> Iterator[Any]:
    yield ctx.Event()


def _barrier(ctx: Context) -> Iterator[Any]:
    yield ctx.Barrier(2)


def _value(ctx: Context) -> Iterator[Any]:
    yield ctx.Value("i", 7)


def _array(ctx: Context) -> Iterator[Any]:
    yield ctx.Array("d", 4)


def _pool(ctx: Context) -> Iterator[Any]:
    pool = ctx.Pool(1)
    try:
        assert pool.apply(abs, (-3,)) == 3
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _manager(ctx: Context) -> Iterator[Any]:
    with ctx.Manager() as manager:
        assert manager.list([1, 2])[:] == [1, 2]
        yield manager


def _executor(ctx: Context) -> Iterator[Any]:
    from procframe.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        future: Future[int] = executor.submit(abs, -4)
        assert future.result(timeout=60) == 4
        yield executor


def _process(ctx: Context) -> Iterator[Any]:
    process = ctx.Process(target=noop)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    yield process


Make = Callable[[Context], Iterator[Any]]

CASES: list[tuple[type[Recorder], Make, int, bool]] = [
    # (backend overriding one hook, composite, parts it asks for, whether it keeps them)
    (Semaphores, _queue, 1, True),
    (Semaphores, _joinable_queue, 2, True),  # the queue's count and the unfinished tasks
    (BoundedSemaphores, _bounded_queue, 1, True),
    (RLocks, _condition, 1, True),
    (RLocks, _value, 1, True),
    (RLocks, _array, 1, True),
    (RawArrays, _event, 1, True),
    (RawArrays, _barrier, 1, True),
    (RawArrays, _array, 1, True),
    (RawArrays, _pool, 1, True),
    (RawValues, _value, 1, True),
    (Pipes, _manager, 1, False),  # the pipe that brings the server's address back
    (Pools, _executor, 1, True),
    (Launches, _pool, 1, True),
    (Launches, _manager, 1, True),
    (Launches, _process, 1, True),
]


def reachable(root: object, target: object, limit: int = 200_000) -> bool:
    """True if ``target`` is reachable from ``root`` through references."""
    seen = {id(root)}
    frontier = [root]
    while frontier and len(seen) < limit:
        obj = frontier.pop()
        if obj is target:
            return True
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and not isinstance(ref, type):
                seen.add(id(ref))
                frontier.append(ref)
    return False


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    recorder: Recorder = request.param()
    with plugins.registered(recorder, name="composed"):
        yield recorder


@pytest.mark.parametrize(
    ("backend", "make", "parts", "keeps"),
    CASES,
    ids=[f"{cls.__name__}-{make.__name__.strip('_')}" for cls, make, *_ in CASES],
    indirect=["backend"],
)
def test_a_composite_uses_the_part_its_backend_makes(
    backend: Recorder, make: Make, parts: int, keeps: bool
) -> None:
    ctx = procframe.get_context("composed")
    assert ctx.backend.plugin is backend
    made = make(ctx)
    composite = next(made)
    try:
        what = make.__name__.strip("_")
        assert len(backend.made) == parts, f"{what} asked the context for {len(backend.made)}"
        if keeps:
            assert all(reachable(composite, part) for part in backend.made)
    finally:
        for _ in made:
            pass


def test_a_condition_accepts_a_lock_its_backend_made() -> None:
    recorder = Locks()
    with plugins.registered(recorder, name="composed"):
        ctx = procframe.get_context("composed")
        lock = ctx.Lock()
        assert recorder.made == [lock]
        condition = ctx.Condition(lock)
        with condition:
            condition.notify_all()
            assert not condition.wait(0.01)
        assert not lock.locked()


def test_a_condition_waits_on_a_lock_without_threading_s_protocol() -> None:
    """A backend's lock need only acquire and release (as for ``threading.Condition``)."""

    class PlainLock:
        def __init__(self) -> None:
            self._inner = posix.procframe_make_lock()

        def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
            return bool(self._inner.acquire(block, timeout))

        def release(self) -> None:
            self._inner.release()

        def __enter__(self) -> bool:
            return self.acquire()

        def __exit__(self, *exc: object) -> None:
            self.release()

    condition = procframe.get_context("fork").Condition(PlainLock())
    with pytest.raises(RuntimeError):
        condition.notify()
    with condition:
        condition.notify()
        assert condition.wait(0.01) is False


def test_a_condition_refuses_what_is_not_a_lock() -> None:
    with pytest.raises(TypeError, match="acquire"):
        procframe.get_context("fork").Condition(object())

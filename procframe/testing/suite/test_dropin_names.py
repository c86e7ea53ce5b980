"""The names and small behaviours of multiprocessing that programs rely on, on every backend.

Context objects carry the exception classes, ``reducer``, ``set_start_method``
and ``allow_connection_pickling``; ``procframe.queues`` and
``procframe.synchronize`` have classes that stand for every backend's objects
and that programs subclass; ``Process.sentinel`` before ``start()``, a
Condition used without its lock, ``repr(Event())`` and a Pool's result
timeout raise or read as ``multiprocessing``'s do.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

import procframe
import procframe.pool
import procframe.queues
import procframe.synchronize
from procframe._core import reduction
from procframe.testing.helpers import dropin
from procframe.testing.helpers.pool import sleep_and_return
from procframe.testing.helpers.targets import read_report

EXCEPTIONS = ("ProcessError", "BufferTooShort", "TimeoutError", "AuthenticationError")
STDLIB_EVENT_REPR = re.compile(r"<Event at 0x[0-9a-f]+ (set|unset)>")


def _contexts(ctx: procframe.Context) -> list[procframe.Context]:
    return [ctx, procframe.context.default_context]


# -- context objects ---------------------------------------------------------------------


@pytest.mark.in_one_process
def test_a_context_has_the_exception_classes(ctx: procframe.Context) -> None:
    for context in _contexts(ctx):
        for name in EXCEPTIONS:
            assert getattr(context, name) is getattr(procframe, name)
            assert getattr(type(context), name) is getattr(procframe, name)
    for name in ("BufferTooShort", "TimeoutError", "AuthenticationError"):
        assert issubclass(getattr(ctx, name), ctx.ProcessError)


@pytest.mark.in_one_process
def test_a_context_has_reducer_allow_connection_pickling_and_freeze_support(
    ctx: procframe.Context,
) -> None:
    for context in _contexts(ctx):
        assert context.reducer is reduction
        context.reducer = reduction  # procframe's own: accepted
        with pytest.raises(NotImplementedError, match="cannot use another reducer"):
            context.reducer = threading  # type: ignore[assignment]
        assert context.reducer is reduction
        assert context.allow_connection_pickling() is None
        assert context.freeze_support() is None


@pytest.mark.in_one_process
def test_set_start_method_of_a_concrete_context_raises_value_error(ctx: procframe.Context) -> None:
    with pytest.raises(ValueError, match="cannot set start method of concrete context"):
        ctx.set_start_method(ctx.name)
    with pytest.raises(ValueError, match="cannot set start method of concrete context"):
        ctx.set_start_method(ctx.name, force=True)


# -- behaviours ------------------------------------------------------------------------------


@pytest.mark.in_one_process
def test_the_sentinel_of_a_process_not_started_is_a_value_error(ctx: procframe.Context) -> None:
    process = ctx.Process(target=print)
    with pytest.raises(ValueError, match="process not started") as raised:
        process.sentinel  # noqa: B018
    assert isinstance(raised.value, procframe.ProcessStateError)  # what procframe raised before


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", ["default", "Lock", "RLock"])
def test_a_condition_used_without_its_lock_raises_assertion_and_runtime_error(
    ctx: procframe.Context, lock: str
) -> None:
    cond = ctx.Condition() if lock == "default" else ctx.Condition(getattr(ctx, lock)())
    for call in (lambda: cond.wait(0.01), cond.notify, cond.notify_all):
        with pytest.raises(AssertionError) as raised:
            call()
        assert isinstance(raised.value, RuntimeError)
        assert "lock" in str(raised.value)
    with cond:  # held: each works
        assert cond.wait(0.01) is False
        cond.notify()
        cond.notify_all()


@pytest.mark.in_one_process
def test_an_events_repr_has_the_stdlib_form_and_reading_it_changes_nothing(
    ctx: procframe.Context,
) -> None:
    event = ctx.Event()
    for _ in range(3):
        assert STDLIB_EVENT_REPR.fullmatch(repr(event)), repr(event)
        assert repr(event).endswith(" unset>")
        assert f"{id(event):#x}" in repr(event)
        assert not event.is_set()
    event.set()
    for _ in range(3):
        assert repr(event).endswith(" set>")
        assert STDLIB_EVENT_REPR.fullmatch(repr(event))
        assert event.is_set()
    assert event.wait(0) is True
    event.clear()
    assert repr(event).endswith(" unset>")
    assert event.wait(0) is False


def test_a_pool_results_timeout_is_procframe_pool_timeout_error(ctx: procframe.Context) -> None:
    assert procframe.pool.TimeoutError is procframe.TimeoutError
    with ctx.Pool(1) as pool:
        result = pool.apply_async(sleep_and_return, (0.5, "late"))
        with pytest.raises(procframe.pool.TimeoutError) as raised:
            result.get(timeout=0.05)
        assert isinstance(raised.value, procframe.ProcessError)
        assert result.get(timeout=60) == "late"


# -- procframe.queues and procframe.synchronize --------------------------------------------

QUEUES = ("Queue", "JoinableQueue", "SimpleQueue")
LOCKS = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event")


def _public(name: str) -> Any:
    module = procframe.queues if name in QUEUES else procframe.synchronize
    return getattr(module, name)


@pytest.mark.in_one_process
@pytest.mark.parametrize("name", [*QUEUES, *LOCKS, "Barrier"])
def test_the_public_class_stands_for_the_object_of_every_backend(
    ctx: procframe.Context, name: str
) -> None:
    args = (2,) if name == "Barrier" else ()
    made = getattr(ctx, name)(*args)
    public = _public(name)
    assert isinstance(made, public)
    built = public(*args, ctx=ctx)  # the public class called: the factory of ctx
    assert type(built) is type(made)
    assert isinstance(built, public)
    if hasattr(built, "close"):
        built.close()
    if hasattr(made, "close"):
        made.close()


@pytest.mark.in_one_process
def test_the_public_classes_take_the_stdlib_constructor_arguments(ctx: procframe.Context) -> None:
    queue = procframe.queues.Queue(1, ctx=ctx)
    queue.put("x", timeout=10)
    assert queue.full()
    assert queue.get(timeout=10) == "x"
    queue.close()
    assert procframe.synchronize.Semaphore(3, ctx=ctx).get_value() == 3
    bounded = procframe.synchronize.BoundedSemaphore(value=1, ctx=ctx)
    with pytest.raises(ValueError):
        bounded.release()
    lock = procframe.synchronize.Lock(ctx=ctx)
    cond = procframe.synchronize.Condition(lock, ctx=ctx)
    with cond:
        assert cond.wait(0.01) is False
    barrier = procframe.synchronize.Barrier(1, None, 10, ctx=ctx)
    assert barrier.wait() == 0
    with pytest.raises(TypeError, match="ctx must be a procframe context"):
        procframe.synchronize.Lock(ctx="fork")  # type: ignore[arg-type]


@pytest.mark.in_one_process
def test_a_subclass_of_a_public_class_is_a_class_of_its_own(ctx: procframe.Context) -> None:
    lock = dropin.CountingLock(ctx=ctx)
    assert type(lock) is dropin.CountingLock
    assert isinstance(lock, procframe.synchronize.Lock)
    assert not isinstance(ctx.Lock(), dropin.CountingLock)
    with lock:
        assert lock.acquire(False) is False
    assert lock.entered == 1
    assert lock.acquire(timeout=10)
    lock.release()
    event = type("MyEvent", (procframe.synchronize.Event,), {})(ctx=ctx)
    assert repr(event).startswith("<MyEvent at 0x")
    event.set()
    assert event.wait(0)


@pytest.mark.requires("passes_descriptors")  # a subclass is procframe's own queue: a pipe
def test_a_queue_subclass_built_with_ctx_works_across_processes(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    queue = dropin.SizedQueue(ctx=ctx)
    path = str(tmp_path / "child")
    child = ctx.Process(target=dropin.put_from_a_subclass, args=(queue, 3, path))
    child.start()
    try:
        assert [queue.get(timeout=60) for _ in range(3)] == [0, 1, 2]
    finally:
        child.join(60)
    assert child.exitcode == 0
    assert read_report(path) == {"class": "SizedQueue", "is_public": True}
    assert queue.size() == 0
    queue.close()

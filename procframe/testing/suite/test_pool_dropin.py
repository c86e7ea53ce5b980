"""Pool behaves as ``multiprocessing.Pool`` where programs rely on it.

``with`` on a stopped pool, an ``imap`` whose input raises, the exceptions of
what cannot be pickled (instances of what pickle raised, as the standard
library raises it), ``MaybeEncodingError``'s attributes, and the
``ResourceWarning`` of a running pool nobody closed.  Tasks and the objects
that cannot cross live in :mod:`procframe.testing.helpers.dropin_pool`.
"""

from __future__ import annotations

import gc
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import procframe
import procframe.pool
from procframe.testing.helpers import dropin_pool as dk
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import refusals

PATIENCE = 60.0
"""Seconds to wait for anything that should happen at once."""


class InputBroke(Exception):
    """What the input of a map raises in these tests."""


def squares_then_raise(count: int) -> Iterator[int]:
    """0, 1, ..., count - 1, then ``InputBroke``."""
    yield from range(count)
    raise InputBroke(f"the input broke after {count} items")


# -- with ----------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["terminate", "close"])
def test_with_on_a_stopped_pool_raises_valueerror(ctx: procframe.Context, stop: str) -> None:
    pool = ctx.Pool(1)
    getattr(pool, stop)()
    pool.join()
    with pytest.raises(ValueError, match="Pool not running"), pool:
        pytest.fail("the with block ran on a stopped pool")


# -- an input that raises ------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 2, 3])
def test_imap_yields_the_results_before_its_input_raised(
    ctx: procframe.Context, chunksize: int
) -> None:
    with ctx.Pool(2) as pool:
        results = pool.imap(tk.square, squares_then_raise(7), chunksize)
        taken = [results.next(timeout=PATIENCE) for _ in range(7)]
        assert taken == [x * x for x in range(7)]
        with pytest.raises(InputBroke, match="after 7 items"):
            results.next(timeout=PATIENCE)
        with pytest.raises(StopIteration):
            results.next(timeout=PATIENCE)


@pytest.mark.parametrize("chunksize", [1, 3])
def test_imap_unordered_raises_the_input_error_after_every_result(
    ctx: procframe.Context, chunksize: int
) -> None:
    with ctx.Pool(2) as pool:
        results = pool.imap_unordered(tk.slower_first, squares_then_raise(7), chunksize)
        taken = [results.next(timeout=PATIENCE) for _ in range(7)]
        assert sorted(taken) == [x * x for x in range(7)]
        with pytest.raises(InputBroke):
            results.next(timeout=PATIENCE)
        with pytest.raises(StopIteration):
            results.next(timeout=PATIENCE)


def test_an_input_that_raises_at_once_fails_the_first_result(ctx: procframe.Context) -> None:
    with ctx.Pool(1) as pool:
        results = pool.imap(tk.square, squares_then_raise(0))
        with pytest.raises(InputBroke):
            results.next(timeout=PATIENCE)
        with pytest.raises(StopIteration):
            results.next(timeout=PATIENCE)


@pytest.mark.parametrize("method", ["map", "map_async", "starmap", "starmap_async"])
def test_map_raises_the_input_error_from_the_call(ctx: procframe.Context, method: str) -> None:
    with ctx.Pool(1) as pool:
        items: Iterator[Any] = squares_then_raise(3)
        if method.startswith("starmap"):
            items = ((x, x) for x in items)
        with pytest.raises(InputBroke):
            getattr(pool, method)(tk.add if method.startswith("star") else tk.square, items)
        assert pool.map(tk.square, range(3)) == [0, 1, 4]


# -- what cannot be pickled ----------------------------------------------------------------


def _local_function() -> Callable[[], None]:
    def local() -> None:
        pass

    return local


def _sending(pool: Any, bad: object) -> list[Callable[[], object]]:
    """Ways to send ``bad`` to a worker: as an argument, a keyword argument, a map's item."""
    return [
        lambda: pool.apply(tk.identity, (bad,)),
        lambda: pool.apply_async(tk.identity, (), {"x": bad}).get(timeout=PATIENCE),
        lambda: pool.map(tk.identity, [1, 2, bad], 2),
        lambda: list(pool.imap(tk.identity, [1, bad])),
    ]


@pytest.mark.requires("separate_memory")
def test_an_unpicklable_argument_raises_what_pickle_raised(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        candidates = (dk.Unreducible(), _local_function(), lambda: 0, threading.Lock())
        for bad in refusals.refused(*candidates):
            expected = dk.what_pickle_raises(bad)
            for call in _sending(pool, bad):
                with pytest.raises(type(expected)) as info:
                    call()
                error = info.value
                assert isinstance(error, procframe.ProcessPicklingError)  # procframe's own too
                assert str(expected) in str(error)
                assert type(error.__cause__) is type(expected)
        # The message says which part of which task.
        with pytest.raises(RuntimeError, match=r"identity.*args\[1\].*Unreducible"):
            pool.apply(tk.identity, (1, dk.Unreducible()))
        with pytest.raises(RuntimeError, match=r"kwds\['x'\]"):
            pool.apply(tk.identity, (), {"x": dk.Unreducible()})
        with pytest.raises(RuntimeError, match=r"input item 4 "):
            pool.map(tk.identity, [0, 1, 2, 3, dk.Unreducible()], 2)
        with pytest.raises(RuntimeError, match="function"):
            pool.apply(dk.Unreducible())
        assert pool.map(tk.square, range(4), 1) == [0, 1, 4, 9]  # the pool carries on


@pytest.mark.requires("separate_memory")
def test_a_lock_or_queue_argument_raises_runtimeerror(ctx: procframe.Context) -> None:
    lock, queue = ctx.Lock(), ctx.Queue()
    try:
        with ctx.Pool(1) as pool:
            for shared in (lock, queue, ctx.Value("i", 0)):
                with pytest.raises(RuntimeError) as info:
                    pool.apply(tk.identity, (shared,))
                assert isinstance(info.value, TypeError)  # still what pickle says
                with pytest.raises(RuntimeError):
                    pool.map(tk.identity, [shared])
    finally:
        queue.close()


@pytest.mark.requires("separate_memory")
def test_a_task_the_worker_cannot_unpickle_raises_what_unpickling_raised(
    ctx: procframe.Context,
) -> None:
    with ctx.Pool(1) as pool:
        with pytest.raises(LookupError, match="can only be unpickled in process") as info:
            pool.apply(tk.identity, (dk.OnlyHere(),))
        assert isinstance(info.value, procframe.ProcessPicklingError)
        assert isinstance(info.value.__cause__, LookupError)
        assert pool.apply(tk.square, (5,)) == 25


# -- MaybeEncodingError --------------------------------------------------------------------


@pytest.mark.in_one_process
def test_maybe_encoding_error_has_the_attributes_of_multiprocessing() -> None:
    problem = TypeError("cannot pickle 'x' object")
    error = procframe.pool.MaybeEncodingError(problem, [1, "two"])
    assert error.exc == repr(problem)
    assert error.value == repr([1, "two"])
    assert error.args == (repr(problem), repr([1, "two"]))
    assert str(error) == f"Error sending result: '{[1, 'two']!r}'. Reason: '{problem!r}'"
    assert repr(error) == f"<MaybeEncodingError: {error}>"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.exc, copy.value, str(copy)) == (
        type(error),
        error.exc,
        error.value,
        str(error),
    )


@pytest.mark.requires("separate_memory")
def test_a_result_that_cannot_cross_raises_maybe_encoding_error(ctx: procframe.Context) -> None:
    with ctx.Pool(1) as pool:
        expected = dk.what_pickle_raises(refusals.a_generator())
        with pytest.raises(procframe.pool.MaybeEncodingError) as info:
            pool.apply(tk.return_a_generator)
        error = info.value
        assert error.exc == repr(expected)
        assert error.value.startswith("<generator object")
        assert str(error) == f"Error sending result: '{error.value}'. Reason: '{error.exc}'"
        assert type(error.__cause__) is type(expected)
        # An exception that cannot be pickled: its repr is the value.
        with pytest.raises(procframe.pool.MaybeEncodingError) as info:
            pool.apply_async(tk.raise_holding_a_generator).get(timeout=PATIENCE)
        assert info.value.value.startswith("ValueError('holds a generator'")
        assert info.value.exc == repr(expected)
        # A result this process cannot unpickle: what unpickling raised is the reason.
        with pytest.raises(procframe.pool.MaybeEncodingError) as info:
            pool.apply(dk.return_not_rebuildable)
        assert info.value.exc == repr(ValueError("NotRebuildable cannot be unpickled"))
        assert isinstance(info.value.__cause__, ValueError)
        assert pool.apply(tk.square, (3,)) == 9


# -- a pool nobody closed -------------------------------------------------------------------


def _pool_threads_gone() -> bool:
    names = ("procframe-pool", "ThreadPoolWorker-")
    return not any(t.name.startswith(names) for t in threading.enumerate())


def test_a_dropped_running_pool_warns_and_is_terminated(ctx: procframe.Context) -> None:
    pool = ctx.Pool(2)
    assert pool.map(tk.square, range(4)) == [0, 1, 4, 9]
    described = repr(pool)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        del pool
        gc.collect()
    unclosed = [w for w in seen if issubclass(w.category, ResourceWarning)]
    assert len(unclosed) == 1, [str(w.message) for w in seen]
    assert str(unclosed[0].message).startswith("unclosed running multiprocessing pool <")
    assert described in str(unclosed[0].message)
    source = unclosed[0].source
    assert isinstance(source, (procframe.pool.Pool, procframe.pool.ThreadPool))
    del seen, unclosed, source
    assert tk.eventually(lambda: procframe.active_children() == [] and _pool_threads_gone())


@pytest.mark.parametrize("end", ["close", "terminate", "with"])
def test_a_pool_closed_or_terminated_does_not_warn(ctx: procframe.Context, end: str) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if end == "with":
            with ctx.Pool(1) as pool:
                assert pool.apply(tk.square, (2,)) == 4
        else:
            pool = ctx.Pool(1)
            assert pool.apply(tk.square, (2,)) == 4
            getattr(pool, end)()
            pool.join()
        del pool
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []

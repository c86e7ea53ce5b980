"""ProcessPoolExecutor behaves as ``concurrent.futures.ProcessPoolExecutor`` where programs
rely on it.

A lost worker's future raises a ``BrokenProcessPool`` (the executor goes on,
as procframe's does); a call or result that cannot cross raises what pickle
raised; ``SystemExit`` in a call is raised by ``result()``; the executor keeps
nothing of a call once its future is done, and nothing runs after
``shutdown(wait=True)``.  This module never imports ``concurrent.futures.process``
(which imports the standard ``multiprocessing``): it finds ``BrokenProcessPool``
in ``sys.modules`` once procframe has imported it.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import pickle
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import procframe
import procframe.pool
from procframe.futures import ProcessPoolExecutor
from procframe.testing.helpers import dropin_pool as dk
from procframe.testing.helpers import futures as fk
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import refusals

PATIENCE = 60.0
"""Seconds to wait for anything that should happen at once."""


def is_broken_process_pool(error: BaseException | None) -> bool:
    """True if ``error`` is a ``concurrent.futures.process.BrokenProcessPool``."""
    module = sys.modules.get("concurrent.futures.process")
    return module is not None and isinstance(error, module.BrokenProcessPool)


def _local_function() -> Callable[[], None]:
    def local() -> None:
        pass

    return local


# -- a lost worker, a broken pool ----------------------------------------------------------


@pytest.mark.requires("separate_memory", "local_pids")  # the lost worker's pid and exit code
def test_a_lost_workers_future_raises_broken_process_pool(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        worker = executor.submit(dk.pid).result(timeout=PATIENCE)
        error = executor.submit(dk.kill_self).exception(timeout=PATIENCE)
        assert is_broken_process_pool(error)
        assert isinstance(error, cf.BrokenExecutor)
        assert isinstance(error, procframe.pool.WorkerLostError)  # procframe's own too
        assert (error.pid, error.exitcode) == (worker, -9)
        with pytest.raises(cf.BrokenExecutor):
            raise error
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and (copy.pid, copy.exitcode) == (worker, -9)
        # Only that call failed: the executor goes on, with a new worker.
        assert executor.submit(tk.square, 7).result(timeout=PATIENCE) == 49


def test_a_failing_initializer_is_a_broken_process_pool(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(
        1, mp_context=ctx, initializer=fk.failing_initializer, initargs=("no init",)
    ) as executor:
        error = executor.submit(tk.square, 2).exception(timeout=PATIENCE)
        assert is_broken_process_pool(error)
        assert isinstance(error, procframe.pool.BrokenPoolError)
        assert "no init" in str(error)


# -- what cannot cross --------------------------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_a_call_that_cannot_be_pickled_raises_what_pickle_raised(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        candidates = (dk.Unreducible(), _local_function(), lambda: 0, threading.Lock())
        for bad in refusals.refused(*candidates):
            expected = dk.what_pickle_raises(bad)
            as_argument = executor.submit(tk.identity, bad)
            as_function = executor.submit(bad)
            for future, part in ((as_argument, "args[0]"), (as_function, "function")):
                error = future.exception(timeout=PATIENCE)
                assert type(error) is type(expected)
                assert str(error) == str(expected)
                # procframe's words: which part of which call.
                assert any(part in note for note in error.__notes__), error.__notes__
        lock = ctx.Lock()
        error = executor.submit(tk.identity, lock).exception(timeout=PATIENCE)
        assert isinstance(error, RuntimeError)
        assert executor.submit(tk.square, 3).result(timeout=PATIENCE) == 9


@pytest.mark.requires("separate_memory")
def test_a_result_that_cannot_cross_raises_what_pickle_raised(ctx: procframe.Context) -> None:
    expected = dk.what_pickle_raises(refusals.a_generator())
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        for call in (tk.return_a_generator, tk.raise_holding_a_generator):
            error = executor.submit(call).exception(timeout=PATIENCE)
            assert type(error) is type(expected)
            assert str(error) == str(expected)
        # Unpickled here, or in the worker: what unpickling raised.
        error = executor.submit(dk.return_not_rebuildable).exception(timeout=PATIENCE)
        assert type(error) is ValueError
        assert str(error) == "NotRebuildable cannot be unpickled"
        error = executor.submit(tk.identity, dk.OnlyHere()).exception(timeout=PATIENCE)
        assert type(error) is LookupError
        assert "can only be unpickled in process" in str(error)
        assert executor.submit(tk.square, 4).result(timeout=PATIENCE) == 16


# -- SystemExit ---------------------------------------------------------------------------


def test_system_exit_in_a_call_is_raised_by_result(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        worker = executor.submit(dk.pid).result(timeout=PATIENCE)
        future = executor.submit(dk.exit_with, 3)
        error = future.exception(timeout=PATIENCE)
        assert type(error) is SystemExit
        assert error.code == 3
        with pytest.raises(SystemExit):
            future.result()
        # As in the standard executor, the worker was not lost: it runs the next call.
        assert executor.submit(dk.pid).result(timeout=PATIENCE) == worker


# -- nothing kept, nothing left ----------------------------------------------------------


def test_the_executor_keeps_no_reference_to_arguments_or_results(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        argument = dk.Box(5)
        future = executor.submit(dk.unbox, argument)
        assert future.result(timeout=PATIENCE) == 5
        argument_ref = weakref.ref(argument)
        del argument, future
        result_future = executor.submit(dk.box, 6)
        result = result_future.result(timeout=PATIENCE)
        assert result.value == 6
        result_ref = weakref.ref(result)
        del result, result_future
        failing = executor.submit(tk.raise_value_error, "fails")
        assert isinstance(failing.exception(timeout=PATIENCE), ValueError)
        del failing
        mapped = list(executor.map(dk.box, range(4), chunksize=2))
        mapped_refs = [weakref.ref(box) for box in mapped]
        del mapped
        gc.collect()
        assert argument_ref() is None, gc.get_referrers(argument_ref())
        assert result_ref() is None, gc.get_referrers(result_ref())
        assert [ref() for ref in mapped_refs] == [None] * 4


def _running_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive()}


def test_shutdown_wait_leaves_no_thread_or_process(ctx: procframe.Context) -> None:
    threads_before = _running_threads()
    executor = ProcessPoolExecutor(2, mp_context=ctx)
    futures: list[cf.Future[Any]] = [executor.submit(tk.square, i) for i in range(6)]
    futures.append(executor.submit(tk.sleep_and_return, 0.2, "late"))
    executor.shutdown(wait=True)
    assert [future.result(timeout=0) for future in futures] == [0, 1, 4, 9, 16, 25, "late"]
    assert procframe.active_children() == []
    assert _running_threads() - threads_before == set()

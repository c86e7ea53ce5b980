"""ProcessPoolExecutor: ``concurrent.futures`` on procframe's pool, on every backend.

The calls the workers run live in :mod:`procframe.testing.helpers.futures` (a
spawned worker imports them by name).  The plugin fails any test that leaves
a worker or a thread behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import itertools
import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.futures import ProcessPoolExecutor
from procframe.pool import BrokenPoolError, RemoteTraceback, WorkerLostError
from procframe.testing.helpers import futures as tk
from procframe.testing.helpers import refusals
from procframe.testing.helpers.scripts import pid_running, run_script

PATIENCE = 60.0
"""Seconds to wait for anything that should happen at once."""
SHORT = 0.3
"""A timeout that must elapse (a call gated on a file that does not exist yet)."""


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[str]:
    """A path that calls wait for (``tk.wait_for_path``); created at the end in any case."""
    path = tmp_path / "gate"
    yield str(path)
    path.touch()  # so that a failed test does not leave calls waiting


def _open_later(path: str, delay: float) -> threading.Thread:
    """Create ``path`` in ``delay`` seconds, from a thread (the caller joins it)."""

    def open_gate() -> None:
        time.sleep(delay)
        Path(path).touch()

    thread = threading.Thread(target=open_gate)
    thread.start()
    return thread


# -- submit ------------------------------------------------------------------------


@pytest.mark.core
def test_submit_returns_futures_with_results(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        assert isinstance(executor, cf.Executor)
        future = executor.submit(tk.square, 7)
        assert isinstance(future, cf.Future)
        assert future.result(timeout=PATIENCE) == 49
        assert future.done()
        assert not future.running()
        assert executor.submit(tk.power, 2, exp=10).result(timeout=PATIENCE) == 1024
        assert executor.submit(tk.start_method).result(timeout=PATIENCE) == ctx.get_start_method()
        done = threading.Event()
        seen: list[Any] = []

        def record(future: cf.Future[int]) -> None:
            seen.append(future.result())
            done.set()

        executor.submit(tk.square, 5).add_done_callback(record)
        assert done.wait(PATIENCE)
        assert seen == [25]


@pytest.mark.requires("local_pids")
def test_calls_run_in_worker_processes(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        pids = {executor.submit(tk.pid).result(timeout=PATIENCE) for _ in range(4)}
    assert os.getpid() not in pids


@pytest.mark.requires("separate_memory")
def test_exceptions_keep_type_message_and_the_remote_traceback(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        future = executor.submit(tk.raise_value_error, "boom")
        error = future.exception(timeout=PATIENCE)
        assert type(error) is ValueError
        assert str(error) == "boom"
        assert isinstance(error.__cause__, RemoteTraceback)
        assert "raise_value_error" in str(error.__cause__)
        with pytest.raises(ValueError, match="boom"):
            future.result()
        # A call that cannot be pickled fails its own future; the executor goes on.
        # It raises what pickle raises (an AttributeError for a local function, as the
        # standard executor).
        unpicklable = executor.submit(refusals.a_refused_function())
        assert isinstance(
            unpicklable.exception(timeout=PATIENCE), (pickle.PicklingError, AttributeError)
        )
        assert executor.submit(tk.square, 3).result(timeout=PATIENCE) == 9


# -- map ---------------------------------------------------------------------------


def test_map_keeps_order_for_every_chunksize(ctx: procframe.Context) -> None:
    data = list(range(23))
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        for chunksize in (1, 3, 7, 50):
            assert list(executor.map(tk.square, data, chunksize=chunksize)) == [x * x for x in data]
        # Several iterables, as long as the shortest; an empty one.
        assert list(executor.map(tk.multiply, [1, 2, 3, 4], "abc", chunksize=2)) == [
            "a",
            "bb",
            "ccc",
        ]
        assert list(executor.map(tk.square, [])) == []
        # Completion order differs from input order; results do not.
        delays = [0.2, 0.0, 0.1, 0.0]
        assert list(executor.map(tk.sleep_and_return, delays, range(4))) == [0, 1, 2, 3]
        with pytest.raises(ValueError, match="chunksize"):
            executor.map(tk.square, data, chunksize=0)


def test_map_runs_a_chunk_as_one_task(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        pids = list(executor.map(tk.pid, range(10), chunksize=5))
        assert len(set(pids[:5])) == 1
        assert len(set(pids[5:])) == 1


@pytest.mark.requires("separate_memory")
def test_map_raises_where_a_call_failed(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        results = executor.map(tk.square_unless, range(8), itertools.repeat(5), chunksize=2)
        assert [next(results) for _ in range(4)] == [0, 1, 4, 9]
        # (as in the standard executor, the chunk [4, 5] fails as a whole)
        with pytest.raises(ValueError, match="bad item 5") as info:
            next(results)
        assert isinstance(info.value.__cause__, RemoteTraceback)


def test_map_timeout_counts_from_the_call(ctx: procframe.Context, gate: str) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        started = time.monotonic()
        results = executor.map(tk.wait_for_path, [gate] * 3, range(3), timeout=SHORT)
        time.sleep(SHORT)  # the time spent here counts
        with pytest.raises(cf.TimeoutError):  # the builtin TimeoutError since Python 3.11
            next(results)
        assert time.monotonic() - started < SHORT + 10.0
        Path(gate).touch()


def test_map_with_buffersize_reads_its_input_lazily(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        endless = itertools.count()
        results = executor.map(tk.square, endless, buffersize=4)
        assert list(itertools.islice(results, 10)) == [x * x for x in range(10)]
        results.close()  # type: ignore[attr-defined]  # the calls submitted ahead are cancelled or end
        assert next(endless) <= 16  # read only a few ahead of the results taken
        chunked = executor.map(tk.square, itertools.count(), chunksize=3, buffersize=2)
        assert list(itertools.islice(chunked, 7)) == [x * x for x in range(7)]
        with pytest.raises(ValueError, match="buffersize"):
            executor.map(tk.square, [1], buffersize=0)


# -- waiting on futures --------------------------------------------------------------


def test_as_completed_and_wait(ctx: procframe.Context, gate: str) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        slow = executor.submit(tk.wait_for_path, gate, "slow")
        fast = executor.submit(tk.square, 4)
        done, not_done = cf.wait([slow, fast], timeout=PATIENCE, return_when=cf.FIRST_COMPLETED)
        assert done == {fast}
        assert not_done == {slow}
        done, not_done = cf.wait([slow, fast], timeout=SHORT)
        assert (done, not_done) == ({fast}, {slow})

        order = []
        _open_later(gate, SHORT).join()
        for future in cf.as_completed([slow, fast], timeout=PATIENCE):
            order.append(future.result())
        assert sorted(order, key=str) == [16, "slow"]

        failing = executor.submit(tk.raise_value_error, "first")
        blocked = executor.submit(tk.sleep_and_return, 0.2, "late")
        done, _ = cf.wait([failing, blocked], timeout=PATIENCE, return_when=cf.FIRST_EXCEPTION)
        assert failing in done
        done, not_done = cf.wait([failing, blocked], timeout=PATIENCE)
        assert not_done == set()


# -- cancelling and shutting down ------------------------------------------------------


def test_cancel_a_call_that_waits_for_a_worker(
    ctx: procframe.Context, gate: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        first = executor.submit(tk.wait_for_path, gate, "first")
        second = executor.submit(tk.touch, str(marker))
        third = executor.submit(tk.square, 3)
        assert first.running()  # handed to the pool: no longer cancellable
        assert not first.cancel()
        assert not second.running()
        assert second.cancel()
        assert second.cancelled()
        Path(gate).touch()
        assert first.result(timeout=PATIENCE) == "first"
        assert third.result(timeout=PATIENCE) == 9
        with pytest.raises(cf.CancelledError):
            second.result()
        done, _ = cf.wait([first, second, third], timeout=PATIENCE)
        assert done == {first, second, third}
    assert not marker.exists()  # a cancelled call never runs


def test_shutdown_wait_waits_for_calls_and_workers(ctx: procframe.Context) -> None:
    executor = ProcessPoolExecutor(2, mp_context=ctx)
    futures = [executor.submit(tk.sleep_and_return, 0.2, i) for i in range(5)]
    executor.shutdown(wait=True)
    assert all(future.done() for future in futures)
    assert [future.result() for future in futures] == list(range(5))
    assert procframe.active_children() == []
    executor.shutdown()  # again: nothing to do
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(tk.square, 2)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.map(tk.square, [1, 2])


def test_shutdown_without_wait_finishes_the_work(ctx: procframe.Context, gate: str) -> None:
    executor = ProcessPoolExecutor(1, mp_context=ctx)
    first = executor.submit(tk.wait_for_path, gate, "first")
    queued = executor.submit(tk.square, 6)
    started = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - started < 5.0
    assert not first.done()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(tk.square, 2)
    Path(gate).touch()
    assert first.result(timeout=PATIENCE) == "first"
    assert queued.result(timeout=PATIENCE) == 36
    executor.shutdown(wait=True)  # joins the workers
    assert procframe.active_children() == []


@pytest.mark.parametrize("wait", [True, False])
def test_shutdown_cancel_futures(ctx: procframe.Context, gate: str, wait: bool) -> None:
    executor = ProcessPoolExecutor(1, mp_context=ctx)
    first = executor.submit(tk.wait_for_path, gate, "first")
    rest = [executor.submit(tk.square, i) for i in range(4)]
    opener = _open_later(gate, SHORT) if wait else None
    executor.shutdown(wait=wait, cancel_futures=True)
    assert all(future.cancelled() for future in rest)
    if opener is None:
        Path(gate).touch()
    else:
        opener.join()
        assert first.done()
    assert first.result(timeout=PATIENCE) == "first"  # it was running: it ends
    executor.shutdown(wait=True)


def test_context_manager_shuts_down(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        futures = [executor.submit(tk.sleep_and_return, 0.1, i) for i in range(4)]
    assert [future.result(timeout=0) for future in futures] == list(range(4))
    assert procframe.active_children() == []
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(tk.square, 1)


def test_an_executor_dropped_without_shutdown_finishes_its_work(ctx: procframe.Context) -> None:
    executor = ProcessPoolExecutor(1, mp_context=ctx)
    futures = [executor.submit(tk.sleep_and_return, 0.05, i) for i in range(3)]
    del executor
    gc.collect()
    assert [future.result(timeout=PATIENCE) for future in futures] == [0, 1, 2]
    # (the plugin checks that the workers then exit)


EXIT_WITHOUT_SHUTDOWN = """\
import os

from procframe.testing.helpers import futures as tk
from procframe.futures import ProcessPoolExecutor

if __name__ == "__main__":
    executor = ProcessPoolExecutor(1)  # the default backend: the test's
    print(executor.submit(tk.start_method).result(timeout=60))
    print(executor.submit(tk.pid).result(timeout=60), flush=True)
    executor.submit(tk.sleep_and_return, 0.2, None)
    for name in ("a", "b", "c"):
        executor.submit(tk.touch, os.path.abspath("done." + name))
"""


def test_at_exit_an_executor_finishes_its_work(procframe_backend: str, tmp_path: Path) -> None:
    result = run_script(tmp_path, EXIT_WITHOUT_SHUTDOWN, procframe_backend, timeout=PATIENCE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    backend, worker = result.stdout.split()
    assert backend == procframe_backend
    assert sorted(p.name for p in tmp_path.glob("done.*")) == ["done.a", "done.b", "done.c"]
    if procframe.get_context(procframe_backend).backend.has("local_pids"):  # its own worker
        deadline = time.monotonic() + 5.0
        while pid_running(int(worker)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_running(int(worker))


def test_shutdown_cannot_wait_from_a_done_callback(ctx: procframe.Context, gate: str) -> None:
    executor = ProcessPoolExecutor(1, mp_context=ctx)
    raised: list[BaseException] = []
    called = threading.Event()

    def shut_down(_: cf.Future[Any]) -> None:
        try:
            executor.shutdown(wait=True)
        except BaseException as e:
            raised.append(e)
        called.set()

    # Gated: a future already done would run its callback here, in the caller's thread.
    executor.submit(tk.wait_for_path, gate, 2).add_done_callback(shut_down)
    Path(gate).touch()
    assert called.wait(PATIENCE)
    assert [type(e) for e in raised] == [RuntimeError]  # it would wait for itself
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(tk.square, 3)  # but it did shut down
    executor.shutdown(wait=True)


def test_no_worker_starts_before_the_first_submit(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx):
        assert procframe.active_children() == []


# -- failures ------------------------------------------------------------------------------


@pytest.mark.requires("separate_memory", "local_pids")  # the lost worker's exit code
def test_a_dead_worker_fails_only_its_future(ctx: procframe.Context, gate: str) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        survivor = executor.submit(tk.wait_for_path, gate, "survivor")
        doomed = executor.submit(tk.exit_now, 3)
        error = doomed.exception(timeout=PATIENCE)
        assert isinstance(error, WorkerLostError)
        assert error.exitcode == 3
        assert not survivor.done()
        Path(gate).touch()
        assert survivor.result(timeout=PATIENCE) == "survivor"
        # The executor goes on, with a new worker.
        assert executor.submit(tk.square, 8).result(timeout=PATIENCE) == 64
        assert list(executor.map(tk.square, range(6), chunksize=2)) == [0, 1, 4, 9, 16, 25]


def test_initializer(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(
        2, mp_context=ctx, initializer=tk.set_greeting, initargs=("hello",)
    ) as executor:
        assert {executor.submit(tk.greeting).result(timeout=PATIENCE) for _ in range(4)} == {
            "hello"
        }


def test_a_failing_initializer_breaks_the_futures(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(
        2, mp_context=ctx, initializer=tk.failing_initializer, initargs=("no init",)
    ) as executor:
        futures = [executor.submit(tk.square, i) for i in range(3)]
        for future in futures:
            error = future.exception(timeout=PATIENCE)
            assert isinstance(error, BrokenPoolError)
            assert "no init" in str(error)
        later = executor.submit(tk.square, 5)
        assert isinstance(later.exception(timeout=PATIENCE), BrokenPoolError)


@pytest.mark.requires("local_pids")
def test_max_tasks_per_child_replaces_workers(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=2) as executor:
        pids = [executor.submit(tk.pid).result(timeout=PATIENCE) for _ in range(6)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


# -- arguments -----------------------------------------------------------------------------


def test_arguments_are_checked_as_the_standard_executor_does(ctx: procframe.Context) -> None:
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        ProcessPoolExecutor(0, mp_context=ctx)
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        ProcessPoolExecutor(-1, mp_context=ctx)
    with pytest.raises(TypeError, match="initializer"):
        ProcessPoolExecutor(1, mp_context=ctx, initializer=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_tasks_per_child"):
        ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=0)
    assert procframe.active_children() == []


def test_a_multiprocessing_context_means_the_backend_of_its_name(ctx: procframe.Context) -> None:
    """Code written for the standard executor passes a ``multiprocessing`` context; procframe
    never imports that package, so a stand-in from its module plays one here."""
    name = ctx.get_start_method()
    stdlib_like = type(
        "ForkServerContext",
        (),
        {"__module__": "multiprocessing.context", "get_start_method": lambda self: name},
    )()
    with ProcessPoolExecutor(1, mp_context=stdlib_like) as executor:
        assert executor.submit(tk.start_method).result(timeout=PATIENCE) == name

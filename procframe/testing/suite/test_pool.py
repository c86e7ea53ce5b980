"""Pool: the ``multiprocessing.pool`` API on every backend, and ThreadPool.

Every task a worker runs lives in :mod:`procframe.testing.helpers.pool` (a spawned
worker imports it by name).  The failure paths (workers dying, timeouts,
unpicklable things, Ctrl-C, a killed parent) are in ``test_pool_faults.py``.
"""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import procframe
import procframe.pool
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers.scripts import pid_running, script_env, write_script

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
"""A pool thread that dies of an exception fails the test."""

PATIENCE = 60.0
"""Seconds to wait for anything that should happen at once."""
PROMPTLY = tk.PROMPTLY
SHORT = 0.1
"""A timeout that must elapse (a result gated on a file that does not exist yet)."""

DATA = list(range(23))
SQUARES = [x * x for x in DATA]


# -- the module ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_traceback_printed(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """A traceback printed here (a pool's own thread failed, say) fails the test."""
    yield
    err = capsys.readouterr().err
    assert "Traceback" not in err, err


def test_the_pool_module_exports_its_names() -> None:
    names = [
        "Pool",
        "ThreadPool",
        "AsyncResult",
        "ApplyResult",
        "MapResult",
        "IMapIterator",
        "IMapUnorderedIterator",
        "RemoteTraceback",
        "WorkerLostError",
        "TaskTimeoutError",
        "MaybeEncodingError",
        "TaskAbortedError",
        "BrokenPoolError",
    ]
    assert [name for name in names if not hasattr(procframe.pool, name)] == []
    assert procframe.pool.ApplyResult is procframe.pool.AsyncResult
    assert issubclass(procframe.pool.TaskTimeoutError, procframe.TimeoutError)
    assert issubclass(procframe.ProcessPicklingError, pickle.PicklingError)
    assert issubclass(procframe.ProcessPicklingError, TypeError)
    assert callable(procframe.Pool)


# -- apply -----------------------------------------------------------------------


@pytest.mark.core
def test_apply_and_apply_async(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        assert pool.apply(tk.square, (7,)) == 49
        assert pool.apply(tk.power, (2,), {"exp": 10}) == 1024
        assert pool.apply(tk.add, kwds={"a": "x", "b": "y"}) == "xy"
        with pytest.raises(ValueError, match="direct"):
            pool.apply(tk.raise_value_error, ("direct",))

        done, failed = tk.Calls(), tk.Calls()
        result = pool.apply_async(tk.power, (3,), {"exp": 3}, callback=done, error_callback=failed)
        assert isinstance(result, procframe.pool.AsyncResult)
        assert result.get(timeout=PATIENCE) == 27
        assert done.wait() == [27]
        assert failed.values == []
        assert done.ran_in_a_pool_thread()

        done, failed = tk.Calls(), tk.Calls()
        result = pool.apply_async(
            tk.raise_value_error, ("async",), callback=done, error_callback=failed
        )
        with pytest.raises(ValueError, match="async"):
            result.get(timeout=PATIENCE)
        (error,) = failed.wait()
        assert type(error) is ValueError
        assert str(error) == "async"
        assert done.values == []
        assert failed.ran_in_a_pool_thread()

        # ``processing``'s spelling: the alias, with a list for the arguments.
        assert pool.applyAsync(tk.square, [10]).get(timeout=PATIENCE) == 100
        done = tk.Calls()
        pool.applyAsync(tk.square, [11], callback=done).wait(PATIENCE)
        assert done.wait() == [121]
        pool.close()
        pool.join()


def test_results_before_and_after_they_are_ready(ctx: procframe.Context, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")
    gated = partial(tk.wait_for_path, gate)
    with ctx.Pool(2) as pool:
        single = pool.apply_async(tk.wait_for_path, (gate, "done"))
        many = pool.map_async(gated, range(5))
        pairs = pool.starmap_async(tk.wait_for_path, [(gate, i) for i in range(3)])
        ordered = pool.imap(gated, range(4))
        unordered = pool.imap_unordered(gated, range(4))
        assert isinstance(many, procframe.pool.MapResult)
        assert isinstance(ordered, procframe.pool.IMapIterator)
        assert isinstance(unordered, procframe.pool.IMapUnorderedIterator)

        for result in (single, many, pairs):
            assert not result.ready()
            with pytest.raises(ValueError):
                result.successful()
            began = time.monotonic()
            with pytest.raises(procframe.TimeoutError):
                result.get(timeout=SHORT)
            assert time.monotonic() - began >= SHORT - 0.05
            assert result.wait(SHORT) is None
            assert not result.ready()
        for iterator in (ordered, unordered):
            with pytest.raises(procframe.TimeoutError):
                iterator.next(timeout=SHORT)

        Path(gate).touch()
        single.wait(PATIENCE)
        assert single.ready()
        assert single.successful()
        assert single.get() == "done"
        assert many.get(timeout=PATIENCE) == list(range(5))
        assert many.ready() and many.successful()
        assert pairs.get(timeout=PATIENCE) == list(range(3))
        assert [ordered.next(timeout=PATIENCE) for _ in range(4)] == list(range(4))
        with pytest.raises(StopIteration):
            ordered.next(timeout=PATIENCE)
        assert sorted(unordered) == list(range(4))

        failing = pool.apply_async(tk.raise_value_error, ("no",))
        failing.wait(PATIENCE)
        assert failing.ready()
        assert not failing.successful()
        failing_map = pool.map_async(partial(tk.square_unless, bad=2), range(4))
        failing_map.wait(PATIENCE)
        assert failing_map.ready()
        assert not failing_map.successful()
        with pytest.raises(ValueError, match="bad item 2"):
            failing_map.get(timeout=0)


# -- map, starmap, imap ----------------------------------------------------------------


def test_map_starmap_and_imap_with_every_chunksize(ctx: procframe.Context) -> None:
    pairs = [(x, x) for x in DATA]
    sums = [a + b for a, b in pairs]
    with ctx.Pool(2) as pool:
        for chunksize in (None, 1, 4, 1000):
            assert pool.map(tk.square, DATA, chunksize) == SQUARES, chunksize
            assert pool.map(tk.square, DATA, chunksize=chunksize) == SQUARES, chunksize
            assert pool.starmap(tk.add, pairs, chunksize=chunksize) == sums, chunksize
            assert pool.map_async(tk.square, DATA, chunksize).get(PATIENCE) == SQUARES
            assert pool.starmap_async(tk.add, pairs, chunksize).get(PATIENCE) == sums
        for chunksize in (1, 4, 1000):
            assert list(pool.imap(tk.square, DATA, chunksize)) == SQUARES, chunksize
            assert list(pool.imap(tk.square, DATA, chunksize=chunksize)) == SQUARES
            unordered = list(pool.imap_unordered(tk.square, DATA, chunksize=chunksize))
            assert sorted(unordered) == SQUARES, chunksize
        assert list(pool.imap(tk.square, DATA)) == SQUARES
        assert sorted(pool.imap_unordered(tk.square, DATA)) == SQUARES

        # Inputs that are not lists; empty inputs.
        assert pool.map(tk.square, (x for x in DATA)) == SQUARES
        assert pool.map(tk.square, range(5)) == [0, 1, 4, 9, 16]
        assert pool.starmap(tk.add, ((x, 1) for x in range(3))) == [1, 2, 3]
        assert list(pool.imap(tk.square, iter(DATA), 3)) == SQUARES
        assert pool.map(tk.square, []) == []
        assert pool.map(tk.square, [], 10) == []
        assert pool.starmap(tk.add, []) == []
        assert list(pool.imap(tk.square, [])) == []
        assert list(pool.imap_unordered(tk.square, [])) == []
        assert pool.map_async(tk.square, []).get(PATIENCE) == []

        # imap keeps the input's order though later items finish first.
        assert list(pool.imap(tk.slower_first, range(10))) == [x * x for x in range(10)]
        iterator = pool.imap(tk.square, range(3))
        assert iter(iterator) is iterator
        assert [next(iterator), next(iterator), next(iterator)] == [0, 1, 4]
        with pytest.raises(StopIteration):
            next(iterator)

        # An item that raises: its place raises, the others come (as multiprocessing's).
        iterator = pool.imap(partial(tk.square_unless, bad=3), range(6))
        got: list[Any] = []
        for _ in range(6):
            try:
                got.append(iterator.next(timeout=PATIENCE))
            except ValueError as exc:
                got.append(str(exc))
        assert got == [0, 1, 4, "bad item 3", 16, 25]
        # In chunks, the items before the failing chunk come first.
        iterator = pool.imap(partial(tk.square_unless, bad=3), range(6), 2)
        assert [iterator.next(timeout=PATIENCE) for _ in range(2)] == [0, 1]
        with pytest.raises(ValueError, match="bad item 3"):
            iterator.next(timeout=PATIENCE)
        with pytest.raises(ValueError, match="bad item 3"):
            list(pool.imap_unordered(partial(tk.square_unless, bad=3), range(6)))


def test_async_maps_call_back_with_the_whole_list(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        done, failed = tk.Calls(), tk.Calls()
        result = pool.map_async(tk.square, DATA, callback=done, error_callback=failed)
        assert result.get(timeout=PATIENCE) == SQUARES
        assert done.wait() == [SQUARES]
        assert failed.values == []
        assert done.ran_in_a_pool_thread()

        done, failed = tk.Calls(), tk.Calls()
        result = pool.map_async(tk.square, [], callback=done, error_callback=failed)
        assert result.get(timeout=PATIENCE) == []
        assert done.wait() == [[]]

        done, failed = tk.Calls(), tk.Calls()
        result = pool.map_async(
            partial(tk.square_unless, bad=5), DATA, 3, callback=done, error_callback=failed
        )
        with pytest.raises(ValueError, match="bad item 5"):
            result.get(timeout=PATIENCE)
        (error,) = failed.wait()
        assert type(error) is ValueError
        assert str(error) == "bad item 5"
        assert done.values == []
        assert failed.ran_in_a_pool_thread()

        done, failed = tk.Calls(), tk.Calls()
        result = pool.starmap_async(tk.add, [(1, 2), (3, 4)], callback=done, error_callback=failed)
        assert result.get(timeout=PATIENCE) == [3, 7]
        assert done.wait() == [[3, 7]]
        assert failed.values == []

        done, failed = tk.Calls(), tk.Calls()
        result = pool.starmap_async(
            tk.square_unless, [(1, 9), (9, 9)], 1, callback=done, error_callback=failed
        )
        with pytest.raises(ValueError, match="bad item 9"):
            result.get(timeout=PATIENCE)
        assert [type(e) for e in failed.wait()] == [ValueError]
        assert done.values == []


# -- errors ------------------------------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_a_task_error_keeps_its_type_message_and_remote_traceback(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        with pytest.raises(ValueError) as info:
            pool.apply_async(tk.raise_value_error, ("boom 42",)).get(timeout=PATIENCE)
        assert type(info.value) is ValueError
        assert str(info.value) == "boom 42"
        cause = info.value.__cause__
        assert isinstance(cause, procframe.pool.RemoteTraceback)
        assert "raise_value_error" in str(cause)
        assert "ValueError: boom 42" in str(cause)

        with pytest.raises(ValueError) as info:
            pool.map(partial(tk.square_unless, bad=5), range(10))
        assert str(info.value) == "bad item 5"
        assert isinstance(info.value.__cause__, procframe.pool.RemoteTraceback)
        assert "square_unless" in str(info.value.__cause__)

        with pytest.raises(ValueError, match="bad item 1"):
            pool.starmap(tk.square_unless, [(0, 1), (1, 1)])

        assert pool.map(tk.square, range(5)) == [0, 1, 4, 9, 16]  # the pool carries on


# -- the pool's life -----------------------------------------------------------------


@pytest.mark.requires("local_pids")
def test_close_lets_tasks_finish_and_forbids_new_ones(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    pool = ctx.Pool(2)
    try:
        with pytest.raises(ValueError):
            pool.join()  # before close()
        workers = tk.workers_of(before, 2)
        late = pool.apply_async(tk.sleep_and_return, (0.3, "late"))
        squares = pool.map_async(tk.square, range(10))
        pool.close()
        submissions: list[Callable[[], Any]] = [
            lambda: pool.apply(tk.square, (1,)),
            lambda: pool.apply_async(tk.square, (1,)),
            lambda: pool.applyAsync(tk.square, (1,)),
            lambda: pool.map(tk.square, [1]),
            lambda: pool.map_async(tk.square, [1]),
            lambda: pool.starmap(tk.add, [(1, 2)]),
            lambda: pool.starmap_async(tk.add, [(1, 2)]),
            lambda: list(pool.imap(tk.square, [1])),
            lambda: list(pool.imap_unordered(tk.square, [1])),
        ]
        for submit in submissions:
            with pytest.raises(ValueError):
                submit()
        pool.join()
        assert late.ready() and late.get(timeout=0) == "late"
        assert squares.get(timeout=0) == [x * x for x in range(10)]
        assert tk.eventually(lambda: not any(pid_running(pid) for pid in workers))
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.requires("local_pids", "posix_signals")
def test_the_context_manager_terminates(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    with ctx.Pool(2) as pool:
        workers = tk.workers_of(before, 2)
        assert pool.apply(tk.square, (4,)) == 16
        stuck = pool.apply_async(tk.sleep_and_return, (600, "never"))
        began = time.monotonic()
    assert time.monotonic() - began < PROMPTLY  # the running task was not waited for
    assert tk.eventually(lambda: not any(pid_running(pid) for pid in workers))
    with pytest.raises(ValueError):
        pool.apply_async(tk.square, (1,))
    pool.join()  # after terminate(): returns
    with pytest.raises((procframe.TimeoutError, procframe.pool.BrokenPoolError)):
        stuck.get(timeout=1)  # it never got a value


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_every_way_to_make_a_pool_uses_its_context(
    ctx: procframe.Context, procframe_backend: str
) -> None:
    with ctx.Pool(processes=2) as pool:
        assert set(pool.map(tk.start_method, range(6), 1)) == {procframe_backend}
    with procframe.pool.Pool(2, context=ctx) as pool:
        assert set(pool.map(tk.start_method, range(6), 1)) == {procframe_backend}
        assert pool.apply(tk.square, (3,)) == 9


@pytest.mark.requires("local_pids")
def test_the_initializer_runs_once_in_each_worker(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    with ctx.Pool(2, tk.initialize, ("ready",)) as pool:
        states = pool.map(tk.worker_state, range(20), chunksize=1)
        workers = tk.workers_of(before, 2)
        assert {(value, calls) for _, value, calls in states} == {("ready", 1)}
        assert {pid for pid, _, _ in states} <= workers
    with ctx.Pool(processes=1, initializer=tk.initialize, initargs=(["x"],)) as pool:
        assert pool.apply(tk.worker_state)[1:] == (["x"], 1)


@pytest.mark.requires("local_pids")
def test_maxtasksperchild_replaces_workers(ctx: procframe.Context) -> None:
    with ctx.Pool(1, tk.initialize, (7,), 2) as pool:
        states = pool.map(tk.worker_state, range(6), chunksize=1)
        pids = [pid for pid, _, _ in states]
        assert len(set(pids)) == 3, pids
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5], pids
        # Each new worker ran the initializer once.
        assert {(value, calls) for _, value, calls in states} == {(7, 1)}
        assert pool.apply(tk.pid_of_worker) not in pids
    with ctx.Pool(processes=2, maxtasksperchild=1) as pool:
        pids = [pool.apply(tk.pid_of_worker) for _ in range(4)]
        assert len(set(pids)) == 4, pids


def test_a_failing_initializer_breaks_the_pool(ctx: procframe.Context, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    pool = ctx.Pool(2, initializer=tk.failing_initializer, initargs=(str(calls), "no init"))
    try:
        with pytest.raises(procframe.pool.BrokenPoolError) as info:
            pool.apply_async(tk.square, (3,)).get(timeout=PATIENCE)
        cause = info.value.__cause__
        assert cause is not None
        assert isinstance(cause, RuntimeError) or "RuntimeError" in str(cause)
        assert "no init" in str(cause)
        with pytest.raises(procframe.pool.BrokenPoolError):
            pool.map(tk.square, range(4))
        time.sleep(1)  # a pool that respawned workers forever would start dozens meanwhile
        started = len(calls.read_text(encoding="utf-8").splitlines())
        assert 1 <= started <= 8, f"the initializer ran {started} times"
    finally:
        pool.terminate()
        pool.join()


def test_imap_consumes_an_endless_input_lazily(ctx: procframe.Context) -> None:
    consumed = {"ordered": 0, "unordered": 0}
    cap = 200_000  # stops a pool that reads eagerly before it eats the machine's memory

    def endless(key: str) -> Iterator[int]:
        for i in itertools.count():
            if i >= cap:
                return
            consumed[key] = i + 1
            yield i

    pool = ctx.Pool(2)
    try:
        ordered = pool.imap(tk.square, endless("ordered"))
        assert [ordered.next(timeout=PATIENCE) for _ in range(1000)] == [i * i for i in range(1000)]
        assert 1000 <= consumed["ordered"] < 100_000

        unordered = pool.imap_unordered(tk.identity, endless("unordered"), chunksize=10)
        got = [unordered.next(timeout=PATIENCE) for _ in range(1000)]
        assert len(set(got)) == 1000
        assert all(isinstance(x, int) and 0 <= x < consumed["unordered"] for x in got)
        assert consumed["unordered"] < 100_000
    finally:
        pool.terminate()
        pool.join()


# -- ThreadPool ----------------------------------------------------------------------


def test_thread_pool() -> None:
    threads_before = set(threading.enumerate())
    local = threading.local()
    initialized: list[int] = []

    def init(value: str) -> None:
        local.value = value
        initialized.append(threading.get_ident())

    pool = procframe.pool.ThreadPool(2, init, ("set",))
    try:
        with pytest.raises(ValueError):
            pool.join()
        lock = threading.Lock()  # unpicklable: threads need no pickling
        assert pool.apply(tk.identity, (lock,)) is lock
        assert pool.map(lambda x: x + 1, range(10)) == list(range(1, 11))
        assert pool.map(tk.square, DATA, 1000) == SQUARES
        assert pool.map(tk.square, []) == []
        assert pool.starmap(lambda a, b: a * b, [(2, 3), (4, 5)]) == [6, 20]
        assert list(pool.imap(tk.slower_first, range(10))) == [x * x for x in range(10)]
        assert sorted(pool.imap_unordered(tk.square, DATA, 4)) == SQUARES
        assert pool.applyAsync(tk.square, [10]).get(timeout=PATIENCE) == 100

        ident, value = pool.apply(lambda: (threading.get_ident(), local.value))
        assert value == "set"
        assert ident in initialized
        assert ident != threading.main_thread().ident

        done, failed = tk.Calls(), tk.Calls()
        result = pool.apply_async(lambda x: x * 2, (21,), callback=done, error_callback=failed)
        assert result.get(timeout=PATIENCE) == 42
        assert done.wait() == [42]
        assert failed.values == []

        done, failed = tk.Calls(), tk.Calls()
        result = pool.map_async(lambda x: -x, [1, 2], callback=done, error_callback=failed)
        assert result.get(timeout=PATIENCE) == [-1, -2]
        assert done.wait() == [[-1, -2]]

        done, failed = tk.Calls(), tk.Calls()
        result = pool.apply_async(
            tk.raise_value_error, ("threaded",), callback=done, error_callback=failed
        )
        with pytest.raises(ValueError, match="threaded"):
            result.get(timeout=PATIENCE)
        assert [str(e) for e in failed.wait()] == ["threaded"]
        assert done.values == []
        assert result.ready() and not result.successful()

        with pytest.raises(ValueError, match="bad item 3"):
            pool.map(partial(tk.square_unless, bad=3), range(5))
        with pytest.raises(procframe.TimeoutError):
            pool.apply_async(time.sleep, (0.5,)).get(timeout=0.01)

        pool.close()
        with pytest.raises(ValueError):
            pool.apply_async(tk.square, (1,))
        pool.join()
        assert 1 <= len(initialized) <= 2
        assert len(set(initialized)) == len(initialized)
    finally:
        pool.terminate()
        pool.join()
    assert tk.eventually(
        lambda: not [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    ), "the ThreadPool left threads running"


# -- the documented example -----------------------------------------------------------

DOCUMENTED_POOL_EXAMPLE = """\
from procframe import Pool

def f(x):
    return x*x

if __name__ == '__main__':
    pool = Pool(processes=4)
    result = pool.applyAsync(f, [10])
    print(result.get(timeout=1))
    print(pool.map(f, range(10)))
"""
"""``processing``'s documented Pool example: never closed, yet the script must exit."""


def test_the_documented_pool_example_exits_with_its_pool_open(
    procframe_backend: str, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    env = script_env(procframe_backend)
    env[tk.MARK] = mark
    script = write_script(tmp_path, DOCUMENTED_POOL_EXAMPLE)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "100\n[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n",
        "",
    )
    try:
        assert tk.eventually(lambda: tk.marked_processes(mark) == []), (
            "the pool outlived its script"
        )
    finally:
        tk.kill_marked(mark)


@pytest.mark.in_one_process
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"processes": 0}, ValueError),
        ({"processes": -2}, ValueError),
        ({"processes": 1.5}, TypeError),
        ({"maxtasksperchild": 0}, ValueError),
        ({"maxtasksperchild": "2"}, ValueError),
        ({"initializer": "not callable"}, TypeError),
    ],
)
def test_bad_pool_arguments_are_refused_before_any_worker_starts(
    ctx: procframe.Context, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        ctx.Pool(**kwargs)

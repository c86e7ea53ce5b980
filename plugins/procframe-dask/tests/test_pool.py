"""ctx.Pool() and ProcessPoolExecutor on the dask backend, on the session's cluster."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import warnings
from functools import partial
from typing import Any

import cloudpickle
import pytest

import procframe
import procframe.pool
from procframe.futures import ProcessPoolExecutor

pytest.importorskip("distributed")

from distributed import Client

pytestmark = pytest.mark.timeout(180)

# The workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PATIENCE = 60.0
"""Seconds to wait for anything that should happen soon."""


# -- tasks (they run on the workers) ---------------------------------------------------


def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def count_init(key: str) -> None:
    name = f"PFD_TEST_INIT_{key}"
    os.environ[name] = str(int(os.environ.get(name, "0")) + 1)


def inits(key: str, _: Any = None) -> tuple[int, str | None]:
    time.sleep(0.01)
    return os.getpid(), os.environ.get(f"PFD_TEST_INIT_{key}")


def init_fails() -> None:
    raise RuntimeError("no database here")


def spin(seconds: float) -> str:
    """Busy in Python for ``seconds`` (a timeout stops it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


def slow_square(x: int) -> int:
    time.sleep(0.1)
    return x * x


def exit_task() -> None:
    raise SystemExit(3)


def return_generator() -> Any:
    return (i for i in range(3))


# -- the API -------------------------------------------------------------------------


def test_the_pool_is_a_procframe_pool_on_the_cluster(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        assert isinstance(pool, procframe.pool.Pool)
        assert pool.apply(os.getpid) != os.getpid()
        pool.close()
        pool.join()


def test_apply_and_callbacks(ctx: procframe.Context) -> None:
    with ctx.Pool() as pool:
        assert pool.apply(square, (7,)) == 49
        assert pool.apply(lambda a, b=0: a + b, (1,), {"b": 2}) == 3
        seen: list[tuple[str, Any, bool]] = []
        done = threading.Event()

        def note(kind: str, value: Any) -> None:
            seen.append((kind, value, threading.current_thread() is threading.main_thread()))
            done.set()

        result = pool.apply_async(square, (3,), callback=partial(note, "ok"))
        assert isinstance(result, procframe.pool.AsyncResult)
        assert result.get(timeout=PATIENCE) == 9
        assert done.wait(PATIENCE)
        assert seen == [("ok", 9, False)]
        done.clear()
        failed = pool.apply_async(fail, ("async",), error_callback=partial(note, "error"))
        with pytest.raises(ValueError, match="async"):
            failed.get(timeout=PATIENCE)
        assert done.wait(PATIENCE)
        assert seen[1][0] == "error" and isinstance(seen[1][1], ValueError)
        assert not failed.successful()


def test_maps_with_every_chunksize(ctx: procframe.Context) -> None:
    data = list(range(23))
    with ctx.Pool(2) as pool:
        for chunksize in (None, 1, 4, 1000):
            assert pool.map(square, data, chunksize) == [x * x for x in data]
            assert pool.starmap(pow, [(x, 2) for x in data], chunksize) == [x * x for x in data]
            assert pool.map(lambda x: -x, iter(data), chunksize) == [-x for x in data]
        assert list(pool.imap(square, data, 3)) == [x * x for x in data]
        assert sorted(pool.imap_unordered(square, data)) == [x * x for x in data]
        assert pool.map(square, []) == []
        got: list[Any] = []
        mapped = pool.map_async(square, range(5), callback=got.append)
        assert mapped.get(timeout=PATIENCE) == [0, 1, 4, 9, 16]
        assert isinstance(mapped, procframe.pool.MapResult)
        with pytest.raises(ValueError):
            pool.map(square, data, 0)


def test_imap_reads_an_endless_input_lazily(ctx: procframe.Context) -> None:
    import itertools

    with ctx.Pool(2) as pool:
        results = pool.imap(square, itertools.count())
        assert [next(results) for _ in range(50)] == [x * x for x in range(50)]


def test_a_task_error_has_the_remote_traceback(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        with pytest.raises(ValueError, match="boom") as info:
            pool.apply(fail, ("boom",))
        cause = info.value.__cause__
        assert isinstance(cause, procframe.pool.RemoteTraceback)
        assert "in fail" in str(cause) and "ValueError: boom" in str(cause)
        with pytest.raises(ZeroDivisionError):
            pool.map(lambda x: 1 / (x - 3), range(6), 1)
        with pytest.raises(procframe.pool.TaskAbortedError, match="SystemExit"):
            pool.apply(exit_task)
        assert pool.map(square, range(4)) == [0, 1, 4, 9]


def test_what_cannot_cross_fails_only_its_task(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        result = pool.apply_async(square, (threading.Lock(),))
        with pytest.raises(procframe.ProcessPicklingError) as info:
            result.get(timeout=PATIENCE)
        assert isinstance(info.value, TypeError)
        with pytest.raises(procframe.pool.MaybeEncodingError, match="generator"):
            pool.apply(return_generator)
        assert pool.map(square, range(4)) == [0, 1, 4, 9]


def test_the_initializer_runs_once_in_each_worker_process(ctx: procframe.Context) -> None:
    key = f"k{os.getpid()}{time.monotonic_ns()}"
    with ctx.Pool(2, initializer=count_init, initargs=(key,)) as pool:
        seen = dict(pool.map(partial(inits, key), range(40), 1))
        assert set(seen.values()) == {"1"}, seen
        assert os.getpid() not in seen


def test_a_failing_initializer_breaks_the_pool(ctx: procframe.Context) -> None:
    with ctx.Pool(2, initializer=init_fails) as pool:
        with pytest.raises(procframe.pool.BrokenPoolError) as info:
            pool.apply(square, (2,))
        assert "no database here" in str(info.value)
        with pytest.raises(procframe.pool.BrokenPoolError):
            pool.apply_async(square, (2,)).get(timeout=PATIENCE)


def test_task_timeouts(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        began = time.monotonic()
        with pytest.raises(procframe.pool.TaskTimeoutError) as info:
            pool.apply(spin, (60,), timeout=0.5)
        assert isinstance(info.value, procframe.TimeoutError)
        assert 0.45 <= time.monotonic() - began < 10
        assert pool.apply(spin, (0.1,), timeout=30) == "spun"
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
    with ctx.Pool(2, task_timeout=0.5) as pool:
        with pytest.raises(procframe.pool.TaskTimeoutError):
            pool.starmap(spin, [(0,), (60,)], chunksize=1)
        assert pool.apply(square, (5,)) == 25
    with pytest.raises(ValueError):
        ctx.Pool(2, task_timeout=0)


def test_maxtasksperchild_is_refused_saying_why(ctx: procframe.Context) -> None:
    with pytest.raises(procframe.NotSupportedError, match="long-lived worker processes"):
        ctx.Pool(2, maxtasksperchild=5)


def test_close_join_terminate(ctx: procframe.Context) -> None:
    pool = ctx.Pool(2)
    pending = pool.map_async(slow_square, range(6), 1)
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply(square, (1,))
    pool.join()
    assert pending.get(timeout=0) == [x * x for x in range(6)]

    pool = ctx.Pool(2)
    doomed = pool.map_async(spin, [30] * 4, 1)
    time.sleep(0.3)
    pool.terminate()
    pool.join()
    with pytest.raises(procframe.pool.BrokenPoolError):
        doomed.get(timeout=PATIENCE)
    with pytest.raises(ValueError, match="Pool not running"), pool:
        pass


def test_a_dropped_running_pool_warns(ctx: procframe.Context) -> None:
    pool = ctx.Pool(2)
    assert pool.apply(square, (2,)) == 4
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        del pool
        gc.collect()
    assert [w.category for w in seen] == [ResourceWarning]


# -- faults --------------------------------------------------------------------------


def test_a_worker_killed_mid_map_fails_or_reruns_only_its_tasks(
    ctx: procframe.Context, client: Client
) -> None:
    with ctx.Pool(2) as pool:
        mapped = pool.map_async(slow_square, range(40), 1)
        time.sleep(0.5)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        try:
            assert mapped.get(timeout=PATIENCE) == [x * x for x in range(40)]
        except procframe.pool.WorkerLostError as e:  # Dask gave up on a task: said so, at once
            assert "lost" in str(e)
        assert pool.map(square, range(10), 1) == [x * x for x in range(10)]
        assert pool.apply(os.getpid) != victim
        pool.close()
        pool.join()
    client.wait_for_workers(2, timeout=PATIENCE)  # its nanny restarts it for the next tests


# -- submitting in one batch -----------------------------------------------------------


class CountingClient:
    """The engine's client, counting the calls that send tasks to the scheduler."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in ("map", "submit"):
            return found

        def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
            self.sent.append((name, len(args[0]) if name == "map" else 1))
            return found(func, *args, **kwargs)

        return counted


def counting(pool: Any) -> CountingClient:
    spy = CountingClient(pool._engine.client)
    pool._engine.client = spy
    return spy


def uneven(x: int) -> int:
    time.sleep(0.002 * (x % 7))
    return x * x


def test_a_map_is_sent_in_one_message_and_delivered_in_order(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        spy = counting(pool)
        assert pool.map(square, range(500), chunksize=1) == [x * x for x in range(500)]
        assert spy.sent == [("map", 500)]
        assert pool.starmap(pow, [(x, 2) for x in range(50)], 3) == [x * x for x in range(50)]
        assert spy.sent[1:] == [("map", 17)]
        assert pool.map(uneven, range(60), 1) == [x * x for x in range(60)]  # ends out of order
        spy.sent.clear()
        assert pool.apply(square, (7,)) == 49
        assert spy.sent == [("submit", 1)]


def test_callbacks_of_a_batched_map_run_once_with_everything(ctx: procframe.Context) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    with ctx.Pool(2) as pool:
        done = pool.map_async(uneven, range(100), 1, callback=got.append)
        assert done.get(timeout=PATIENCE) == [x * x for x in range(100)]
        failed = pool.map_async(
            fail, ["a", "b"], 1, callback=got.append, error_callback=errors.append
        )
        with pytest.raises(ValueError):
            failed.get(timeout=PATIENCE)
        applied = pool.apply_async(square, (3,), callback=got.append)
        assert applied.get(timeout=PATIENCE) == 9
    assert got == [[x * x for x in range(100)], 9]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_an_item_that_cannot_be_pickled_fails_only_its_own_task(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        spy = counting(pool)
        bad = threading.Lock()
        with pytest.raises(procframe.ProcessPicklingError, match=r"input item 3 "):
            pool.map(square, [0, 1, 2, bad, 4], 1)
        assert spy.sent == [("map", 4)]  # the others were sent, together
        streamed = pool.imap(square, [1, bad, 3])
        assert next(streamed) == 1
        with pytest.raises(procframe.ProcessPicklingError, match=r"input item 1 "):
            next(streamed)
        assert next(streamed) == 9
        results = [pool.apply_async(square, (x,)) for x in (2, bad, 4)]
        assert results[0].get(timeout=PATIENCE) == 4
        with pytest.raises(procframe.ProcessPicklingError, match=r"args\[0\]"):
            results[1].get(timeout=PATIENCE)
        assert results[2].get(timeout=PATIENCE) == 16
        assert pool.map(square, range(3)) == [0, 1, 4]


def test_a_failure_ends_a_map_before_its_slow_tasks(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        began = time.monotonic()
        doomed = pool.map_async(time.sleep, [-1] + [5] * 4, 1)  # sleep(-1) raises ValueError
        with pytest.raises(ValueError):
            doomed.get(timeout=PATIENCE)
        assert time.monotonic() - began < 4.5  # not after the 10 s the others take
        pool.terminate()


def test_terminate_ends_a_blocking_apply(ctx: procframe.Context) -> None:
    pool = ctx.Pool(2)
    timer = threading.Timer(0.5, pool.terminate)
    timer.start()
    began = time.monotonic()
    try:
        with pytest.raises(procframe.pool.BrokenPoolError):
            pool.apply(spin, (30,))
        assert time.monotonic() - began < PATIENCE / 2
    finally:
        timer.cancel()
        pool.terminate()
        pool.join()


# -- concurrent.futures --------------------------------------------------------------


def test_process_pool_executor_runs_on_the_cluster(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        assert executor.submit(square, 6).result(timeout=PATIENCE) == 36
        assert list(executor.map(lambda x: x + 1, range(5), timeout=PATIENCE)) == [1, 2, 3, 4, 5]
        assert list(executor.map(square, range(7), chunksize=3)) == [x * x for x in range(7)]
        error = executor.submit(fail, "here").exception(timeout=PATIENCE)
        assert isinstance(error, ValueError)
        assert isinstance(error.__cause__, procframe.pool.RemoteTraceback)
        assert executor.submit(os.getpid).result(timeout=PATIENCE) != os.getpid()

"""What crosses between a dask-backend pool and its workers, as it crosses procframe's own pool.

Tasks, results and exceptions are pickled as procframe pickles a message; a task's
SystemExit, an exception that cannot be pickled, a refused argument, a manager's proxy
and a pool left open at exit behave as with procframe's local pools.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

import procframe
import procframe.pool
from procframe.futures import ProcessPoolExecutor

pytest.importorskip("distributed")

from procframe_dask import _pool_outcomes, cluster

pytestmark = pytest.mark.timeout(180)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

PATIENCE = 60.0
"""Seconds to wait for anything that should happen soon."""


# -- tasks (they run on the workers) ---------------------------------------------------


def exit_with(code: int) -> None:
    sys.exit(code)


def raise_holding_a_generator() -> None:
    raise ValueError("holds a generator", (i for i in range(3)))


def echo(value: object) -> object:
    return value


class Refuses:
    def __reduce__(self) -> object:
        raise TypeError("Refuses: refused by design")


def append_and_count(items: object) -> int:
    items.append(os.getpid())  # type: ignore[attr-defined]
    return len(items)  # type: ignore[arg-type]


# -- the tests ------------------------------------------------------------------------


def test_a_system_exit_is_the_cause_and_the_executor_raises_it(ctx: procframe.Context) -> None:
    with ctx.Pool(1) as pool, pytest.raises(procframe.pool.TaskAbortedError) as info:
        pool.apply(exit_with, (3,))
    cause = info.value.__cause__
    assert type(cause) is SystemExit and cause.code == 3  # Dask's tblib reducer lost the code
    assert isinstance(cause.__cause__, procframe.pool.RemoteTraceback)
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        error = executor.submit(exit_with, 4).exception(timeout=PATIENCE)
    assert type(error) is SystemExit and error.code == 4


def test_an_exception_that_cannot_be_pickled_raises_what_pickling_raised(
    ctx: procframe.Context,
) -> None:
    with ctx.Pool(1) as pool, pytest.raises(procframe.pool.MaybeEncodingError) as info:
        pool.apply(raise_holding_a_generator)
    assert type(info.value.__cause__) is TypeError  # not the chain Dask's tblib pickles
    with ProcessPoolExecutor(1, mp_context=ctx) as executor:
        error = executor.submit(raise_holding_a_generator).exception(timeout=PATIENCE)
    assert type(error) is TypeError and "generator" in str(error)


def test_local_classes_lambdas_and_memoryviews_cross_both_ways(ctx: procframe.Context) -> None:
    class LocalError(Exception):
        pass

    def fail() -> None:
        raise LocalError("raised on a worker")

    view = memoryview(bytes(range(256)) * 4).cast("B", (32, 32))
    with ctx.Pool(2) as pool:
        back = pool.apply(echo, (view,))
        assert isinstance(back, memoryview)
        assert (back.format, back.shape, back.tobytes()) == ("B", (32, 32), view.tobytes())
        assert pool.map(lambda x: memoryview(bytes([x])), range(3)) == [b"\0", b"\1", b"\2"]
        with pytest.raises(LocalError, match="raised on a worker"):
            pool.apply(fail)


def test_a_refused_argument_raises_the_serializers_own_error_named(
    ctx: procframe.Context,
) -> None:
    with ctx.Pool(1) as pool, pytest.raises(TypeError) as info:
        pool.apply(echo, (Refuses(),))
    error = info.value
    assert isinstance(error, procframe.ProcessPicklingError)
    assert "args[0]" in str(error) and "Refuses: refused by design" in str(error)
    notes = getattr(error.__cause__, "__notes__", [])
    assert any("the 'cloudpickle' serializer cannot carry" in note for note in notes), notes


def test_the_mixed_pickling_error_pickles_as_itself() -> None:
    error = _pool_outcomes.pickling_error("cannot send it", LookupError("only here"))
    assert isinstance(error, LookupError) and isinstance(error, procframe.ProcessPicklingError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == "cannot send it"


def test_a_task_reaches_a_managers_proxy_with_the_owners_authkey(ctx: procframe.Context) -> None:
    with ctx.Manager() as manager:
        items = manager.list()
        with ctx.Pool(1) as pool:
            assert pool.apply(append_and_count, (items,)) == 1
        assert len(items) == 1 and items[0] != os.getpid()


AT_EXIT = """
    import time
    import procframe
    from procframe.futures import ProcessPoolExecutor

    def slow(x):
        time.sleep(0.5)
        return x

    def done(future):
        print("done", future.result(), flush=True)

    if __name__ == "__main__":
        ctx = procframe.get_context("dask")
        pool = ctx.Pool(1)  # left open
        assert pool.apply(abs, (-3,)) == 3
        executor = ProcessPoolExecutor(1, mp_context=ctx)
        for i in range(2):
            executor.submit(slow, i).add_done_callback(done)
        print("leaving", flush=True)
"""


def test_at_exit_an_executor_finishes_and_an_open_pool_ends(
    dask_cluster: str, tmp_path: Path
) -> None:
    script = tmp_path / "at_exit.py"
    script.write_text(textwrap.dedent(AT_EXIT), encoding="utf-8")
    env = {**os.environ, cluster.ADDRESS_ENV: dask_cluster}
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["leaving", "done", "0", "done", "1"], run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr

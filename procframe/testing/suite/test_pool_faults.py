"""Pool: what a task's failure does (only that task fails), and how a pool's process ends.

Unpicklable arguments, results and exceptions, ``SystemExit`` in a task, a
worker killed or crashing mid-task, task timeouts; then Ctrl-C in the main
process, a SIGKILLed main process, and a pool nobody closed.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

import procframe
import procframe.pool
from procframe.backends import LOCAL_PIDS
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import refusals
from procframe.testing.helpers.scripts import pid_running, script_env, write_script

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
"""A pool thread that dies of an exception fails the test."""

PATIENCE = 60.0
PROMPTLY = tk.PROMPTLY

EXITS = {"sigkill": -signal.SIGKILL, "exit7": 7, "segfault": -signal.SIGSEGV}
"""How :func:`procframe.testing.helpers.pool.die` ends a worker, and the exit code that gives."""


@pytest.fixture(autouse=True)
def _no_traceback_printed(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """A traceback printed here (a pool's own thread failed, say) fails the test."""
    yield
    err = capsys.readouterr().err
    assert "Traceback" not in err, err


def names_exit(message: str, exitcode: int) -> bool:
    """True if ``message`` tells ``exitcode`` (a signal by its number or its name)."""
    if exitcode < 0:
        return str(-exitcode) in message or signal.Signals(-exitcode).name in message
    return str(exitcode) in message


# -- what cannot cross -----------------------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_an_unpicklable_argument_fails_its_task(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        for bad in refusals.refused(lambda: 0, threading.Lock(), refusals.Unpicklable()):
            result = pool.apply_async(tk.identity, (bad,))
            with pytest.raises(procframe.ProcessPicklingError) as info:
                result.get(timeout=PATIENCE)
            assert isinstance(info.value, pickle.PicklingError)
            assert isinstance(info.value, TypeError)
            assert result.ready() and not result.successful()
        with pytest.raises(procframe.ProcessPicklingError):
            pool.apply_async(refusals.a_refused_function(), (1,)).get(timeout=PATIENCE)
        with pytest.raises(procframe.ProcessPicklingError):
            pool.apply(tk.identity, (refusals.Unpicklable(),))
        with pytest.raises(procframe.ProcessPicklingError):
            pool.map(tk.identity, [1, refusals.Unpicklable(), 3])
        assert pool.map(tk.square, range(6), 1) == [0, 1, 4, 9, 16, 25]  # the pool carries on


@pytest.mark.requires("separate_memory")
def test_an_unpicklable_result_or_exception_fails_its_task(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        with pytest.raises(procframe.pool.MaybeEncodingError) as info:
            pool.apply_async(tk.return_a_generator).get(timeout=PATIENCE)
        assert "generator" in str(info.value).lower()
        with pytest.raises(procframe.pool.MaybeEncodingError) as info:
            pool.apply(tk.return_a_generator)
        assert "generator" in str(info.value).lower()
        # An exception the worker cannot pickle, and one the parent cannot unpickle.
        with pytest.raises(procframe.pool.MaybeEncodingError):
            pool.apply_async(tk.raise_holding_a_generator).get(timeout=PATIENCE)
        with pytest.raises(procframe.pool.MaybeEncodingError):
            pool.apply_async(tk.raise_two_argument_error).get(timeout=PATIENCE)
        assert pool.map(tk.square, range(6), 1) == [0, 1, 4, 9, 16, 25]  # the pool carries on


def test_system_exit_or_keyboard_interrupt_aborts_only_the_task(ctx: procframe.Context) -> None:
    with ctx.Pool(1) as pool:
        worker = pool.apply(tk.pid_of_worker)
        with pytest.raises(procframe.pool.TaskAbortedError) as info:
            pool.apply_async(tk.raise_system_exit, (3,)).get(timeout=PATIENCE)
        assert "SystemExit" in str(info.value)
        with pytest.raises(procframe.pool.TaskAbortedError) as info:
            pool.apply(tk.raise_keyboard_interrupt)
        assert "KeyboardInterrupt" in str(info.value)
        if ctx.backend.has(LOCAL_PIDS):  # a pool of one child process: the same one carried on
            assert pool.apply(tk.pid_of_worker) == worker
        assert pool.map(tk.square, range(4)) == [0, 1, 4, 9]


# -- a worker that dies ------------------------------------------------------------------


@pytest.mark.requires("separate_memory", "local_pids")  # the lost worker's pid and exit code
@pytest.mark.parametrize("how", list(EXITS))
def test_a_worker_dying_mid_task_fails_only_that_task(ctx: procframe.Context, how: str) -> None:
    before = tk.child_pids()
    pool = ctx.Pool(2)
    try:
        workers = tk.workers_of(before, 2)
        first = [pool.apply_async(tk.sleep_and_return, (0.05, i)) for i in range(3)]
        began = time.monotonic()
        doomed = pool.apply_async(tk.die, (how,))
        rest = [pool.apply_async(tk.sleep_and_return, (0.05, i)) for i in range(3, 8)]
        with pytest.raises(procframe.pool.WorkerLostError) as info:
            doomed.get(timeout=PATIENCE)
        assert time.monotonic() - began < PROMPTLY
        lost = info.value
        assert lost.pid in workers
        assert lost.exitcode == EXITS[how]
        assert str(lost.pid) in str(lost)
        assert names_exit(str(lost), EXITS[how]), str(lost)
        assert [r.get(timeout=PATIENCE) for r in first + rest] == list(range(8))

        # The worker is replaced: later tasks run, and two workers live again.
        assert pool.map(tk.square, range(10), 1) == [x * x for x in range(10)]
        assert tk.eventually(lambda: len(tk.child_pids() - before) == 2)
        assert lost.pid not in tk.child_pids()
        assert not pid_running(lost.pid)
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.requires("separate_memory", "local_pids")
def test_a_worker_dying_fails_its_map_not_the_pool(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    with ctx.Pool(2) as pool:
        workers = tk.workers_of(before, 2)
        doomed = pool.map_async(partial(tk.die_on, victim=7), range(20), chunksize=2)
        alongside = pool.apply_async(tk.sleep_and_return, (0.2, "alongside"))
        with pytest.raises(procframe.pool.WorkerLostError) as info:
            doomed.get(timeout=PATIENCE)
        assert info.value.pid in workers
        assert info.value.exitcode == -signal.SIGKILL
        assert alongside.get(timeout=PATIENCE) == "alongside"
        assert pool.map(tk.square, range(10)) == [x * x for x in range(10)]
        assert list(pool.imap(tk.square, range(5))) == [0, 1, 4, 9, 16]
        assert tk.eventually(lambda: len(tk.child_pids() - before) == 2)
        assert info.value.pid not in tk.child_pids()
        pool.close()
        pool.join()


# -- timeouts ------------------------------------------------------------------------


@pytest.mark.requires("task_timeouts")
def test_a_task_timeout_kills_and_replaces_the_worker(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    with ctx.Pool(2) as pool:
        workers = tk.workers_of(before, 2)
        began = time.monotonic()
        slow = pool.apply_async(time.sleep, (60,), timeout=0.5)
        quick = [pool.apply_async(tk.square, (i,)) for i in range(10)]
        with pytest.raises(procframe.pool.TaskTimeoutError) as info:
            slow.get(timeout=PATIENCE)
        elapsed = time.monotonic() - began
        assert 0.45 <= elapsed < PROMPTLY
        assert isinstance(info.value, procframe.TimeoutError)
        assert [q.get(timeout=PATIENCE) for q in quick] == [i * i for i in range(10)]
        assert pool.apply(tk.sleep_and_return, (0.1, "in time"), timeout=30) == "in time"

        # The timed-out worker was replaced.
        assert tk.eventually(
            lambda: len(tk.child_pids() - before) == 2 and tk.child_pids() - before != workers
        )
        with pytest.raises(procframe.pool.TaskTimeoutError):
            pool.apply(time.sleep, (60,), timeout=0.5)
        assert pool.map(tk.square, range(10)) == [x * x for x in range(10)]


@pytest.mark.requires("task_timeouts")
def test_the_pool_task_timeout_applies_to_every_task(ctx: procframe.Context) -> None:
    with ctx.Pool(2, task_timeout=0.5) as pool:
        began = time.monotonic()
        with pytest.raises(procframe.pool.TaskTimeoutError):
            pool.apply_async(time.sleep, (60,)).get(timeout=PATIENCE)
        assert time.monotonic() - began < PROMPTLY
        with pytest.raises(procframe.pool.TaskTimeoutError):
            pool.starmap(tk.sleep_and_return, [(0, "quick"), (60, "slow")], chunksize=1)
        assert pool.map(tk.square, range(10)) == [x * x for x in range(10)]
        assert pool.apply(tk.sleep_and_return, (0.1, "quick")) == "quick"


# -- how a pool's process ends ------------------------------------------------------------

CTRL_C = """\
import os
from functools import partial

from procframe import Pool
from procframe.testing.helpers import pool as tk

if __name__ == '__main__':
    pool = Pool(processes=2)
    print('started', pool.apply(tk.square, (3,)), flush=True)
    pool.map(partial(tk.slow_marking, directory=os.getcwd()), range(100))
    print('map returned', flush=True)
"""
"""A Pool busy in ``map`` for a minute or more (each task marks ``started.<pid>``)."""

KILLED_PARENT = """\
import time
from procframe import Pool
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import refusals

if __name__ == '__main__':
    pool = Pool(processes=2)
    busy = pool.apply_async(tk.sleep_and_return, (600, None))
    print('ready', pool.apply(tk.square, (3,)), flush=True)
    time.sleep(600)
"""
"""A Pool with one worker busy for ten minutes and one idle, in a process that waits."""


def start_marked(directory: Path, source: str, backend: str, mark: str) -> subprocess.Popen[str]:
    """Start ``source`` as a script whose processes all carry ``mark`` in their environment."""
    env = script_env(backend)
    env[tk.MARK] = mark
    return subprocess.Popen(
        [sys.executable, str(write_script(directory, source))],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(180)
def test_ctrl_c_in_map_raises_keyboardinterrupt_and_leaves_nothing(
    procframe_backend: str, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    script = start_marked(tmp_path, CTRL_C, procframe_backend, mark)
    try:
        assert script.stdout is not None
        assert script.stdout.readline() == "started 9\n"
        assert tk.eventually(lambda: any(tmp_path.glob("started.*")), PATIENCE)
        os.kill(script.pid, signal.SIGINT)  # that process only, not its workers
        try:
            out, err = script.communicate(timeout=PROMPTLY)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {PROMPTLY}s after SIGINT")
        assert script.returncode != 0
        assert "KeyboardInterrupt" in err
        assert "map returned" not in out
        leftover = tk.eventually(lambda: tk.marked_processes(mark) == [])
        assert leftover, f"left running: {tk.marked_processes(mark)}"
    finally:
        if script.poll() is None:
            script.kill()
        script.communicate(timeout=PATIENCE)
        tk.kill_marked(mark)


@pytest.mark.requires("parent_death", "local_pids")  # finds them here by their environment
def test_workers_do_not_outlive_a_killed_parent(procframe_backend: str, tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    script = start_marked(tmp_path, KILLED_PARENT, procframe_backend, mark)
    try:
        assert script.stdout is not None
        assert script.stdout.readline() == "ready 9\n"
        others = [pid for pid in tk.marked_processes(mark) if pid != script.pid]
        assert len(others) >= 2  # the two workers (and any helper)
        script.kill()
        script.wait(PATIENCE)
        gone = tk.eventually(lambda: tk.marked_processes(mark) == [])
        assert gone, f"still running after the parent was killed: {tk.marked_processes(mark)}"
    finally:
        if script.poll() is None:
            script.kill()
        script.communicate(timeout=PATIENCE)
        tk.kill_marked(mark)


@pytest.mark.requires("local_pids")
def test_a_dropped_pool_terminates_its_workers(ctx: procframe.Context) -> None:
    before = tk.child_pids()
    pool = ctx.Pool(2)
    assert pool.map(tk.square, range(8)) == [x * x for x in range(8)]
    workers = tk.workers_of(before, 2)
    with pytest.warns(ResourceWarning, match="unclosed running"):
        del pool
        gc.collect()
    assert tk.eventually(lambda: not any(pid_running(pid) for pid in workers))

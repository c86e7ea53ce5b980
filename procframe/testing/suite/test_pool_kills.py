"""Pool workers killed from outside: each is replaced, and the pool (or executor) serves on.

A worker SIGKILLed while idle, again and again, or all of them in rounds,
or at random while many short tasks run (the kill-storm probe): the pool
never breaks, a kill fails at most the one task its worker was running,
and a pool losing workers over and over slows its replacements down rather
than spin.  The pool breaks only when its workers cannot start at all, and
its error says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import procframe
import procframe.pool
from procframe.futures import ProcessPoolExecutor
from procframe.testing.helpers import pool as tk
from procframe.testing.helpers import pool_kills as pk
from procframe.testing.helpers import stress
from procframe.testing.helpers.scripts import run_script

pytestmark = pytest.mark.requires("posix_signals", "separate_memory", "local_pids")

PATIENCE = 60.0
PROMPTLY = tk.PROMPTLY


# -- idle workers killed, again and again ---------------------------------------------------


def test_a_pool_serves_after_its_idle_worker_is_killed_eight_times(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    before = tk.child_pids()
    with ctx.Pool(1, initializer=pk.mark_ready, initargs=(str(tmp_path),)) as pool:
        killed = pk.kill_rounds(tmp_path, before, 1, 8)
        assert len(killed) == 8
        assert pool.apply(tk.square, (7,)) == 49
        assert pool.apply_async(tk.square, (8,)).get(timeout=PATIENCE) == 64
        assert pool.map(tk.square, range(10)) == [x * x for x in range(10)]
        assert list(pool.imap(tk.square, range(5))) == [0, 1, 4, 9, 16]
        assert pool.apply(tk.pid_of_worker) not in killed
        pool.close()
        pool.join()


def test_an_executor_serves_after_its_idle_worker_is_killed_eight_times(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    before = tk.child_pids()
    with ProcessPoolExecutor(
        1, mp_context=ctx, initializer=pk.mark_ready, initargs=(str(tmp_path),)
    ) as executor:
        assert executor.submit(tk.square, 2).result(timeout=PATIENCE) == 4  # the pool is up
        killed = pk.kill_rounds(tmp_path, before, 1, 8)
        assert executor.submit(tk.square, 3).result(timeout=PATIENCE) == 9
        assert list(executor.map(tk.square, range(4), timeout=PATIENCE)) == [0, 1, 4, 9]
        assert executor.submit(tk.pid_of_worker).result(timeout=PATIENCE) not in killed


def test_a_pool_serves_after_rounds_of_killing_all_its_idle_workers(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    before = tk.child_pids()
    with ctx.Pool(3, initializer=pk.mark_ready, initargs=(str(tmp_path),)) as pool:
        killed = pk.kill_rounds(tmp_path, before, 3, 4)
        assert len(killed) == 12
        assert pool.map(tk.square, range(30), 1) == [x * x for x in range(30)]
        results = [pool.apply_async(tk.pid_of_worker) for _ in range(6)]
        assert not {r.get(timeout=PATIENCE) for r in results} & killed
        pool.close()
        pool.join()


def test_a_pool_whose_workers_are_killed_as_they_appear_backs_off(
    ctx: procframe.Context,
) -> None:
    before = tk.child_pids()
    with ctx.Pool(1) as pool:
        with pk.Killer(lambda: tk.child_pids() - before, 0.005, 10_000) as killer:
            time.sleep(2.0)
        # Without a delay between replacements, fork starts a worker every few ms.
        assert len(killer.kills) <= 20, f"{len(killer.kills)} workers started in 2 s"
        assert pool.apply_async(tk.square, (5,)).get(timeout=PATIENCE) == 25
        assert pool.map(tk.square, range(6)) == [0, 1, 4, 9, 16, 25]
        pool.close()
        pool.join()


# -- workers that cannot start ------------------------------------------------------------


def test_workers_that_exit_before_they_are_ready_break_the_pool_naming_why(
    ctx: procframe.Context,
) -> None:
    pool = ctx.Pool(2, initializer=pk.exit_at_start, initargs=(3,))
    try:
        began = time.monotonic()
        with pytest.raises(procframe.pool.BrokenPoolError) as info:
            pool.apply_async(tk.square, (3,)).get(timeout=PATIENCE)
        assert time.monotonic() - began < PROMPTLY
        cause = info.value.__cause__
        assert isinstance(cause, procframe.pool.WorkerStartError), repr(cause)
        assert isinstance(cause, RuntimeError)
        assert cause.exitcode == 3
        assert "exited with code 3" in str(info.value)
        assert "before they were ready" in str(info.value)
        assert f"pid {cause.pid}" in str(info.value)
        with pytest.raises(procframe.pool.BrokenPoolError):
            pool.map(tk.square, range(4))
        with pytest.raises(procframe.pool.BrokenPoolError):
            pool.apply(tk.square, (2,))
    finally:
        pool.terminate()
        pool.join()


def test_an_executor_whose_workers_cannot_start_is_broken(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(
        1, mp_context=ctx, initializer=pk.exit_at_start, initargs=(3,)
    ) as executor:
        error = executor.submit(tk.square, 3).exception(timeout=PATIENCE)
        assert isinstance(error, procframe.pool.BrokenPoolError), repr(error)
        assert isinstance(error.__cause__, procframe.pool.WorkerStartError)
        later = executor.submit(tk.square, 4).exception(timeout=PATIENCE)
        assert isinstance(later, procframe.pool.BrokenPoolError)


UNIMPORTABLE_MAIN = """\
import procframe
import procframe.pool
from procframe.testing.helpers.pool import square

if __name__ != "__main__":
    raise ImportError("this program refuses to be imported by a child")

if __name__ == "__main__":
    pool = procframe.Pool(2)
    try:
        pool.apply(square, (3,))
    except procframe.pool.BrokenPoolError as error:
        cause = error.__cause__
        print("BROKEN", type(cause).__name__, cause.exitcode, cause.pid)
        print("MESSAGE", error)
    finally:
        pool.terminate()
        pool.join()
"""


@pytest.mark.requires("reimports_main")
def test_a_main_module_that_fails_in_the_workers_breaks_the_pool(
    procframe_backend: str, tmp_path: Path
) -> None:
    done = run_script(tmp_path, UNIMPORTABLE_MAIN, procframe_backend)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    kind, exitcode, pid = lines["BROKEN"].split()
    assert (kind, exitcode) == ("WorkerStartError", "1"), done.stdout
    assert "exited with code 1" in lines["MESSAGE"]
    assert f"procframe: child process {pid} could not start" in lines["MESSAGE"]
    assert f"procframe: child process {pid} could not start" in done.stderr
    assert "refuses to be imported by a child" in done.stderr


# -- the kill-storm probe -----------------------------------------------------------------


@pytest.mark.stress
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count descriptors")
def test_a_kill_storm_fails_only_the_killed_workers_tasks(ctx: procframe.Context) -> None:
    tasks = stress.size(300, 10_000)
    kills = stress.size(24, 140)
    interval = 0.03
    idle = stress.seconds(0.6, 2.0)  # then the storm goes on while no task runs
    workers = 4
    counts = ctx.RawArray("i", tasks)
    before = tk.child_pids()
    pool = ctx.Pool(workers, initializer=pk.adopt_counts, initargs=(counts,))
    try:
        assert pool.map(tk.square, range(workers * 4), 1) == [x * x for x in range(workers * 4)]
        tk.workers_of(before, workers)
        descriptors = pk.open_descriptors()
        failed_at: dict[int, float] = {}

        def failed(index: int) -> Callable[[BaseException], object]:
            return lambda _: failed_at.setdefault(index, time.monotonic())

        began = time.monotonic()
        with pk.Killer(lambda: tk.child_pids() - before, interval, kills) as killer:
            results = [
                pool.apply_async(pk.counted_square, (i, 0.001), error_callback=failed(i))
                for i in range(tasks)
            ]
            deadline = time.monotonic() + max(120.0, tasks * 0.05)
            outcomes: list[BaseException | int] = []
            for result in results:
                try:
                    outcomes.append(result.get(timeout=max(0.0, deadline - time.monotonic())))
                except procframe.TimeoutError:
                    pytest.fail(f"a task hung: {len(outcomes)} of {tasks} ended")
                except Exception as error:
                    outcomes.append(error)
            took = time.monotonic() - began
            busy_kills = len(killer.kills)
            time.sleep(idle)
        corrupt = [i for i, got in enumerate(outcomes) if isinstance(got, int) and got != i * i]
        lost = {i: got for i, got in enumerate(outcomes) if isinstance(got, BaseException)}
        unexpected = {
            i: got for i, got in lost.items() if not isinstance(got, procframe.pool.WorkerLostError)
        }
        duplicated = [i for i in range(tasks) if counts[i] > 1]
        not_run = [i for i in range(tasks) if i not in lost and counts[i] != 1]
        lost_pids = [
            got.pid for got in lost.values() if isinstance(got, procframe.pool.WorkerLostError)
        ]
        latencies = [
            failed_at[i] - killer.kills[got.pid]
            for i, got in lost.items()
            if isinstance(got, procframe.pool.WorkerLostError)
            and got.pid in killer.kills
            and i in failed_at
        ]
        pk.report(
            f"POOL KILL STORM [{ctx.get_start_method()}]: {tasks} tasks in {took:.1f} s, "
            f"{len(killer.kills)} kills every {interval * 1e3:.0f} ms ({busy_kills} while tasks "
            f"ran, the rest in {idle} s idle), {len(lost)} lost "
            f"(WorkerLostError of a killed worker's running task), {len(duplicated)} duplicated, "
            f"{len(corrupt)} corrupt, 0 hangs; kill to error: {pk.summary(latencies)}"
        )
        assert not unexpected, f"tasks failed otherwise than by a kill: {unexpected}"
        assert not corrupt and not duplicated and not not_run, (corrupt, duplicated, not_run)
        assert set(lost_pids) <= set(killer.kills), "a task failed for a worker nobody killed"
        assert len(lost_pids) == len(set(lost_pids)), "one kill failed more than one task"
        assert killer.kills, "the killer killed no worker"

        # After the storm the pool serves, with all its workers, and holds no more descriptors.
        assert pool.map(tk.square, range(20), 1) == [x * x for x in range(20)]
        assert pool.apply(tk.square, (9,)) == 81
        assert tk.eventually(lambda: len(tk.child_pids() - before) == workers)
        assert tk.eventually(lambda: pk.open_descriptors() <= descriptors + 2), (
            f"{pk.open_descriptors()} descriptors open, {descriptors} before the storm"
        )
        pk.report(f"descriptors: {descriptors} before the storm, {pk.open_descriptors()} after")
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        pool.join()

"""A Process on the dask backend killed inside a primitive, and a Process whose parent died.

Run with the session cluster (``-p procframe.testing -p procframe_dask.testing
--procframe-backend dask``): a scheduler and two workers, separate OS processes on
127.0.0.1.  The children run on the workers, so their pids are not this process's
children: the tests reap them through procframe, and kill by pid what they orphan on
purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import exchange, sync
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.targets import read_report, report

pytestmark = pytest.mark.timeout(180)
# The workers cannot import this module: its targets travel by value.
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PATIENCE = 60.0
SHORT = 0.3
SETTLE = 0.5
"""Seconds a killed child is left blocked before it is killed (its request reached the
scheduler)."""
ORPHAN_DEADLINE = 15.0
"""Seconds within which a process whose parent died must be gone from its worker."""


def _bounded(call: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    """``call()`` in a thread; fail (not hang) if it does not return within ``timeout``."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} still blocked after {timeout} s"
    if errors:
        raise errors[0]
    return out[0]


@contextmanager
def _started(ctx: procframe.Context, target: Any, *args: Any) -> Iterator[Any]:
    p = ctx.Process(target=target, args=args)
    p.start()
    try:
        yield p
    finally:
        exchange.reap(p)


def _kill_when_ready(p: Any, ready: Path) -> None:
    """Wait for ``p`` to report it is about to block, let it block, kill it, join it."""
    read_report(ready, timeout=PATIENCE)
    time.sleep(SETTLE)
    p.kill()
    p.join(PATIENCE)
    assert p.exitcode == -signal.SIGKILL


def _acquire_release(lock: Any, timeout: float) -> bool:
    """Acquire ``lock`` within ``timeout`` and release it, in one thread (an RLock's owner)."""
    got = bool(lock.acquire(timeout=timeout))
    if got:
        lock.release()
    return got


def _notify_under(cond: Any, notify: Callable[[Any], None]) -> None:
    assert cond.acquire(timeout=PATIENCE)
    try:
        notify(cond)
    finally:
        cond.release()


# -- child targets --------------------------------------------------------------------


def acquire_forever(lock: Any, ready_path: str, report_path: str) -> None:
    report(ready_path, os.getpid())
    got = lock.acquire()
    report(report_path, {"got": got})


def recv_once(conn: Any, ready_path: str, report_path: str) -> None:
    report(ready_path, os.getpid())
    report(report_path, {"got": conn.recv()})


def recv_n(conn: Any, count: int, report_path: str) -> None:
    got = []
    for _ in range(count):
        if not conn.poll(PATIENCE):
            break
        got.append(conn.recv())
    report(report_path, {"got": got})


def barrier_wait(barrier: Any, ready_path: str) -> None:
    report(ready_path, os.getpid())
    barrier.wait()


# -- a process killed while it holds a lock ---------------------------------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "BoundedSemaphore"])
def test_a_lock_whose_holder_was_killed_times_out_and_nothing_hangs(
    dask_ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = getattr(dask_ctx, kind)()
    ready = tmp_path / "ready"
    with _started(dask_ctx, sync.hold_forever, lock, str(ready)) as p:
        assert read_report(ready, timeout=PATIENCE) == p.pid
        p.kill()
        p.join(PATIENCE)
    assert p.exitcode == -signal.SIGKILL
    began = time.monotonic()
    assert _bounded(lambda: lock.acquire(timeout=SHORT)) is False
    assert time.monotonic() - began >= SHORT - 0.02
    assert _bounded(lambda: lock.acquire(False)) is False
    if kind != "RLock":  # multiprocessing's Lock and semaphores may be released by anyone
        lock.release()
        assert _bounded(lambda: _acquire_release(lock, PATIENCE)) is True


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore"])
def test_a_process_killed_waiting_for_a_lock_takes_nothing_with_it(
    dask_ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = getattr(dask_ctx, kind)()
    assert lock.acquire(timeout=PATIENCE)
    ready, out = tmp_path / "ready", tmp_path / "out"
    with _started(dask_ctx, acquire_forever, lock, str(ready), str(out)) as p:
        _kill_when_ready(p, ready)
    lock.release()
    assert _bounded(lambda: _acquire_release(lock, 10)) is True, "the release went to the dead"
    assert not out.exists()


def _condition_with_a_dead_waiter(ctx: procframe.Context, tmp_path: Path) -> Any:
    cond = ctx.Condition()
    ready, result = tmp_path / "dead-ready", tmp_path / "dead-result"
    with _started(ctx, sync.wait_on, cond, str(ready), str(result), PATIENCE) as p:
        _kill_when_ready(p, ready)
    assert not result.exists()
    return cond


def _live_waiter_woken_by(
    ctx: procframe.Context, cond: Any, tmp_path: Path, notify: Callable[[Any], None]
) -> None:
    ready, result = tmp_path / "ready", tmp_path / "result"
    with _started(ctx, sync.wait_on, cond, str(ready), str(result), 10.0) as q:
        read_report(ready, timeout=PATIENCE)
        _bounded(lambda: _notify_under(cond, notify))
        q.join(PATIENCE)
    assert q.exitcode == 0
    assert read_report(result)["woken"] is True


def test_a_condition_waiter_killed_in_wait_hangs_no_one(
    dask_ctx: procframe.Context, tmp_path: Path
) -> None:
    cond = _condition_with_a_dead_waiter(dask_ctx, tmp_path)
    # wait() gave the lock back before it blocked; notify_all returns (locally,
    # multiprocessing's notify would wait for the dead waiter for ever)
    _bounded(lambda: _notify_under(cond, lambda c: c.notify_all()))
    _live_waiter_woken_by(dask_ctx, cond, tmp_path, lambda c: c.notify_all())


def test_notify_after_a_waiter_was_killed_wakes_a_live_one(
    dask_ctx: procframe.Context, tmp_path: Path
) -> None:
    cond = _condition_with_a_dead_waiter(dask_ctx, tmp_path)
    _live_waiter_woken_by(dask_ctx, cond, tmp_path, lambda c: c.notify())


def test_a_barrier_party_killed_in_wait_hangs_no_one(
    dask_ctx: procframe.Context, tmp_path: Path
) -> None:
    barrier = dask_ctx.Barrier(3)
    ready = tmp_path / "ready"
    with _started(dask_ctx, barrier_wait, barrier, str(ready)) as p:
        _kill_when_ready(p, ready)
    # The dead party had arrived: the others' wait ends (passed, as locally, or broken
    # after its timeout), never for ever.
    with pytest.raises(threading.BrokenBarrierError):
        _bounded(lambda: barrier.wait(timeout=SHORT))
    barrier.reset()
    assert barrier.n_waiting == 0 and not barrier.broken


# -- a process killed while it waits on a queue --------------------------------------------


@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue", "JoinableQueue"])
def test_a_consumer_killed_in_get_leaves_every_item_to_the_next(
    dask_ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    q = getattr(dask_ctx, kind)()
    ready, first_out, second_out = tmp_path / "ready", tmp_path / "first", tmp_path / "second"
    with _started(dask_ctx, exchange.get_once, q, str(ready), str(first_out)) as first:
        _kill_when_ready(first, ready)
    timeout = None if kind == "SimpleQueue" else PATIENCE
    with _started(dask_ctx, exchange.get_n, q, 3, str(second_out), timeout) as second:
        for i in range(3):
            q.put(i)
        second.join(PATIENCE)
    assert second.exitcode == 0, "the second consumer is stuck"
    q.put("parent")
    assert _bounded(lambda: q.get()) == "parent"
    assert read_report(second_out) == {"error": None, "got": [0, 1, 2]}
    assert not first_out.exists()


def test_a_reader_killed_in_recv_leaves_every_message_to_the_next(
    dask_ctx: procframe.Context, tmp_path: Path
) -> None:
    reader, writer = dask_ctx.Pipe(duplex=False)
    ready, first_out, second_out = tmp_path / "ready", tmp_path / "first", tmp_path / "second"
    with _started(dask_ctx, recv_once, reader, str(ready), str(first_out)) as first:
        _kill_when_ready(first, ready)
    with _started(dask_ctx, recv_n, reader, 3, str(second_out)) as second:
        for i in range(3):
            writer.send(i)
        second.join(PATIENCE)
    assert second.exitcode == 0
    assert read_report(second_out) == {"got": [0, 1, 2]}
    writer.send("parent")
    assert _bounded(lambda: reader.poll(10)) is True
    assert reader.recv() == "parent"
    assert not first_out.exists()
    reader.close()
    writer.close()


# -- orphans: a process whose parent program died -------------------------------------------

PARENT = """
import os, signal, sys, time
import procframe

def sleeper(path):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(120)

if __name__ == "__main__":
    path, how = sys.argv[1], sys.argv[2]
    p = procframe.get_context("dask").Process(target=sleeper, args=(path,), daemon=how == "daemon")
    p.start()
    for _ in range(600):
        if os.path.exists(path):
            break
        time.sleep(0.1)
    print(p.pid, flush=True)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "os_exit":
        os._exit(0)
    # "daemon": a normal exit, no join; its daemonic child is terminated at exit
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["sigkill", "os_exit", "daemon"])
def test_a_process_whose_parent_died_ends_on_its_worker(
    dask_ctx: procframe.Context, tmp_path: Path, how: str
) -> None:
    if not Path("/proc").is_dir():
        pytest.skip("looks for the orphan in /proc")
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT), encoding="utf-8")
    pidfile = tmp_path / "child.pid"
    env = {**os.environ, "PROCFRAME_BACKEND": "dask"}
    done = subprocess.run(
        [sys.executable, str(script), str(pidfile), how],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE * 2,
    )
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        assert pid is not None, done.stdout + done.stderr
        assert done.stdout.split() == [str(pid)], done.stdout + done.stderr
        deadline = time.monotonic() + ORPHAN_DEADLINE
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"the orphan {pid} still runs {ORPHAN_DEADLINE} s on"
    finally:
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- the worker dies ----------------------------------------------------------------------


def _note_start_and_sleep(path: str, out: Any) -> None:
    with open(path, "a", encoding="utf-8") as starts:
        starts.write(f"{os.getpid()}\n")
    out.put(os.getpid())
    time.sleep(120)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_process_whose_worker_died_ends_with_it_and_is_not_run_again(
    dask_ctx: procframe.Context, client: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    starts = tmp_path / "starts"
    out = dask_ctx.Queue()
    p = dask_ctx.Process(target=_note_start_and_sleep, args=(str(starts), out))
    p.start()
    child = out.get(timeout=PATIENCE)
    try:
        for worker_pid in client.run(os.getpid).values():
            os.kill(worker_pid, signal.SIGKILL)  # its nanny starts it again
        p.join(PATIENCE)
        assert p.exitcode == 255
        assert eventually(lambda: not _pid_running(child), ORPHAN_DEADLINE)
        assert "is lost: its worker died" in capfd.readouterr().err
        time.sleep(SETTLE)
        assert starts.read_text(encoding="utf-8").split() == [str(child)]  # run once only
    finally:
        client.wait_for_workers(2, timeout=PATIENCE)
        if _pid_running(child):
            os.kill(child, signal.SIGKILL)

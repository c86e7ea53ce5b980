"""The Lock family: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event.

In one process (with threads), then across processes.  Timeouts are checked
from below only: a wait that should time out must not return early, but how
late it returns is the machine's business.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import sync
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import run_script
from procframe.testing.helpers.targets import read_report, report

"""Tests that hand a lock to a child as a Process argument."""

MUTEXES = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition"]
"""Everything with ``acquire``/``release`` that admits one holder at a time (as made here)."""
PATIENCE = 60.0
SHORT = 0.3
"""A timeout that must elapse: waits are checked to last at least this (minus clock slack)."""
SLACK = 0.02


def _make(ctx: procframe.Context, kind: str) -> Any:
    """A fresh ``kind`` that one holder at a time can acquire."""
    if kind in ("Semaphore", "BoundedSemaphore"):
        return getattr(ctx, kind)(1)
    return getattr(ctx, kind)()


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def _in_thread(call: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    """``call()`` in another thread; its result (or exception), failing if it hangs."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} did not return within {timeout}s"
    if "error" in box:
        raise box["error"]
    return box["result"]


def _start(ctx: procframe.Context, target: Callable[..., Any], *args: Any) -> Any:
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def _join(*procs: Any) -> None:
    """Join ``procs`` (killing any still running after a minute); each must exit 0."""
    try:
        for p in procs:
            p.join(PATIENCE)
    finally:
        reap(*procs)
    assert [p.exitcode for p in procs] == [0] * len(procs)


# -- Lock, RLock, Semaphore, BoundedSemaphore in one process --------------------------


@pytest.mark.core
@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", MUTEXES)
def test_acquire_and_release(ctx: procframe.Context, kind: str) -> None:
    lock = _make(ctx, kind)
    assert lock.acquire() is True
    if kind not in ("RLock", "Condition"):  # an RLock's owner may take it again
        assert lock.acquire(False) is False
        assert lock.acquire(block=False) is False
        assert lock.acquire(True, 0) is False
        assert lock.acquire(timeout=0) is False
    lock.release()
    assert lock.acquire(False) is True
    lock.release()
    assert lock.acquire(True, 1.0) is True
    lock.release()
    assert lock.acquire(timeout=None) is True
    lock.release()


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", MUTEXES)
def test_acquire_times_out_no_earlier_than_asked(ctx: procframe.Context, kind: str) -> None:
    lock = _make(ctx, kind)
    assert lock.acquire()
    try:
        got, elapsed = _in_thread(lambda: _timed(lambda: lock.acquire(timeout=SHORT)))
        assert got is False
        assert elapsed >= SHORT - SLACK
        got, elapsed = _in_thread(lambda: _timed(lambda: lock.acquire(True, SHORT)))
        assert got is False
        assert elapsed >= SHORT - SLACK
        # block=False ignores the timeout
        got = _in_thread(lambda: lock.acquire(False, PATIENCE))
        assert got is False
    finally:
        lock.release()


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", MUTEXES)
def test_context_manager(ctx: procframe.Context, kind: str) -> None:
    lock = _make(ctx, kind)
    with lock as entered:
        assert entered is True
        assert _in_thread(lambda: lock.acquire(False)) is False
    assert _in_thread(lambda: _release_after(lock, lock.acquire(False))) is True
    with pytest.raises(KeyError), lock:
        raise KeyError("inside")
    assert _in_thread(lambda: _release_after(lock, lock.acquire(False))) is True


def _release_after(lock: Any, got: bool) -> bool:
    if got:
        lock.release()
    return got


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", MUTEXES)
def test_threads_of_one_process_exclude_each_other(ctx: procframe.Context, kind: str) -> None:
    lock = _make(ctx, kind)
    state = {"value": 0, "inside": 0, "most_inside": 0}

    def work() -> None:
        for _ in range(200):
            with lock:
                state["inside"] += 1
                state["most_inside"] = max(state["most_inside"], state["inside"])
                value = state["value"]
                time.sleep(0)
                state["value"] = value + 1
                state["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert not any(thread.is_alive() for thread in threads)
    assert state == {"value": 800, "inside": 0, "most_inside": 1}


@pytest.mark.in_one_process
def test_lock_may_be_released_by_another_thread(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    assert lock.acquire()
    _in_thread(lock.release)
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", ["Lock", "Semaphore"])
def test_releasing_an_unlocked_lock_raises_valueerror(ctx: procframe.Context, kind: str) -> None:
    # multiprocessing's Lock raises ValueError (threading's raises RuntimeError);
    # a Semaphore(1) has no bound and may be released above it
    lock = _make(ctx, kind)
    if kind == "Lock":
        with pytest.raises(ValueError):
            lock.release()
        assert lock.acquire(False) is True
        assert lock.acquire(False) is False
    else:
        lock.release()
        assert [lock.acquire(False) for _ in range(3)] == [True, True, False]


@pytest.mark.in_one_process
def test_lock_locked(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()


@pytest.mark.in_one_process
def test_rlock_is_recursive_and_owned(ctx: procframe.Context) -> None:
    rlock = ctx.RLock()
    assert rlock.acquire()
    assert rlock.acquire(False)
    assert rlock.acquire(timeout=1)
    with rlock:
        assert _in_thread(lambda: rlock.acquire(False)) is False
        # not the owner: may neither take nor release it
        with pytest.raises((AssertionError, RuntimeError)):
            _in_thread(rlock.release)
    for _ in range(3):
        rlock.release()
    with pytest.raises((AssertionError, RuntimeError)):
        rlock.release()
    # released as often as acquired: free for another thread now
    assert _in_thread(lambda: _release_after(rlock, rlock.acquire(False))) is True


@pytest.mark.in_one_process
def test_rlock_waits_for_its_owner_thread(ctx: procframe.Context) -> None:
    rlock = ctx.RLock()
    rlock.acquire()
    rlock.acquire()
    got: list[bool] = []
    thread = threading.Thread(
        target=lambda: got.append(_release_after(rlock, rlock.acquire(timeout=PATIENCE)))
    )
    thread.start()
    thread.join(SHORT)
    still_waiting = thread.is_alive()
    rlock.release()
    thread.join(SHORT)
    waiting_after_one_release = thread.is_alive()
    rlock.release()
    thread.join(PATIENCE)
    assert still_waiting and waiting_after_one_release
    assert got == [True]


@pytest.mark.in_one_process
def test_semaphore_counts(ctx: procframe.Context) -> None:
    sem = ctx.Semaphore(3)
    assert sem.get_value() == 3
    assert [sem.acquire(False) for _ in range(4)] == [True, True, True, False]
    assert sem.get_value() == 0
    _, elapsed = _timed(lambda: sem.acquire(timeout=SHORT))
    assert elapsed >= SHORT - SLACK
    sem.release()
    sem.release()
    assert sem.get_value() == 2
    # an unbounded semaphore may go above its initial value
    for _ in range(3):
        sem.release()
    assert sem.get_value() == 5
    assert ctx.Semaphore(0).acquire(False) is False
    assert ctx.Semaphore().acquire(False) is True  # default value 1


@pytest.mark.in_one_process
def test_semaphore_wakes_a_waiting_thread(ctx: procframe.Context) -> None:
    sem = ctx.Semaphore(0)
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(sem.acquire(timeout=PATIENCE)))
    thread.start()
    thread.join(SHORT)
    waiting = thread.is_alive()
    sem.release()
    thread.join(PATIENCE)
    assert waiting
    assert got == [True]


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_negative_semaphore_value_is_refused(ctx: procframe.Context, kind: str) -> None:
    with pytest.raises(ValueError):
        getattr(ctx, kind)(-1)


@pytest.mark.in_one_process
def test_bounded_semaphore_refuses_to_go_above_its_value(ctx: procframe.Context) -> None:
    sem = ctx.BoundedSemaphore(2)
    with pytest.raises(ValueError):
        sem.release()
    assert sem.acquire(False)
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert [sem.acquire(False) for _ in range(3)] == [True, True, False]
    sem.release()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.get_value() == 2


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", [*MUTEXES, "Event"])
def test_pickling_outside_a_process_start_is_refused(ctx: procframe.Context, kind: str) -> None:
    lock = _make(ctx, kind)
    with pytest.raises((TypeError, RuntimeError, pickle.PicklingError)):
        pickle.dumps(lock)


# -- Condition in one process ----------------------------------------------------------


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", ["default", "Lock", "RLock"])
def test_condition_wait_times_out_and_keeps_the_lock(ctx: procframe.Context, lock: str) -> None:
    cond = ctx.Condition() if lock == "default" else ctx.Condition(getattr(ctx, lock)())
    with cond:
        woken, elapsed = _timed(lambda: cond.wait(SHORT))
        assert woken is False
        assert elapsed >= SHORT - SLACK
        assert _in_thread(lambda: cond.acquire(False)) is False  # held again
        assert cond.wait(0) is False
        result, elapsed = _timed(lambda: cond.wait_for(lambda: 0, SHORT))
        assert result == 0
        assert elapsed >= SHORT - SLACK
        assert cond.wait_for(lambda: "yes", 0) == "yes"
        assert cond.wait_for(lambda: 7) == 7  # true at once: no wait, even without timeout
        cond.notify()  # nobody waits: nothing happens
        cond.notify_all()
    assert _in_thread(lambda: _release_after(cond, cond.acquire(False))) is True


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", ["default", "Lock", "RLock"])
def test_condition_methods_need_the_lock(ctx: procframe.Context, lock: str) -> None:
    cond = ctx.Condition() if lock == "default" else ctx.Condition(getattr(ctx, lock)())
    with pytest.raises(RuntimeError):
        cond.wait(0.01)
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(RuntimeError):
        cond.notify_all()
    with pytest.raises(RuntimeError):
        cond.wait_for(lambda: False, 0.01)
    with cond:  # held by another thread is not held by us
        with pytest.raises(RuntimeError):
            _in_thread(cond.notify)
        with pytest.raises(RuntimeError):
            _in_thread(lambda: cond.wait(0.01))


@pytest.mark.in_one_process
def test_condition_uses_the_lock_it_is_given(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    cond = ctx.Condition(lock)
    with cond:
        assert lock.acquire(False) is False
    assert lock.acquire(False) is True
    assert _in_thread(lambda: cond.acquire(False)) is False
    lock.release()


@pytest.mark.in_one_process
def test_condition_wait_releases_a_recursive_lock_entirely(ctx: procframe.Context) -> None:
    rlock = ctx.RLock()
    cond = ctx.Condition(rlock)
    notified = threading.Event()

    def notifier() -> None:
        with cond:  # only possible if wait() released every level
            cond.notify()
        notified.set()

    with cond, cond:
        thread = threading.Thread(target=notifier)
        thread.start()
        woken = cond.wait(PATIENCE)
        # both levels are back: two releases succeed, a third does not
        rlock.release()
        rlock.release()
        with pytest.raises((AssertionError, RuntimeError)):
            rlock.release()
        rlock.acquire()
        rlock.acquire()
    thread.join(PATIENCE)
    assert woken is True
    assert notified.is_set()


def _waiting_threads(
    cond: Any, count: int, timeout: float = PATIENCE
) -> tuple[list[Any], list[bool]]:
    """``count`` threads in ``cond.wait(timeout)``; returns once every one of them is waiting."""
    results: list[bool] = []
    ready = threading.Semaphore(0)

    def waiter() -> None:
        with cond:
            ready.release()
            results.append(cond.wait(timeout))

    threads = [threading.Thread(target=waiter) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert ready.acquire(timeout=PATIENCE)
    # each released ``ready`` holding the lock, which only wait() gives up
    with cond:
        pass
    return threads, results


@pytest.mark.in_one_process
@pytest.mark.parametrize("how", ["notify", "notify(2)", "notify_all"])
def test_condition_notify_wakes_that_many_threads(ctx: procframe.Context, how: str) -> None:
    cond = ctx.Condition()
    threads, results = _waiting_threads(cond, 3)
    try:
        expected = {"notify": 1, "notify(2)": 2, "notify_all": 3}[how]
        with cond:
            if how == "notify":
                cond.notify()
            elif how == "notify(2)":
                cond.notify(2)
            else:
                cond.notify_all()
        assert eventually(lambda: len(results) >= expected)
        time.sleep(SHORT)  # time enough for a waiter woken in excess to show
        assert results == [True] * expected
    finally:
        with cond:
            cond.notify_all()
        for thread in threads:
            thread.join(PATIENCE)
    assert results == [True] * 3


@pytest.mark.in_one_process
def test_a_waiter_that_timed_out_does_not_take_a_later_notify(ctx: procframe.Context) -> None:
    cond = ctx.Condition()
    with cond:
        assert cond.wait(0.05) is False
    threads, results = _waiting_threads(cond, 1)
    try:
        with cond:
            cond.notify()
        assert eventually(lambda: results == [True])
    finally:
        with cond:
            cond.notify_all()
        threads[0].join(PATIENCE)


@pytest.mark.in_one_process
def test_condition_notify_wakes_the_longest_waiting_first(ctx: procframe.Context) -> None:
    cond = ctx.Condition()
    waiters = [_waiting_threads(cond, 1) for _ in range(3)]  # one after the other
    try:
        for woken in (1, 2, 3):
            with cond:
                cond.notify()
            assert eventually(lambda woken=woken: sum(map(len, (r for _, r in waiters))) == woken)
            assert [results for _, results in waiters] == [[True]] * woken + [[]] * (3 - woken)
    finally:
        with cond:
            cond.notify_all()
        for threads, _ in waiters:
            threads[0].join(PATIENCE)


@pytest.mark.in_one_process
def test_condition_wait_for_a_predicate_set_by_another_thread(ctx: procframe.Context) -> None:
    cond = ctx.Condition()
    state = {"value": 0}

    def producer() -> None:
        for _ in range(5):
            time.sleep(0.01)
            with cond:
                state["value"] += 1
                cond.notify_all()

    thread = threading.Thread(target=producer)
    with cond:
        thread.start()
        result = cond.wait_for(lambda: state["value"] >= 5 and state["value"], PATIENCE)
    thread.join(PATIENCE)
    assert result == 5


# -- Event in one process ----------------------------------------------------------------


@pytest.mark.in_one_process
def test_event_set_clear_wait(ctx: procframe.Context) -> None:
    event = ctx.Event()
    assert event.is_set() is False
    got, elapsed = _timed(lambda: event.wait(SHORT))
    assert got is False
    assert elapsed >= SHORT - SLACK
    assert event.wait(0) is False
    event.set()
    assert event.is_set() is True
    assert event.wait() is True
    assert event.wait(0) is True
    event.set()  # setting twice is harmless
    assert event.is_set() is True
    event.clear()
    assert event.is_set() is False
    assert event.wait(0.01) is False
    event.clear()
    assert event.is_set() is False


@pytest.mark.in_one_process
def test_event_set_wakes_every_waiting_thread(ctx: procframe.Context) -> None:
    event = ctx.Event()
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(event.wait(PATIENCE))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    time.sleep(SHORT)
    none_woken = results == []
    event.set()
    for thread in threads:
        thread.join(PATIENCE)
    assert none_woken
    assert results == [True] * 3


# -- across processes ---------------------------------------------------------------------


def test_the_documented_lock_example_prints_each_line_whole(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        from procframe import Process, Lock

        def f(l, i):
            l.acquire()
            print('hello world', i)
            l.release()

        if __name__ == '__main__':
            lock = Lock()

            for num in range(10):
                Process(target=f, args=(lock, num)).start()
        """,
        procframe_backend,
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert sorted(lines) == sorted(f"hello world {i}" for i in range(10)), result.stdout


@pytest.mark.parametrize("kind", MUTEXES)
def test_a_held_lock_crosses_to_a_child(ctx: procframe.Context, tmp_path: Path, kind: str) -> None:
    lock = _make(ctx, kind)
    path, released = str(tmp_path / "child"), str(tmp_path / "released")
    lock.acquire()
    p = _start(ctx, sync.acquire_while_held_then_after, lock, path, released)
    try:
        first = read_report(path, timeout=PATIENCE)
        time.sleep(SHORT)
        early = os.path.exists(path + ".after")
        lock.release()
        after = read_report(path + ".after", timeout=PATIENCE)
        taken_by_child = lock.acquire(False)
        report(released, True)
        _join(p)
    finally:
        reap(p)
    assert first == {"free": False, "error": None}
    assert not early, "the child acquired a lock the parent held"
    assert after == {"got": True}
    assert taken_by_child is False
    assert _in_thread(lambda: _release_after(lock, lock.acquire(timeout=PATIENCE))) is True


@pytest.mark.parametrize("kind", MUTEXES)
def test_a_lock_taken_by_a_child_is_held_in_the_parent(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = _make(ctx, kind)
    path = str(tmp_path / "taken")
    p = _start(ctx, sync.take_and_keep, lock, path)
    _join(p)
    assert read_report(path) == {"got": True}
    got, elapsed = _timed(lambda: lock.acquire(timeout=SHORT))
    assert got is False
    assert elapsed >= SHORT - SLACK


@pytest.mark.parametrize("kind", MUTEXES)
def test_a_child_times_out_on_a_lock_the_parent_holds(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = _make(ctx, kind)
    path = str(tmp_path / "timed")
    with lock:
        p = _start(ctx, sync.time_acquire, lock, path, SHORT)
        _join(p)
    result = read_report(path)
    assert result["got"] is False
    assert result["elapsed"] >= SHORT - SLACK


@pytest.mark.parametrize("kind", MUTEXES)
def test_processes_exclude_each_other(ctx: procframe.Context, tmp_path: Path, kind: str) -> None:
    lock = _make(ctx, kind)
    counter = tmp_path / "counter"
    counter.write_text("0", encoding="utf-8")
    n_procs, times = 4, 40
    procs = [_start(ctx, sync.increment_under, lock, str(counter), times) for _ in range(n_procs)]
    _join(*procs)
    assert int(counter.read_text(encoding="utf-8")) == n_procs * times


def test_semaphore_admits_that_many_processes_at_once(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    sem = ctx.Semaphore(2)
    paths = [str(tmp_path / f"held{i}") for i in range(5)]
    procs = [_start(ctx, sync.hold_for, sem, path, 0.2) for path in paths]
    _join(*procs)
    intervals = [read_report(path) for path in paths]
    assert None not in intervals
    # at each entry, count who is inside: never more than two
    for entered, _ in intervals:
        inside = sum(1 for e, left in intervals if e <= entered < left)
        assert inside <= 2, intervals
    assert sem.get_value() == 2


def test_a_semaphore_counts_across_processes(ctx: procframe.Context, tmp_path: Path) -> None:
    sem = ctx.Semaphore(3)
    path = str(tmp_path / "got")
    _join(_start(ctx, sync.acquire_n_and_keep, sem, 2, path))
    assert read_report(path) == {"got": [True, True]}
    assert sem.get_value() == 1
    assert [sem.acquire(False), sem.acquire(False)] == [True, False]


@pytest.mark.parametrize("kind", ["Lock", "Semaphore", "BoundedSemaphore"])
def test_a_child_may_release_what_the_parent_acquired(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = _make(ctx, kind)
    path = str(tmp_path / "released")
    assert lock.acquire()
    _join(_start(ctx, sync.release_once, lock, path))
    assert read_report(path) == {"error": None}
    assert lock.acquire(False) is True


def test_bounded_semaphore_over_release_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    sem = ctx.BoundedSemaphore(1)
    path = str(tmp_path / "released")
    _join(_start(ctx, sync.release_once, sem, path))
    assert read_report(path) == {"error": "ValueError"}
    assert [sem.acquire(False), sem.acquire(False)] == [True, False]


def test_a_lock_over_released_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    lock = ctx.Lock()
    path = str(tmp_path / "released")
    _join(_start(ctx, sync.release_once, lock, path))
    assert read_report(path) == {"error": "ValueError"}
    assert [lock.acquire(False), lock.acquire(False)] == [True, False]


def test_rlock_owned_by_the_parent_is_not_the_childs(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    rlock = ctx.RLock()
    path = str(tmp_path / "probe")
    rlock.acquire()
    rlock.acquire()  # held twice while the child starts (under fork: at the fork)
    try:
        _join(_start(ctx, sync.probe_rlock, rlock, path))
    finally:
        rlock.release()
    result = read_report(path)
    assert result["free"] is False
    assert result["release_error"] in ("AssertionError", "RuntimeError")
    # still ours, once more
    rlock.release()
    with pytest.raises((AssertionError, RuntimeError)):
        rlock.release()


def test_rlock_is_recursive_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    rlock = ctx.RLock()
    path = str(tmp_path / "recursive")
    _join(_start(ctx, sync.recursive_rlock, rlock, path, 3))
    result = read_report(path)
    assert result["taken"] == [True, True, True]
    assert result["extra_release_error"] in ("AssertionError", "RuntimeError")
    assert rlock.acquire(False) is True
    rlock.release()


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.requires("posix_signals")
def test_a_lock_whose_holder_died_times_out(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    lock = getattr(ctx, kind)()
    ready = str(tmp_path / "ready")
    p = _start(ctx, sync.hold_forever, lock, ready)
    try:
        assert read_report(ready, timeout=PATIENCE) == p.pid
        p.kill()
        p.join(PATIENCE)
    finally:
        reap(p)
    assert p.exitcode is not None and p.exitcode != 0
    got, elapsed = _in_thread(lambda: _timed(lambda: lock.acquire(timeout=SHORT)))
    assert got is False
    assert elapsed >= SHORT - SLACK
    assert _in_thread(lambda: lock.acquire(False)) is False


# -- Condition across processes --------------------------------------------------------


def _waiting_children(
    ctx: procframe.Context, cond: Any, tmp_path: Path, count: int, timeout: float = PATIENCE
) -> tuple[list[Any], list[str]]:
    """``count`` children in ``cond.wait(timeout)``; returns once every one of them waits."""
    readies = [str(tmp_path / f"ready{i}") for i in range(count)]
    results = [str(tmp_path / f"woken{i}") for i in range(count)]
    procs = [
        _start(ctx, sync.wait_on, cond, ready, result, timeout)
        for ready, result in zip(readies, results, strict=True)
    ]
    try:
        for ready in readies:
            read_report(ready, timeout=PATIENCE)
        # each reported ready holding the lock, which only wait() gives up
        assert cond.acquire(timeout=PATIENCE)
        cond.release()
    except BaseException:
        reap(*procs)
        raise
    return procs, results


@pytest.mark.parametrize("how", ["1", "2", "all"])
def test_condition_notify_wakes_that_many_processes(
    ctx: procframe.Context, tmp_path: Path, how: str
) -> None:
    cond = ctx.Condition()
    procs, results = _waiting_children(ctx, cond, tmp_path, 3)
    try:
        expected = 3 if how == "all" else int(how)
        with cond:
            if how == "all":
                cond.notify_all()
            else:
                cond.notify(expected)

        def woken() -> int:
            return sum(os.path.exists(path) for path in results)

        assert eventually(lambda: woken() >= expected)
        time.sleep(SHORT)  # time enough for a waiter woken in excess to show
        woken_first = woken()
        with cond:
            cond.notify_all()
        _join(*procs)
    finally:
        reap(*procs)
    assert woken_first == expected
    assert all(read_report(path)["woken"] is True for path in results)


@pytest.mark.core
@pytest.mark.parametrize("how", ["1", "all"])
def test_a_child_notifies_the_parent(ctx: procframe.Context, tmp_path: Path, how: str) -> None:
    cond = ctx.Condition()
    flag = tmp_path / "flag"
    with cond:
        p = _start(ctx, sync.notify_under, cond, how, str(flag))
        try:
            result = cond.wait_for(flag.exists, PATIENCE)
            _join(p)
        finally:
            reap(p)
    assert result is True


def test_condition_wait_for_across_processes(ctx: procframe.Context, tmp_path: Path) -> None:
    cond = ctx.Condition(ctx.Lock())
    ready, flag, result = (str(tmp_path / name) for name in ("ready", "flag", "result"))
    p = _start(ctx, sync.wait_for_file, cond, ready, flag, result, PATIENCE)
    try:
        read_report(ready, timeout=PATIENCE)
        for _ in range(3):  # notified, the predicate still false: the child waits on
            with cond:
                cond.notify_all()
            time.sleep(0.05)
        early = os.path.exists(result)
        with cond:
            Path(flag).write_text("set", encoding="utf-8")
            cond.notify_all()
        _join(p)
    finally:
        reap(p)
    assert not early, "wait_for returned while its predicate was false"
    assert read_report(result)["result"] is True


def test_condition_wait_times_out_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    cond = ctx.Condition()
    ready, result = str(tmp_path / "ready"), str(tmp_path / "result")
    _join(_start(ctx, sync.wait_on, cond, ready, result, SHORT))
    outcome = read_report(result)
    assert outcome["woken"] is False
    assert outcome["elapsed"] >= SHORT - SLACK
    with cond:  # the child's timed-out wait leaves no token behind for the next waiter
        assert cond.wait(0.05) is False


@pytest.mark.parametrize("lock", ["default", "Lock", "RLock"])
def test_a_condition_held_by_the_parent_is_not_the_childs(
    ctx: procframe.Context, tmp_path: Path, lock: str
) -> None:
    cond = ctx.Condition() if lock == "default" else ctx.Condition(getattr(ctx, lock)())
    path = str(tmp_path / "unowned")
    with cond:  # held while the child starts (under fork: at the fork)
        _join(_start(ctx, sync.condition_unowned, cond, path))
        assert _in_thread(lambda: cond.acquire(False)) is False  # the child released nothing
    assert read_report(path) == {  # an AssertionError and a RuntimeError
        "wait": "LockNotOwnedError",
        "notify": "LockNotOwnedError",
        "notify_all": "LockNotOwnedError",
    }


def _killed_while_waiting(
    ctx: procframe.Context, wait: Callable[..., None], obj: Any, path: Path
) -> None:
    """A child waits on ``obj`` (via ``wait``), is killed in the wait and reaped."""
    ready = str(path / "killed-ready")
    p = _start(ctx, wait, obj, ready, str(path / "killed-result"), PATIENCE)
    try:
        read_report(ready, timeout=PATIENCE)
        time.sleep(SHORT)  # from reporting ready into the wait itself
        p.kill()
        p.join(PATIENCE)
    finally:
        reap(p)
    assert p.exitcode == -9


@pytest.mark.requires("posix_signals")
def test_notify_skips_a_waiter_whose_process_was_killed(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    cond = ctx.Condition()
    _killed_while_waiting(ctx, sync.wait_on, cond, tmp_path)
    procs, results = _waiting_children(ctx, cond, tmp_path, 1)
    try:

        def notify() -> None:
            with cond:
                cond.notify()

        _in_thread(notify)  # returns: nothing waits for the dead waiter
        _join(*procs)
    finally:
        reap(*procs)
    assert read_report(results[0])["woken"] is True


@pytest.mark.requires("posix_signals")
def test_event_set_after_a_waiter_was_killed_wakes_the_others(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    event = ctx.Event()
    _killed_while_waiting(ctx, sync.wait_event, event, tmp_path)
    ready, result = str(tmp_path / "ready"), str(tmp_path / "result")
    p = _start(ctx, sync.wait_event, event, ready, result, PATIENCE)
    try:
        read_report(ready, timeout=PATIENCE)
        _in_thread(event.set)
        _join(p)
    finally:
        reap(p)
    assert read_report(result)["got"] is True


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_an_event_outlives_a_process_killed_inside_it(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    event = ctx.Event()
    ready = str(tmp_path / "ready")
    p = _start(ctx, sync.die_inside, event, ready)
    try:
        read_report(ready, timeout=PATIENCE)
        p.kill()
        p.join(PATIENCE)
    finally:
        reap(p)
    assert _in_thread(lambda: event.wait(0.05)) is False  # a timeout bounds the wait for its lock
    _in_thread(event.set)  # takes the lock back from the dead process
    assert event.is_set() is True
    assert event.wait(0) is True


# -- Event across processes ------------------------------------------------------------------


def test_event_set_in_the_parent_wakes_every_child(ctx: procframe.Context, tmp_path: Path) -> None:
    event = ctx.Event()
    readies = [str(tmp_path / f"ready{i}") for i in range(3)]
    results = [str(tmp_path / f"result{i}") for i in range(3)]
    procs = [
        _start(ctx, sync.wait_event, event, ready, result, PATIENCE)
        for ready, result in zip(readies, results, strict=True)
    ]
    try:
        for ready in readies:
            read_report(ready, timeout=PATIENCE)
        time.sleep(SHORT)
        early = [path for path in results if os.path.exists(path)]
        event.set()
        _join(*procs)
    finally:
        reap(*procs)
    assert early == []
    assert [read_report(path)["got"] for path in results] == [True] * 3
    assert all(read_report(path)["is_set"] for path in results)


def test_event_set_in_a_child_wakes_the_parent(ctx: procframe.Context, tmp_path: Path) -> None:
    event = ctx.Event()
    path = str(tmp_path / "set")
    p = _start(ctx, sync.set_event, event, path)
    try:
        got = event.wait(PATIENCE)
        _join(p)
    finally:
        reap(p)
    assert got is True
    assert event.is_set() is True
    assert read_report(path) == {"is_set": True}


def test_event_cleared_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    event = ctx.Event()
    event.set()
    path = str(tmp_path / "cleared")
    _join(_start(ctx, sync.clear_event, event, path))
    assert read_report(path) == {"before": True, "after": False}
    assert event.is_set() is False
    assert event.wait(0.01) is False


def test_event_wait_times_out_in_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    event = ctx.Event()
    ready, result = str(tmp_path / "ready"), str(tmp_path / "result")
    _join(_start(ctx, sync.wait_event, event, ready, result, SHORT))
    outcome = read_report(result)
    assert (outcome["got"], outcome["is_set"]) == (False, False)
    assert outcome["elapsed"] >= SHORT - SLACK


@pytest.mark.core
def test_every_kind_crosses_to_one_child_together(ctx: procframe.Context, tmp_path: Path) -> None:
    # all six in one child's arguments: several descriptors in one launch
    lock, rlock, sem, bsem = ctx.Lock(), ctx.RLock(), ctx.Semaphore(2), ctx.BoundedSemaphore(2)
    cond, event = ctx.Condition(), ctx.Event()
    path = str(tmp_path / "used")
    _join(_start(ctx, sync.use_every_kind, lock, rlock, sem, bsem, cond, event, path))
    assert read_report(path) == {
        "lock": True,
        "rlock": True,
        "sem": [True, True],
        "bsem": "ValueError",
        "cond": True,
        "event": True,
    }
    assert (lock.acquire(False), rlock.acquire(False), sem.acquire(False)) == (False,) * 3
    assert cond.acquire(timeout=SHORT) is False
    assert event.is_set()
    assert [bsem.acquire(False) for _ in range(3)] == [True, True, False]

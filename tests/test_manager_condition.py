"""The Condition a manager's server serves, driven by threads in one process.

Its waiters are woken when the notifier releases the lock (not at once), and
it must keep ``threading.Condition``'s promises all the same.
"""

from __future__ import annotations

import threading
import time

import pytest

from procframe.managers._types import Condition, Lock, RLock

PATIENCE = 30.0
SHORT = 0.1


def start_waiters(cond: Condition, count: int, woken: list[int]) -> list[threading.Thread]:
    ready = threading.Semaphore(0)

    def wait(index: int) -> None:
        with cond:
            ready.release()
            if cond.wait(PATIENCE):
                woken.append(index)

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert ready.acquire(timeout=PATIENCE)
    return threads


@pytest.mark.timeout(60)
def test_notify_wakes_as_many_waiters_as_asked_once_the_lock_is_released() -> None:
    cond = Condition()
    woken: list[int] = []
    threads = start_waiters(cond, 3, woken)
    with cond:  # every waiter is inside wait(): each released the lock
        cond.notify(2)
        time.sleep(SHORT)
        assert woken == [], "a waiter ran while the notifier held the lock"
    deadline = time.monotonic() + PATIENCE
    while len(woken) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(SHORT)
    assert len(woken) == 2
    with cond:
        cond.notify_all()
    for thread in threads:
        thread.join(PATIENCE)
    assert sorted(woken) == [0, 1, 2]


@pytest.mark.timeout(60)
def test_wait_releases_every_level_of_its_rlock_and_takes_them_back() -> None:
    cond = Condition(RLock())
    got: list[bool] = []
    cond.acquire()
    cond.acquire()

    def notifier() -> None:
        with cond:
            cond.notify()
            got.append(True)

    thread = threading.Thread(target=notifier)
    thread.start()
    assert cond.wait(PATIENCE)
    thread.join(PATIENCE)
    assert got == [True]
    cond.release()
    cond.release()  # both levels were held again
    with pytest.raises(RuntimeError):
        cond.release()


@pytest.mark.timeout(60)
def test_a_wait_that_times_out_returns_false_holding_the_lock() -> None:
    cond = Condition(Lock())
    with cond:
        assert cond.wait(SHORT) is False
        assert cond.acquire(False) is False  # still held (a plain Lock: not re-entrant)


def test_wait_and_notify_need_the_lock() -> None:
    cond = Condition()
    with pytest.raises(RuntimeError, match="un-acquired"):
        cond.wait(SHORT)
    with pytest.raises(RuntimeError, match="un-acquired"):
        cond.notify()


@pytest.mark.timeout(60)
def test_a_release_by_a_thread_that_does_not_hold_the_lock_loses_no_notification() -> None:
    cond = Condition()
    woken: list[int] = []
    threads = start_waiters(cond, 1, woken)
    failures: list[BaseException] = []
    with cond:
        cond.notify()
        stranger = threading.Thread(target=lambda: _release(cond, failures))
        stranger.start()
        stranger.join(PATIENCE)
    threads[0].join(PATIENCE)
    assert [type(f) for f in failures] == [RuntimeError]
    assert woken == [0]


def _release(cond: Condition, failures: list[BaseException]) -> None:
    try:
        cond.release()
    except BaseException as exc:
        failures.append(exc)

"""The robust mutex under procframe's own critical sections: owned, bounded, handed on at death."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import procframe
from procframe.posix.robustlock import RobustLock
from procframe.posix.synchronize import Semaphore
from procframe.posix.waitroom import WaitRoom


@pytest.fixture
def room() -> WaitRoom:
    return WaitRoom()


def test_a_held_lock_times_out_and_then_passes_on(room: WaitRoom) -> None:
    lock = room.robust_lock()
    assert lock.acquire()
    other = room.robust_lock()
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(other.acquire(timeout=0.1)))
    thread.start()
    thread.join(10)
    assert results == [False]
    assert other.acquire(timeout=0) is False
    lock.release()
    thread = threading.Thread(target=lambda: results.append(other.acquire(timeout=5)))
    thread.start()
    thread.join(10)
    assert results == [False, True]


def test_only_the_holding_thread_may_release(room: WaitRoom) -> None:
    lock = room.robust_lock()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    assert lock.acquire()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            lock.release()
        except RuntimeError as e:
            errors.append(e)

    thread = threading.Thread(target=release)
    thread.start()
    thread.join(10)
    assert len(errors) == 1
    assert lock.is_mine()
    lock.release()
    assert not lock.is_mine()


def _hold_and_wait(room: WaitRoom, ready: Semaphore) -> None:
    room.robust_lock().acquire()
    ready.release()
    signal.pause()


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_a_dead_holders_lock_is_handed_on(room: WaitRoom, how: str) -> None:
    ctx = procframe.get_context("fork")
    ready = ctx.Semaphore(0)
    child = ctx.Process(target=_hold_and_wait, args=(room, ready))
    child.start()
    try:
        assert ready.acquire(timeout=30)
        lock: RobustLock = room.robust_lock()
        assert lock.acquire(timeout=0.1) is False
        if how == "sigkill":
            os.kill(child.pid, signal.SIGKILL)
        else:
            child.terminate()
        child.join(30)
        assert lock.acquire(timeout=30)
        lock.release()
        assert lock.acquire(timeout=0)  # consistent again: usable for good
        lock.release()
    finally:
        child.kill()
        child.join(30)

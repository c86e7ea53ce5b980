"""The dask backend's synchronization: what its design adds to the conformance kit's tests.

Life keys (a killed process is known dead), the round trips of a Barrier crossing,
timeouts refused before the cluster is asked, the state cell's clear error when its
holder never gives it back, and lock ownership per thread and per process.  The
session's cluster (``procframe_dask.testing``) serves every test.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import pytest

import procframe

pytestmark = pytest.mark.timeout(120)
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import it
PATIENCE = 60.0


def _report_life_and_sleep(out: Any) -> None:
    from procframe_dask._objects import life_key

    out.put(life_key())
    time.sleep(PATIENCE)


def _reap(p: Any) -> None:
    p.join(PATIENCE)
    if p.exitcode is None:
        p.kill()
        p.join(10)


def test_a_killed_process_is_known_dead_by_its_life_key(ctx: procframe.Context) -> None:
    from procframe_dask._objects import dead_among, life_key

    out = ctx.Queue()
    p = ctx.Process(target=_report_life_and_sleep, args=(out,))
    p.start()
    try:
        theirs = out.get(timeout=PATIENCE)
        mine = life_key()
        assert mine == life_key()  # one token per process
        assert dead_among([mine, theirs]) == set()
        p.kill()
        p.join(PATIENCE)
        assert p.exitcode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while dead_among([mine, theirs]) != {theirs}:
            assert time.monotonic() < deadline, "the scheduler never forgot the dead process"
            time.sleep(0.05)
    finally:
        _reap(p)
    assert dead_among([]) == set()


def test_a_crossing_asks_for_liveness_once_and_waiters_never(
    ctx: procframe.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from procframe_dask import sync

    asked: list[str] = []
    real = sync.dead_among

    def counting(keys: Any) -> set[str]:
        asked.append(threading.current_thread().name)
        return real(keys)

    monkeypatch.setattr(sync, "dead_among", counting)
    monkeypatch.setattr(sync, "PARTY_CHECK", 30.0)  # no periodic look within this test
    barrier = ctx.Barrier(3)
    indexes: list[int] = []
    threads = [
        threading.Thread(target=lambda: indexes.append(barrier.wait(PATIENCE)), name=f"p{i}")
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + PATIENCE
    while barrier.n_waiting < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    indexes.append(barrier.wait(PATIENCE))
    for thread in threads:
        thread.join(PATIENCE)
    assert sorted(indexes) == [0, 1, 2]
    assert asked == ["MainThread"]  # only the last party, once
    assert not barrier.broken and barrier.n_waiting == 0


def test_an_action_that_raises_breaks_the_barrier_and_reset_mends_it(
    ctx: procframe.Context,
) -> None:
    def boom() -> None:
        raise KeyError("action")

    barrier = ctx.Barrier(1, action=boom)
    with pytest.raises(KeyError):
        barrier.wait(PATIENCE)
    assert barrier.broken
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(PATIENCE)
    barrier.reset()
    assert not barrier.broken
    assert barrier.n_waiting == 0


@pytest.mark.parametrize("bad", [float("nan"), "1"])
def test_a_bad_timeout_is_refused_before_the_cluster_is_asked(
    ctx: procframe.Context, monkeypatch: pytest.MonkeyPatch, bad: Any
) -> None:
    from procframe_dask import _objects, cluster

    event, cond, barrier = ctx.Event(), ctx.Condition(ctx.Lock()), ctx.Barrier(2)
    lock, semaphore = ctx.Lock(), ctx.Semaphore(1)
    _objects.life_key()
    cond.acquire()

    def no_cluster() -> Any:
        raise AssertionError("the cluster was asked")

    monkeypatch.setattr(cluster, "client", no_cluster)
    monkeypatch.setattr(_objects.cluster, "client", no_cluster)
    error = ValueError if bad != "1" else TypeError
    calls = [
        lambda: event.wait(bad),
        lambda: cond.wait(bad),
        lambda: cond.wait_for(bool, bad),
        lambda: barrier.wait(bad),
        lambda: lock.acquire(True, bad),
        lambda: semaphore.acquire(True, bad),
    ]
    for call in calls:
        with pytest.raises(error, match="timeout"):
            call()
    monkeypatch.undo()
    cond.release()


def test_a_state_never_given_back_is_a_clear_error_not_a_hang(
    ctx: procframe.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from procframe_dask import sync

    monkeypatch.setattr(sync, "HOLD_TIMEOUT", 0.3)
    barrier = ctx.Barrier(2)
    barrier._cond._queue.get(timeout=PATIENCE)  # what a holder killed in a step leaves
    with pytest.raises(RuntimeError, match=r"was not given back within 0\.3 s"):
        barrier.abort()


def _hold_the_state_and_sleep(barrier: Any, out: Any) -> None:
    with barrier._cond as state:
        state["count"] = 99  # a step half done
        out.put("holding")
        time.sleep(120)


def test_a_process_killed_holding_the_state_gives_it_back_as_it_was(
    ctx: procframe.Context,
) -> None:
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    p = ctx.Process(target=_hold_the_state_and_sleep, args=(barrier, out))
    p.start()
    assert out.get(timeout=PATIENCE) == "holding"
    p.kill()
    p.join(PATIENCE)
    assert p.exitcode == -signal.SIGKILL
    assert barrier.n_waiting == 0  # the half-done step never happened
    barrier.abort()
    assert barrier.broken


def test_a_process_killed_waiting_for_the_state_takes_nothing_with_it(
    ctx: procframe.Context,
) -> None:
    barrier = ctx.Barrier(3)
    with barrier._cond:  # held here: the party waits for it
        p = ctx.Process(target=barrier.wait)
        p.start()
        time.sleep(1.0)  # the party's agent is waiting on the scheduler
        p.kill()
        p.join(PATIENCE)
    assert p.exitcode == -signal.SIGKILL
    assert barrier.n_waiting == 0  # the state is there: the killed party never took it
    barrier.abort()
    assert barrier.broken


def _owns(cond: Any, out: Any) -> None:
    out.put(cond._is_owned())


def test_a_lock_is_owned_by_the_thread_that_took_it_only(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    cond = ctx.Condition(lock)
    out = ctx.Queue()
    with cond:
        assert lock._is_owned()
        seen: list[bool] = []
        thread = threading.Thread(target=lambda: seen.append(lock._is_owned()))
        thread.start()
        thread.join(PATIENCE)
        assert seen == [False]
        p = ctx.Process(target=_owns, args=(cond, out))
        p.start()
        try:
            assert out.get(timeout=PATIENCE) is False
        finally:
            _reap(p)
    assert not lock._is_owned()
    assert lock.acquire(False)
    released = threading.Thread(target=lock.release)  # any thread may release a Lock
    released.start()
    released.join(PATIENCE)
    assert not lock._is_owned() and not lock.locked()


def test_notify_drops_the_waiters_of_a_dead_process(ctx: procframe.Context) -> None:
    from procframe_dask import sync

    cond = ctx.Condition()
    ghost = ["procframe-inbox-of-a-dead-process", "procframe-life-never-made"]
    with cond._waiters as waiters:
        waiters.append(ghost)  # what a waiter SIGKILLed in its wait leaves behind
    with cond:
        cond.notify()  # nothing live waits: returns, and forgets the dead waiter
        assert cond._waiters.read() == []
        assert isinstance(cond, procframe.synchronize.Condition)
    assert sync.DaskCondition in procframe.synchronize.Condition._implementations


def test_the_dask_classes_stand_for_the_public_ones(ctx: procframe.Context) -> None:
    made = {
        "Lock": ctx.Lock(),
        "RLock": ctx.RLock(),
        "Semaphore": ctx.Semaphore(),
        "BoundedSemaphore": ctx.BoundedSemaphore(),
        "Event": ctx.Event(),
        "Barrier": ctx.Barrier(2),
    }
    for name, obj in made.items():
        assert isinstance(obj, getattr(procframe.synchronize, name)), name
    assert not isinstance(made["Lock"], procframe.synchronize.Semaphore)
    assert repr(made["Event"]) == f"<Event at {id(made['Event']):#x} unset>"


def test_a_long_action_keeps_no_party_from_the_state(
    ctx: procframe.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from procframe_dask import sync

    monkeypatch.setattr(sync, "HOLD_TIMEOUT", 0.5)  # the action lasts longer than this
    monkeypatch.setattr(sync, "PARTY_CHECK", 0.1)  # the waiter looks at the state meanwhile
    barrier = ctx.Barrier(2, action=lambda: time.sleep(1.5))
    indexes: list[Any] = []
    thread = threading.Thread(target=lambda: indexes.append(barrier.wait(PATIENCE)))
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while barrier.n_waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    indexes.append(barrier.wait(PATIENCE))
    thread.join(PATIENCE)
    assert sorted(indexes) == [0, 1]
    assert not barrier.broken

"""The shared primitives of the dask backend, in one process and with children on workers.

A session LocalCluster (two workers) serves every test; PROCFRAME_DASK_ADDRESS names its
scheduler, so the children the workers start reach the same objects.
"""

from __future__ import annotations

import ctypes
import queue
import sys
import threading
import time
from typing import Any

import pytest

import procframe

pytestmark = pytest.mark.timeout(120)
# The workers cannot import this module: its targets travel by value.
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])
PATIENCE = 60.0


def run(ctx: procframe.Context, target: Any, *args: Any) -> None:
    """Run ``target(*args)`` in a child on a worker; it must exit 0."""
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(PATIENCE)
    if p.exitcode is None:
        p.kill()
        p.join(10)
    assert p.exitcode == 0


# -- queues -------------------------------------------------------------------------


def test_queue_full_and_empty_after_their_timeouts(ctx: procframe.Context) -> None:
    q = ctx.Queue(1)
    q.put("a")
    began = time.monotonic()
    with pytest.raises(queue.Full):
        q.put("b", timeout=0.3)
    assert time.monotonic() - began >= 0.29
    with pytest.raises(queue.Full):
        q.put_nowait("b")
    assert q.full() and q.qsize() == 1
    assert q.get(timeout=5) == "a"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.3)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.close()
    with pytest.raises(ValueError):
        q.put(1)


def test_an_unpicklable_item_fails_in_put_and_a_lambda_travels(ctx: procframe.Context) -> None:
    q = ctx.Queue()
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    q.put(lambda x: x + 1)
    assert q.get(timeout=5)(1) == 2


def _echo(inq: Any, outq: Any) -> None:
    while (item := inq.get(timeout=PATIENCE)) is not None:
        outq.put(item * 2)
    outq.put(None)


@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue", "JoinableQueue"])
def test_a_child_reads_and_writes_queues(ctx: procframe.Context, kind: str) -> None:
    inq, outq = ctx.Queue(), getattr(ctx, kind)()
    for item in [1, "x", [3]]:
        inq.put(item)
    inq.put(None)
    run(ctx, _echo, inq, outq)
    assert [outq.get() for _ in range(4)] == [2, "xx", [3, 3], None]


def _consume(q: Any) -> None:
    for _ in range(3):
        q.get(timeout=PATIENCE)
        q.task_done()


def test_joinable_queue_join_waits_for_a_childs_task_done(ctx: procframe.Context) -> None:
    q = ctx.JoinableQueue()
    for i in range(3):
        q.put(i)
    run(ctx, _consume, q)
    done = threading.Thread(target=q.join, daemon=True)
    done.start()
    done.join(PATIENCE)
    assert not done.is_alive()
    with pytest.raises(ValueError):
        q.task_done()


# -- pipes --------------------------------------------------------------------------


def _forward(r: Any, w: Any) -> None:
    while (item := r.recv()) is not None:
        w.send(item)
    w.close()


def test_pipe_ends_cross_to_a_child_and_eof_follows_its_close(ctx: procframe.Context) -> None:
    r1, w1 = ctx.Pipe(duplex=False)
    r2, w2 = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_forward, args=(r1, w2))
    p.start()
    w2.close()  # the child's copy keeps the direction open
    for item in ["a", {"b": 2}, b"x" * 100_000, None]:
        w1.send(item)
    assert [r2.recv() for _ in range(3)] == ["a", {"b": 2}, b"x" * 100_000]
    assert r2.poll(PATIENCE)
    with pytest.raises(EOFError):
        r2.recv()
    p.join(PATIENCE)
    assert p.exitcode == 0
    with pytest.raises(OSError):
        w1.recv()


def test_duplex_pipe_bytes_and_wait(ctx: procframe.Context) -> None:
    from procframe.connection import wait

    a, b = ctx.Pipe()
    with a, b:
        assert not a.poll(0.1)
        b.send_bytes(b"0123456789", 2, 3)
        assert wait([a], 10) == [a]
        buf = bytearray(5)
        assert a.recv_bytes_into(buf, 1) == 3 and bytes(buf) == b"\x00234\x00"
        assert wait([a], 0.1) == []
        a.send([1])
        assert b.recv() == [1]


# -- locks and semaphores -----------------------------------------------------------


def _release(lock: Any) -> None:
    lock.release()


def test_a_child_releases_the_parents_lock(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    assert lock.acquire(timeout=5)
    assert not lock.acquire(timeout=0.2)
    run(ctx, _release, lock)
    assert lock.acquire(timeout=5)
    lock.release()
    with pytest.raises(ValueError):
        lock.release()


def _try_release_rlock(rlock: Any, flag: Any) -> None:
    try:
        rlock.release()
    except (AssertionError, RuntimeError):
        flag.set()
    assert rlock.acquire(timeout=0.2) is False


def test_rlock_is_only_its_owners(ctx: procframe.Context) -> None:
    rlock, refused = ctx.RLock(), ctx.Event()
    with rlock, rlock:
        run(ctx, _try_release_rlock, rlock, refused)
    assert refused.is_set()
    with pytest.raises((AssertionError, RuntimeError)):
        rlock.release()


def _over_release(sem: Any, flag: Any) -> None:
    try:
        sem.release()
    except ValueError:
        flag.set()


def test_semaphores_count_across_processes(ctx: procframe.Context) -> None:
    sem, bounded, refused = ctx.Semaphore(0), ctx.BoundedSemaphore(2), ctx.Event()
    run(ctx, _release, sem)
    assert sem.get_value() == 1 and sem.acquire(timeout=5) and not sem.acquire(False)
    assert bounded.acquire(False)
    run(ctx, _release, bounded)
    run(ctx, _over_release, bounded, refused)
    assert refused.is_set() and bounded.get_value() == 2


# -- event, condition, barrier ------------------------------------------------------


def _set_later(event: Any) -> None:
    time.sleep(0.3)
    event.set()


def test_event_wait_returns_the_flag(ctx: procframe.Context) -> None:
    event = ctx.Event()
    began = time.monotonic()
    assert event.wait(0.3) is False
    assert time.monotonic() - began >= 0.29
    p = ctx.Process(target=_set_later, args=(event,))
    p.start()
    assert event.wait(PATIENCE) is True
    p.join(PATIENCE)
    event.clear()
    assert not event.is_set()


def _notify_when_set(cond: Any, value: Any) -> None:
    with cond:
        value.value = 42
        cond.notify_all()


def test_condition_wait_for_a_childs_notify(ctx: procframe.Context) -> None:
    cond = ctx.Condition()
    value = ctx.Value("i", 0)
    with cond:
        assert cond.wait(0.2) is False
        p = ctx.Process(target=_notify_when_set, args=(cond, value))
        p.start()
        assert cond.wait_for(lambda: value.value == 42, PATIENCE)
    p.join(PATIENCE)
    assert p.exitcode == 0
    with pytest.raises(RuntimeError):
        cond.notify()


def _meet(barrier: Any, out: Any) -> None:
    out.put(barrier.wait(PATIENCE))


def test_barrier_parties_in_children_and_here(ctx: procframe.Context) -> None:
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_meet, args=(barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    mine = barrier.wait(PATIENCE)
    for p in procs:
        p.join(PATIENCE)
    assert sorted([mine, out.get(timeout=5), out.get(timeout=5)]) == [0, 1, 2]
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.2)  # nobody else comes: the timeout breaks it
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken and barrier.n_waiting == 0


# -- shared ctypes objects ----------------------------------------------------------


def _add(value: Any, array: Any, n: int) -> None:
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    array[0:2] = [7, 8]


def test_value_and_array_shared_with_children(ctx: procframe.Context) -> None:
    value, array = ctx.Value("i", 0), ctx.Array("d", 3)
    procs = [ctx.Process(target=_add, args=(value, array, 10)) for _ in range(2)]
    for p in procs:
        p.start()
    _add(value, array, 10)
    for p in procs:
        p.join(PATIENCE)
        assert p.exitcode == 0
    assert value.value == 30
    assert array[:] == [7.0, 8.0, 0.0] and len(array) == 3


def test_raw_objects_keep_the_ctypes_api(ctx: procframe.Context) -> None:
    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]

    point = ctx.RawValue(Point, 1, 2.5)
    point.x = 5
    assert (point.x, point.y) == (5, 2.5)
    chars = ctx.Array("c", b"hi")
    chars.value = b"ok"
    assert chars.raw == b"ok" and chars.get_lock() is not None
    raw = ctx.RawArray(ctypes.c_int, [1, 2, 3])
    raw[::2] = [9, 9]
    assert list(raw) == [9, 2, 9]
    with pytest.raises(TypeError):
        ctx.RawArray("?", 3)


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "Event", "Queue", "Value"])
def test_pickling_outside_a_process_start_is_refused(ctx: procframe.Context, kind: str) -> None:
    import pickle

    obj = getattr(ctx, kind)(*(["i"] if kind == "Value" else []))
    with pytest.raises((TypeError, RuntimeError)):
        pickle.dumps(obj)

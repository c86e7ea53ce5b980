"""Queue, SimpleQueue and JoinableQueue: semantics, crossing to children, dead peers."""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import exchange, refusals
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import run_script
from procframe.testing.helpers.targets import read_report, report

"""Tests that hand a connection or a queue to a child as a Process argument."""

KINDS = ["Queue", "SimpleQueue", "JoinableQueue"]
TIMED_KINDS = ["Queue", "JoinableQueue"]  # the ones with timeouts, qsize, maxsize
MIB = 1 << 20


def _make(ctx: procframe.Context, kind: str, *args: Any) -> Any:
    return getattr(ctx, kind)(*args)


def _get(q: Any, kind: str) -> Any:
    """One item, waiting at most a minute where the queue takes a timeout."""
    return q.get() if kind == "SimpleQueue" else q.get(timeout=60)


@contextmanager
def _closing(q: Any) -> Iterator[Any]:
    """Close ``q`` after the block (and wait for its feeder, unless the block failed)."""
    try:
        yield q
    except BaseException:
        if hasattr(q, "cancel_join_thread"):
            q.cancel_join_thread()
        q.close()
        raise
    q.close()
    if hasattr(q, "join_thread"):
        q.join_thread()


def _join_within(q: Any, timeout: float) -> bool:
    """Run ``q.join()`` in a thread; True if it returned within ``timeout``."""
    thread = threading.Thread(target=q.join, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


# -- in one process -------------------------------------------------------------


@pytest.mark.core
@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", KINDS)
def test_items_come_out_in_order(ctx: procframe.Context, kind: str) -> None:
    with _closing(_make(ctx, kind)) as q:
        assert q.empty()
        items = [*range(50), {"k": [1, 2]}, "s", None, b"\x00bytes", (1.5, -2)]
        for item in items:
            q.put(item)
        if kind != "SimpleQueue":
            assert q.qsize() == len(items)
        assert eventually(lambda: not q.empty())
        assert [_get(q, kind) for _ in items] == items
        assert q.empty()
        if kind != "SimpleQueue":
            assert q.qsize() == 0


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", TIMED_KINDS)
def test_get_from_an_empty_queue_raises_empty(ctx: procframe.Context, kind: str) -> None:
    with _closing(_make(ctx, kind)) as q:
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(block=False)
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.3)
        assert time.monotonic() - start >= 0.28
        q.put("late")
        assert q.get(timeout=60) == "late"


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", TIMED_KINDS)
def test_put_on_a_full_queue_raises_full(ctx: procframe.Context, kind: str) -> None:
    with _closing(_make(ctx, kind, 2)) as q:
        assert not q.full()
        q.put(1)
        q.put(2)
        assert q.full()
        assert q.qsize() == 2
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, block=False)
        start = time.monotonic()
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.3)
        assert time.monotonic() - start >= 0.28
        assert q.get(timeout=60) == 1
        assert not q.full()
        q.put_nowait(4)
        assert [q.get(timeout=60), q.get(timeout=60)] == [2, 4]


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", TIMED_KINDS)
def test_put_on_an_unbounded_queue_never_blocks(ctx: procframe.Context, kind: str) -> None:
    # 1000 items of 5 KB (bigger than a pipe's atomic write): more than any kernel
    # buffer holds, so the queue must keep them until they are read.
    items = [(i, bytes([i % 256]) * 5000) for i in range(1000)]
    with _closing(_make(ctx, kind)) as q:
        putter = threading.Thread(target=exchange.put_all, args=(q, items))
        putter.start()
        putter.join(60)
        blocked = putter.is_alive()
        got = [q.get(timeout=60) for _ in items]  # (and unblocks a blocked putter)
        putter.join(60)
        assert not blocked, "put() blocked on an unbounded queue nobody was reading yet"
        assert got == items


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", KINDS)
def test_items_of_awkward_sizes(ctx: procframe.Context, kind: str) -> None:
    with _closing(_make(ctx, kind)) as q:
        for size in [*range(4000, 4200, 7), *range(65400, 65600, 9), 1 << 20]:
            item = bytes([size % 256]) * size
            q.put(item)  # one at a time: a SimpleQueue put may wait for a reader
            assert _get(q, kind) == item, size


UNPICKLABLE = {
    "lock": (threading.Lock, (TypeError, pickle.PicklingError)),
    "lambda": (lambda: lambda: 0, (pickle.PicklingError, AttributeError)),
}


@pytest.mark.requires("separate_memory")
@pytest.mark.in_one_process
@pytest.mark.parametrize("bad", list(UNPICKLABLE))
@pytest.mark.parametrize("kind", KINDS)
def test_an_unpicklable_put_fails_in_the_caller(
    ctx: procframe.Context, kind: str, bad: str
) -> None:
    make_bad, errors = UNPICKLABLE[bad]
    args = () if kind == "SimpleQueue" else (1,)
    item = make_bad()
    with _closing(_make(ctx, kind, *args)) as q:
        if refusals.refuses(item):
            with pytest.raises(errors):
                q.put(item)
        else:  # the serializer under test carries it (dill a lock, cloudpickle a lambda)
            q.put(item)
            assert type(_get(q, kind)) is type(item)
            if kind == "JoinableQueue":
                q.task_done()
        if kind == "SimpleQueue":
            q.put("ok")
        else:
            q.put_nowait("ok")  # the failed put took no slot of the one there is
        assert _get(q, kind) == "ok"  # and left nothing in front of it
        assert q.empty()
        if kind == "JoinableQueue":
            q.task_done()
            joined = _join_within(q, 60)
            if not joined:  # the failed put was counted as a task: release the thread
                q.task_done()
            assert joined, "join() waits for a task that a failed put() never queued"
        if kind != "SimpleQueue":
            with pytest.raises(queue.Empty):
                q.get(timeout=0.3)


@pytest.mark.in_one_process
def test_task_done_more_often_than_put_raises_valueerror(ctx: procframe.Context) -> None:
    with _closing(ctx.JoinableQueue()) as q:
        with pytest.raises(ValueError):
            q.task_done()
        q.put("x")
        assert q.get(timeout=60) == "x"
        q.task_done()
        with pytest.raises(ValueError):
            q.task_done()


@pytest.mark.in_one_process
def test_join_blocks_until_every_item_is_done(ctx: procframe.Context) -> None:
    with _closing(ctx.JoinableQueue()) as q:
        assert _join_within(q, 60)  # nothing put: returns at once
        q.put(1)
        q.put(2)
        assert [q.get(timeout=60), q.get(timeout=60)] == [1, 2]
        q.task_done()
        thread = threading.Thread(target=q.join)
        thread.start()
        thread.join(0.3)
        alive = thread.is_alive()
        q.task_done()
        thread.join(60)
        assert alive, "join() returned with a task not done"
        assert not thread.is_alive()


# -- across processes -------------------------------------------------------------


@pytest.mark.core
def test_the_documented_queue_example_prints_what_the_child_put(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        from procframe import Process, Queue

        def f(q):
            q.put([42, None, 'hello'])

        if __name__ == '__main__':
            q = Queue()
            p = Process(target=f, args=(q,))
            p.start()
            print(q.get())    # prints "[42, None, 'hello']"
            p.join()
        """,
        procframe_backend,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "[42, None, 'hello']\n", "")


@pytest.mark.core
@pytest.mark.parametrize("kind", KINDS)
def test_items_big_and_small_cross_to_a_child_and_back(ctx: procframe.Context, kind: str) -> None:
    with _closing(_make(ctx, kind)) as q_in, _closing(_make(ctx, kind)) as q_out:
        p = ctx.Process(target=exchange.echo_queue, args=(q_in, q_out))
        p.start()
        try:
            for size in (10, MIB, 10 * MIB):
                item = exchange.checksummed_item(size, size)
                q_in.put(item)  # one at a time: a SimpleQueue put waits for its reader
                assert _get(q_out, kind) == item
            q_in.put(None)
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


def test_a_bounded_queue_makes_a_producer_wait_for_its_consumer(ctx: procframe.Context) -> None:
    with _closing(ctx.Queue(2)) as q:
        p = ctx.Process(target=exchange.put_all, args=(q, list(range(20))))
        p.start()
        try:
            assert [q.get(timeout=60) for _ in range(20)] == list(range(20))
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


@pytest.mark.parametrize("kind", KINDS)
def test_one_producers_items_arrive_in_order_whatever_their_sizes(
    ctx: procframe.Context, kind: str
) -> None:
    count = 3000
    with _closing(_make(ctx, kind)) as q:
        p = ctx.Process(target=exchange.produce_numbered, args=(q, 7, count, 3))
        p.start()
        try:
            got = [_get(q, kind) for _ in range(count)]
            p.join(60)
        finally:
            exchange.reap(p)
    assert [i for _, i, *_ in got] == list(range(count))
    assert all(exchange.numbered_ok(item) for item in got)
    assert p.exitcode == 0


@pytest.mark.parametrize("big_every", [0, 3], ids=["small", "mixed-sizes"])
@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue"])
def test_many_producers_and_consumers_lose_and_duplicate_nothing(
    ctx: procframe.Context, tmp_path: Path, kind: str, big_every: int
) -> None:
    n_producers, n_consumers, count = 3, 3, 2000
    outs = [tmp_path / f"consumer{i}" for i in range(n_consumers)]
    with _closing(_make(ctx, kind)) as q:
        consumers = [
            ctx.Process(target=exchange.consume_until_none, args=(q, str(out))) for out in outs
        ]
        producers = [
            ctx.Process(target=exchange.produce_numbered, args=(q, i, count, big_every))
            for i in range(n_producers)
        ]
        try:
            for p in consumers + producers:
                p.start()
            for p in producers:
                p.join(60)
            assert [p.exitcode for p in producers] == [0] * n_producers
            for _ in consumers:
                q.put(None)
            for p in consumers:
                p.join(60)
            assert [p.exitcode for p in consumers] == [0] * n_consumers
        finally:
            exchange.reap(*consumers, *producers)
    received = [read_report(out) for out in outs]
    damaged = [item for items in received for item in items if not item[2]]
    assert damaged == []
    got = Counter((producer, i) for items in received for producer, i, _ in items)
    sent = Counter((i, j) for i in range(n_producers) for j in range(count))
    assert got == sent, (
        f"lost {sum((sent - got).values())}, duplicated or foreign {sum((got - sent).values())}"
    )
    for items in received:  # each consumer sees each producer's items in order
        for producer in range(n_producers):
            seqs = [i for p, i, _ in items if p == producer]
            assert seqs == sorted(seqs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_child_that_put_items_can_be_joined_before_they_are_read(
    ctx: procframe.Context, kind: str
) -> None:
    items = ["a", 1, {"b": [2]}]
    with _closing(_make(ctx, kind)) as q:
        p = ctx.Process(target=exchange.put_all, args=(q, items))
        p.start()
        try:
            p.join(60)
            assert p.exitcode == 0, "the child did not exit before its items were read"
            assert [_get(q, kind) for _ in items] == items
        finally:
            exchange.reap(p)


@pytest.mark.parametrize("kind", TIMED_KINDS)
def test_cancel_join_thread_lets_a_child_exit_with_its_items_unread(
    ctx: procframe.Context, kind: str
) -> None:
    with _closing(_make(ctx, kind)) as q:
        p = ctx.Process(target=exchange.put_big_then_cancel, args=(q, 50, 100_000))
        p.start()
        try:
            p.join(60)
            assert p.exitcode == 0
        finally:
            exchange.reap(p)


def test_items_put_after_cancel_join_thread_still_flow_while_the_child_lives(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    # cancel_join_thread() only means "do not wait for the readers at exit".
    done, stop = tmp_path / "done", tmp_path / "stop"
    count = 400
    with _closing(ctx.Queue()) as q:
        p = ctx.Process(
            target=exchange.cancel_then_put, args=(q, count, 60_000, str(done), str(stop))
        )
        p.start()
        try:
            try:
                read_report(done, timeout=10)  # all put (more than the kernel holds)
            except TimeoutError:
                pass  # put() blocks: another test says so; read anyway
            received = []
            try:
                for _ in range(count):
                    received.append(q.get(timeout=60))
            except queue.Empty:
                pass
            report(stop, True)
            p.join(60)
        finally:
            exchange.reap(p)
    assert len(received) == count, f"only {len(received)} of {count} items arrived"
    assert all(exchange.item_is_intact(item) for item in received)
    assert [item[0] for item in received] == list(range(count))


def test_close_and_join_thread_deliver_what_was_put(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    items = [1, "x" * MIB, [3]]
    q = ctx.Queue()
    p = ctx.Process(target=exchange.get_n, args=(q, len(items), str(out)))
    p.start()
    try:
        for item in items:
            q.put(item)
        q.close()
        q.join_thread()  # returns once everything is flushed to the pipe
        with pytest.raises((ValueError, OSError)):
            q.put("after close")
        p.join(60)
    finally:
        exchange.reap(p)
    assert read_report(out) == {"error": None, "got": items}
    assert p.exitcode == 0


# -- killed peers -----------------------------------------------------------------


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_a_producer_killed_mid_put_leaves_only_whole_items(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    with _closing(ctx.Queue()) as q:
        # Items of 100 B to 200 KB: the producer is nearly always blocked in the middle
        # of writing one when the kill comes.
        doomed = ctx.Process(target=exchange.produce_checksummed, args=(q, 0, 300, str(ready)))
        later = ctx.Process(target=exchange.produce_checksummed, args=(q, 1000, 5))
        try:
            doomed.start()
            read_report(ready, timeout=60)
            received = [q.get(timeout=60) for _ in range(3)]
            doomed.kill()
            doomed.join(60)
            while True:
                try:
                    received.append(q.get(timeout=1.0))
                except queue.Empty:
                    break
                assert len(received) <= 300
            later.start()
            for _ in range(1000):
                item = q.get(timeout=60)
                received.append(item)
                if exchange.item_is_intact(item) and item[0] == 1004:
                    break
            later.join(60)
        finally:
            exchange.reap(doomed, later)
    broken = [i for i, item in enumerate(received) if not exchange.item_is_intact(item)]
    assert broken == [], f"{len(broken)} damaged items received"
    seqs = [item[0] for item in received]
    first = [s for s in seqs if s < 1000]
    assert first == list(range(len(first))), "items of the killed producer lost or reordered"
    assert seqs[len(first) :] == [1000, 1001, 1002, 1003, 1004]
    assert later.exitcode == 0


@pytest.mark.requires("posix_signals", "passes_descriptors")
@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue"])
def test_a_consumer_killed_in_get_does_not_block_the_next(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    ready, first_out, second_out = tmp_path / "ready", tmp_path / "first", tmp_path / "second"
    timeout = None if kind == "SimpleQueue" else 60.0
    with _closing(_make(ctx, kind)) as q:
        first = ctx.Process(target=exchange.get_once, args=(q, str(ready), str(first_out)))
        second = ctx.Process(target=exchange.get_n, args=(q, 3, str(second_out), timeout))
        try:
            first.start()
            read_report(ready, timeout=60)
            time.sleep(0.5)  # let it block in get()
            first.kill()
            first.join(60)
            second.start()
            for i in range(3):
                q.put(i)
            second.join(60)
            assert second.exitcode == 0, "the second consumer is stuck"
            q.put("parent")
            assert _get(q, kind) == "parent"
        finally:
            exchange.reap(first, second)
    assert read_report(second_out) == {"error": None, "got": [0, 1, 2]}
    assert not first_out.exists()


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_a_joinable_queue_outlives_a_process_killed_inside_it(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    from procframe.testing.helpers import sync

    with _closing(ctx.JoinableQueue()) as q:
        ready = str(tmp_path / "ready")
        p = ctx.Process(target=sync.die_inside, args=(q, ready))
        p.start()
        try:
            read_report(ready, timeout=60)  # it holds the lock put/task_done/join take
            p.kill()
            p.join(60)
        finally:
            exchange.reap(p)
        q.put("x")  # takes the lock back from the dead process
        assert q.get(timeout=60) == "x"
        q.task_done()
        assert _join_within(q, 60)

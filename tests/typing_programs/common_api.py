"""A program written against the standard library's typed ``multiprocessing`` API.

tests/test_typing.py type-checks it under ``mypy --strict`` twice: as it is,
on procframe, and with every ``procframe`` replaced by ``multiprocessing``, on
typeshed's stubs, which proves the program is what a typed stdlib program
looks like.  ``assert_type`` pins each type; a ``# type: ignore[code]`` marks a
mistake the types must catch (``--strict`` reports an ignore that is not
needed, so a type that turns into ``Any`` fails the check).  It also runs.
"""

from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING, Any

import procframe as mp
from procframe.connection import Connection
from procframe.pool import AsyncResult, Pool
from procframe.shared_memory import ShareableList
from procframe.sharedctypes import Synchronized, SynchronizedArray, SynchronizedString

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:

    def assert_type(value, _type):
        return value


def square(x: int) -> int:
    return x * x


def power(base: int, exponent: int) -> int:
    return int(base**exponent)


def produce(q: mp.Queue[int], count: int) -> None:
    for i in range(count):
        q.put(i)
    q.put(-1)


def answer(conn: Connection) -> None:
    conn.send(conn.recv() + 1)
    conn.close()


def queues() -> None:
    q: mp.Queue[int] = mp.Queue()
    p = mp.Process(target=produce, args=(q, 3), name="producer")
    p.start()
    got: list[int] = []
    while (item := q.get(timeout=30)) != -1:
        assert_type(item, int)
        got.append(item)
    p.join(30)
    assert_type(p.exitcode, int | None)
    assert got == [0, 1, 2] and p.exitcode == 0

    sq: mp.SimpleQueue[str] = mp.SimpleQueue()
    sq.put("a")
    assert_type(sq.get(), str)
    sq.close()

    jq: mp.JoinableQueue[bytes] = mp.get_context().JoinableQueue(2)
    jq.put(b"x")
    assert_type(jq.get(timeout=30), bytes)
    jq.task_done()
    jq.join()

    anything = mp.get_context().Queue(5)
    anything.put(1)
    anything.get(timeout=30)


def pipes() -> None:
    parent, child = mp.Pipe()
    p = mp.get_context("spawn").Process(target=answer, args=(child,))
    p.start()
    parent.send(41)
    assert parent.poll(30) and parent.recv() == 42
    p.join(30)
    parent.close()
    child.close()


def synchronization() -> None:
    lock = mp.Lock()
    with lock:
        pass
    rlock = mp.RLock()
    assert_type(rlock.acquire(timeout=1), bool)
    rlock.release()
    condition = mp.Condition(rlock)
    with condition:
        assert_type(condition.wait(0.01), bool)
    event = mp.Event()
    event.set()
    assert_type(event.is_set(), bool)
    assert_type(event.wait(1), bool)
    semaphore = mp.Semaphore(2)
    assert_type(semaphore.acquire(), bool)
    semaphore.release()
    bounded = mp.BoundedSemaphore()
    bounded.acquire()
    bounded.release()
    barrier = mp.Barrier(1)
    assert_type(barrier.wait(1), int)


def shared_state() -> None:
    counter: Synchronized[int] = mp.Value(ctypes.c_int, 0)
    with counter.get_lock():
        counter.value += 1
    assert_type(counter.value, int)

    samples: SynchronizedArray[float] = mp.Array(ctypes.c_double, 3)
    samples[0] = 1.5
    assert_type(samples[0], float)
    assert_type(samples[:2], list[float])
    assert len(samples) == 3
    by_code = mp.Array("i", [1, 2])  # a typecode gives SynchronizedArray[Any]
    by_code[0] = 3

    raw = mp.RawValue(ctypes.c_long, 7)
    assert_type(raw, ctypes.c_long)
    raw_array = mp.RawArray(ctypes.c_int, 4)
    assert_type(raw_array, ctypes.Array[ctypes.c_int])

    shared: ShareableList[int] = ShareableList([1, 2, 3])
    try:
        assert len(shared) == 3 and shared[0] == 1
    finally:
        shared.shm.close()
        shared.shm.unlink()


def pools() -> None:
    with mp.Pool(2) as pool:
        result: AsyncResult[int] = pool.apply_async(square, (7,))
        assert_type(result.get(timeout=60), int)
        squares = pool.map(square, range(4))
        assert_type(squares, list[int])
        assert squares == [0, 1, 4, 9]
        assert sum(pool.imap(square, [1, 2], 1)) == 5
        assert sorted(pool.imap_unordered(square, [1, 2])) == [1, 4]
        powers = pool.starmap(power, [(2, 3), (3, 2)])
        assert_type(powers, list[int])
        mapped = pool.map_async(square, [3])
        assert mapped.get(timeout=60) == [9]
        pool.close()
        pool.join()


def processes() -> None:
    name = mp.current_process().name
    assert_type(name, str)
    for child in mp.active_children():
        assert_type(child.name, str)
    ctx = mp.get_context("spawn")
    assert_type(ctx.Process(target=square, args=(1,)).daemon, bool)
    assert_type(mp.cpu_count(), int)


def factory_types() -> None:
    """Never called (``mp.Queue[Any]`` is a type, not a run-time expression)."""
    ctx = mp.get_context("fork")
    assert_type(ctx.Queue(5), mp.Queue[Any])
    assert_type(ctx.SimpleQueue(), mp.SimpleQueue[Any])
    assert_type(ctx.JoinableQueue(), mp.JoinableQueue[Any])
    assert_type(ctx.Value("d", 1.0), Synchronized[Any])
    assert_type(ctx.Array(ctypes.c_char, 4), SynchronizedString)


def mistakes(
    q: mp.Queue[int], counter: Synchronized[int], pool: Pool, sq: mp.SimpleQueue[str]
) -> None:
    """Never called: each line is a mistake that the types catch."""
    q.put("text")  # type: ignore[arg-type]
    sq.put(1)  # type: ignore[arg-type]
    counter.value = "one"  # type: ignore[assignment]
    pool.map(square, ["text"])  # type: ignore[arg-type]
    pool.apply_async(square, (1,)).get().upper()  # type: ignore[attr-defined]
    ShareableList([object()])  # type: ignore[type-var]


def main() -> int:
    queues()
    pipes()
    synchronization()
    shared_state()
    pools()
    processes()
    return 0


if __name__ == "__main__":
    sys.exit(main())

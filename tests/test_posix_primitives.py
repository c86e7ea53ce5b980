"""procframe's POSIX primitives themselves, below the API: limits and allocators of their own.

The conformance kit tests what every backend promises; these are promises of
the POSIX implementation (:mod:`procframe.posix`) that another backend need
not share: a Condition's fixed room for waiters, the memfd heap's allocator.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.posix import heap as heap_module
from procframe.posix.sharedctypes import RawValue
from procframe.posix.synchronize import Condition, RLock
from procframe.posix.waitroom import CAPACITY
from procframe.testing.helpers import sync
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.targets import read_report

PATIENCE = 60.0


def waiting_threads(cond: Any, count: int) -> tuple[list[threading.Thread], list[bool]]:
    """``count`` threads in ``cond.wait()``; returns once every one of them is waiting."""
    results: list[bool] = []
    ready = threading.Semaphore(0)

    def waiter() -> None:
        with cond:
            ready.release()
            results.append(cond.wait(PATIENCE))

    threads = [threading.Thread(target=waiter) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert ready.acquire(timeout=PATIENCE)
    return threads, results


def release(cond: Any, threads: list[threading.Thread]) -> None:
    with cond:
        cond.notify_all()
    for thread in threads:
        thread.join(PATIENCE)


def test_a_condition_full_of_waiters_refuses_one_more_by_name() -> None:
    cond = Condition(RLock())
    threads, results = waiting_threads(cond, CAPACITY)
    try:
        with cond, pytest.raises(RuntimeError, match=f"more than {CAPACITY} threads are waiting"):
            cond.wait(PATIENCE)
    finally:
        release(cond, threads)
    assert results == [True] * CAPACITY


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_the_place_of_a_killed_waiter_goes_to_a_new_one(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    cond = Condition(ctx=ctx)
    ready = str(tmp_path / "ready")
    p = ctx.Process(target=sync.wait_on, args=(cond, ready, str(tmp_path / "result"), PATIENCE))
    p.start()
    try:
        read_report(ready, timeout=PATIENCE)
        time.sleep(0.3)  # from reporting ready into the wait itself
        p.kill()
        p.join(PATIENCE)
    finally:
        reap(p)
    threads, results = waiting_threads(cond, CAPACITY - 1)
    try:
        with cond:
            assert cond.wait(0.01) is False  # the killed waiter's place was free
    finally:
        release(cond, threads)
    assert results == [True] * (CAPACITY - 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfds and /proc are Linux's")
def test_shared_ctypes_live_in_an_anonymous_memfd() -> None:
    value = RawValue("i", 1)
    target = os.readlink(f"/proc/self/fd/{value._pf_block.arena.fd}")
    assert target.startswith("/memfd:procframe")


def test_heap_blocks_never_overlap_and_coalesce_when_freed() -> None:
    heap = heap_module.Heap()
    rng = random.Random(7)
    live: list[heap_module.Block] = []
    for _ in range(3000):
        if live and rng.random() < 0.45:
            live.pop(rng.randrange(len(live)))  # collected: its span goes back
        else:
            size = rng.choice((1, 8, 24, 100, 4096, 70_000, heap_module.ARENA_SIZE))
            live.append(heap.malloc(size, rng.choice((1, 8, 16, 64))))
        spans = sorted((b.arena.fd, b.offset, b.offset + b.size) for b in live)
        for (fd1, _, end1), (fd2, start2, _) in itertools.pairwise(spans):
            assert fd1 != fd2 or end1 <= start2, "two live blocks overlap"
    assert all(b.offset % 16 == 0 for b in live)
    assert heap.stats()["used"] == sum(b.size for b in live)
    live.clear()
    stats = heap.stats()
    assert stats["used"] == 0
    assert stats["size"] == stats["arenas"] * heap_module.ARENA_SIZE  # big arenas let go
    for spans in heap._free.values():
        assert len(spans) == 1  # every arena is one free span again
    first = heap.malloc(64)
    assert not first.zeroed  # that memory was used before: the caller must clear it

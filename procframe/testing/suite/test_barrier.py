"""Barrier between processes: wait, the action, timeouts, reset and abort."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import procframe
from procframe.testing.helpers import barrier as helpers
from procframe.testing.helpers.targets import read_report


@pytest.mark.core
def test_parties_meet_and_each_gets_a_distinct_index(ctx: procframe.Context) -> None:
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    children = [
        ctx.Process(target=helpers.wait_and_report, args=(barrier, results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    try:
        mine = barrier.wait(60)
        theirs = [results.get(timeout=60) for _ in children]
    finally:
        helpers.reap(children)
    assert sorted([mine, *theirs]) == [0, 1, 2]
    assert barrier.n_waiting == 0
    assert not barrier.broken
    results.close()


def test_the_action_runs_once_per_crossing(ctx: procframe.Context, tmp_path: Path) -> None:
    marker = tmp_path / "actions"
    barrier = ctx.Barrier(2, action=helpers.ActionAppend(str(marker)))
    child = ctx.Process(target=helpers.wait_times, args=(barrier, 3))
    child.start()
    try:
        for _ in range(3):
            barrier.wait(60)
        child.join(60)
    finally:
        helpers.reap([child])
    assert child.exitcode == 0
    assert marker.read_text().count("x") == 3


@pytest.mark.in_one_process
def test_a_timeout_breaks_the_barrier(ctx: procframe.Context) -> None:
    barrier = ctx.Barrier(2, timeout=0.2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    assert barrier.broken
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.1)
    barrier.reset()
    assert not barrier.broken


@pytest.mark.requires("posix_signals")
@pytest.mark.in_one_process
@pytest.mark.timeout(30)
def test_a_party_that_died_while_the_barrier_drained_breaks_it_not_hangs(
    ctx: procframe.Context,
) -> None:
    barrier = ctx.Barrier(2)
    with barrier._cond:  # what a party killed on its way out of the barrier leaves behind
        barrier._state, barrier._count = 1, 1
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.2)
    assert barrier.broken


def test_abort_releases_a_waiting_process(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    barrier = ctx.Barrier(2)
    child = ctx.Process(target=helpers.wait_and_record_error, args=(barrier, str(out)))
    child.start()
    try:
        helpers.until_waiting(barrier, 1)
        barrier.abort()
        child.join(60)
    finally:
        helpers.reap([child])
    assert read_report(out) == "BrokenBarrierError"
    assert barrier.broken


@pytest.mark.in_one_process
def test_bad_parties_are_refused(ctx: procframe.Context) -> None:
    with pytest.raises(ValueError, match="parties"):
        ctx.Barrier(0)

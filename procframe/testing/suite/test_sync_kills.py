"""Event, Barrier and parent death when processes are SIGKILLed: what stays true.

* A process killed inside ``is_set()`` or ``wait()`` leaves the Event as it was, and a
  waiter that comes later is woken by ``set()``.
* A party killed while it waits at a Barrier breaks the barrier for the others (as
  ``abort()`` would); ``reset()`` makes it whole again for the live parties.
* A child that handles or ignores SIGTERM does not outlive its SIGKILLed parent: SIGKILL
  follows the death signal after a grace; its own children go the same way.

The probes (marked ``stress``) kill at random, small in every run, full size with
``--procframe-stress``; each prints what it did (``-s`` shows it).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import stress
from procframe.testing.helpers import sync_kills as helpers
from procframe.testing.helpers.barrier import reap, until_waiting
from procframe.testing.helpers.scripts import pid_running, start_script
from procframe.testing.helpers.targets import read_report

BOUND = 30.0
"""Seconds any one wait of these tests may take."""
NOTICE = 5.0
"""Seconds within which a waiting party must learn that another one was killed."""
PARENT_DEATH_BOUND = 20.0
"""Seconds within which every descendant of a killed parent must be gone (two graces of
3 s, one per generation, on a loaded machine)."""


def _kill(child: Any) -> None:
    child.kill()
    child.join(BOUND)
    assert child.exitcode == -signal.SIGKILL


# -- Event --------------------------------------------------------------------------------


@pytest.mark.requires("posix_signals")
def test_a_waiter_killed_asleep_leaves_the_event_clear_and_a_new_waiter_wakes_on_set(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    event = ctx.Event()
    killed = ctx.Process(target=helpers.wait_and_report, args=(event, str(tmp_path / "a")))
    killed.start()
    try:
        read_report(tmp_path / "a.ready", timeout=BOUND)
        time.sleep(0.2)  # asleep in wait() by now, most likely
        _kill(killed)
        assert not event.is_set()
        report = tmp_path / "b"
        waiter = ctx.Process(target=helpers.wait_and_report, args=(event, str(report)))
        waiter.start()
        read_report(tmp_path / "b.ready", timeout=BOUND)
        time.sleep(0.2)
        event.set()
        assert read_report(report, timeout=BOUND / 2) is True
        waiter.join(BOUND)
        assert waiter.exitcode == 0
    finally:
        reap([killed, *([waiter] if "waiter" in locals() else [])])
    assert event.is_set()


@pytest.mark.stress
@pytest.mark.requires("posix_signals")
def test_probe_event_under_random_kills(ctx: procframe.Context, tmp_path: Path) -> None:
    """Readers (is_set, wait) and a writer (set, clear) are SIGKILLed at random.

    In each round the writer runs and anyone may be killed; then the writer is
    stopped, the flag put in a known state, and only readers run and die: the flag
    must not change.  At the end of each round, with no reader left, one, then two,
    then three new waiters must all be woken by ``set()``.
    """
    kills = stress.size(40, 1000)
    rounds = max(2, kills // 50)
    storm = _Storm(ctx, 4, random.Random(13))
    event = ctx.Event()
    reader, writer = helpers.read_event_for_ever, helpers.toggle_event_for_ever
    for slot in range(3):
        storm.start(slot, reader, event)
    changed = woken_late = 0
    try:
        for round_ in range(rounds):
            storm.start(3, writer, event)
            for _ in range(kills // rounds // 2):  # with the writer: kill anyone
                slot = storm.kill_one(4)
                storm.start(slot, writer if slot == 3 else reader, event)
            storm.stop(3)
            expected = round_ % 2 == 0
            event.set() if expected else event.clear()
            for _ in range(kills // rounds // 2):  # readers only: the flag must stay
                storm.start(storm.kill_one(3), reader, event)
                if event.is_set() != expected:
                    changed += 1
                    event.set() if expected else event.clear()
            for slot in range(3):
                storm.stop(slot)
            event.clear()
            for waiters in (1, 2, 3):  # a miscount of sleepers shows with as many of them
                report = tmp_path / f"w{round_}-{waiters}"
                woken_late += waiters - _new_waiters_woken_by_set(ctx, event, waiters, report)
                event.clear()
            for slot in range(3):
                storm.start(slot, reader, event)
    finally:
        storm.stop_all()
    print(
        f"\nEvent probe [{ctx.get_start_method()}]: {storm.summary()}, {rounds} rounds; "
        f"flag changed by a reader: {changed}; new waiters not woken by set(): {woken_late}"
    )
    assert (changed, woken_late) == (0, 0)


class _Storm:
    """Children in numbered slots, SIGKILLed at random moments of their loops."""

    def __init__(self, ctx: procframe.Context, slots: int, rnd: random.Random) -> None:
        self.ctx = ctx
        self.rnd = rnd
        self.ready = ctx.RawArray("i", slots)  # each child's pid, once in its loop
        self.children: list[Any] = [None] * slots
        self.kills = 0
        self.started = time.monotonic()

    def start(self, slot: int, target: Any, *args: Any) -> None:
        self.ready[slot] = 0
        child = self.ctx.Process(target=target, args=(*args, self.ready, slot), daemon=True)
        child.start()
        self.children[slot] = child

    def kill_one(self, among: int) -> int:
        """SIGKILL the child of a random slot below ``among`` at a random moment of its
        loop; return the slot."""
        slot = self.rnd.randrange(among)
        child = self.children[slot]
        deadline = time.monotonic() + BOUND
        while self.ready[slot] != child.pid and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rnd.random() * 0.02)
        _kill(child)
        self.kills += 1
        return slot

    def stop(self, slot: int) -> None:
        _stop([self.children[slot]])

    def stop_all(self) -> None:
        _stop([child for child in self.children if child is not None])

    def summary(self) -> str:
        return f"{self.kills} kills in {time.monotonic() - self.started:.1f} s"


def _stop(children: list[Any]) -> None:
    for child in children:
        if child.is_alive():
            child.kill()
        child.join(BOUND)


def _new_waiters_woken_by_set(ctx: procframe.Context, event: Any, count: int, report: Path) -> int:
    """How many of ``count`` new waiting processes ``set()`` wakes within the bound."""
    waiters = [
        ctx.Process(target=helpers.wait_and_report, args=(event, f"{report}.{i}"))
        for i in range(count)
    ]
    for waiter in waiters:
        waiter.start()
    try:
        for i in range(count):
            read_report(f"{report}.{i}.ready", timeout=BOUND)
        time.sleep(0.05)
        event.set()
        woken = 0
        for i in range(count):
            try:
                woken += bool(read_report(f"{report}.{i}", timeout=BOUND / 3))
            except TimeoutError:
                pass
        return woken
    finally:
        reap(waiters)


# -- Barrier ------------------------------------------------------------------------------


@pytest.mark.requires("posix_signals")
def test_a_party_killed_while_waiting_breaks_the_barrier_and_reset_restores_it(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    barrier = ctx.Barrier(2)
    args = (barrier, str(tmp_path / "killed"))
    killed = ctx.Process(target=helpers.barrier_wait_and_report, args=args)
    killed.start()
    try:
        until_waiting(barrier, 1, BOUND)
        _kill(killed)
        with pytest.raises(threading.BrokenBarrierError):
            barrier.wait(BOUND)  # the dead party does not count as one that arrived
        assert barrier.broken
        barrier.reset()
        assert not barrier.broken
        assert barrier.n_waiting == 0
        report = tmp_path / "live"
        live = ctx.Process(target=helpers.barrier_wait_and_report, args=(barrier, str(report)))
        live.start()
        index = barrier.wait(BOUND)
        assert sorted([index, read_report(report, timeout=BOUND)]) == [0, 1]
        live.join(BOUND)
    finally:
        reap([killed, *([live] if "live" in locals() else [])])
    assert not barrier.broken


@pytest.mark.requires("posix_signals")
def test_a_waiting_party_learns_that_another_one_was_killed(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    barrier = ctx.Barrier(3)
    report = tmp_path / "survivor"
    survivor = ctx.Process(target=helpers.barrier_wait_and_report, args=(barrier, str(report)))
    args = (barrier, str(tmp_path / "killed"))
    killed = ctx.Process(target=helpers.barrier_wait_and_report, args=args)
    survivor.start()
    killed.start()
    try:
        until_waiting(barrier, 2, BOUND)
        _kill(killed)
        assert read_report(report, timeout=NOTICE) == "BrokenBarrierError"
        survivor.join(BOUND)
    finally:
        reap([survivor, killed])
    assert barrier.broken


@pytest.mark.stress
@pytest.mark.requires("posix_signals")
def test_probe_barrier_under_random_kills(ctx: procframe.Context) -> None:
    """Parties crossing a barrier in a loop are SIGKILLed at random; after each kill,
    ``reset()`` must make the barrier usable: the live parties and this process cross."""
    kills = stress.size(6, 300)
    parties = 4
    barrier = ctx.Barrier(parties)
    storm = _Storm(ctx, parties - 1, random.Random(4))
    for slot in range(parties - 1):
        storm.start(slot, helpers.cross_for_ever, barrier)
    stuck = 0
    try:
        for done in range(kills):
            slot = storm.kill_one(parties - 1)
            barrier.reset()
            storm.start(slot, helpers.cross_for_ever, barrier)
            if not _crosses(barrier):
                stuck += 1
                print(f"stuck after kill {done}: {barrier!r} {barrier._state} {barrier._count}")
    finally:
        storm.stop_all()
    print(
        f"\nBarrier probe [{ctx.get_start_method()}]: {storm.summary()}; "
        f"barrier not usable after reset(): {stuck}"
    )
    assert stuck == 0


def _crosses(barrier: Any) -> bool:
    """True if this process crosses the barrier with the live parties within the bound
    (a wait that meets a reset or a broken barrier, or that a kill broke, is retried)."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            barrier.wait(NOTICE)
            return True
        except threading.BrokenBarrierError:
            if barrier.broken:
                barrier.reset()
    return False


# -- parent death -------------------------------------------------------------------------

PARENT_WITH_STUBBORN_CHILDREN = """
import os, time
import procframe
from procframe.testing.helpers import sync_kills, targets

if __name__ == '__main__':
    handler = procframe.Process(target=sync_kills.stubborn, args=('handler', 'handle', 'grand'))
    ignorer = procframe.Process(target=sync_kills.stubborn, args=('ignorer', 'ignore'))
    handler.start()
    ignorer.start()
    pids = [targets.read_report(name, timeout=60) for name in ('handler', 'grand', 'ignorer')]
    targets.report('pids', pids)
    time.sleep(600)
"""


def _kill_parent_with_stubborn_children(backend: str, tmp_path: Path) -> tuple[int, float]:
    """Start the script, SIGKILL it; return how many of its descendants outlived it by
    :data:`PARENT_DEATH_BOUND` (then killed here) and when the last one went."""
    parent = start_script(tmp_path, PARENT_WITH_STUBBORN_CHILDREN, backend)
    try:
        pids = read_report(tmp_path / "pids", timeout=60)
        parent.kill()
        parent.wait(BOUND)
        killed_at = time.monotonic()
        alive = list(pids)
        while alive and time.monotonic() - killed_at < PARENT_DEATH_BOUND:
            time.sleep(0.05)
            alive = [pid for pid in alive if pid_running(pid)]
        gone_after = time.monotonic() - killed_at
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(alive), gone_after
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.communicate(timeout=BOUND)


@pytest.mark.stress
@pytest.mark.requires("parent_death")
@pytest.mark.timeout(120)
def test_children_that_handle_or_ignore_sigterm_do_not_outlive_a_killed_parent(
    procframe_backend: str, tmp_path: Path
) -> None:
    """A parent whose child handles SIGTERM (and has a grandchild that does too) and whose
    other child ignores it is SIGKILLed (again and again at full size): no descendant
    may survive the bound."""
    rounds = stress.size(1, 20)
    survivors = 0
    slowest = 0.0
    for round_ in range(rounds):
        directory = tmp_path / str(round_)
        directory.mkdir()
        left, took = _kill_parent_with_stubborn_children(procframe_backend, directory)
        survivors += left
        slowest = max(slowest, took)
    print(
        f"\nParent-death probe [{procframe_backend}]: {rounds} parents killed, "
        f"{3 * rounds} stubborn descendants; survivors: {survivors}; "
        f"the last one went after {slowest:.1f} s at most"
    )
    assert survivors == 0

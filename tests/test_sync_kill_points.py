"""A process killed at any line of Event's and Barrier's code leaves them usable.

Each test forks a child that runs one operation under a trace function which
SIGKILLs the child at its n-th line in procframe's POSIX synchronization
modules, for every n the operation runs through: every state a kill can leave
behind at a line boundary is produced once, deterministically.  After each
death the parent checks what must hold (the Event unchanged, a new waiter
woken by ``set()``, a Barrier usable after ``reset()``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import procframe
from procframe.posix import robustlock, synchronize, waitroom

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TRACED = frozenset({synchronize.__file__, waitroom.__file__, robustlock.__file__})
BOUND = 10.0
"""Seconds anything a test waits for may take."""


def _run_then_die(line: int, action: Callable[[], object], report: int) -> None:
    """Run ``action``; SIGKILL this process at its ``line``-th traced line (0: never).

    Reports on ``report`` how many traced lines ran if it got to the end."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename not in TRACED:
            return None
        if event == "line":
            count += 1
            if count == line:
                os.kill(os.getpid(), signal.SIGKILL)
        return trace

    code = 1
    try:
        sys.settrace(trace)
        try:
            action()
        finally:
            sys.settrace(None)
        os.write(report, str(count).encode())
        code = 0
    finally:
        os._exit(code)


def _fork_dying_at(line: int, action: Callable[[], object]) -> tuple[int, int]:
    """Fork a child running :func:`_run_then_die`; return its pid and the report's read end."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child
        pid = os.fork()  # runs only this module's code and ends with os._exit
    if pid == 0:
        os.close(read)
        _run_then_die(line, action, write)
    os.close(write)
    return pid, read


def _reap(pid: int, read: int) -> tuple[int, str]:
    """Wait for the child (within the bound); return its wait status and its report."""
    deadline = time.monotonic() + BOUND
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            raise AssertionError(f"the child did not end within {BOUND} s")
        time.sleep(0.001)
    with os.fdopen(read, "rb") as stream:
        return status, stream.read().decode()


def _lines_of(action: Callable[[], object]) -> int:
    status, report = _reap(*_fork_dying_at(0, action))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return int(report)


def _kill_at_every_line(
    action: Callable[[], object],
    check: Callable[[int], None],
    meanwhile: Callable[[int], None] | None = None,
) -> int:
    """Kill a child running ``action`` at each of its lines in turn; ``check`` after each
    (``check(0)`` after a first run to its end, which counts the lines).

    ``meanwhile(pid)`` runs in the parent while the child runs.  Returns how many
    kill points there were."""
    lines = _lines_of(action) if meanwhile is None else _lines_with(action, meanwhile)
    assert lines > 3
    check(0)
    killed = 0
    for line in range(1, lines + 1):
        pid, read = _fork_dying_at(line, action)
        if meanwhile is not None:
            meanwhile(pid)
        status, _ = _reap(pid, read)
        # A run may take fewer lines than the first (a lock free at once, say): then it ends.
        if os.WIFSIGNALED(status):
            assert os.WTERMSIG(status) == signal.SIGKILL, (line, status)
            killed += 1
        else:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (line, status)
        check(line)
    assert killed > lines * 0.8
    return killed


def _lines_with(action: Callable[[], object], meanwhile: Callable[[int], None]) -> int:
    pid, read = _fork_dying_at(0, action)
    meanwhile(pid)
    status, report = _reap(pid, read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return int(report)


# -- Event ---------------------------------------------------------------------------------


def _asleep_in(room: waitroom.WaitRoom, pid: int) -> int:
    fields = room._fields
    return sum(
        1
        for slot in range(fields[waitroom._HIGH_WATER])
        if fields[waitroom._HEADER + 3 * slot] == waitroom._ASLEEP
        and fields[waitroom._HEADER + 3 * slot + 1] == pid
    )


def _until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BOUND} s: {what}")
        time.sleep(0.001)


def _assert_a_new_waiter_wakes_on_set(event: Any) -> None:
    """A thread that waits on the (clear) Event is woken by ``set()``; clears it again."""
    assert not event.is_set()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(event.wait(BOUND)))
    waiter.start()
    try:
        room = event._cond._room
        _until(lambda: _asleep_in(room, os.getpid()), "the new waiter sleeps")
        started = time.monotonic()
        event.set()
        waiter.join(BOUND)
        assert results == [True]
        assert time.monotonic() - started < BOUND / 2, "the waiter was not woken by set()"
        assert room.waiting == 0
    finally:
        event.set()
        waiter.join(BOUND)
    event.clear()


@pytest.fixture
def event() -> Any:
    return procframe.get_context("fork").Event()


def test_a_reader_killed_at_any_line_leaves_a_set_event_set(event: Any) -> None:
    event.set()

    def read() -> None:
        event.is_set()
        event.wait()
        event.wait(0)

    def check(line: int) -> None:
        assert event.is_set(), f"killed at line {line}, the reader cleared the Event"

    _kill_at_every_line(read, check)


def test_a_waiter_killed_at_any_line_leaves_a_clear_event_clear_and_working(event: Any) -> None:
    def wait_a_little() -> None:
        event.is_set()
        event.wait(0.001)
        event.wait(0)

    def check(line: int) -> None:
        assert not event.is_set(), f"killed at line {line}, the waiter set the Event"
        _assert_a_new_waiter_wakes_on_set(event)

    _kill_at_every_line(wait_a_little, check)


def test_a_waiter_killed_at_any_line_after_its_wake_up_leaves_the_event_working(
    event: Any,
) -> None:
    room = event._cond._room

    def wait_long() -> None:
        event.wait(BOUND)

    def set_once_asleep_or_dead(pid: int) -> None:
        _until(lambda: _asleep_in(room, pid) or _dead(pid), "the child sleeps or dies")
        event.set()

    def check(line: int) -> None:
        assert event.is_set()
        event.clear()
        _assert_a_new_waiter_wakes_on_set(event)

    _kill_at_every_line(wait_long, check, set_once_asleep_or_dead)


def _dead(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def test_a_setter_killed_at_any_line_leaves_the_event_working(event: Any) -> None:
    results: list[bool] = []
    waiter: list[threading.Thread] = []

    def start_waiter(pid: int) -> None:
        os.waitpid(pid, os.WUNTRACED)  # the child has stopped
        thread = threading.Thread(target=lambda: results.append(event.wait(BOUND)))
        thread.start()
        waiter.append(thread)
        _until(lambda: _asleep_in(event._cond._room, os.getpid()), "the waiter sleeps")
        os.kill(pid, signal.SIGCONT)

    def set_it() -> None:
        os.kill(os.getpid(), signal.SIGSTOP)  # until the parent's waiter sleeps
        event.set()

    def check(line: int) -> None:
        if event.is_set():
            # Killed holding the lock, perhaps before waking the waiter: the next process
            # to take the lock wakes it (else it would see the flag within _RECHECK).
            event.clear()
        else:  # killed before the flag: the next set() wakes the waiter
            event.set()
        waiter.pop().join(BOUND / 2)
        assert results.pop() is True, f"killed at line {line}, the setter stranded a waiter"
        event.clear()
        _assert_a_new_waiter_wakes_on_set(event)

    _kill_at_every_line(set_it, check, start_waiter)


# -- Barrier -------------------------------------------------------------------------------


def _cross_in_thread(barrier: Any, outcomes: list[object]) -> threading.Thread:
    def cross() -> None:
        try:
            outcomes.append(barrier.wait(BOUND))
        except threading.BrokenBarrierError as exc:
            outcomes.append(exc)

    thread = threading.Thread(target=cross)
    thread.start()
    return thread


def test_a_party_killed_at_any_line_leaves_a_barrier_that_reset_makes_whole() -> None:
    barrier: Any = procframe.get_context("fork").Barrier(2)
    parties: list[threading.Thread | None] = []

    def wait_at_the_barrier() -> None:
        try:
            barrier.wait(BOUND)
        except threading.BrokenBarrierError:
            pass

    def join_once_it_waits_or_died(pid: int) -> None:
        _until(lambda: barrier.n_waiting or _dead(pid), "the child waits or dies")
        # The second party, unless the child died first (it would wait alone till BOUND).
        parties.append(None if _dead(pid) else _cross_in_thread(barrier, []))

    def check(line: int) -> None:
        party = parties.pop()
        if party is not None:
            party.join(BOUND)
            assert not party.is_alive(), f"killed at line {line}, a party waits for ever"
        barrier.reset()
        outcomes: list[object] = []
        both = [_cross_in_thread(barrier, outcomes) for _ in range(2)]
        for thread in both:
            thread.join(BOUND)
        assert sorted(outcomes) == [0, 1], f"killed at line {line}: {outcomes}"  # type: ignore[type-var]
        assert (barrier.broken, barrier.n_waiting) == (False, 0)

    _kill_at_every_line(wait_at_the_barrier, check, join_once_it_waits_or_died)

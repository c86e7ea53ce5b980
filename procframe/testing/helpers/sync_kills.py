"""What children run in the tests and probes of Event, Barrier and parent death under kills
(no pytest here)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

from procframe.testing.helpers.targets import report

BOUND = 30.0
"""Seconds any single wait of these children may take."""


def wait_and_report(event: Any, path: str, timeout: float = BOUND) -> None:
    """Report ``event.wait(timeout)`` (after reporting ``ready`` to ``path + '.ready'``)."""
    report(f"{path}.ready", os.getpid())
    report(path, event.wait(timeout))


def read_event_for_ever(event: Any, ready: Any, slot: int) -> None:
    """A reader: is_set() and wait() with short and long timeouts, until killed.

    Writes its pid in ``ready[slot]`` as it starts the loop."""
    rnd = random.Random(os.getpid())
    ready[slot] = os.getpid()
    while True:
        choice = rnd.random()
        if choice < 0.3:
            event.is_set()
        elif choice < 0.6:
            event.wait(rnd.random() * 0.005)
        elif choice < 0.8:
            event.wait(0)
        else:
            event.wait(1.0)


def toggle_event_for_ever(event: Any, ready: Any, slot: int) -> None:
    """A writer: set() then clear(), until killed (its pid in ``ready[slot]`` first)."""
    ready[slot] = os.getpid()
    while True:
        event.set()
        event.clear()


def cross_for_ever(barrier: Any, ready: Any, slot: int) -> None:
    """A party: cross the barrier again and again (a broken or reset crossing is retried),
    until killed (its pid in ``ready[slot]`` first)."""
    ready[slot] = os.getpid()
    while True:
        try:
            barrier.wait(BOUND)
        except threading.BrokenBarrierError:
            time.sleep(0.001)


def barrier_wait_and_report(barrier: Any, path: str) -> None:
    """Wait at the barrier; report the index, or the name of the exception."""
    report(f"{path}.ready", os.getpid())
    try:
        outcome: Any = barrier.wait(BOUND)
    except threading.BrokenBarrierError as exc:
        outcome = type(exc).__name__
    report(path, outcome)


# -- parent death --------------------------------------------------------------------------


def stubborn(path: str, disposition: str, grandchild: str | None = None) -> None:
    """Handle (``"handle"``) or ignore (``"ignore"``) SIGTERM, report this pid, live on.

    With ``grandchild``, first start a child of this one (stubborn the same way) that
    reports to ``grandchild``, and wait for its report.
    """
    handler: Any = (lambda *_: None) if disposition == "handle" else signal.SIG_IGN
    signal.signal(signal.SIGTERM, handler)
    if grandchild is not None:
        import procframe
        from procframe.testing.helpers.targets import read_report

        child = procframe.Process(target=stubborn, args=(grandchild, disposition))
        child.start()
        read_report(grandchild, timeout=BOUND)
    report(path, os.getpid())
    while True:
        time.sleep(0.05)  # a handler runs between two sleeps: SIGTERM changes nothing

"""What children run in the Barrier conformance tests (no pytest here)."""

from __future__ import annotations

import threading
import time
from typing import Any

from procframe.testing.helpers.targets import report


def wait_and_report(barrier: Any, results: Any) -> None:
    """Wait at the barrier, then put the index it returned."""
    results.put(barrier.wait(60))


def wait_times(barrier: Any, times: int) -> None:
    """Cross the barrier ``times`` times."""
    for _ in range(times):
        barrier.wait(60)


def wait_and_record_error(barrier: Any, path: str) -> None:
    """Wait at the barrier; report the name of the exception that ends the wait."""
    try:
        barrier.wait(60)
    except threading.BrokenBarrierError as exc:
        report(path, type(exc).__name__)
    else:
        report(path, None)


def until_waiting(barrier: Any, count: int, timeout: float = 60.0) -> None:
    """Return once ``count`` parties wait at ``barrier``."""
    deadline = time.monotonic() + timeout
    while barrier.n_waiting < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} parties never waited at the barrier")
        time.sleep(0.01)


class ActionAppend:
    """A picklable barrier action: append ``x`` to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("x")


def reap(children: list[Any]) -> None:
    """Join the children, killing any still running."""
    for child in children:
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join(30)

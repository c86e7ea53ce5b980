"""Where on the cluster a Process runs: any worker, unless a block pins it to one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pin = threading.local()


@contextmanager
def pinned_to(worker: str) -> Iterator[None]:
    """Processes started in this block (in this thread) run on ``worker`` (its address)."""
    before = getattr(_pin, "worker", None)
    _pin.worker = worker
    try:
        yield
    finally:
        _pin.worker = before


def pinned_worker() -> str | None:
    """The worker a Process started now must run on, or ``None`` for any."""
    return getattr(_pin, "worker", None)

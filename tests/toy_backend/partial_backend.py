"""A third-party backend that overrides two factory hooks of spawn and nothing else.

Entry point: ``[procframe] partial = partial_backend:plugin``, installed by
tests/test_third_party_backend.py.  Its Queue and Lock are its own (subclasses
of the POSIX ones) and say so: each one made appends a line to the file named
by ``PARTIAL_BACKEND_LOG``.  Everything else (Condition, Value, Pool, ...) is
procframe's, built from this backend's context, so from this Queue and Lock
where procframe builds with them.
"""

from __future__ import annotations

import os
from typing import Any

import procframe
from procframe.backends.spawn import SpawnBackend
from procframe.posix.queues import Queue
from procframe.posix.synchronize import Lock

LOG_ENV = "PARTIAL_BACKEND_LOG"


def _record(kind: str) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{kind} {os.getpid()}\n")


class RecordedQueue(Queue):
    def __init__(self, maxsize: int = 0, *, ctx: Any) -> None:
        super().__init__(maxsize, ctx=ctx)
        _record("Queue")


class RecordedLock(Lock):
    def __init__(self) -> None:
        super().__init__()
        _record("Lock")


class PartialBackend(SpawnBackend):
    name = "partial"
    description = "spawn, with a Queue and a Lock of its own"

    @procframe.hookimpl
    def procframe_make_queue(self, ctx: Any, maxsize: int) -> RecordedQueue:
        return RecordedQueue(maxsize, ctx=ctx)

    @procframe.hookimpl
    def procframe_make_lock(self) -> RecordedLock:
        return RecordedLock()


plugin = PartialBackend()

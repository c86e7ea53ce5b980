"""Pools of workers: the API of ``multiprocessing.pool``, robust where it hangs.

A worker that dies fails only the task it was running (``WorkerLostError``)
and is replaced; a task can have a timeout (``TaskTimeoutError``); errors
come back with the worker's traceback; ``imap`` reads its input lazily.
"""

from __future__ import annotations

from procframe._core.errors import TimeoutError
from procframe.pool._errors import (
    BrokenPoolError,
    MaybeEncodingError,
    RemoteTraceback,
    TaskAbortedError,
    TaskTimeoutError,
    WorkerLostError,
    WorkerStartError,
)
from procframe.pool._pool import Pool, ThreadPool
from procframe.pool._results import (
    ApplyResult,
    AsyncResult,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
)

__all__ = [
    "ApplyResult",
    "AsyncResult",
    "BrokenPoolError",
    "IMapIterator",
    "IMapUnorderedIterator",
    "MapResult",
    "MaybeEncodingError",
    "Pool",
    "RemoteTraceback",
    "TaskAbortedError",
    "TaskTimeoutError",
    "ThreadPool",
    "TimeoutError",
    "WorkerLostError",
    "WorkerStartError",
]

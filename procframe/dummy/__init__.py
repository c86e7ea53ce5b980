"""``multiprocessing.dummy``: the API of ``multiprocessing`` on threads, as the ``threads`` backend.

Not a second implementation: the names map onto ``procframe.get_context("threads")``
and the threads backend's classes, except where ``multiprocessing.dummy``
behaves differently in a way programs rely on, where this module behaves as
``multiprocessing.dummy`` does:

* ``current_process()`` is ``threading.current_thread()``: in a Pool's worker,
  the worker thread (its name tells workers apart);
* ``Queue`` and ``JoinableQueue`` are ``queue.Queue``;
* ``Lock``, ``RLock``, ``Semaphore`` and ``BoundedSemaphore`` are ``threading``'s
  (``acquire(blocking=True, timeout=-1)``, which the threads backend's
  multiprocessing-style ``acquire(block, timeout)`` does not accept);
* ``Pool(processes, initializer, initargs)`` is a ``ThreadPool``.

``Process`` is the threads context's: a process run by a thread, with the
whole Process API (``exitcode`` 1 when the target raised, where
``multiprocessing.dummy`` says 0).  ``Event``, ``Barrier`` and ``Condition``
are the threads backend's, which are ``threading``'s classes (a Condition's
default lock is a ``threading.RLock``); ``Value``, ``Array``, ``Pipe`` and
``Manager`` are the threads context's (``Array`` is a ctypes array, not an
``array.array``).  Importing this module loads no plugin.
"""

from __future__ import annotations

import threading
from queue import Queue
from threading import BoundedSemaphore, Lock, RLock, Semaphore

from procframe._core.process import BaseProcess, active_children, bound_process_class
from procframe.dummy.connection import Pipe
from procframe.threads.synchronize import Barrier, Event
from procframe.threads.synchronize import Condition as _ThreadsCondition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from procframe.pool import ThreadPool
    from procframe.threads.managers import ThreadManager

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Namespace",
    "Pipe",
    "Pool",
    "Process",
    "Queue",
    "RLock",
    "Semaphore",
    "Value",
    "active_children",
    "current_process",
    "freeze_support",
]

Process: type[BaseProcess] = bound_process_class("threads")
"""A process run by a thread of this process (the threads context's ``Process``)."""

current_process = threading.current_thread
JoinableQueue = Queue


class Condition(_ThreadsCondition):
    """The threads backend's Condition; without a lock, on a new ``threading.RLock``."""

    def __init__(self, lock: Any = None) -> None:
        super().__init__(threading.RLock() if lock is None else lock)


def freeze_support() -> None:
    """Accepted for compatibility: nothing to do."""


def _threads() -> Any:
    from procframe.context import get_context

    return get_context("threads")


def Value(typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
    """A ctypes object behind a lock (the threads context's ``Value``)."""
    return _threads().Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: Any, size_or_initializer: Any, lock: Any = True) -> Any:
    """A ctypes array behind a lock (the threads context's ``Array``)."""
    return _threads().Array(typecode_or_type, size_or_initializer, lock=lock)


def Pool(
    processes: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Iterable[Any] = (),
) -> ThreadPool:
    """A ``ThreadPool`` of ``processes`` threads (the threads context's ``Pool``)."""
    return _threads().Pool(processes, initializer, initargs)  # type: ignore[no-any-return]


def Manager() -> ThreadManager:
    """A started manager whose objects are plain objects of this process (the threads context's)."""
    return _threads().Manager()  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    # procframe.managers is big: imported when Namespace is first asked for.
    if name == "Namespace":
        from procframe.managers import Namespace

        return Namespace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

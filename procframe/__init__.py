"""procframe: process-based parallelism with the multiprocessing API, on pluggable backends.

``import procframe as mp`` is a drop-in for ``import multiprocessing as mp``.
Module-level names use the default backend, chosen by ``set_backend`` (alias
``set_start_method``), else ``PROCFRAME_BACKEND``, else the platform default;
``get_context(name)`` gives the same API bound to one backend.
"""

from __future__ import annotations

from procframe.api.context import (
    Context,
    get_all_start_methods,
    get_context,
    get_start_method,
    set_backend,
)
from procframe.api.errors import (
    AuthenticationError,
    BackendError,
    BufferTooShort,
    ProcessError,
    ProcessPicklingError,
    ProcessStateError,
    TimeoutError,
)
from procframe.api.process import (
    Process,
    active_children,
    current_process,
    parent_process,
)
from procframe.api.system import cpu_count

TYPE_CHECKING = False  # typing is slow to import, and every spawned child imports this
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from procframe import managers, pool
    from procframe.api import queues, synchronize
    from procframe.connection import Connection

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Imported on first use so that a spawned child does not pay for pluggy.
    if name == "hookimpl":
        from procframe.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'procframe' has no attribute {name!r}")


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Two connected ends; with ``duplex=False``, (read-only end, write-only end)."""
    return get_context().Pipe(duplex)


def Queue(maxsize: int = 0) -> queues.Queue:
    """A FIFO queue between processes; ``maxsize > 0`` bounds it."""
    return get_context().Queue(maxsize)


def JoinableQueue(maxsize: int = 0) -> queues.JoinableQueue:
    """A Queue with ``task_done()`` and ``join()``."""
    return get_context().JoinableQueue(maxsize)


def SimpleQueue() -> queues.SimpleQueue:
    """A queue with only ``put``, ``get``, ``empty`` and ``close``."""
    return get_context().SimpleQueue()


def Lock() -> synchronize.Lock:
    """A non-recursive lock shared between processes."""
    return get_context().Lock()


def RLock() -> synchronize.RLock:
    """A recursive lock shared between processes."""
    return get_context().RLock()


def Semaphore(value: int = 1) -> synchronize.Semaphore:
    """A semaphore shared between processes."""
    return get_context().Semaphore(value)


def BoundedSemaphore(value: int = 1) -> synchronize.BoundedSemaphore:
    """A semaphore that refuses to be released above its initial value."""
    return get_context().BoundedSemaphore(value)


def Condition(lock: Any = None) -> synchronize.Condition:
    """A condition variable shared between processes."""
    return get_context().Condition(lock)


def Barrier(
    parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
) -> synchronize.Barrier:
    """A barrier for ``parties`` processes."""
    return get_context().Barrier(parties, action, timeout)


def Event() -> synchronize.Event:
    """An event flag shared between processes."""
    return get_context().Event()


def Value(typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
    """A ctypes object in shared memory behind a lock (``lock=True``: a new RLock).

    ``typecode_or_type`` is an ``array`` typecode (``'i'``, ``'d'``, ``'c'``, ...)
    or a ctypes type; ``lock=False`` gives the raw object.
    """
    return get_context().Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
    """A ctypes array in shared memory behind a lock: ``size`` zeros, or the initializer's items."""
    return get_context().Array(typecode_or_type, size_or_initializer, lock=lock)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """A ctypes object in shared memory, without a lock."""
    return get_context().RawValue(typecode_or_type, *args)


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """A ctypes array in shared memory, without a lock."""
    return get_context().RawArray(typecode_or_type, size_or_initializer)


def Pool(
    processes: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Iterable[Any] = (),
    maxtasksperchild: int | None = None,
    *,
    task_timeout: float | None = None,
) -> pool.Pool:
    """A pool of worker processes; ``task_timeout`` stops tasks that run longer."""
    return get_context().Pool(
        processes, initializer, initargs, maxtasksperchild, task_timeout=task_timeout
    )


def Manager() -> managers.SyncManager:
    """A started SyncManager: shared objects in a server process, used through proxies."""
    return get_context().Manager()


def set_start_method(method: str | None, force: bool = False) -> None:
    """Alias of :func:`set_backend`, the ``multiprocessing`` name."""
    set_backend(method, force=force)  # type: ignore[arg-type]


def set_forkserver_preload(module_names: list[str]) -> None:
    """Modules the fork server imports once, before it forks any child."""
    from procframe.backends.forkserver import set_forkserver_preload as set_preload

    set_preload(module_names)


def set_executable(executable: str) -> None:
    """The Python interpreter that spawn-style backends start."""
    from procframe.backends.spawn import set_executable as set_exe

    set_exe(executable)


def freeze_support() -> None:
    """Accepted for compatibility; procframe needs no support for frozen programs on POSIX."""


__all__ = [
    "Array",
    "AuthenticationError",
    "BackendError",
    "Barrier",
    "BoundedSemaphore",
    "BufferTooShort",
    "Condition",
    "Context",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "ProcessPicklingError",
    "ProcessStateError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SimpleQueue",
    "TimeoutError",
    "Value",
    "active_children",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_start_method",
    "hookimpl",
    "parent_process",
    "set_backend",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
]

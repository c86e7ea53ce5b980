"""procframe: process-based parallelism with the multiprocessing API, on pluggable backends.

``import procframe as mp`` is a drop-in for ``import multiprocessing as mp``.
The module-level API is the default context's (:data:`procframe.context.default_context`):
each call uses the default backend, chosen by ``set_backend`` (or
``set_start_method``, once), else ``PROCFRAME_BACKEND``, else the platform default;
``get_context(name)`` gives the same API bound to one backend.  Importing
procframe loads no plugin.
"""

from __future__ import annotations

import sys

from procframe._core.errors import (
    AuthenticationError,
    BackendError,
    BufferTooShort,
    LockNotOwnedError,
    NotSupportedError,
    ProcessError,
    ProcessNotStartedError,
    ProcessPicklingError,
    ProcessStateError,
    SerializerError,
    TimeoutError,
)
from procframe._core.process import Process
from procframe.context import Context, get_serializer, set_backend, set_serializer
from procframe.context import default_context as _default

# A child that re-imports the main module names it ``__mp_main__``, and so do the pickles
# of the classes defined there that it sends back: here that name is ``__main__`` (as
# multiprocessing makes it).
if "__main__" in sys.modules:
    sys.modules.setdefault("__mp_main__", sys.modules["__main__"])
del sys

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    # As typeshed shows multiprocessing's: the classes, so that ``q: mp.Queue[int]`` is a type.
    from procframe.posix.queues import JoinableQueue, Queue, SimpleQueue
else:
    Queue = _default.Queue
    JoinableQueue = _default.JoinableQueue
    SimpleQueue = _default.SimpleQueue
Pipe = _default.Pipe
Lock = _default.Lock
RLock = _default.RLock
Semaphore = _default.Semaphore
BoundedSemaphore = _default.BoundedSemaphore
Condition = _default.Condition
Event = _default.Event
Barrier = _default.Barrier
Value = _default.Value
Array = _default.Array
RawValue = _default.RawValue
RawArray = _default.RawArray
Pool = _default.Pool
Manager = _default.Manager
current_process = _default.current_process
parent_process = _default.parent_process
active_children = _default.active_children
cpu_count = _default.cpu_count
get_context = _default.get_context
get_start_method = _default.get_start_method
set_start_method = _default.set_start_method
get_all_start_methods = _default.get_all_start_methods
set_executable = _default.set_executable
set_forkserver_preload = _default.set_forkserver_preload
freeze_support = _default.freeze_support
get_logger = _default.get_logger
log_to_stderr = _default.log_to_stderr
allow_connection_pickling = _default.allow_connection_pickling
reducer = _default.reducer


_SUBMODULES = frozenset(
    [
        "connection",
        "dummy",
        "futures",
        "managers",
        "pool",
        "process",
        "queues",
        "serializers",
        "shared_memory",
        "sharedctypes",
        "synchronize",
        "util",
    ]
)


def __getattr__(name: str) -> object:
    # Imported on first use so that a spawned child does not pay for pluggy.
    if name == "hookimpl":
        from procframe._core.hookspecs import hookimpl

        return hookimpl
    # ``multiprocessing.process`` and the like are reachable after ``import multiprocessing``.
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"procframe.{name}")
    raise AttributeError(f"module 'procframe' has no attribute {name!r}")


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
    "LockNotOwnedError",
    "Manager",
    "NotSupportedError",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "ProcessNotStartedError",
    "ProcessPicklingError",
    "ProcessStateError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SerializerError",
    "SimpleQueue",
    "TimeoutError",
    "Value",
    "active_children",
    "allow_connection_pickling",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_serializer",
    "get_start_method",
    "hookimpl",
    "log_to_stderr",
    "parent_process",
    "reducer",
    "set_backend",
    "set_executable",
    "set_forkserver_preload",
    "set_serializer",
    "set_start_method",
]

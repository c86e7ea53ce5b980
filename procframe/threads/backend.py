"""The ``threads`` backend as a plugin: it implements every factory hook itself.

Processes run in threads of this process (:mod:`procframe.threads.process`);
pipes, queues, locks, ctypes objects, the Pool and the Manager are objects of
this process, shared by its threads, as in ``multiprocessing.dummy``.  No
POSIX primitive answers for this backend.
"""

from __future__ import annotations

from collections.abc import Callable

from procframe._core.backend import BackendInfo, Launcher
from procframe._core.capabilities import HOST_MEMORY, INHERITS_PARENT_MEMORY, TASKS_RUN_ONCE
from procframe._core.hookspecs import hookimpl
from procframe._core.process import BaseProcess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context


class ThreadsBackend:
    """Processes on threads, everything else in-process: for debuggers, free-threaded
    Python and quick tests of multiprocessing code."""

    name = "threads"
    capabilities = frozenset({INHERITS_PARENT_MEMORY, HOST_MEMORY, TASKS_RUN_ONCE})
    description = "threads of this process, objects shared in memory (as multiprocessing.dummy)"

    @hookimpl
    def procframe_declare_backend(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            plugin=self,
            capabilities=self.capabilities,
            description=self.description,
        )

    @hookimpl
    def procframe_launch_process(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        from procframe._core import registry
        from procframe.threads.process import ThreadLauncher

        notify_bootstrap = registry.bootstrap_observed(backend.name)
        return ThreadLauncher(process, backend.name, notify_bootstrap)

    # -- pipes and queues ----------------------------------------------------------

    @hookimpl
    def procframe_make_pipe(self, duplex: bool) -> Any:
        from procframe.threads.connection import Pipe

        return Pipe(duplex)

    @hookimpl
    def procframe_make_queue(self, maxsize: int) -> Any:
        from procframe.threads.queues import Queue

        return Queue(maxsize)

    @hookimpl
    def procframe_make_simple_queue(self) -> Any:
        from procframe.threads.queues import SimpleQueue

        return SimpleQueue()

    @hookimpl
    def procframe_make_joinable_queue(self, maxsize: int) -> Any:
        from procframe.threads.queues import JoinableQueue

        return JoinableQueue(maxsize)

    # -- synchronization -------------------------------------------------------------

    @hookimpl
    def procframe_make_lock(self) -> Any:
        from procframe.threads.synchronize import Lock

        return Lock()

    @hookimpl
    def procframe_make_rlock(self) -> Any:
        from procframe.threads.synchronize import RLock

        return RLock()

    @hookimpl
    def procframe_make_semaphore(self, value: int) -> Any:
        from procframe.threads.synchronize import Semaphore

        return Semaphore(value)

    @hookimpl
    def procframe_make_bounded_semaphore(self, value: int) -> Any:
        from procframe.threads.synchronize import BoundedSemaphore

        return BoundedSemaphore(value)

    @hookimpl
    def procframe_make_condition(self, ctx: Context, lock: Any) -> Any:
        from procframe.threads.synchronize import Condition

        return Condition(ctx.RLock() if lock is None else lock)

    @hookimpl
    def procframe_make_event(self) -> Any:
        from procframe.threads.synchronize import Event

        return Event()

    @hookimpl
    def procframe_make_barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> Any:
        from procframe.threads.synchronize import Barrier

        return Barrier(parties, action, timeout)  # type: ignore[arg-type]

    # -- ctypes objects ----------------------------------------------------------------

    @hookimpl
    def procframe_make_raw_value(self, typecode_or_type: Any, args: tuple[Any, ...]) -> Any:
        from procframe.threads.sharedctypes import RawValue

        return RawValue(typecode_or_type, *args)

    @hookimpl
    def procframe_make_raw_array(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        from procframe.threads.sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer)

    @hookimpl
    def procframe_make_value(
        self, ctx: Context, typecode_or_type: Any, args: tuple[Any, ...], lock: Any
    ) -> Any:
        from procframe.posix.sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, ctx=ctx)  # ctx.RawValue: ours

    @hookimpl
    def procframe_make_array(
        self, ctx: Context, typecode_or_type: Any, size_or_initializer: Any, lock: Any
    ) -> Any:
        from procframe.posix.sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=ctx)

    # -- pools and managers ----------------------------------------------------------------

    @hookimpl
    def procframe_make_pool(
        self,
        ctx: Context,
        processes: int | None,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        maxtasksperchild: int | None,
        task_timeout: float | None,
    ) -> Any:
        from procframe.pool import ThreadPool

        if task_timeout is not None:
            raise ValueError(
                f"backend {self.name!r} cannot stop a task that runs too long (its workers are "
                "threads, which cannot be stopped), so it refuses task_timeout; leave it out, "
                "or use a backend of OS processes (procframe.get_context('forkserver'))"
            )
        return ThreadPool(processes, initializer, initargs, maxtasksperchild, ctx)

    @hookimpl
    def procframe_make_manager(self, ctx: Context) -> Any:
        from procframe.threads.managers import ThreadManager

        manager = ThreadManager(ctx)
        manager.start()
        return manager

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend {self.name!r}>"


plugin = ThreadsBackend()

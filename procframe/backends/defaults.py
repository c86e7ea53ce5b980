"""The shared POSIX defaults: pipes, queues and locks for every backend.

Registered as a plugin that is not a backend, so it takes part in every
backend's hook calls; its implementations are ``trylast``, and a backend that
implements the same hook wins.  A backend that cannot offer these objects
must say so in its capabilities rather than rely on them.
"""

from __future__ import annotations

from typing import Any

from procframe.api.backend import BackendInfo
from procframe.hookspecs import hookimpl

QUEUE_KINDS = ("Queue", "SimpleQueue", "JoinableQueue")
LOCK_KINDS = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier")
SHARED_KINDS = ("Value", "Array", "RawValue", "RawArray")


class PosixDefaults:
    """Pipes over socket pairs, queues over SEQPACKET sockets, locks over unnamed semaphores."""

    @hookimpl(trylast=True)
    def procframe_make_pipe(self, duplex: bool, backend: BackendInfo) -> Any:
        from procframe.connection import Pipe

        return Pipe(duplex)

    @hookimpl(trylast=True)
    def procframe_make_queue(self, kind: str, maxsize: int, backend: BackendInfo) -> Any:
        from procframe.api import queues

        if kind not in QUEUE_KINDS:
            raise ValueError(f"unknown queue kind {kind!r}; expected one of {QUEUE_KINDS}")
        if kind == "SimpleQueue":
            return queues.SimpleQueue()
        return getattr(queues, kind)(maxsize)

    @hookimpl(trylast=True)
    def procframe_make_pool(
        self,
        processes: int | None,
        initializer: Any,
        initargs: tuple[Any, ...],
        maxtasksperchild: int | None,
        task_timeout: float | None,
        context: Any,
        backend: BackendInfo,
    ) -> Any:
        from procframe.pool import Pool

        return Pool(
            processes, initializer, initargs, maxtasksperchild, context, task_timeout=task_timeout
        )

    @hookimpl(trylast=True)
    def procframe_make_manager(self, context: Any, backend: BackendInfo) -> Any:
        from procframe.managers import SyncManager

        manager = SyncManager(ctx=context)
        manager.start()
        return manager

    @hookimpl(trylast=True)
    def procframe_make_lock(self, kind: str, args: tuple[Any, ...], backend: BackendInfo) -> Any:
        from procframe.api import synchronize

        if kind not in LOCK_KINDS:
            raise ValueError(f"unknown lock kind {kind!r}; expected one of {LOCK_KINDS}")
        return getattr(synchronize, kind)(*args)

    @hookimpl(trylast=True)
    def procframe_make_shared(
        self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], backend: BackendInfo
    ) -> Any:
        from procframe import sharedctypes

        if kind not in SHARED_KINDS:
            raise ValueError(f"unknown shared object kind {kind!r}; expected one of {SHARED_KINDS}")
        if kind in ("Value", "Array"):
            from procframe.api.context import get_context

            # lock=True: an RLock made through this backend's context (and its hooks).
            kwargs = {**kwargs, "ctx": get_context(backend.name)}
        return getattr(sharedctypes, kind)(*args, **kwargs)


plugin = PosixDefaults()

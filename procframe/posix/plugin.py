"""The POSIX primitives as one plugin: pipes, queues, locks and shared ctypes for every backend.

Registered as a plugin that is not a backend, so it takes part in every
backend's hook calls; its implementations are ``trylast``, and a backend that
implements the same hook wins.  Each object takes the parts it is built from
(a Queue's semaphores, a Condition's default lock, an Event's flag, ...) from
``ctx``, so a backend that replaces one primitive has it used here too.  A
backend that cannot use these objects (its children share no memory with this
process, say) implements every factory hook itself.
"""

from __future__ import annotations

from collections.abc import Callable

from procframe._core.hookspecs import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context


class PosixPrimitives:
    """Pipes over packet pipes, queues over packet pipes and a side socket, locks over
    unnamed semaphores in shared memory, ctypes objects in memfd arenas."""

    @hookimpl(trylast=True)
    def procframe_make_pipe(self, ctx: Context, duplex: bool) -> Any:
        from procframe.posix.connection import Pipe

        return Pipe(duplex, serializer=ctx.serializer)

    @hookimpl(trylast=True)
    def procframe_make_queue(self, ctx: Context, maxsize: int) -> Any:
        from procframe.posix.queues import Queue

        return Queue(maxsize, ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_simple_queue(self, ctx: Context) -> Any:
        from procframe.posix.queues import SimpleQueue

        return SimpleQueue(ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_joinable_queue(self, ctx: Context, maxsize: int) -> Any:
        from procframe.posix.queues import JoinableQueue

        return JoinableQueue(maxsize, ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_lock(self) -> Any:
        from procframe.posix.synchronize import Lock

        return Lock()

    @hookimpl(trylast=True)
    def procframe_make_rlock(self) -> Any:
        from procframe.posix.synchronize import RLock

        return RLock()

    @hookimpl(trylast=True)
    def procframe_make_semaphore(self, value: int) -> Any:
        from procframe.posix.synchronize import Semaphore

        return Semaphore(value)

    @hookimpl(trylast=True)
    def procframe_make_bounded_semaphore(self, value: int) -> Any:
        from procframe.posix.synchronize import BoundedSemaphore

        return BoundedSemaphore(value)

    @hookimpl(trylast=True)
    def procframe_make_condition(self, ctx: Context, lock: Any) -> Any:
        from procframe.posix.synchronize import Condition

        return Condition(lock, ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_event(self, ctx: Context) -> Any:
        from procframe.posix.synchronize import Event

        return Event(ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_barrier(
        self,
        ctx: Context,
        parties: int,
        action: Callable[[], object] | None,
        timeout: float | None,
    ) -> Any:
        from procframe.posix.synchronize import Barrier

        return Barrier(parties, action, timeout, ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_raw_value(self, typecode_or_type: Any, args: tuple[Any, ...]) -> Any:
        from procframe.posix.sharedctypes import RawValue

        return RawValue(typecode_or_type, *args)

    @hookimpl(trylast=True)
    def procframe_make_raw_array(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        from procframe.posix.sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer)

    @hookimpl(trylast=True)
    def procframe_make_value(
        self, ctx: Context, typecode_or_type: Any, args: tuple[Any, ...], lock: Any
    ) -> Any:
        from procframe.posix.sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, ctx=ctx)

    @hookimpl(trylast=True)
    def procframe_make_array(
        self, ctx: Context, typecode_or_type: Any, size_or_initializer: Any, lock: Any
    ) -> Any:
        from procframe.posix.sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=ctx)


plugin = PosixPrimitives()

"""The factory hooks of the dask backend: every shared object lives on the cluster.

:class:`DaskPrimitives` is a mixin of :class:`procframe_dask.DaskBackend`; each hook
makes the object of :mod:`procframe_dask.queues`, :mod:`~procframe_dask.pipes`,
:mod:`~procframe_dask.sync` or :mod:`~procframe_dask.shared`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procframe.hookspecs import hookimpl


class DaskPrimitives:
    """Queue, Pipe, the Lock family, Event, Barrier and the ctypes objects, on the cluster."""

    @hookimpl
    def procframe_make_queue(self, ctx: Any, maxsize: int) -> Any:
        from procframe_dask import _wire
        from procframe_dask.queues import DaskQueue

        return DaskQueue(maxsize, serializer=_wire.of(ctx))

    @hookimpl
    def procframe_make_simple_queue(self, ctx: Any) -> Any:
        from procframe_dask import _wire
        from procframe_dask.queues import DaskSimpleQueue

        return DaskSimpleQueue(serializer=_wire.of(ctx))

    @hookimpl
    def procframe_make_joinable_queue(self, ctx: Any, maxsize: int) -> Any:
        from procframe_dask import _wire
        from procframe_dask.queues import DaskJoinableQueue

        return DaskJoinableQueue(maxsize, serializer=_wire.of(ctx))

    @hookimpl
    def procframe_make_pipe(self, ctx: Any, duplex: bool) -> Any:
        from procframe_dask import _wire
        from procframe_dask.pipes import make_pipe

        return make_pipe(duplex, _wire.of(ctx))

    @hookimpl
    def procframe_make_lock(self, ctx: Any) -> Any:
        from procframe_dask.sync import DaskLock

        return DaskLock()

    @hookimpl
    def procframe_make_rlock(self, ctx: Any) -> Any:
        from procframe_dask.sync import DaskRLock

        return DaskRLock()

    @hookimpl
    def procframe_make_semaphore(self, ctx: Any, value: int) -> Any:
        from procframe_dask.sync import DaskSemaphore

        return DaskSemaphore(value)

    @hookimpl
    def procframe_make_bounded_semaphore(self, ctx: Any, value: int) -> Any:
        from procframe_dask.sync import DaskBoundedSemaphore

        return DaskBoundedSemaphore(value)

    @hookimpl
    def procframe_make_condition(self, ctx: Any, lock: Any) -> Any:
        from procframe_dask.sync import DaskCondition

        return DaskCondition(ctx.RLock() if lock is None else lock)

    @hookimpl
    def procframe_make_event(self, ctx: Any) -> Any:
        from procframe_dask.sync import DaskEvent

        return DaskEvent()

    @hookimpl
    def procframe_make_barrier(
        self, ctx: Any, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> Any:
        from procframe_dask.sync import DaskBarrier

        return DaskBarrier(parties, action, timeout)

    @hookimpl
    def procframe_make_raw_value(
        self, ctx: Any, typecode_or_type: Any, args: tuple[Any, ...]
    ) -> Any:
        from procframe_dask.shared import raw_value

        return raw_value(typecode_or_type, args)

    @hookimpl
    def procframe_make_raw_array(
        self, ctx: Any, typecode_or_type: Any, size_or_initializer: Any
    ) -> Any:
        from procframe_dask.shared import raw_array

        return raw_array(typecode_or_type, size_or_initializer)

    @hookimpl
    def procframe_make_value(
        self, ctx: Any, typecode_or_type: Any, args: tuple[Any, ...], lock: Any
    ) -> Any:
        from procframe_dask.shared import value

        return value(ctx, typecode_or_type, args, lock)

    @hookimpl
    def procframe_make_array(
        self, ctx: Any, typecode_or_type: Any, size_or_initializer: Any, lock: Any
    ) -> Any:
        from procframe_dask.shared import array

        return array(ctx, typecode_or_type, size_or_initializer, lock)

"""procframe's own Pool and Manager as one plugin: the ``trylast`` answers to their hooks.

Both are built only from the context they are made in (its processes,
shared state and pipes), so they serve every backend whose primitives they
can use; a backend overrides either by implementing the hook.  This module
imports the pool and managers packages only when it makes one: loading the
plugins must stay cheap, because everything a parent has imported makes each
of its forks slower.
"""

from __future__ import annotations

from collections.abc import Callable

from procframe._core.hookspecs import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context
    from procframe.managers import SyncManager
    from procframe.pool import Pool


@hookimpl(trylast=True)
def procframe_make_pool(
    ctx: Context,
    processes: int | None,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    maxtasksperchild: int | None,
    task_timeout: float | None,
) -> Pool:
    """A :class:`procframe.pool.Pool` whose workers are ``ctx.Process`` children."""
    from procframe.pool import Pool

    return Pool(processes, initializer, initargs, maxtasksperchild, ctx, task_timeout=task_timeout)


@hookimpl(trylast=True)
def procframe_make_manager(ctx: Context) -> SyncManager:
    """A started :class:`procframe.managers.SyncManager` whose server is a ``ctx.Process``."""
    from procframe.managers import SyncManager

    manager = SyncManager(ctx=ctx)
    manager.start()
    return manager

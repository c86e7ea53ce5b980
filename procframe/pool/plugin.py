"""The default ``procframe_make_pool``: procframe's Pool, started through the context."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from procframe._core.hookspecs import hookimpl

if TYPE_CHECKING:
    from procframe.context import Context
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
    from procframe.pool import Pool

    return Pool(processes, initializer, initargs, maxtasksperchild, ctx, task_timeout=task_timeout)

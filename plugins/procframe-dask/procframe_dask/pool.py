"""``ctx.Pool()`` on the dask backend: :class:`DaskPool`, the hook that makes a
:class:`~procframe_dask._cluster_pool.ClusterPool` (tasks run on the cluster's workers).

Light to import (the backend plugin loads it): the pool's machinery is imported
when a pool is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from procframe.hookspecs import hookimpl

if TYPE_CHECKING:
    from procframe_dask._cluster_pool import ClusterPool

__all__ = ["ClusterPool", "DaskPool"]


class DaskPool:
    """The mixin of :class:`procframe_dask.DaskBackend` that makes its pools."""

    @hookimpl
    def procframe_make_pool(
        self,
        ctx: Any,
        processes: int | None,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        maxtasksperchild: int | None,
        task_timeout: float | None,
    ) -> ClusterPool:
        """A :class:`ClusterPool` whose tasks run on the cluster's workers."""
        from procframe_dask._cluster_pool import ClusterPool

        return ClusterPool(processes, initializer, initargs, maxtasksperchild, task_timeout)


def __getattr__(name: str) -> Any:
    if name == "ClusterPool":
        from procframe_dask._cluster_pool import ClusterPool

        return ClusterPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

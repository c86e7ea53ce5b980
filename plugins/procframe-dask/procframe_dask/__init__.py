"""procframe-dask: a procframe backend that runs multiprocessing programs on a Dask cluster.

``PROCFRAME_BACKEND=dask`` (or ``procframe.get_context("dask")``) runs each
Process as an OS process on a worker of the cluster (:mod:`procframe_dask.cluster`
says which cluster).
"""

from __future__ import annotations

from typing import Any

from procframe.backends import (
    MANAGER_SERVER,
    PARENT_DEATH,
    PICKLES_PROCESS,
    POSIX_SIGNALS,
    SEPARATE_MEMORY,
    BackendInfo,
    ProcessBackend,
)
from procframe_dask.managers import DaskManagers
from procframe_dask.pool import DaskPool
from procframe_dask.primitives import DaskPrimitives

__all__ = ["DaskBackend", "plugin"]


class DaskBackend(DaskPrimitives, DaskManagers, DaskPool, ProcessBackend):
    """Each Process is an OS process on a Dask worker; its objects live on the cluster."""

    name = "dask"
    capabilities = frozenset(
        {SEPARATE_MEMORY, POSIX_SIGNALS, PICKLES_PROCESS, MANAGER_SERVER, PARENT_DEATH}
    )
    description = "runs each Process on a worker of a Dask cluster"

    def info(self) -> BackendInfo:
        """The declaration, its description naming the cluster the backend would use."""
        from procframe_dask.cluster import describe

        declared = super().info()
        return BackendInfo(
            name=declared.name,
            plugin=self,
            capabilities=declared.capabilities,
            available=declared.available,
            reason=declared.reason,
            description=f"{self.description}: {describe()}",
        )

    def unavailable_reason(self) -> str:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            return "the distributed package is not installed"
        return ""

    def launch(self, process: Any, backend: BackendInfo) -> Any:
        from procframe_dask.launcher import DaskLauncher

        return DaskLauncher(process)


plugin = DaskBackend()

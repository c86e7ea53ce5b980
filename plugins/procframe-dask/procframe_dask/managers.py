"""``Manager()`` on the cluster: a SyncManager whose server runs on a worker, over TCP.

The server is a Process of the dask backend pinned to one worker, listening on
that worker's host: the program's client and every process on the cluster reach
it there (with the program's authkey, which children inherit).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from procframe.hookspecs import hookimpl
from procframe_dask import cluster
from procframe_dask.placement import pinned_to


class DaskManagers:
    """The ``procframe_make_manager`` hook of the dask backend."""

    @hookimpl
    def procframe_make_manager(self, ctx: Any) -> Any:
        from procframe.managers import SyncManager

        worker = cluster.pick_worker()
        host = urlparse(worker).hostname or "127.0.0.1"
        manager = SyncManager(address=(host, 0), ctx=ctx)
        with pinned_to(worker):
            manager.start()
        return manager

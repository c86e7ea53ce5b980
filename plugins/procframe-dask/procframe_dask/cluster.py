"""The Dask cluster the backend uses: named, configured, or started here on first use.

``PROCFRAME_DASK_ADDRESS`` > Dask's own configuration (``DASK_SCHEDULER_ADDRESS``,
``dask.config`` ``scheduler-address``) > a ``LocalCluster`` of this machine,
started on first use and closed when the program exits.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from procframe.backends import exit_work_before_threads_stop
from procframe.util import Finalize

ADDRESS_ENV = "PROCFRAME_DASK_ADDRESS"
CONNECT_TIMEOUT = 10.0
"""Seconds to reach the scheduler before saying the cluster is gone."""
CLOSE_PRIORITY = -1000
"""The exit priority of closing the client: last of procframe's exit work."""


class ClusterGoneError(ConnectionError):
    """The Dask scheduler cannot be reached: never started, shut down, or its machine died."""


_lock = threading.Lock()
_client: Any = None
_local: Any = None


def configured_address() -> str | None:
    """The scheduler address the program names (``PROCFRAME_DASK_ADDRESS``, else Dask's
    configuration), or ``None``: a LocalCluster then."""
    address = os.environ.get(ADDRESS_ENV, "").strip()
    if address:
        return address
    import dask.config

    configured = dask.config.get("scheduler-address", None) or dask.config.get(
        "scheduler_address", None
    )
    return str(configured) if configured else None


def describe() -> str:
    """Which cluster the backend would use, in words (for ``python -m procframe info``).

    Read from the environment only (``PROCFRAME_DASK_ADDRESS``, Dask's
    ``DASK_SCHEDULER_ADDRESS``): importing ``dask.config`` to read its files would cost
    every program that declares the backends.
    """
    address = os.environ.get(ADDRESS_ENV, "").strip()
    if address:
        return f"the scheduler at {address} (from {ADDRESS_ENV})"
    address = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if address:
        return f"the scheduler at {address} (from DASK_SCHEDULER_ADDRESS)"
    return "a LocalCluster of this machine, started on first use (unless dask.config names one)"


def client() -> Any:
    """The program's ``distributed.Client``: connected (or its LocalCluster started) once."""
    global _client, _local
    found = _client
    if found is not None and found.status == "running":
        return found
    with _lock:
        if _client is not None and _client.status != "running":
            raise ClusterGoneError(
                f"lost the Dask scheduler at {_client.scheduler.address} (the client is "
                f"{_client.status}): the cluster is gone; its processes and objects with it"
            )
        if _client is None:
            from distributed import Client

            address = configured_address()
            if address is None:
                from distributed import LocalCluster

                _local = LocalCluster(processes=True, dashboard_address=None)
                _client = Client(_local, set_as_default=False)
            else:
                try:
                    _client = Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    raise ClusterGoneError(
                        f"cannot reach the Dask scheduler at {address} ({_source()}): {exc}"
                    ) from exc
            # After procframe's exit work (children joined, pools and executors finished),
            # which needs the cluster: a finalizer of negative priority runs then.
            Finalize(None, close, exitpriority=CLOSE_PRIORITY)
            # The client hands work to a thread pool that refuses it once shutdown begins.
            exit_work_before_threads_stop()
        return _client


def pick_worker() -> str:
    """The address of a worker (the one with the fewest tasks), for what must stay on one."""
    workers = client().scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise ClusterGoneError("the Dask cluster has no worker")
    return min(workers, key=lambda address: workers[address]["metrics"].get("executing", 0))


def _source() -> str:
    if os.environ.get(ADDRESS_ENV, "").strip():
        return f"from {ADDRESS_ENV}"
    return "from Dask's configuration"


def check_alive() -> None:
    """Raise :class:`ClusterGoneError` if the program's client lost its scheduler."""
    found = _client
    if found is not None and found.status not in ("running", "newly-created"):
        raise ClusterGoneError(f"lost the Dask scheduler (the client is {found.status})")


def close() -> None:
    """Close the client, and the LocalCluster if this program started one."""
    global _client, _local
    with _lock:
        client, _client = _client, None
        local, _local = _local, None
    try:
        if client is not None:
            client.close(timeout=CONNECT_TIMEOUT)
        if local is not None:
            local.close(timeout=CONNECT_TIMEOUT)
    except Exception:  # a cluster that is gone has nothing left to close
        pass

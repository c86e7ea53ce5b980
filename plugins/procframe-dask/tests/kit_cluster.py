"""A pytest plugin (``-p kit_cluster``) for running procframe's kit against the dask backend.

It starts a LocalCluster of two single-threaded workers before the first test
and points the backend (and every script a test runs) at it, so that the
kit's leak checks do not count the cluster's processes and threads, and the
threads Dask keeps once started, as a test's leaks.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

_cluster: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _cluster
    from distributed import LocalCluster
    from procframe_dask import cluster

    # ":0": a free port for the scheduler's HTTP server (None still binds 8787, and warns
    # when another cluster has it).
    _cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    os.environ[cluster.ADDRESS_ENV] = _cluster.scheduler_address
    # The client's threads, and the pools Dask starts on first use (its callback and
    # offload threads), from the start.
    import procframe

    with procframe.get_context("dask").Pool(1) as pool:
        pool.map(abs, range(4))


def pytest_unconfigure(config: pytest.Config) -> None:
    from procframe_dask import cluster

    cluster.close()
    if _cluster is not None:
        _cluster.close()
    os.environ.pop(cluster.ADDRESS_ENV, None)

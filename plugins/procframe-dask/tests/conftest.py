"""Fixtures of the plugin's own tests: the session's cluster (``procframe_dask.testing``)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def client() -> Any:
    """The program's own Dask client, on the session's cluster (left open: it is the
    backend's)."""
    from procframe_dask import cluster

    return cluster.client()

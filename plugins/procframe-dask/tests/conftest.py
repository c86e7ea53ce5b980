"""Fixtures of the plugin's own tests: the session's cluster (``procframe_dask.testing``)."""

from __future__ import annotations

from typing import Any

import pytest

import procframe


@pytest.fixture
def client() -> Any:
    """The program's own Dask client, on the session's cluster (left open: it is the
    backend's)."""
    from procframe_dask import cluster

    return cluster.client()


@pytest.fixture
def dask_ctx(ctx: procframe.Context) -> procframe.Context:
    """The kit's context, for the tests of the dask backend's own design (skipped on others)."""
    if ctx.get_start_method() != "dask":
        pytest.skip("a test of the dask backend's own design")
    return ctx

"""The dask backend's Process, its children and its pipes: what the kit does not check.

Run with the session cluster (``-p procframe.testing -p procframe_dask.testing
--procframe-backend dask``): a scheduler and two workers, separate OS processes on
127.0.0.1, each in a working directory of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.testing.helpers import exchange
from procframe.testing.helpers.targets import read_report, report

pytestmark = pytest.mark.timeout(180)
# The workers cannot import this module: its targets travel by value.
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PATIENCE = 60.0


@pytest.fixture
def dask_ctx(ctx: procframe.Context) -> procframe.Context:
    if ctx.get_start_method() != "dask":
        pytest.skip("the dask backend's own Process tests")
    return ctx


def _run(ctx: procframe.Context, target: Any, *args: Any) -> int | None:
    p = ctx.Process(target=target, args=args)
    p.start()
    try:
        p.join(PATIENCE)
    finally:
        exchange.reap(p)
    return p.exitcode


# -- child targets --------------------------------------------------------------------


def report_cwd(relative: str, absolute: str) -> None:
    report(relative, {"cwd": os.getcwd()})  # a relative path: lands in the child's cwd
    report(absolute, {"cwd": os.getcwd()})


# -- 1. the child's working directory ------------------------------------------------------


def test_a_child_starts_in_its_parents_working_directory(
    dask_ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert _run(dask_ctx, report_cwd, "relative.json", str(tmp_path / "abs.json")) == 0
    assert read_report(here / "relative.json", timeout=PATIENCE) == {"cwd": str(here)}


def test_a_child_whose_parents_directory_is_not_on_its_worker_starts_in_the_workers(
    dask_ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from procframe_dask import launcher

    missing = str(tmp_path / "not-on-the-worker")
    monkeypatch.setattr(launcher, "_working_directory", lambda: missing)
    assert _run(dask_ctx, report_cwd, "relative.json", str(tmp_path / "abs.json")) == 0
    seen = read_report(tmp_path / "abs.json", timeout=PATIENCE)["cwd"]
    assert seen != missing and os.path.isdir(seen)
    assert os.path.exists(os.path.join(seen, "relative.json"))
    os.remove(os.path.join(seen, "relative.json"))

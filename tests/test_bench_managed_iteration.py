"""The managed table's iteration row: ``for x in items`` over a list of a ``Manager()``.

Timings are never asserted: only that the harness measures both implementations.
"""

from __future__ import annotations

import os

import pytest

from procframe.bench.runner import run_harness
from procframe.bench.tables import MANAGED_BY_SERVER, STDLIB_METHODS

pytestmark = pytest.mark.timeout(180)


def test_the_managed_table_has_an_iteration_row_per_backend() -> None:
    rows = [row for row in MANAGED_BY_SERVER.rows if row.case == "managed_list_iterate"]
    assert sorted(row.backend for row in rows) == sorted(STDLIB_METHODS)
    assert {row.target for row in rows} == {1.0}


@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_the_harness_times_iterating_a_managed_list(impl: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env["PROCFRAME_BENCH_WARM_UP"] = "0.01"
    result = run_harness(impl, "managed_list_iterate", "spawn", 40, timeout=120, env=env)
    assert (result["impl"], result["iterations"], result["samples"]) == (impl, 40, 1)
    assert 0 < result["min"] <= result["median"]
    assert result["multiprocessing_loaded"] is (impl == "stdlib")

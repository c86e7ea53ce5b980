"""``python -m procframe bench``: the harness, the driver's arithmetic and output, one real run.

Timings are never asserted: only that numbers are produced and reported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from procframe.bench.command import select_backends
from procframe.bench.report import format_duration, format_report, format_table, report_json
from procframe.bench.runner import (
    BenchError,
    RowResult,
    TableResult,
    measure_row,
    measure_table,
    run_harness,
)
from procframe.bench.tables import START_JOIN, TABLES, Row, Table

HARNESS_KEYS = {"impl", "case", "method", "iterations", "median", "mean", "min"}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procframe", "bench", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def result_of(row: Row, procframe: list[float], stdlib: list[float]) -> RowResult:
    return RowResult(row, 10, tuple(procframe), tuple(stdlib))


# -- the harness, in fresh interpreters -----------------------------------------


@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_prints_one_json_result(impl: str) -> None:
    result = run_harness(impl, "start_join", "fork", 2, timeout=60, env=clean_env())
    assert set(result) >= HARNESS_KEYS
    assert (result["impl"], result["method"], result["iterations"]) == (impl, "fork", 2)
    assert 0 < result["min"] <= result["median"]
    assert result["mean"] > 0
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


def test_failed_harness_run_reports_its_stderr() -> None:
    with pytest.raises(BenchError) as exc:
        run_harness("procframe", "no_such_case", "fork", 2, timeout=60, env=clean_env())
    message = str(exc.value)
    assert "exit code 2" in message
    assert "no_such_case" in message and "invalid choice" in message


def test_cli_and_driver_do_not_import_stdlib_multiprocessing() -> None:
    code = (
        "import sys, procframe.cli, procframe.bench.harness\n"
        "procframe.cli.build_parser()\n"
        "print('multiprocessing' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"


# -- the driver's pure parts ------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.00162, "1.62 ms"),
        (0.0301, "30.1 ms"),
        (0.1234, "123 ms"),
        (1.5, "1.50 s"),
        (0.0000125, "12.5 us"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_row_result_is_the_median_of_run_medians_and_its_ratio() -> None:
    row = Row("spawn", iterations=20, quick_iterations=6, target=0.8)
    result = result_of(row, [0.030, 0.010, 0.031], [0.040, 0.041, 0.090])
    assert result.procframe == 0.030
    assert result.stdlib == 0.041
    assert result.ratio == pytest.approx(0.030 / 0.041)
    assert result.ok


def test_target_is_inclusive_and_a_miss_is_marked() -> None:
    row = Row("fork", iterations=1, quick_iterations=1, target=1.0)
    assert result_of(row, [2.0], [2.0]).ok
    assert result_of(row, [2.009], [2.0]).ok  # printed as 1.00
    assert not result_of(row, [2.02], [2.0]).ok


def test_format_table_aligns_ratios_and_marks_misses() -> None:
    rows = (
        result_of(START_JOIN.rows[0], [0.00162], [0.00175]),
        result_of(START_JOIN.rows[1], [0.0433], [0.0301]),
    )
    text = format_table(TableResult(START_JOIN, 5, rows))
    lines = text.splitlines()
    assert lines[0] == "Process start+join latency (median of 5 runs; lower is better)"
    assert lines[1].split() == ["backend", "procframe", "multiprocessing", "ratio", "target"]
    fork, spawn = lines[2], lines[3]
    assert fork.split() == ["fork", "1.62", "ms", "1.75", "ms", "0.93", "<=", "1.00", "ok"]
    assert spawn.split()[-4:] == ["1.44", "<=", "0.80", "MISS"]
    ratio_end = lines[1].index("ratio") + len("ratio")
    assert fork.index("0.93") + 4 == spawn.index("1.44") + 4 == ratio_end


def test_report_ends_with_the_legend_and_json_has_the_same_numbers() -> None:
    tables = [TableResult(START_JOIN, 3, (result_of(START_JOIN.rows[0], [0.002], [0.001]),))]
    assert format_report(tables).endswith(
        "ratio = procframe / multiprocessing; MISS: the ratio is above its target"
    )
    data = json.loads(json.dumps(report_json(tables)))
    (table,) = data["tables"]
    assert (table["key"], table["repeats"]) == ("start_join", 3)
    (row,) = table["rows"]
    assert row["backend"] == "fork"
    assert (row["procframe"], row["multiprocessing"], row["ratio"]) == (0.002, 0.001, 2.0)
    assert row["ok"] is False


def test_measure_row_alternates_implementations() -> None:
    calls: list[tuple[str, str, str, int]] = []
    medians = {"procframe": iter([3.0, 1.0, 2.0]), "stdlib": iter([4.0, 4.0, 8.0])}

    def fake(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        calls.append((impl, case, method, iterations))
        return {"median": next(medians[impl]), "multiprocessing_loaded": impl == "stdlib"}

    result = measure_row(START_JOIN, START_JOIN.rows[0], 3, 7, fake)
    assert [impl for impl, *_ in calls] == ["procframe", "stdlib"] * 3
    assert {call[1:] for call in calls} == {("start_join", "fork", 7)}
    assert (result.procframe, result.stdlib, result.ratio) == (2.0, 4.0, 0.5)


def test_measure_row_refuses_a_procframe_run_that_loaded_multiprocessing() -> None:
    def fake(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        return {"median": 1.0, "multiprocessing_loaded": True}

    with pytest.raises(BenchError, match="multiprocessing"):
        measure_row(START_JOIN, START_JOIN.rows[0], 1, 1, fake)


def test_measure_table_measures_only_the_chosen_backends() -> None:
    table = Table("t", "T", "start_join", START_JOIN.rows)
    seen: list[tuple[str, int]] = []

    def fake(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        seen.append((method, iterations))
        return {"median": 1.0}

    result = measure_table(table, ["forkserver"], 1, lambda row: row.quick_iterations, fake)
    assert [row.row.backend for row in result.rows] == ["forkserver"]
    assert set(seen) == {("forkserver", table.rows[2].quick_iterations)}


def test_select_backends() -> None:
    comparable = ["fork", "spawn", "forkserver"]
    assert select_backends(None, comparable) == comparable
    assert select_backends(["spawn", "spawn"], comparable) == ["spawn"]
    with pytest.raises(ValueError, match="fork, spawn, forkserver"):
        select_backends(["toy"], comparable)


def test_every_table_has_a_row_per_stdlib_method_with_a_target() -> None:
    for table in TABLES.values():
        assert {row.backend for row in table.rows} <= {"fork", "spawn", "forkserver"}
        assert all(row.target > 0 and row.quick_iterations <= row.iterations for row in table.rows)


# -- the command, end to end --------------------------------------------------------


def test_bench_prints_a_table_with_a_ratio() -> None:
    done = run_bench("--quick", "--backend", "fork", "--iterations", "3", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    assert "Process start+join latency (median of 1 run; lower is better)" in done.stdout
    assert re.search(r"^backend\s+procframe\s+multiprocessing\s+ratio\s+target$", done.stdout, re.M)
    assert re.search(r"^fork\s+.*\s\d+\.\d\d\s+<= 1\.00\s+(ok|MISS)$", done.stdout, re.M)
    assert not re.search(r"^(spawn|forkserver)\s", done.stdout, re.M)


def test_bench_json() -> None:
    done = run_bench("--backend", "fork", "--iterations", "2", "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    (table,) = json.loads(done.stdout)["tables"]
    (row,) = table["rows"]
    assert row["backend"] == "fork"
    assert row["ratio"] == pytest.approx(row["procframe"] / row["multiprocessing"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "toy"), "choose from"),
        (("--repeat", "0"), "--repeat must be at least 1"),
    ],
)
def test_bench_usage_errors(args: tuple[str, ...], message: str) -> None:
    done = run_bench(*args)
    assert done.returncode == 2
    assert message in done.stderr

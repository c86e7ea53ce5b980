"""``python -m procframe bench``: the harness, the driver's arithmetic and output, one real run.

Timings are never asserted: only that numbers are produced and reported.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

import procframe.bench.runner as runner
from procframe.bench.command import chosen_tables, select_backends, table_backends, table_repeats
from procframe.bench.report import (
    format_bytes,
    format_duration,
    format_rate,
    format_report,
    format_table,
    format_target,
    format_value,
    report_json,
)
from procframe.bench.requirements import (
    REQUIREMENTS,
    memory_missing,
    missing,
    numpy_missing,
    pss_missing,
)
from procframe.bench.runner import (
    BenchError,
    RowResult,
    TableResult,
    measure_row,
    measure_table,
    run_harness,
)
from procframe.bench.tables import (
    BIG,
    BIG_MEMORY,
    CONDITION_WAITS,
    DASK_TABLE,
    GIB,
    LOCK_PAIRS,
    MEGABYTE,
    OBJECTS_PASSED,
    POOL,
    SEQUENCE_READS,
    SERIALIZER_TABLE,
    START_JOIN,
    TABLES,
    Row,
    Table,
    Unit,
)

pytestmark = pytest.mark.one_python  # see pyproject.toml

HARNESS_KEYS = {"impl", "case", "method", "iterations", "samples", "median", "mean", "min"}


WARM_UP = "0.01"
"""Seconds of warm-up before a harness's samples (0.2 by default): timings are not asserted."""


BIG_CAP = str(256 << 10)
"""Bytes of the biggest item of the big and memory cases in these tests (a 1 GiB array by
default): figures are not asserted."""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env["PROCFRAME_BENCH_WARM_UP"] = WARM_UP
    env["PROCFRAME_BENCH_BIG_CAP"] = BIG_CAP
    return env


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procframe", "bench", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def result_of(
    row: Row, procframe: list[float], stdlib: list[float], unit: Unit = Unit.SECONDS
) -> RowResult:
    return RowResult(unit, row, 10, tuple(procframe), tuple(stdlib))


def objects_row(backend: str, label: str) -> Row:
    (row,) = (r for r in OBJECTS_PASSED.rows if (r.backend, r.label) == (backend, label))
    return row


# -- the harness, in fresh interpreters -----------------------------------------


@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_prints_one_json_result(impl: str) -> None:
    result = run_harness(impl, "start_join", "fork", 2, timeout=60, env=clean_env())
    assert set(result) >= HARNESS_KEYS
    assert (result["impl"], result["method"], result["iterations"]) == (impl, "fork", 2)
    assert 0 < result["min"] <= result["median"]
    assert result["mean"] > 0
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


@pytest.mark.parametrize("case", ["thread_queue", "queue", "simple_queue", "pipe"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_harness_passes_objects_with_the_stdlib(case: str, method: str) -> None:
    result = run_harness("stdlib", case, method, 50, timeout=60, env=clean_env())
    assert (result["case"], result["method"], result["iterations"]) == (case, method, 50)
    assert result["samples"] == 1
    assert result["median"] > 0


@pytest.mark.parametrize("case", ["thread_lock", "lock", "thread_rlock", "rlock"])
@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_times_lock_pairs(impl: str, case: str) -> None:
    result = run_harness(impl, case, "spawn", 1000, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["iterations"]) == (impl, case, 1000)
    assert result["samples"] == 10
    assert 0 < result["min"] <= result["median"]
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


@pytest.mark.parametrize("case", ["thread_condition", "condition"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_interleaves_condition_waits(impl: str, method: str, case: str) -> None:
    result = run_harness(impl, case, method, 200, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["method"]) == (impl, case, method)
    assert result["samples"] == 10
    assert 0 < result["min"] <= result["median"]
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


@pytest.mark.parametrize("case", ["list_read", "raw_array_read", "array_read"])
@pytest.mark.parametrize(
    ("impl", "method"),
    [
        ("procframe", "fork"),
        ("procframe", "spawn"),
        ("procframe", "forkserver"),
        ("stdlib", "spawn"),
    ],
)
def test_harness_times_sequence_reads(impl: str, method: str, case: str) -> None:
    result = run_harness(impl, case, method, 1000, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["method"]) == (impl, case, method)
    assert (result["iterations"], result["samples"]) == (1000, 10)
    assert 0 < result["min"] <= result["median"] <= result["mean"] * 10
    assert result["median"] < 1e-3  # seconds per read: far less than a millisecond
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


POOL_CASES = ["pool_apply", "pool_imap", "pool_imap_unordered", "pool_map", "pool_start"]


@pytest.mark.parametrize("case", POOL_CASES)
def test_harness_times_pool_operations_with_the_stdlib(case: str) -> None:
    result = run_harness("stdlib", case, "fork", 20, timeout=60, env=clean_env())
    assert (result["case"], result["method"], result["iterations"]) == (case, "fork", 20)
    assert result["samples"] == {"pool_map": 1, "pool_start": 20}.get(case, 10)
    assert 0 < result["min"] <= result["median"]


@pytest.mark.parametrize(
    ("case", "iterations", "samples"),
    [
        ("pool_short_behind_long", 1, 1),
        ("pool_uneven_map", 40, 1),
        ("pool_uneven_imap_unordered", 40, 1),
        ("first_use_pool", 1, 1),
        ("first_use_manager", 1, 1),
    ],
)
@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_times_pool_workloads(impl: str, case: str, iterations: int, samples: int) -> None:
    result = run_harness(impl, case, "fork", iterations, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["samples"]) == (impl, case, samples)
    assert 0 < result["min"] <= result["median"]
    if case.startswith("pool_uneven"):
        assert result["median"] >= 0.9  # a makespan over the ideal: never far below 1
    if case.startswith("first_use"):  # whole programs: the harness imports neither
        assert result["multiprocessing_loaded"] is False
    else:
        assert result["multiprocessing_loaded"] is (impl == "stdlib")


@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_starts_spawned_pools(impl: str) -> None:
    result = run_harness(impl, "pool_start", "spawn", 1, timeout=60, env=clean_env())
    assert (result["impl"], result["samples"]) == (impl, 1)
    assert result["median"] > 0
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


HUNG_POOL = """\
import importlib.util, multiprocessing, sys
spec = importlib.util.spec_from_file_location("harness", sys.argv[1])
harness = importlib.util.module_from_spec(spec)
sys.modules["harness"] = harness
spec.loader.exec_module(harness)
with harness.Deadline(multiprocessing, 1.0) as deadline:
    deadline.renew("a hung apply")
    pool = multiprocessing.get_context("fork").Pool(2)
    print(*(p.pid for p in multiprocessing.active_children()), flush=True)
    pool.apply(harness.pause_pid, (60,))
"""


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_hung_pool_fails_its_run_and_its_workers_are_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HUNG_POOL, str(runner.harness_path())],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3, done.stderr
    assert "a hung apply took more than 1 s" in done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_that_times_out_takes_its_children_with_it() -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "sys.stderr.write('waiting\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as exc:
        runner.run_in_own_group([sys.executable, "-c", code], 1.5, clean_env())
    assert time.monotonic() - began < 10
    assert exc.value.stderr == "waiting\n"
    (child,) = (int(pid) for pid in str(exc.value.stdout).split())
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def _harness_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness", runner.harness_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("iterations", "sizes"),
    [(1, [1]), (3, [1, 1, 1]), (10, [1] * 10), (25, [3] * 5 + [2] * 5), (1000, [100] * 10)],
)
def test_chunk_sizes_split_a_run_into_at_most_ten_samples(
    iterations: int, sizes: list[int]
) -> None:
    assert _harness_module().chunk_sizes(iterations) == sizes


def test_failed_harness_run_reports_its_stderr() -> None:
    with pytest.raises(BenchError) as exc:
        run_harness("procframe", "no_such_case", "fork", 2, timeout=60, env=clean_env())
    message = str(exc.value)
    assert "exit code 2" in message
    assert "no_such_case" in message and "invalid choice" in message


def test_cli_and_driver_do_not_import_stdlib_multiprocessing() -> None:
    code = (
        "import sys, procframe.cli, procframe.bench.command, procframe.bench.runner\n"
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


@pytest.mark.parametrize(
    ("per_second", "text"),
    [
        (612_345.0, "612,000"),
        (1_234_567.0, "1,230,000"),
        (23_650.0, "23,600"),
        (150.4, "150"),
        (12.34, "12.3"),
    ],
)
def test_format_rate(per_second: float, text: str) -> None:
    assert format_rate(per_second) == text


def test_units_convert_the_harness_seconds_and_say_which_way_is_better() -> None:
    assert Unit.SECONDS.from_seconds(0.25) == 0.25
    assert Unit.PER_SECOND.from_seconds(0.25) == 4.0
    assert not Unit.SECONDS.higher_is_better
    assert Unit.PER_SECOND.higher_is_better


def test_row_result_is_the_median_of_run_medians_and_its_ratio() -> None:
    row = Row("spawn", "start_join", iterations=20, quick_iterations=6, target=0.8)
    result = result_of(row, [0.030, 0.010, 0.031], [0.040, 0.041, 0.090])
    assert result.procframe == 0.030
    assert result.stdlib == 0.041
    assert result.ratio == pytest.approx(0.030 / 0.041)
    assert result.ok


def test_target_is_inclusive_and_a_miss_is_marked() -> None:
    row = Row("fork", "start_join", iterations=1, quick_iterations=1, target=1.0)
    assert result_of(row, [2.0], [2.0]).ok
    assert result_of(row, [2.009], [2.0]).ok  # printed as 1.00
    assert not result_of(row, [2.02], [2.0]).ok


def test_higher_is_better_target_is_a_lower_bound() -> None:
    row = Row("fork", "queue", iterations=1, quick_iterations=1, target=2.0)
    rate = Unit.PER_SECOND
    assert result_of(row, [500_000.0], [200_000.0], rate).ok  # 2.50
    assert result_of(row, [399_100.0], [200_000.0], rate).ok  # 1.9955, printed as 2.00
    assert not result_of(row, [398_000.0], [200_000.0], rate).ok  # 1.99
    faster = result_of(row, [600_000.0, 100.0, 700_000.0], [300_000.0, 200_000.0, 1e9], rate)
    assert (faster.procframe, faster.stdlib, faster.ratio) == (600_000.0, 300_000.0, 2.0)


def test_a_reference_row_has_no_verdict() -> None:
    row = objects_row("fork", "queue.Queue")
    assert row.target is None
    assert result_of(row, [1.0], [9.0], Unit.PER_SECOND).ok is None


@pytest.mark.parametrize(("unit", "target"), [(Unit.SECONDS, 1.2), (Unit.PER_SECOND, 0.9)])
def test_a_target_may_not_let_procframe_be_slower(unit: Unit, target: float) -> None:
    row = Row("fork", "queue", iterations=1, quick_iterations=1, target=target)
    with pytest.raises(ValueError, match="slower than the standard library"):
        Table("t", "T", unit, (row,))


@pytest.mark.parametrize(
    ("unit", "loosest", "allowed", "refused"),
    [
        (Unit.PER_SECOND, 0.9, (0.9, 0.95, 1.0, 2.0), (0.89, 0.5)),
        (Unit.SECONDS, 1.2, (1.2, 0.8), (1.3,)),
    ],
)
def test_a_table_may_allow_a_looser_target_up_to_its_loosest(
    unit: Unit, loosest: float, allowed: tuple[float, ...], refused: tuple[float, ...]
) -> None:
    def table(target: float) -> Table:
        row = Row("fork", "lock", iterations=1, quick_iterations=1, target=target)
        return Table("t", "T", unit, (row,), loosest_target=loosest)

    for target in allowed:
        assert table(target).rows[0].target == target
    for target in refused:
        with pytest.raises(
            ValueError, match=re.escape(f"beyond the table's loosest target, {loosest:.2f}")
        ):
            table(target)


@pytest.mark.parametrize(("unit", "loosest"), [(Unit.PER_SECOND, 1.1), (Unit.SECONDS, 0.9)])
def test_a_loosest_target_may_not_be_stricter_than_one(unit: Unit, loosest: float) -> None:
    with pytest.raises(ValueError, match=r"stricter than 1\.0"):
        Table("t", "T", unit, (), loosest_target=loosest)


def test_only_the_lock_table_allows_procframe_to_be_slower() -> None:
    """... than the standard library: the dask table (issue 16) compares procframe with
    Dask, and allows its layer 10%."""
    loosest = {key: table.loosest_target for key, table in TABLES.items()}
    assert loosest == {key: 0.9 if key in ("locks", "dask") else 1.0 for key in TABLES}
    assert LOCK_PAIRS.loosest_target == 0.9


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
        "ratio = procframe / the peer its table names (multiprocessing unless it says otherwise); "
        "MISS: the ratio is on the wrong side of its target; "
        "a second target bounds procframe's own value; target -: a reference row"
    )
    data = json.loads(json.dumps(report_json(tables)))
    (table,) = data["tables"]
    assert (table["key"], table["repeats"]) == ("start_join", 3)
    assert (table["unit"], table["higher_is_better"]) == ("seconds per operation", False)
    (row,) = table["rows"]
    assert (row["backend"], row["label"], row["case"]) == ("fork", "", "start_join")
    assert (row["procframe"], row["multiprocessing"], row["ratio"]) == (0.002, 0.001, 2.0)
    assert row["ok"] is False


def test_format_objects_table_higher_is_better() -> None:
    rate = Unit.PER_SECOND
    rows = (
        result_of(objects_row("fork", "queue.Queue"), [501_000.0], [500_000.0], rate),
        result_of(objects_row("fork", "Queue"), [612_345.0], [236_000.0], rate),
        result_of(objects_row("spawn", "Pipe"), [310_000.0], [290_000.0], rate),
    )
    text = format_table(TableResult(OBJECTS_PASSED, 5, rows))
    lines = text.splitlines()
    assert lines[0] == (
        "Objects passed between processes per second "
        "(256-byte strings; median of 5 runs; higher is better)"
    )
    assert lines[1].split() == [
        "backend",
        "object",
        "procframe",
        "multiprocessing",
        "ratio",
        "target",
    ]
    assert lines[2].split() == ["fork", "queue.Queue", "501,000", "500,000", "1.00", "-"]
    assert lines[3].split() == ["fork", "Queue", "612,000", "236,000", "2.59", ">=", "2.00", "ok"]
    assert lines[4].split() == ["spawn", "Pipe", "310,000", "290,000", "1.07", ">=", "1.50", "MISS"]
    target_end = lines[1].index("target") + len("target")
    assert lines[2].index("-") + 1 == lines[3].index("2.00") + 4 == target_end
    data = report_json([TableResult(OBJECTS_PASSED, 5, rows)])
    (table,) = data["tables"]
    assert (table["unit"], table["higher_is_better"]) == ("operations per second", True)
    assert [(r["label"], r["target"], r["ok"]) for r in table["rows"]] == [
        ("queue.Queue", None, None),
        ("Queue", 2.0, True),
        ("Pipe", 1.5, False),
    ]


def test_the_pool_table_and_its_targets() -> None:
    assert POOL.unit is Unit.PER_SECOND  # latencies are shown as rates: higher is better
    assert POOL.loosest_target == 1.0
    assert TABLES["pool"] is POOL
    for backend in ("fork", "spawn", "forkserver"):
        rows = {row.label: row for row in POOL.rows if row.backend == backend}
        targets = {label: (row.case, row.target) for label, row in rows.items()}
        assert targets == {
            "apply round trips": ("pool_apply", 2.0),  # latency at most 0.5x
            "imap items, chunksize 1": ("pool_imap", 2.0),
            "imap_unordered items, chunksize 1": ("pool_imap_unordered", 2.0),
            "map items, default chunksize": ("pool_map", 1.0),
            "pool starts: 1 apply, terminate": ("pool_start", 1.0),
            "short tasks behind a long one, s": ("pool_short_behind_long", None),
            "uneven map, x ideal": ("pool_uneven_map", 1.0),
            "uneven imap_unordered chunksize 1, x ideal": ("pool_uneven_imap_unordered", 1.0),
            "first use of Pool(4), s per program": ("first_use_pool", 1.0),
            "first use of Manager(), s per program": ("first_use_manager", 1.0),
        }
        assert rows["map items, default chunksize"].iterations == 1_000_000
        workloads = {label: (POOL.unit_of(row), row.limit) for label, row in rows.items()}
        assert workloads["short tasks behind a long one, s"] == (Unit.SECONDS, 0.05)
        assert workloads["uneven map, x ideal"] == (Unit.TIMES_IDEAL, 1.10)
        assert rows["uneven map, x ideal"].iterations == 2_000
        assert workloads["first use of Manager(), s per program"] == (Unit.SECONDS, None)
        assert workloads["apply round trips"] == (Unit.PER_SECOND, None)
    labels = [row.label for row in POOL.rows]
    assert labels == [row.label for row in POOL.rows if row.backend == "fork"] * 3


def test_quick_pool_runs_are_bounded() -> None:
    quick = {(row.backend, row.case): row.quick_iterations for row in POOL.rows}
    for row in POOL.rows:
        assert row.quick_iterations < row.iterations
    # measured with the stdlib here: about 300 us per apply, 70,000 imap items/s,
    # 6-8 million map items/s, 50 ms per spawned pool; a quick run is well under a second
    assert all(quick[backend, "pool_apply"] <= 1_000 for backend in ("fork", "spawn"))
    assert all(quick[backend, "pool_imap"] <= 20_000 for backend in ("fork", "spawn"))
    # a map big enough to measure: its default chunks are thousands of items
    assert all(100_000 <= quick[backend, "pool_map"] <= 250_000 for backend in ("fork", "spawn"))
    assert quick["spawn", "pool_start"] <= 5
    # one long task of 1 s per pool; 500 uneven tasks are about 0.6 s on Pool(2)
    assert all(quick[backend, "pool_short_behind_long"] == 1 for backend in ("fork", "spawn"))
    assert all(quick[backend, "pool_uneven_map"] <= 500 for backend in ("fork", "spawn"))
    assert all(quick[backend, "first_use_manager"] <= 2 for backend in ("fork", "spawn"))
    assert max(quick[backend, "pool_start"] for backend in ("fork", "forkserver")) <= 15


def test_format_pool_table_shows_latencies_as_rates() -> None:
    rate = Unit.PER_SECOND
    apply, *_, start = (row for row in POOL.rows if row.backend == "fork")
    rows = (
        # 150 us against 300 us per round trip: twice the rate
        result_of(apply, [1 / 150e-6], [1 / 300e-6], rate),
        result_of(start, [90.0], [100.0], rate),
    )
    lines = format_table(TableResult(POOL, 3, rows)).splitlines()
    assert lines[0] == (
        "Pool operations per second (Pool(2) of the backend, trivial function; "
        "latencies as rates; median of 3 runs; higher is better for rates, lower for "
        "durations, x ideal)"
    )
    assert lines[1].split()[:2] == ["backend", "operation"]
    assert lines[2].split() == [
        "fork",
        "apply",
        "round",
        "trips",
        "6,670",
        "3,330",
        "2.00",
        ">=",
        "2.00",
        "ok",
    ]
    assert lines[3].split()[-4:] == ["0.90", ">=", "1.00", "MISS"]


def workload_row(backend: str, case: str) -> Row:
    (row,) = (r for r in POOL.rows if (r.backend, r.case) == (backend, case))
    return row


def test_a_row_with_a_limit_meets_it_and_its_ratio_target() -> None:
    uneven = workload_row("fork", "pool_uneven_map")
    factor = Unit.TIMES_IDEAL
    assert result_of(uneven, [1.05], [1.07], factor).ok
    assert result_of(uneven, [1.104], [1.2], factor).ok  # printed as 1.10
    assert not result_of(uneven, [1.12], [1.3], factor).ok  # over the limit
    assert not result_of(uneven, [1.06], [1.04], factor).ok  # worse than the stdlib
    behind = workload_row("fork", "pool_short_behind_long")
    assert result_of(behind, [0.04], [0.001]).ok  # no ratio target: 40 times is fine
    assert not result_of(behind, [0.8], [0.001]).ok


def test_format_pool_workload_rows_in_their_own_units() -> None:
    rows = (
        result_of(workload_row("fork", "pool_short_behind_long"), [0.8], [0.00098]),
        result_of(workload_row("fork", "pool_uneven_map"), [1.069], [1.068], Unit.TIMES_IDEAL),
        result_of(workload_row("fork", "first_use_pool"), [0.05], [0.07]),
    )
    lines = format_table(TableResult(POOL, 3, rows)).splitlines()
    assert lines[2].split()[-9:-1] == ["800", "ms", "980", "us", "816.33", "<=", "50.0", "ms"]
    assert lines[2].split()[-1] == "MISS"
    assert lines[3].split()[-8:-1] == ["1.07x", "1.07x", "1.00", "<=", "1.00,", "<=", "1.10x"]
    assert lines[4].split()[-5:] == ["ms", "0.71", "<=", "1.00", "ok"]
    (table,) = report_json([TableResult(POOL, 3, rows)])["tables"]
    assert [(r["unit"], r["limit"]) for r in table["rows"]] == [
        ("seconds per operation", 0.05),
        ("times the ideal", 1.10),
        ("seconds per operation", None),
    ]


def test_uneven_durations_are_seeded_and_heavy_tailed() -> None:
    harness = _harness_module()
    durations = harness.uneven_durations(2_000)
    assert durations == harness.uneven_durations(2_000)
    long = [d for d in durations if d >= 0.1]
    assert len(long) == 5 and all(d <= 0.3 for d in long)
    short = [d for d in durations if d < 0.1]
    assert 0.0015 < sum(short) / len(short) < 0.0025
    assert len(harness.uneven_durations(3)) == 3


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


def test_measure_row_turns_seconds_into_rates() -> None:
    medians = {"procframe": iter([0.5, 0.25, 2.0]), "stdlib": iter([1.0, 0.5, 2.0])}

    def fake(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        assert (case, method) == ("pipe", "spawn")
        return {"median": next(medians[impl])}

    result = measure_row(OBJECTS_PASSED, objects_row("spawn", "Pipe"), 3, 7, fake)
    assert result.procframe_runs == (2.0, 4.0, 0.5)
    assert (result.procframe, result.stdlib, result.ratio) == (2.0, 1.0, 2.0)
    assert result.ok


def test_measure_row_refuses_a_procframe_run_that_loaded_multiprocessing() -> None:
    def fake(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        return {"median": 1.0, "multiprocessing_loaded": True}

    with pytest.raises(BenchError, match="multiprocessing"):
        measure_row(START_JOIN, START_JOIN.rows[0], 1, 1, fake)


def test_measure_table_measures_only_the_chosen_backends() -> None:
    table = Table("t", "T", Unit.SECONDS, START_JOIN.rows)
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


def test_every_table_has_rows_per_stdlib_method_with_targets() -> None:
    for table in TABLES.values():
        if table.cluster:  # the dask table: procframe's dask backend against Dask
            continue
        assert {row.backend for row in table.rows} == {"fork", "spawn", "forkserver"}
        assert all(0 < row.quick_iterations <= row.iterations for row in table.rows)
        assert len({(row.backend, row.label) for row in table.rows}) == len(table.rows)
        # "no ratio below 1.0 anywhere", but for a table's explicit loosest target
        for row in table.rows:
            if row.target is not None:
                assert table.unit.meets(row.target, table.loosest_target)
    targets = {row.label: row.target for row in OBJECTS_PASSED.rows}
    assert targets == {"queue.Queue": None, "Queue": 2.0, "SimpleQueue": 1.5, "Pipe": 1.5}
    targets = {row.label: row.target for row in LOCK_PAIRS.rows}
    # issue 4 asks for >= 0.9
    assert targets == {"threading.Lock": None, "Lock": 0.9, "threading.RLock": None, "RLock": 0.9}
    targets = {row.label: row.target for row in CONDITION_WAITS.rows}
    assert targets == {"threading.Condition": None, "Condition": 1.5}
    targets = {row.label: row.target for row in SEQUENCE_READS.rows}
    assert targets == {"list": None, "RawArray": 1.0, "Array": 1.0}
    assert {row.case for row in SEQUENCE_READS.rows} == {
        "list_read",
        "raw_array_read",
        "array_read",
    }
    units = {LOCK_PAIRS.unit, CONDITION_WAITS.unit, SEQUENCE_READS.unit}
    assert units == {Unit.PER_SECOND}
    assert list(TABLES)[-8:] == [
        *("conditions", "sequences", "pool", "managed", "big", "big_memory", "serializers"),
        "dask",
    ]


# -- the command, end to end --------------------------------------------------------


def test_bench_prints_a_table_with_a_ratio() -> None:
    args = ("--quick", "--backend", "fork", "--iterations", "3", "--repeat", "1")
    done = run_bench(*args, "--table", "start_join")
    assert done.returncode == 0, done.stderr
    assert "Process start+join latency (median of 1 run; lower is better)" in done.stdout
    assert re.search(r"^backend\s+procframe\s+multiprocessing\s+ratio\s+target$", done.stdout, re.M)
    assert re.search(r"^fork\s+.*\s\d+\.\d\d\s+<= 1\.00\s+(ok|MISS)$", done.stdout, re.M)
    assert not re.search(r"^(spawn|forkserver)\s", done.stdout, re.M)
    assert "Objects passed" not in done.stdout


def test_bench_prints_the_objects_table() -> None:
    done = run_bench(
        "--backend", "fork", "--iterations", "20", "--repeat", "1", "--table", "objects"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "Objects passed between processes per second "
        "(256-byte strings; median of 1 run; higher is better)"
    ) in done.stdout
    assert re.search(r"^fork\s+queue\.Queue\s+[\d,]+\s+[\d,]+\s+\d+\.\d\d\s+-$", done.stdout, re.M)
    assert re.search(
        r"^fork\s+Pipe\s+[\d,]+\s+[\d,]+\s+\d+\.\d\d\s+>= 1\.50\s+(ok|MISS)$", done.stdout, re.M
    )
    assert "start+join" not in done.stdout


def test_bench_prints_the_lock_and_condition_tables() -> None:
    done = run_bench(
        "--backend",
        "spawn",
        "--iterations",
        "50",
        "--repeat",
        "1",
        "--table",
        "locks",
        "conditions",
        "sequences",
    )
    assert done.returncode == 0, done.stderr
    assert (
        "Lock acquire/release pairs per second (in one process; median of 1 run; higher is better)"
    ) in done.stdout
    assert (
        "Condition waits/notifies per second (interleaved by two processes; the reference by "
        "two threads; median of 1 run; higher is better)"
    ) in done.stdout
    assert (
        "Integers read per second (seq[5] of 10 ints, in one process; median of 1 run; "
        "higher is better)"
    ) in done.stdout
    assert done.stdout.index("Condition waits") < done.stdout.index("Integers read")
    rate = r"[\d,.]+\s+[\d,.]+\s+\d+\.\d\d"
    for label in ("threading.Lock", "threading.RLock", "threading.Condition", "list"):
        assert re.search(rf"^spawn\s+{label}\s+{rate}\s+-$", done.stdout, re.M), label
    targets = (
        ("Lock", "0.90"),
        ("RLock", "0.90"),
        ("Condition", "1.50"),
        ("RawArray", "1.00"),
        ("Array", "1.00"),
    )
    for label, target in targets:
        assert re.search(
            rf"^spawn\s+{label}\s+{rate}\s+>= {target}\s+(ok|MISS)$", done.stdout, re.M
        ), label
    assert not re.search(r"^(fork|forkserver)\s", done.stdout, re.M)
    assert "Objects passed" not in done.stdout


def test_bench_prints_the_pool_table() -> None:
    done = run_bench("--backend", "fork", "--iterations", "3", "--repeat", "1", "--table", "pool")
    assert done.returncode == 0, done.stderr
    assert (
        "Pool operations per second (Pool(2) of the backend, trivial function; latencies as "
        "rates; median of 1 run; higher is better for rates, lower for durations, x ideal)"
    ) in done.stdout
    rate = r"[\d,.]+\s+[\d,.]+\s+\d+\.\d\d"
    for label, target in (
        ("apply round trips", "2.00"),
        ("imap items, chunksize 1", "2.00"),
        ("imap_unordered items, chunksize 1", "2.00"),
        ("map items, default chunksize", "1.00"),
        ("pool starts: 1 apply, terminate", "1.00"),
    ):
        assert re.search(
            rf"^fork\s+{re.escape(label)}\s+{rate}\s+>= {target}\s+(ok|MISS)$", done.stdout, re.M
        ), label
    duration, factor = r"[\d.]+ [mu]?s", r"[\d.]+x"
    for label, values, target in (
        ("short tasks behind a long one, s", rf"{duration}\s+{duration}", "<= 50.0 ms"),
        ("uneven map, x ideal", rf"{factor}\s+{factor}", "<= 1.00, <= 1.10x"),
        ("first use of Manager(), s per program", rf"{duration}\s+{duration}", "<= 1.00"),
    ):
        assert re.search(
            rf"^fork\s+{re.escape(label)}\s+{values}\s+[\d.]+\s+{re.escape(target)}\s+(ok|MISS)$",
            done.stdout,
            re.M,
        ), label
    assert not re.search(r"^(spawn|forkserver)\s", done.stdout, re.M)
    assert "Integers read" not in done.stdout


def test_bench_json() -> None:
    """Every table but the big ones (test_bench_prints_the_big_table runs those), the
    serializers table (test_bench_prints_the_serializers_table) and the dask table
    (test_bench_prints_the_dask_table)."""
    keys = [
        key for key in TABLES if not key.startswith("big") and key not in ("serializers", "dask")
    ]
    args = ("--backend", "fork", "--iterations", "2", "--repeat", "1", "--json", "--table")
    done = run_bench(*args, *keys)
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    assert [table["key"] for table in tables] == keys
    for table in tables:
        assert {row["backend"] for row in table["rows"]} == {"fork"}
        for row in table["rows"]:
            if row["skipped"]:  # numpy missing, or too little memory for the 1 GiB row
                assert row["ratio"] is None
                continue
            assert row["ratio"] == pytest.approx(row["procframe"] / row["multiprocessing"])
    assert [row["label"] for row in tables[1]["rows"]] == [
        "queue.Queue",
        "Queue",
        "SimpleQueue",
        "Pipe",
    ]
    assert [row["label"] for row in tables[2]["rows"]] == [
        "threading.Lock",
        "Lock",
        "threading.RLock",
        "RLock",
    ]
    assert [row["label"] for row in tables[3]["rows"]] == ["threading.Condition", "Condition"]
    assert [row["label"] for row in tables[4]["rows"]] == ["list", "RawArray", "Array"]
    assert [row["case"] for row in tables[5]["rows"]] == [
        "pool_apply",
        "pool_imap",
        "pool_imap_unordered",
        "pool_map",
        "pool_start",
        "pool_short_behind_long",
        "pool_uneven_map",
        "pool_uneven_imap_unordered",
        "first_use_pool",
        "first_use_manager",
    ]


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


# -- issue 14: the big table and the memory table ------------------------------------


def big_row(backend: str, label: str) -> Row:
    (row,) = (r for r in BIG.rows if (r.backend, r.label) == (backend, label))
    return row


MBPS = Unit.MEGABYTES_PER_SECOND


def test_megabytes_per_second_is_a_rate_of_payload_from_seconds_per_megabyte() -> None:
    assert MEGABYTE == 1_000_000
    assert MBPS.higher_is_better
    assert MBPS.from_seconds(0.001) == pytest.approx(1000.0)  # 1 ms per MB: 1,000 MB/s
    assert MBPS.meets(3.004, 3.0) and not MBPS.meets(2.99, 3.0)
    assert format_value(MBPS, 11_234.5) == "11,200"
    assert format_target(MBPS, 3.0, None, 0.4, "of memcpy") == ">= 3.00, >= 40% of memcpy"


def test_bytes_are_memory_reported_as_is_and_lower_is_better() -> None:
    assert not Unit.BYTES.higher_is_better
    assert Unit.BYTES.from_seconds(2.5 * GIB) == 2.5 * GIB
    assert Unit.BYTES.meets(0.99, 1.0) and not Unit.BYTES.meets(1.2, 1.0)
    assert format_target(Unit.BYTES, 1.0, 2.2 * GIB) == "<= 1.00, <= 2.20 GiB"


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (2.2 * GIB, "2.20 GiB"),
        (3_252_938_752, "3.03 GiB"),
        (512 << 20, "512 MiB"),
        (42e6, "40.1 MiB"),
    ],
)
def test_format_bytes(count: float, text: str) -> None:
    assert format_bytes(count) == text
    assert format_value(Unit.BYTES, count) == text


def test_the_big_table_has_the_issues_rows_and_targets() -> None:
    assert TABLES["big"] is BIG and BIG.unit is MBPS
    assert (BIG.backend_limit, BIG.max_repeats, BIG.quick) == (1, 3, True)
    for backend in ("fork", "spawn", "forkserver"):
        rows = [row for row in BIG.rows if row.backend == backend]
        assert len(rows) == 4 * (1 + 3 * 2)
        for size in ("64 KiB", "1 MiB", "16 MiB", "128 MiB"):
            memcpy = big_row(backend, f"memcpy {size}")
            assert memcpy.target is None and not memcpy.requires  # the reference
            assert memcpy.quick == (size in ("1 MiB", "16 MiB"))
            for item in ("bytes", "float64 array"):
                for channel in ("Queue", "Pipe", "Pool.map identity"):
                    row = big_row(backend, f"{channel}, {item} {size}")
                    assert row.target == (1.0 if size == "64 KiB" else 3.0)
                    assert row.requires == (("numpy",) if item == "float64 array" else ())
                    assert row.quick == memcpy.quick
                    # a reference measured long enough: ten copies per item passed
                    assert memcpy.iterations == 10 * row.iterations
                    bounded = item != "bytes" and channel != "Pool.map identity"
                    bounded = bounded and size in ("16 MiB", "128 MiB")
                    assert (row.share_of, row.min_share) == (
                        (f"memcpy {size}", 0.4) if bounded else ("", None)
                    )


def test_the_memory_table_bounds_procframe_at_2_2_gib() -> None:
    assert TABLES["big_memory"] is BIG_MEMORY and BIG_MEMORY.unit is Unit.BYTES
    assert not BIG_MEMORY.quick  # a --quick run measures it only if --table names it
    assert "Pss" in BIG_MEMORY.note and "smaps_rollup" in BIG_MEMORY.note
    for row in BIG_MEMORY.rows:
        assert (row.case, row.target, row.limit) == ("big_memory_queue", 1.0, 2.2 * GIB)
        assert set(row.requires) == {"numpy", "pss", "available memory"}


def test_every_row_is_a_case_of_the_harness() -> None:
    cases = set(_harness_module().CASES) | {"first_use_pool", "first_use_manager"}
    assert {row.case for table in TABLES.values() for row in table.rows} <= cases


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"share_of": "memcpy"}, "needs both share_of and min_share"),
        ({"min_share": 0.4}, "needs both share_of and min_share"),
        ({"share_of": "nothing", "min_share": 0.4}, "refers to no row 'nothing'"),
        ({"share_of": "memcpy", "min_share": 1.5}, r"share beyond \(0, 1\]"),
        ({"requires": ("a GPU",)}, "requires unknown"),
    ],
)
def test_a_table_refuses_a_share_or_requirement_it_cannot_check(
    changes: dict[str, Any], message: str
) -> None:
    memcpy = Row("fork", "memcpy_1m", 1, 1, None, "memcpy")
    row = Row("fork", "big_queue_bytes_1m", 1, 1, 3.0, "Queue", **changes)
    with pytest.raises(ValueError, match=message):
        Table("t", "T", MBPS, (memcpy, row))


def test_a_share_needs_its_reference_measured_wherever_the_row_is() -> None:
    row = Row("fork", "big_queue_bytes_1m", 1, 1, 3.0, "Queue", share_of="memcpy", min_share=0.4)
    for memcpy in (
        Row("fork", "memcpy_1m", 1, 1, None, "memcpy", quick=False),
        Row("fork", "memcpy_1m", 1, 1, None, "memcpy", requires=("numpy",)),
        Row("spawn", "memcpy_1m", 1, 1, None, "memcpy"),
    ):
        with pytest.raises(ValueError):
            Table("t", "T", MBPS, (memcpy, row))


def share_result(procframe: float, stdlib: float, reference: float | None) -> RowResult:
    row = big_row("fork", "Queue, float64 array 16 MiB")
    return RowResult(MBPS, row, 4, (procframe,), (stdlib,), reference=reference)


def test_a_share_of_memcpy_is_a_third_target() -> None:
    assert share_result(4_000.0, 1_000.0, 10_000.0).share == pytest.approx(0.4)
    assert share_result(4_000.0, 1_000.0, 10_000.0).ok
    assert share_result(3_996.0, 1_000.0, 10_000.0).ok  # 39.96%, printed as 40%
    assert not share_result(3_900.0, 1_000.0, 10_000.0).ok  # 3.9x: ratio met, share not
    assert not share_result(4_000.0, 2_000.0, 10_000.0).ok  # 40%, but only 2.0x
    missing_reference = share_result(4_000.0, 1_000.0, None)
    assert missing_reference.share is None and not missing_reference.ok


def fake_big_run(calls: list[str]) -> Any:
    """A harness that says 1 ms per MB for procframe's Queue, 3 ms for the stdlib's, 0.2 ms
    per MB of memcpy, 2 ms otherwise."""

    def run(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        calls.append(case)
        if case.startswith("memcpy"):
            return {"median": 0.0002}
        first = {"first_item": 0.05 if impl == "procframe" else 0.08}
        if case.startswith("big_queue"):
            return {"median": 0.001 if impl == "procframe" else 0.003, **first}
        return {"median": 0.002, **({"first_item": 0.01} if "pipe" in case else {})}

    return run


def test_measure_table_gives_each_row_its_reference_of_the_same_run() -> None:
    calls: list[str] = []
    result = measure_table(BIG, ["fork"], 1, lambda row: 2, fake_big_run(calls))
    assert len(result.rows) == 28 and set(calls) == {row.row.case for row in result.rows}
    rows = {row.row.label: row for row in result.rows}
    queue = rows["Queue, float64 array 16 MiB"]
    assert (queue.procframe, queue.reference, queue.share) == (1000.0, 5000.0, 0.2)
    assert queue.ratio == pytest.approx(3.0) and queue.ok is False  # 20% of memcpy
    assert rows["Queue, bytes 16 MiB"].reference is None and rows["Queue, bytes 16 MiB"].ok
    assert queue.first_items == (0.05, 0.08)
    assert rows["memcpy 16 MiB"].first_items == (None, None)
    lines = format_table(result).splitlines()
    assert lines[1].split() == [
        *("backend", "object,", "item", "procframe", "multiprocessing", "ratio"),
        *("of", "memcpy", "target"),
    ]
    (queue_line,) = (line for line in lines if "Queue, float64 array 16 MiB" in line)
    assert queue_line.split()[6:] == [
        *("1,000", "333", "3.00", "20%"),
        *(">=", "3.00,", ">=", "40%", "of", "memcpy", "MISS"),
    ]
    (row_data,) = (
        r for r in report_json([result])["tables"][0]["rows"] if r["label"] == queue.row.label
    )
    assert (row_data["share"], row_data["min_share"], row_data["share_of"]) == (
        0.2,
        0.4,
        "memcpy 16 MiB",
    )
    assert row_data["procframe_first_item_seconds"] == 0.05


def test_quick_measures_only_the_quick_rows() -> None:
    calls: list[str] = []
    result = measure_table(BIG, ["fork"], 1, lambda row: 2, fake_big_run(calls), quick=True)
    assert {row.row.label.split()[-2] for row in result.rows} == {"1", "16"}
    assert len(result.rows) == 14 and all(case[-2:] in ("1m", "6m") for case in calls)


def test_a_row_the_machine_cannot_measure_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(REQUIREMENTS, "numpy", lambda: "numpy is not installed: pip install numpy")
    calls: list[str] = []
    messages: list[str] = []
    result = measure_table(
        BIG, ["fork"], 1, lambda row: 2, fake_big_run(calls), messages.append, quick=True
    )
    skipped = [row for row in result.rows if row.skipped]
    assert {row.row.label for row in skipped} == {
        f"{channel}, float64 array {size}"
        for channel in ("Queue", "Pipe", "Pool.map identity")
        for size in ("1 MiB", "16 MiB")
    }
    assert not any("array" in case for case in calls)  # never run
    assert all(row.ok is None and math.isnan(row.procframe) for row in skipped)
    assert sum("skipped: numpy is not installed" in message for message in messages) == 6
    text = format_table(result)
    assert text.endswith("\nskipped: numpy is not installed: pip install numpy")
    (line,) = (line for line in text.splitlines() if "Pipe, float64 array 16 MiB" in line)
    assert line.split()[6:] == [
        *("-", "-", "-", "-"),
        *(">=", "3.00,", ">=", "40%", "of", "memcpy", "skipped"),
    ]
    (data,) = (r for r in report_json([result])["tables"][0]["rows"] if r["label"] in line)
    assert (data["procframe"], data["ratio"], data["ok"]) == (None, None, None)
    assert data["skipped"] == "numpy is not installed: pip install numpy"
    assert text.count("skipped: ") == 1


def test_the_command_chooses_tables_backends_and_repeats() -> None:
    assert "big_memory" not in chosen_tables(None, quick=True)
    assert chosen_tables(None, quick=False) == list(TABLES)
    assert chosen_tables(["big_memory", "big", "big"], quick=True) == ["big_memory", "big"]
    comparable = ["fork", "spawn", "forkserver"]
    assert table_backends(BIG, comparable, asked=False) == ["fork"]
    assert table_backends(BIG, ["spawn", "fork"], asked=True) == ["spawn", "fork"]
    assert table_backends(POOL, comparable, asked=False) == comparable
    assert (table_repeats(BIG, None, False), table_repeats(POOL, None, False)) == (3, 5)
    assert (table_repeats(BIG, None, True), table_repeats(BIG, 7, False)) == (3, 7)


def write(path: Any, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_requirements_say_what_the_machine_lacks(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    low = write(tmp_path / "low", "MemTotal: 8000000 kB\nMemAvailable: 4194304 kB\n")
    high = write(tmp_path / "high", "MemAvailable: 9000000 kB\n")
    assert memory_missing(low) == "needs 8 GiB of available memory, this machine has 4.0 GiB"
    assert memory_missing(high) == ""
    assert "does not say" in memory_missing(str(tmp_path / "absent"))
    assert pss_missing(write(tmp_path / "rollup", "x [rollup]\nRss: 1 kB\nPss: 1 kB\n")) == ""
    assert "to measure Pss" in pss_missing(str(tmp_path / "absent"))
    import importlib.util

    assert numpy_missing() == ("" if importlib.util.find_spec("numpy") else numpy_missing())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert numpy_missing().startswith("numpy is not installed: pip install numpy")
    assert "numpy is not installed" in missing(("pss", "numpy"))


def test_touch_reads_a_byte_per_page_and_checks_the_item() -> None:
    harness = _harness_module()
    item = harness.make_big_item("bytes", 3 * harness.PAGE)
    assert item == b"\x01" * 3 * harness.PAGE
    harness.touch(item, len(item))
    with pytest.raises(RuntimeError, match="12287 bytes instead of 12288"):
        harness.touch(item[:-1], len(item))
    with pytest.raises(RuntimeError, match="wrong contents"):
        harness.touch(b"\x01" * harness.PAGE + b"\x00" * harness.PAGE, 2 * harness.PAGE)
    harness.touch(b"\x01" + b"\x00" * (harness.PAGE - 1), harness.PAGE)  # only one byte a page
    assert [harness.warm_items(size) for size in (64 << 10, 16 << 20, 1 << 30)] == [128, 2, 2]


def test_touch_takes_float64_arrays() -> None:
    pytest.importorskip("numpy")
    harness = _harness_module()
    array = harness.make_big_item("array", 1 << 20)
    assert (array.dtype.name, array.nbytes) == ("float64", 1 << 20)
    harness.touch(array, 1 << 20)
    array[1024] = 0.0  # the first byte of the third page
    with pytest.raises(RuntimeError, match="wrong contents"):
        harness.touch(array, 1 << 20)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pss_of_a_process_and_of_none() -> None:
    harness = _harness_module()
    assert harness.pss_bytes(os.getpid()) > 1 << 20
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert harness.pss_bytes(child.pid) == 0  # gone: nothing to count


BIG_CASES = [
    f"big_{channel}_{kind}_{size}"
    for channel in ("queue", "pipe", "pool_map")
    for kind in ("bytes", "array")
    for size in ("64k", "128m")
]


@pytest.mark.parametrize("case", [*BIG_CASES, "memcpy_64k", "memcpy_128m"])
@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_passes_big_items(impl: str, case: str) -> None:
    if "array" in case:
        pytest.importorskip("numpy")
    result = run_harness(impl, case, "fork", 3, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["iterations"]) == (impl, case, 3)
    assert result["samples"] == (1 if "pool_map" in case else 3)
    assert 0 < result["min"] <= result["median"]  # seconds per megabyte
    assert ("first_item" in result) == case.startswith(("big_queue", "big_pipe"))
    assert result["multiprocessing_loaded"] is (impl == "stdlib")


@pytest.mark.parametrize(
    "case", ["big_queue_array_1m", "big_pipe_bytes_16m", "big_pool_map_array_1m"]
)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_harness_passes_big_items_from_fresh_interpreters(method: str, case: str) -> None:
    if "array" in case:
        pytest.importorskip("numpy")
    result = run_harness("procframe", case, method, 2, timeout=60, env=clean_env())
    assert (result["case"], result["method"]) == (case, method)
    assert result["median"] > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("impl", ["procframe", "stdlib"])
def test_harness_measures_peak_memory_of_sender_and_receiver(impl: str) -> None:
    pytest.importorskip("numpy")
    result = run_harness(impl, "big_memory_queue", "fork", 2, timeout=60, env=clean_env())
    assert (result["case"], result["samples"]) == ("big_memory_queue", 2)
    # bytes, not seconds: two interpreters, one of them with the array, are megabytes
    assert 4 * int(BIG_CAP) < result["min"] <= result["median"] < 4 * GIB


def test_bench_prints_the_big_table() -> None:
    """Its quick rows (one backend, 1 and 16 MiB: the full table's rows are checked by
    test_the_big_table_has_the_issues_rows_and_targets), and the memory table named."""
    args = ("--quick", "--iterations", "2", "--repeat", "1", "--table", "big")
    done = run_bench(*args, "big_memory")
    assert done.returncode == 0, done.stderr
    assert (
        "Big items passed per second, MB/s of payload (child to parent, each item read a byte "
        "per page; Pool.map: out and back; of memcpy: procframe over memcpy of the same size; "
        "median of 1 run; higher is better)"
    ) in done.stdout
    assert re.search(
        r"^backend\s+object, item\s+procframe\s+multiprocessing\s+ratio\s+of memcpy\s+target$",
        done.stdout,
        re.M,
    )
    assert not re.search(r"^(spawn|forkserver)\s", done.stdout, re.M)  # one backend
    assert not re.search(r"(64 KiB|128 MiB)", done.stdout)
    rate = r"[\d,.]+\s+[\d,.]+\s+\d+\.\d\d"
    assert re.search(rf"^fork\s+memcpy 16 MiB\s+{rate}\s+-\s+-$", done.stdout, re.M)
    share = r"(\d+%\s+>= 3\.00, >= 40% of memcpy\s+(ok|MISS)|-\s+-\s+-\s+-\s.*skipped)"
    assert re.search(
        rf"^fork\s+Pipe, float64 array 16 MiB\s+({rate}\s+)?{share}$", done.stdout, re.M
    )
    assert re.search(
        rf"^fork\s+Pool.map identity, bytes 1 MiB\s+{rate}\s+-\s+>= 3\.00\s+(ok|MISS)$",
        done.stdout,
        re.M,
    )
    assert (
        "Peak memory of sender plus receiver while one 1 GiB float64 array goes through a Queue"
        in done.stdout
    )
    assert re.search(
        r"^fork\s+Queue, float64 array 1 GiB\s+(([\d.]+ [MG]iB\s+){2}\d+\.\d\d\s+<= 1\.00, "
        r"<= 2\.20 GiB\s+(ok|MISS)|-\s+-\s+-\s+<= 1\.00, <= 2\.20 GiB\s+skipped)$",
        done.stdout,
        re.M,
    )
    help_text = run_bench("--help").stdout
    assert "with --quick, all but big_memory" in " ".join(help_text.split())
    assert "start+join" not in done.stdout


# -- issue 15: the serializers table ------------------------------------------------


def serializer_row(backend: str, label: str) -> Row:
    (row,) = (r for r in SERIALIZER_TABLE.rows if (r.backend, r.label) == (backend, label))
    return row


PLAIN_OPERATIONS = {
    # label in the serializers table: (case, the table and label of the row it repeats)
    "Queue": ("queue", OBJECTS_PASSED, "Queue"),
    "SimpleQueue": ("simple_queue", OBJECTS_PASSED, "SimpleQueue"),
    "Pipe": ("pipe", OBJECTS_PASSED, "Pipe"),
    "Pool apply round trips": ("pool_apply", POOL, "apply round trips"),
    "Pool imap items, chunksize 1": ("pool_imap", POOL, "imap items, chunksize 1"),
    "Pool map items, default chunksize": ("pool_map", POOL, "map items, default chunksize"),
}


def test_the_serializers_table_repeats_plain_data_rows_under_each_serializer() -> None:
    table = SERIALIZER_TABLE
    assert TABLES["serializers"] is table and table.unit is Unit.PER_SECOND
    assert (table.backend_limit, table.default_backend, table.max_repeats) == (1, "forkserver", 3)
    assert (table.share_header, table.versus_header, table.quick) == ("of pickle", "versus", True)
    for backend in ("fork", "spawn", "forkserver"):
        for operation, (case, source, label) in PLAIN_OPERATIONS.items():
            (original,) = (r for r in source.rows if (r.backend, r.label) == (backend, label))
            pickle_label = f"pickle: {operation} vs multiprocessing"
            for serializer in ("pickle", "cloudpickle", "dill"):
                row = serializer_row(backend, f"{serializer}: {operation} vs multiprocessing")
                assert row.case == f"{case}[{serializer}]"
                assert (row.versus, row.cannot) == ("stdlib", "")
                # the figures and targets of the table it repeats
                assert (row.iterations, row.quick_iterations, row.target) == (
                    original.iterations,
                    original.quick_iterations,
                    original.target,
                )
                rich = serializer != "pickle"
                assert (row.share_of, row.min_share) == (
                    (pickle_label, 0.95) if rich else ("", None)
                )
                assert row.requires == ((serializer,) if rich else ())
                in_quick = case in ("queue", "pool_map") and serializer != "dill"
                assert row.quick == in_quick


def test_the_serializers_table_has_lambda_rows_against_the_peers() -> None:
    rows = [row for row in SERIALIZER_TABLE.rows if row.backend == "forkserver"]
    lambda_rows = [(row.label, row.case, row.versus, row.target) for row in rows[18:]]
    assert lambda_rows == [
        ("pickle: Queue of (str, lambda) vs multiprocessing", "queue_lambda", "stdlib", None),
        (
            "cloudpickle: Queue of (str, lambda) vs multiprocess",
            "queue_lambda[cloudpickle]",
            "multiprocess",
            1.0,
        ),
        # procframe's dill traces a function's globals: about half multiprocess's rate
        (
            "dill: Queue of (str, lambda) vs multiprocess",
            "queue_lambda[dill]",
            "multiprocess",
            None,
        ),
        ("pickle: Pool map of a lambda vs multiprocessing", "pool_map_lambda", "stdlib", None),
        ("cloudpickle: Pool map of a lambda vs loky", "pool_map_lambda[cloudpickle]", "loky", 1.0),
        (
            "cloudpickle: Pool map of a lambda vs multiprocess",
            "pool_map_lambda[cloudpickle]",
            "multiprocess",
            1.0,
        ),
        (
            "dill: Pool map of a lambda vs multiprocess",
            "pool_map_lambda[dill]",
            "multiprocess",
            1.0,
        ),
    ]
    assert len(rows) == 18 + 7
    for row in rows[18:]:
        assert not row.quick and row.min_share is None
        if row.versus == "stdlib":  # the standard library cannot: shown, never run
            assert row.cannot.startswith("pickle saves functions by name")
            assert row.requires == ()
        else:
            assert not row.cannot
            assert row.requires == (row.case.split("[")[1].rstrip("]"), row.versus)


def test_a_table_refuses_an_unknown_peer() -> None:
    row = Row("fork", "queue", 1, 1, 1.0, "Queue", versus="mpire")
    with pytest.raises(ValueError, match="compared with unknown mpire"):
        Table("t", "T", Unit.PER_SECOND, (row,))


def test_the_serializers_table_measures_forkserver_unless_asked() -> None:
    assert table_backends(SERIALIZER_TABLE, ["fork", "spawn", "forkserver"], False) == [
        "forkserver"
    ]
    assert table_backends(SERIALIZER_TABLE, ["fork", "spawn"], False) == ["fork"]
    asked = ["fork", "forkserver"]
    assert table_backends(SERIALIZER_TABLE, asked, True) == asked
    assert table_backends(BIG, ["fork", "spawn", "forkserver"], False) == ["fork"]
    help_text = " ".join(run_bench("--help").stdout.split())
    assert "serializers only forkserver (or the first)" in help_text


def fake_serializer_run(calls: list[tuple[str, str]], cloudpickle_share: float) -> Any:
    """A harness: procframe passes 100,000 items/s with pickle and ``cloudpickle_share`` of
    that with cloudpickle, 90,000 with dill; every other implementation 40,000."""

    def run(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        calls.append((impl, case))
        if impl != "procframe":
            return {"median": 1 / 40_000, "multiprocessing_loaded": True}
        rate = 100_000 * (cloudpickle_share if "cloudpickle" in case else 1.0)
        rate = 90_000 if "dill" in case else rate
        return {"median": 1 / rate, "multiprocessing_loaded": False}

    return run


@pytest.mark.parametrize(("share", "verdict"), [(0.95, "ok"), (0.949, "ok"), (0.94, "MISS")])
def test_a_richer_serializer_must_pass_plain_data_at_95_percent_of_pickle(
    share: float, verdict: str
) -> None:
    calls: list[tuple[str, str]] = []
    result = measure_table(
        SERIALIZER_TABLE, ["forkserver"], 1, lambda row: 2, fake_serializer_run(calls, share)
    )
    rows = {row.row.label: row for row in result.rows}
    queue = rows["cloudpickle: Queue vs multiprocessing"]
    assert queue.reference == pytest.approx(100_000)
    assert queue.share == pytest.approx(share)
    assert queue.ratio == pytest.approx(2.5 * share)
    assert queue.ok is (verdict == "ok")
    assert rows["dill: Pipe vs multiprocessing"].share == pytest.approx(0.9)
    assert rows["dill: Pipe vs multiprocessing"].ok is False  # 2.25, but 90% of pickle
    lines = format_table(result).splitlines()
    assert lines[1].split() == [
        *("backend", "serializer:", "operation", "vs", "library", "procframe", "versus"),
        *("ratio", "of", "pickle", "target"),
    ]
    (line,) = (line for line in lines if "cloudpickle: Queue vs" in line)
    assert line.split()[-9:] == [
        f"{2.5 * share:.2f}",
        f"{share:.0%}",
        *(">=", "2.00,", ">=", "95%", "of", "pickle", verdict),
    ]


OPTIONAL_PACKAGES = ("numpy", "cloudpickle", "dill", "multiprocess", "loky")
"""What the bench's rows may need beyond procframe (the ``bench`` extra)."""


def pretend_installed(monkeypatch: pytest.MonkeyPatch, missing: tuple[str, ...] = ()) -> None:
    """Make the bench see every optional package as installed but those ``missing``, whatever
    this environment holds (its rows are not run here: a fake harness answers)."""
    import importlib.util

    find_spec = importlib.util.find_spec

    def found(name: str, *args: Any) -> Any:
        if name in missing:
            return None
        if name in OPTIONAL_PACKAGES:
            return find_spec(name, *args) or object()
        return find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", found)


def test_lambda_rows_are_compared_with_their_peer_and_the_stdlib_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_installed(monkeypatch)
    calls: list[tuple[str, str]] = []
    result = measure_table(
        SERIALIZER_TABLE, ["forkserver"], 2, lambda row: 2, fake_serializer_run(calls, 1.0)
    )
    assert ("procframe", "queue_lambda") not in calls
    assert not any(case in ("queue_lambda", "pool_map_lambda") for _, case in calls)
    # each row alternates procframe with its own peer
    assert calls.count(("loky", "pool_map_lambda[cloudpickle]")) == 2
    assert calls.count(("multiprocess", "pool_map_lambda[cloudpickle]")) == 2
    assert calls.count(("multiprocess", "queue_lambda[dill]")) == 2
    assert not any(impl == "stdlib" and "lambda" in case for impl, case in calls)
    assert not any(impl == "loky" and "lambda" not in case for impl, case in calls)
    rows = {row.row.label: row for row in result.rows}
    cannot = rows["pickle: Pool map of a lambda vs multiprocessing"]
    assert cannot.ok is None and math.isnan(cannot.procframe) and math.isnan(cannot.stdlib)
    loky = rows["cloudpickle: Pool map of a lambda vs loky"]
    assert (loky.procframe, loky.stdlib) == (pytest.approx(100_000), pytest.approx(40_000))
    assert loky.ok
    text = format_table(result)
    (line,) = (line for line in text.splitlines() if " pickle: Pool map of a lambda" in line)
    assert line.split()[-6:] == ["-", "-", "-", "-", "-", "cannot"]
    assert text.endswith(
        "\ncannot: pickle saves functions by name: neither multiprocessing nor procframe with "
        "pickle can pass a lambda"
    )
    assert "skipped" not in text
    data = {r["label"]: r for r in report_json([result])["tables"][0]["rows"]}
    assert (data[loky.row.label]["versus"], data[loky.row.label]["multiprocessing"]) == (
        "loky",
        pytest.approx(40_000),
    )
    assert (data[cannot.row.label]["cannot"], data[cannot.row.label]["ratio"]) == (True, None)
    assert data["pickle: Queue vs multiprocessing"]["versus"] == "stdlib"


def test_the_rows_sharing_a_reference_take_turns_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A share of pickle's figure compares runs made at the same moments, not minutes apart."""
    pretend_installed(monkeypatch)
    calls: list[tuple[str, str]] = []
    measure_table(
        SERIALIZER_TABLE, ["forkserver"], 2, lambda row: 2, fake_serializer_run(calls, 1.0)
    )
    for index, (case, _, _) in enumerate(PLAIN_OPERATIONS.values()):
        one_turn = [
            (impl, f"{case}[{serializer}]")
            for serializer in ("pickle", "cloudpickle", "dill")
            for impl in ("procframe", "stdlib")
        ]
        assert calls[12 * index : 12 * (index + 1)] == one_turn * 2
    # a row without a share is measured alone, as in every other table: ABAB
    queue_lambda = [
        ("procframe", "queue_lambda[cloudpickle]"),
        ("multiprocess", "queue_lambda[cloudpickle]"),
    ]
    assert calls[72:76] == queue_lambda * 2


def test_a_missing_peer_or_serializer_skips_its_rows_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_installed(monkeypatch, missing=("loky", "dill"))
    calls: list[tuple[str, str]] = []
    messages: list[str] = []
    result = measure_table(
        SERIALIZER_TABLE,
        ["forkserver"],
        1,
        lambda row: 2,
        fake_serializer_run(calls, 1.0),
        messages.append,
    )
    skipped = {row.row.label: row.skipped for row in result.rows if row.skipped}
    assert skipped.pop("cloudpickle: Pool map of a lambda vs loky") == (
        "loky is not installed: pip install loky (or the bench extra, pip install -e '.[bench]')"
    )
    for label, reason in skipped.items():
        assert label.startswith(("dill:", "pickle:")), label
        assert reason.startswith(("dill is not installed: pip install dill", "pickle saves"))
    assert not any(impl == "loky" or "dill" in case for impl, case in calls)
    assert any("skipped: loky is not installed" in message for message in messages)
    text = format_table(result)
    assert "\nskipped: loky is not installed: pip install loky" in text
    assert "\nskipped: dill is not installed: pip install dill" in text


def test_package_requirements() -> None:
    from procframe.bench.requirements import package_missing

    assert package_missing("json") == ""
    assert package_missing("no_such_package_here") == (
        "no_such_package_here is not installed: pip install no_such_package_here "
        "(or the bench extra, pip install -e '.[bench]')"
    )
    assert {"cloudpickle", "dill", "multiprocess", "loky", "numpy"} <= set(REQUIREMENTS)


def serializer_cases_installed(*packages: str) -> None:
    import importlib.util

    for name in packages:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")


@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "dill"])
def test_harness_runs_plain_data_under_each_serializer(serializer: str) -> None:
    serializer_cases_installed(*(() if serializer == "pickle" else (serializer,)))
    case = f"queue[{serializer}]"
    result = run_harness("procframe", case, "forkserver", 50, timeout=60, env=clean_env())
    assert (result["case"], result["serializer"], result["samples"]) == (case, serializer, 1)
    assert result["median"] > 0
    assert result["multiprocessing_loaded"] is False
    assert result.get("multiprocessing_loaded_by") == ("dill" if serializer == "dill" else None)


@pytest.mark.parametrize(
    ("impl", "case"),
    [
        ("procframe", "queue_lambda[cloudpickle]"),
        ("procframe", "queue_lambda[dill]"),
        ("multiprocess", "queue_lambda[dill]"),
        ("procframe", "pool_map_lambda[cloudpickle]"),
        ("procframe", "pool_map_lambda[dill]"),
        ("loky", "pool_map_lambda[cloudpickle]"),
        ("multiprocess", "pool_map_lambda[cloudpickle]"),
    ],
)
def test_harness_passes_lambdas_with_a_rich_serializer(impl: str, case: str) -> None:
    serializer = case.split("[")[1].rstrip("]")
    serializer_cases_installed(serializer, *(() if impl == "procframe" else (impl,)))
    result = run_harness(impl, case, "forkserver", 30, timeout=60, env=clean_env())
    assert (result["impl"], result["case"], result["iterations"]) == (impl, case, 30)
    assert result["samples"] == 1
    assert 0 < result["min"] <= result["median"]
    assert result.get("serializer") == (serializer if impl == "procframe" else None)


def test_harness_cannot_pass_a_lambda_with_pickle() -> None:
    """What the cannot rows say: the standard library (like procframe with pickle) refuses."""
    with pytest.raises(BenchError, match=r"pickl|local object"):
        run_harness("stdlib", "pool_map_lambda", "fork", 10, timeout=60, env=clean_env())


def test_bench_prints_the_serializers_table() -> None:
    """Its quick rows, on forkserver only (the full table's rows are checked by
    test_the_serializers_table_repeats_plain_data_rows_under_each_serializer and
    test_the_serializers_table_has_lambda_rows_against_the_peers)."""
    done = run_bench("--quick", "--iterations", "20", "--repeat", "1", "--table", "serializers")
    assert done.returncode == 0, done.stderr
    assert (
        "Operations per second under each serializer (Queue, SimpleQueue, Pipe: 256-byte "
        "strings from a child; Pool(2), trivial function; ratio = procframe / the library "
        "after vs; of pickle: procframe over its pickle row; median of 1 run; higher is better)"
    ) in done.stdout
    assert re.search(
        r"^backend\s+serializer: operation vs library\s+procframe\s+versus\s+ratio\s+of pickle"
        r"\s+target$",
        done.stdout,
        re.M,
    )
    rate = r"[\d,.]+\s+[\d,.]+\s+\d+\.\d\d"
    lines = [line for line in done.stdout.splitlines() if line.startswith("forkserver")]
    assert len(lines) == 4
    for operation, target in (("Queue", "2.00"), ("Pool map items, default chunksize", "1.00")):
        label = re.escape(f"{operation} vs multiprocessing")
        assert re.search(
            rf"^forkserver\s+pickle: {label}\s+{rate}\s+-\s+>= {target}\s+(ok|MISS)$",
            done.stdout,
            re.M,
        )
        assert re.search(
            rf"^forkserver\s+cloudpickle: {label}\s+({rate}\s+\d+%\s+>= {target}, >= 95% of "
            r"pickle\s+(ok|MISS)|-\s+-\s+-\s+-\s.*skipped)$",
            done.stdout,
            re.M,
        )


# -- issue 16: the dask table ----------------------------------------------------------

DASK_CASES = ("dask_pool_map", "dask_pool_map_chunked", "dask_apply", "dask_queue")


def test_the_dask_table_has_the_issues_rows_and_targets() -> None:
    rows = {row.case: row for row in DASK_TABLE.rows}
    assert list(rows) == list(DASK_CASES)
    assert {row.backend for row in DASK_TABLE.rows} == {"dask"}
    assert {row.versus for row in DASK_TABLE.rows} == {"dask"}
    assert {row.requires for row in DASK_TABLE.rows} == {("distributed", "procframe_dask")}
    assert (DASK_TABLE.cluster, DASK_TABLE.versus_header, DASK_TABLE.max_repeats) == (
        "dask",
        "Dask",
        3,
    )
    # the issue's 10,000 trivial tasks; its targets: >= 0.9 on rates, <= 1.1 on the latency
    assert rows["dask_pool_map"].iterations == 10_000
    assert rows["dask_pool_map"].label == "Pool.map, chunksize 1 vs client.map + gather"
    for case in ("dask_pool_map", "dask_pool_map_chunked", "dask_queue"):
        assert (DASK_TABLE.unit_of(rows[case]), rows[case].target) == (Unit.PER_SECOND, 0.9)
    assert (DASK_TABLE.unit_of(rows["dask_apply"]), rows["dask_apply"].target) == (
        Unit.SECONDS,
        1.1,
    )
    assert [row.case for row in DASK_TABLE.rows if row.quick] == [
        *("dask_pool_map", "dask_apply", "dask_queue")
    ]


@pytest.mark.parametrize(
    ("unit", "target", "allowed"),
    [
        (Unit.PER_SECOND, 0.9, True),
        (Unit.PER_SECOND, 0.89, False),
        (Unit.SECONDS, 1.11, True),  # 1 / 0.9: the same slack, the other way
        (Unit.SECONDS, 1.12, False),
    ],
)
def test_a_row_of_another_unit_gets_the_same_slack_the_other_way(
    unit: Unit, target: float, allowed: bool
) -> None:
    row = Row("dask", "dask_apply", 1, 1, target, "apply", unit=unit)

    def table() -> Table:
        return Table("t", "T", Unit.PER_SECOND, (row,), loosest_target=0.9)

    if allowed:
        assert table().loosest_of(unit) == pytest.approx(
            0.9 if unit is Unit.PER_SECOND else 1 / 0.9
        )
    else:
        with pytest.raises(ValueError, match="loosest target"):
            table()


def test_the_dask_table_is_measured_only_when_asked() -> None:
    stdlib = ["fork", "spawn", "forkserver"]
    assert "dask" not in chosen_tables(None, quick=False, backends=stdlib)
    assert "dask" not in chosen_tables(None, quick=True, backends=stdlib)
    assert chosen_tables(None, quick=True, backends=["dask"]) == ["dask"]
    assert chosen_tables(None, quick=False, backends=["dask"]) == ["dask"]
    assert chosen_tables(None, quick=False, backends=["fork", "dask"]) == list(TABLES)
    assert chosen_tables(["dask"], quick=True, backends=stdlib) == ["dask"]
    # --backend dask is always a name the bench knows (its rows say what is missing)
    assert select_backends(None, stdlib) == stdlib
    assert select_backends(["dask", "fork"], stdlib) == ["dask", "fork"]
    with pytest.raises(ValueError, match="fork, spawn, forkserver, dask"):
        select_backends(["ray"], stdlib)
    # --table dask alone measures the table on its own backend
    assert table_backends(DASK_TABLE, stdlib, asked=False) == ["dask"]
    assert table_backends(DASK_TABLE, ["dask"], asked=True) == ["dask"]
    assert table_backends(POOL, stdlib, asked=False) == stdlib
    assert "dask" in TABLES and TABLES["dask"] is DASK_TABLE


def installed_for_dask(monkeypatch: pytest.MonkeyPatch, missing: tuple[str, ...] = ()) -> None:
    """Make the dask rows' requirements met, whatever this environment holds, but ``missing``
    (its rows are not run: a fake harness answers)."""
    import procframe.bench.requirements as requirements

    for name in ("distributed", "procframe_dask"):
        if name not in missing:
            monkeypatch.setitem(requirements.REQUIREMENTS, name, lambda: "")


def fake_dask_run(calls: list[tuple[str, str, str]], slower: float) -> Any:
    """A harness: Dask does 1,000 operations per second (an apply takes 10 ms); procframe
    ``slower`` times as long."""

    def run(impl: str, case: str, method: str, iterations: int) -> dict[str, Any]:
        calls.append((impl, case, method))
        seconds = 0.01 if case == "dask_apply" else 0.001
        return {
            "median": seconds * (slower if impl == "procframe" else 1.0),
            "multiprocessing_loaded": impl != "procframe",
        }

    return run


@pytest.mark.parametrize(("slower", "verdict"), [(1.1, "ok"), (1.12, "MISS")])
def test_the_dask_table_compares_procframe_with_dask_on_the_dask_backend(
    monkeypatch: pytest.MonkeyPatch, slower: float, verdict: str
) -> None:
    installed_for_dask(monkeypatch)
    calls: list[tuple[str, str, str]] = []
    result = measure_table(DASK_TABLE, ["dask"], 2, lambda row: 3, fake_dask_run(calls, slower))
    # each row alternates procframe with Dask, on the dask backend
    assert (
        calls[:4]
        == [
            ("procframe", "dask_pool_map", "dask"),
            ("dask", "dask_pool_map", "dask"),
        ]
        * 2
    )
    assert {impl for impl, _, _ in calls} == {"procframe", "dask"}
    assert {method for _, _, method in calls} == {"dask"}
    rows = {row.row.case: row for row in result.rows}
    assert rows["dask_pool_map"].ratio == pytest.approx(1 / slower)
    assert rows["dask_apply"].ratio == pytest.approx(slower)
    assert rows["dask_apply"].procframe == pytest.approx(0.01 * slower)
    for row in result.rows:  # 1/1.1 = 0.909 shows as 0.91 (ok), 1/1.12 as 0.89 (MISS)
        assert row.ok is (verdict == "ok"), row.row.label
    text = format_table(result)
    lines = text.splitlines()
    assert lines[0].startswith("procframe's dask backend against Dask's own API, on one ")
    assert lines[0].endswith(
        "ratio = procframe / Dask; median of 2 runs; higher is better for rates, lower for "
        "durations)"
    )
    assert lines[1].split() == [
        *("backend", "operation", "vs", "Dask's", "API", "procframe", "Dask", "ratio", "target")
    ]
    (apply,) = (line for line in lines if "apply latency" in line)
    assert apply.split()[-4:] == [f"{slower:.2f}", "<=", "1.10", verdict]
    assert re.search(r"\s10\.0 ms\s", apply)
    (queue,) = (line for line in lines if "Queue vs distributed.Queue" in line)
    assert queue.split()[-4:] == [f"{1 / slower:.2f}", ">=", "0.90", verdict]
    (data,) = (r for r in report_json([result])["tables"][0]["rows"] if r["case"] == "dask_queue")
    assert (data["versus"], data["multiprocessing"]) == ("dask", pytest.approx(1000))


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (
            "distributed",
            "distributed is not installed: pip install distributed (or the dask backend, "
            "python -m pip install ./plugins/procframe-dask, which depends on it)",
        ),
        (
            "procframe_dask",
            "procframe_dask (procframe's dask backend) is not installed: "
            "python -m pip install ./plugins/procframe-dask, from a checkout of procframe",
        ),
    ],
)
def test_without_distributed_or_the_plugin_the_dask_rows_are_skipped_naming_it(
    monkeypatch: pytest.MonkeyPatch, missing: str, message: str
) -> None:
    import importlib.util

    installed_for_dask(monkeypatch, missing=(missing,))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else find_spec(name)
    )
    calls: list[tuple[str, str, str]] = []
    messages: list[str] = []
    result = measure_table(
        DASK_TABLE, ["dask"], 1, lambda row: 2, fake_dask_run(calls, 1.0), messages.append
    )
    assert calls == []
    assert {row.skipped for row in result.rows} == {message}
    assert f"\nskipped: {message}" in format_table(result)
    assert any(m.endswith(f"skipped: {message}") for m in messages)


class FakeCluster:
    """A :class:`~procframe.bench.cluster.HostedCluster` that records its life."""

    started: list[FakeCluster] = []

    def __init__(self, env: Any, progress: Any) -> None:
        self.events: list[str] = []
        self.env = env

    def __enter__(self) -> FakeCluster:
        FakeCluster.started.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.events.append("closed")

    def address(self) -> str:
        if "started" not in self.events:
            self.events.append("started")
        return "tcp://127.0.0.1:8786"


def test_the_runs_of_a_dask_table_share_one_cluster_started_by_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from procframe.bench.cluster import on_cluster

    FakeCluster.started.clear()
    runs: list[tuple[str, dict[str, str], float]] = []

    def run(impl: str, case: str, method: str, iterations: int, **options: Any) -> dict[str, Any]:
        runs.append((impl, dict(options["env"]), options["timeout"]))
        return {"median": 0.001, "multiprocessing_loaded": impl != "procframe"}

    env = {"PYTHONPYCACHEPREFIX": "cache", "PROCFRAME_DASK_ADDRESS": "tcp://elsewhere:1"}
    with on_cluster("dask", env, 30.0, run=run, cluster=FakeCluster) as harness:
        (cluster,) = FakeCluster.started
        assert cluster.events == []  # not started before a run needs it
        installed_for_dask(monkeypatch)
        measure_table(DASK_TABLE, ["dask"], 2, lambda row: 2, harness)
        assert cluster.events == ["started"]
    assert cluster.events == ["started", "closed"]
    assert len(runs) == 2 * 2 * len(DASK_TABLE.rows)
    for _, run_env, timeout in runs:
        assert run_env == {
            "PYTHONPYCACHEPREFIX": "cache",
            "PROCFRAME_DASK_ADDRESS": cluster.address(),
        }
        assert timeout == 30.0
    # a table without a cluster runs with the environment as it is; a cluster never started
    # is still closed (a table whose rows were all skipped)
    with on_cluster("", env, 30.0, run=run, cluster=FakeCluster) as harness:
        harness("procframe", "queue", "fork", 2)
    assert runs[-1][1] == env and len(FakeCluster.started) == 1
    with on_cluster("dask", env, 30.0, run=run, cluster=FakeCluster):
        pass
    assert FakeCluster.started[-1].events == ["closed"]
    with pytest.raises(ValueError, match="unknown cluster 'ray'"), on_cluster("ray", env, 1.0):
        pass


def bench_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[list[str], str]:
    """Run the command in this process, each table "measured" by a fake that records it;
    the keys of the tables measured and what the command wrote on stderr."""
    import argparse

    import procframe.bench.command as command

    measured: list[str] = []

    def fake_measure(table: Table, backends: Any, *rest: Any, **options: Any) -> TableResult:
        measured.append(table.key)
        return TableResult(table, 1, ())

    monkeypatch.setattr(command, "measure_table", fake_measure)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(list(args))) == 0
    return measured, capsys.readouterr().err


def test_the_command_measures_the_dask_table_when_asked_and_says_how(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    measured, err = bench_in_process(monkeypatch, capsys, "--quick")
    assert "dask" not in measured and "start_join" in measured
    assert f"{DASK_TABLE.title}: not measured (--backend dask asks)" in err
    assert bench_in_process(monkeypatch, capsys, "--quick", "--backend", "dask") == (["dask"], "")
    assert bench_in_process(monkeypatch, capsys, "--table", "dask")[0] == ["dask"]
    measured, _ = bench_in_process(monkeypatch, capsys, "--backend", "fork", "dask")
    assert measured == list(TABLES)


def test_bench_help_names_the_dask_backend() -> None:
    help_text = " ".join(run_bench("--help").stdout.split())
    assert "dask: procframe's dask backend against Dask's own API on one local cluster" in help_text


def test_bench_skips_the_dask_rows_without_starting_a_cluster_when_the_plugin_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    import procframe.bench.cluster as cluster
    import procframe.bench.command as command
    import procframe.bench.requirements as requirements

    # Dask installed (whether or not it is here), the plugin not:
    monkeypatch.setitem(requirements.REQUIREMENTS, requirements.DISTRIBUTED, lambda: "")
    monkeypatch.setitem(requirements.REQUIREMENTS, "procframe_dask", lambda: "no plugin here")

    def refuse(*args: Any) -> Any:
        raise AssertionError("a cluster was started for rows that are all skipped")

    monkeypatch.setattr(cluster.HostedCluster, "_start", refuse)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["--backend", "dask", "--json"])) == 0
    (table,) = json.loads(capsys.readouterr().out)["tables"]
    assert table["key"] == "dask"
    assert {row["skipped"] for row in table["rows"]} == {"no plugin here"}


# -- the dask table for real: a LocalCluster hosted by the harness --------------------------


def dask_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        pytest.skip("distributed is not installed")


def dask_backend_has_pool_and_queue() -> None:
    """Skip unless the dask backend makes its own Pool and Queue (the issue16-pool and
    issue16-prims parts): procframe's default ones cannot cross to a cluster."""
    dask_installed()
    from procframe.bench.requirements import dask_backend_missing

    if dask_backend_missing():
        pytest.skip(dask_backend_missing())
    from procframe_dask import plugin

    if not (hasattr(plugin, "procframe_make_pool") and hasattr(plugin, "procframe_make_queue")):
        pytest.skip("the dask backend does not make its own Pool and Queue yet")


@pytest.fixture(scope="module")
def dask_cluster() -> Any:
    """One hosted LocalCluster for this module's real dask runs, closed after them."""
    dask_installed()
    from procframe.bench.cluster import HostedCluster

    with HostedCluster(clean_env(), start_timeout=90) as hosted:
        hosted.address()
        yield hosted
    assert hosted.process is None


def test_the_hosted_cluster_starts_once_and_is_gone_after_close() -> None:
    dask_installed()
    from procframe.bench.cluster import HostedCluster

    with HostedCluster(clean_env(), start_timeout=90) as hosted:
        address = hosted.address()
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", address)
        assert hosted.address() == address
        process = hosted.process
        assert process is not None and process.poll() is None
    assert process.poll() is not None
    assert gone(process.pid)


@pytest.mark.parametrize("case", DASK_CASES)
def test_harness_runs_the_dask_cases_with_dasks_own_api(dask_cluster: Any, case: str) -> None:
    env = {**clean_env(), "PROCFRAME_DASK_ADDRESS": dask_cluster.address()}
    result = run_harness("dask", case, "dask", 12, timeout=90, env=env)
    assert (result["impl"], result["case"], result["iterations"]) == ("dask", case, 12)
    assert 0 < result["min"] <= result["median"]


@pytest.mark.parametrize("case", DASK_CASES)
def test_harness_runs_the_dask_cases_on_procframes_dask_backend(
    dask_cluster: Any, case: str
) -> None:
    dask_backend_has_pool_and_queue()
    env = {**clean_env(), "PROCFRAME_DASK_ADDRESS": dask_cluster.address()}
    result = run_harness("procframe", case, "dask", 12, timeout=90, env=env)
    assert (result["impl"], result["case"], result["iterations"]) == ("procframe", case, 12)
    assert 0 < result["min"] <= result["median"]
    # distributed loads the standard library's multiprocessing: no doing of procframe's
    assert result["multiprocessing_loaded"] is False
    assert result["multiprocessing_loaded_by"] == "distributed"


def test_the_dask_cases_refuse_to_run_without_a_cluster() -> None:
    dask_installed()
    with pytest.raises(BenchError, match="PROCFRAME_DASK_ADDRESS"):
        run_harness("dask", "dask_apply", "dask", 2, timeout=60, env=clean_env())


def test_bench_prints_the_dask_table() -> None:
    dask_backend_has_pool_and_queue()
    done = run_bench("--quick", "--backend", "dask", "--iterations", "10", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    assert "procframe's dask backend against Dask's own API, on one LocalCluster" in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("dask ")]
    assert len(lines) == 3
    assert all(re.search(r"\s\d+\.\d\d\s+(>= 0\.90|<= 1\.10)\s+(ok|MISS)$", x) for x in lines)

"""Run the harness in fresh interpreters, alternating procframe and the standard library."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from procframe.bench.requirements import missing
from procframe.bench.tables import Row, Table, Unit

IMPLEMENTATIONS = ("procframe", "stdlib")
DEFAULT_TIMEOUT = 120.0
"""Seconds one harness run may take."""


class BenchError(RuntimeError):
    """A harness run failed or timed out."""


RunHarness = Callable[[str, str, str, int], dict[str, Any]]
"""``(impl, case, method, iterations) -> the harness's JSON result``."""


_HARNESS_PLACES = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "harness.py",  # an editable install
    Path("benchmarks") / "harness.py",  # run from a source checkout
)


def harness_path() -> Path:
    """The harness script of the source tree (it is not in the package: it imports
    multiprocessing); ``BenchError`` if neither place has it."""
    for place in _HARNESS_PLACES:
        if place.is_file():
            return place.resolve()
    raise BenchError(
        "the benchmark harness benchmarks/harness.py is not here: run the benchmark from a "
        "source checkout of procframe (its root directory, or after pip install -e .)"
    )


def harness_command(impl: str, case: str, method: str, iterations: int) -> list[str]:
    """The command line of one harness run."""
    return [
        sys.executable,
        str(harness_path()),
        "--impl",
        impl,
        "--case",
        case,
        "--method",
        method,
        "--iterations",
        str(iterations),
    ]


def harness_environment(bytecode_cache: str) -> dict[str, str]:
    """This environment, with bytecode cached in ``bytecode_cache`` for both implementations.

    Without a cache (``PYTHONDONTWRITEBYTECODE``) every spawned child would
    compile procframe from source while the standard library's bytecode was
    compiled at install time, and the benchmark would measure the compiler.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = bytecode_cache
    return env


def run_in_own_group(
    command: Sequence[str], timeout: float, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(command)`` in a process group of its own, which is killed if the run
    times out or is interrupted.

    Killing the harness alone would leave its children behind: the standard
    library's pool workers, for one, never notice that their pool's process
    died.  ``TimeoutExpired`` carries what the run wrote on stderr.
    """
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from None
        except BaseException:
            kill_group(process.pid)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` that is still there."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_harness(
    impl: str,
    case: str,
    method: str,
    iterations: int,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run the harness once in a fresh interpreter and return its JSON result."""
    command = harness_command(impl, case, method, iterations)
    what = f"{impl} {case} --method {method}"
    try:
        done = run_in_own_group(command, timeout, env)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"benchmark run ({what}) timed out after {timeout:g} s{_stderr_of(exc.stderr)}"
        ) from exc
    if done.returncode != 0:
        raise BenchError(
            f"benchmark run ({what}) failed with exit code {done.returncode}: "
            f"{' '.join(command)}{_stderr_of(done.stderr)}"
        )
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
        float(result["median"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(
            f"benchmark run ({what}) printed no result: {done.stdout!r}{_stderr_of(done.stderr)}"
        ) from exc
    return result


def _stderr_of(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    stderr = (stderr or "").strip()
    return f"\n--- its stderr ---\n{stderr}" if stderr else ""


@dataclass(frozen=True)
class RowResult:
    """A row measured on both implementations: per-run values, in its table's ``unit``.

    A row the machine cannot measure (:attr:`Row.requires`) has no runs and says why in
    ``skipped``: its values are NaN and it has no verdict.
    """

    unit: Unit
    row: Row
    iterations: int
    procframe_runs: tuple[float, ...]
    stdlib_runs: tuple[float, ...]
    """The runs of the implementation procframe is compared with (:attr:`Row.versus`)."""
    skipped: str = ""
    """Why the row was not measured (its ``cannot``, or what the machine misses); empty if it
    was."""
    reference: float | None = None
    """procframe's value on the row's ``share_of`` row, in the same run."""
    procframe_first_items: tuple[float, ...] = ()
    """Per run, the seconds procframe took to deliver the first item, where the case says."""
    stdlib_first_items: tuple[float, ...] = ()

    @property
    def procframe(self) -> float:
        """procframe's value: the median of its runs."""
        return statistics.median(self.procframe_runs) if self.procframe_runs else math.nan

    @property
    def stdlib(self) -> float:
        """The standard library's value: the median of its runs."""
        return statistics.median(self.stdlib_runs) if self.stdlib_runs else math.nan

    @property
    def ratio(self) -> float:
        """procframe / multiprocessing, in the table's unit (which says which way is better)."""
        return self.procframe / self.stdlib

    @property
    def share(self) -> float | None:
        """procframe's value over its reference row's (:attr:`Row.share_of`); None without."""
        if self.reference is None or not self.row.share_of:
            return None
        return self.procframe / self.reference

    @property
    def ok(self) -> bool | None:
        """Whether the ratio, to the two decimals printed, meets the target, procframe's
        value its limit, and its share of the reference row the least share; None without
        any of them, or for a skipped row.  A share whose reference was not measured is
        not met."""
        row = self.row
        if self.skipped or (row.target is None and row.limit is None and row.min_share is None):
            return None
        ratio_ok = row.target is None or self.unit.meets(self.ratio, row.target)
        limit_ok = row.limit is None or self.unit.meets(self.procframe, row.limit)
        return ratio_ok and limit_ok and self.share_ok

    @property
    def share_ok(self) -> bool:
        """Whether the share, to the whole percent printed, is at least the least share."""
        if self.row.min_share is None:
            return True
        share = self.share
        return share is not None and round(share, 2) >= self.row.min_share

    @property
    def first_items(self) -> tuple[float | None, float | None]:
        """The median seconds to the first item, procframe's and the standard library's."""
        return (
            statistics.median(self.procframe_first_items) if self.procframe_first_items else None,
            statistics.median(self.stdlib_first_items) if self.stdlib_first_items else None,
        )


@dataclass(frozen=True)
class TableResult:
    """A table's measured rows."""

    table: Table
    repeats: int
    rows: tuple[RowResult, ...]


def measure_row(
    table: Table, row: Row, repeats: int, iterations: int, run: RunHarness
) -> RowResult:
    """Measure ``row`` ``repeats`` times on procframe and on the implementation it is compared
    with (:attr:`Row.versus`, the standard library by default), alternating them (ABAB...)."""
    (result,) = measure_rows(table, [(row, iterations)], repeats, run)
    return result


def measure_rows(
    table: Table, rows: Sequence[tuple[Row, int]], repeats: int, run: RunHarness
) -> list[RowResult]:
    """Measure each ``(row, iterations)`` of ``rows`` as :func:`measure_row` does, the rows
    taking turns within each repeat (row 1's two runs, row 2's, ..., then row 1's again), so
    that a change of the machine's load weighs on all of them alike."""
    runs: list[dict[str, list[float]]] = [{side: [] for side in IMPLEMENTATIONS} for _ in rows]
    first_items: list[dict[str, list[float]]] = [
        {side: [] for side in IMPLEMENTATIONS} for _ in rows
    ]
    for _ in range(repeats):
        for (row, iterations), row_runs, row_first_items in zip(
            rows, runs, first_items, strict=True
        ):
            unit = table.unit_of(row)
            for side, impl in zip(IMPLEMENTATIONS, ("procframe", row.versus), strict=True):
                result = run(impl, row.case, row.backend, iterations)
                if impl == "procframe" and result.get("multiprocessing_loaded"):
                    raise BenchError(
                        f"procframe's run of {row.case} on {row.backend} imported the standard "
                        "library's multiprocessing: procframe must never load it"
                    )
                row_runs[side].append(unit.from_seconds(float(result["median"])))
                if "first_item" in result:
                    row_first_items[side].append(float(result["first_item"]))
    return [
        RowResult(
            table.unit_of(row),
            row,
            iterations,
            tuple(row_runs["procframe"]),
            tuple(row_runs["stdlib"]),
            procframe_first_items=tuple(row_first_items["procframe"]),
            stdlib_first_items=tuple(row_first_items["stdlib"]),
        )
        for (row, iterations), row_runs, row_first_items in zip(
            rows, runs, first_items, strict=True
        )
    ]


def with_references(results: Sequence[RowResult]) -> tuple[RowResult, ...]:
    """``results``, each row with a ``share_of`` given its reference row's procframe value
    (a reference that was skipped or not measured gives none)."""
    values = {
        (result.row.backend, result.row.label): result.procframe
        for result in results
        if not result.skipped
    }
    return tuple(
        replace(result, reference=values.get((result.row.backend, result.row.share_of)))
        if result.row.share_of
        else result
        for result in results
    )


def measure_table(
    table: Table,
    backends: Sequence[str],
    repeats: int,
    iterations: Callable[[Row], int],
    run: RunHarness,
    progress: Callable[[str], None] | None = None,
    quick: bool = False,
) -> TableResult:
    """Measure the rows of ``table`` whose backend is in ``backends`` (only those of
    ``--quick`` if ``quick``); a row the machine cannot measure is skipped, with why, and a row
    that no implementation can run (:attr:`Row.cannot`) is never measured.

    A table that ``interleaves_shares`` measures each reference row together with the rows
    that are bounded by a share of it (:func:`measure_rows`).
    """
    results: dict[int, RowResult] = {}
    batches: dict[tuple[str, str], list[tuple[int, Row, int]]] = {}
    for index, row in enumerate(table.rows):
        if row.backend not in backends or (quick and not row.quick):
            continue
        count = iterations(row)
        what = f"{row.backend} {row.label}".rstrip()
        reason = row.cannot or missing(row.requires)
        if reason:
            if progress is not None:
                kind = "cannot" if row.cannot else "skipped"
                progress(f"{table.title}: {what}, {kind}: {reason}")
            results[index] = RowResult(table.unit_of(row), row, count, (), (), skipped=reason)
            continue
        together = table.interleaves_shares and (row.share_of or row.label)
        batches.setdefault((row.backend, together or str(index)), []).append((index, row, count))
    for batch in batches.values():
        for _, row, count in batch:
            if progress is not None:
                what = f"{row.backend} {row.label}".rstrip()
                progress(f"{table.title}: {what}, {repeats} x 2 runs of {count} iterations")
        measured = measure_rows(table, [(row, count) for _, row, count in batch], repeats, run)
        results.update(zip((index for index, _, _ in batch), measured, strict=True))
    return TableResult(table, repeats, with_references([results[i] for i in sorted(results)]))

"""The benchmark's output: aligned text tables, or one JSON document."""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from typing import Any

from procframe.bench.runner import RowResult, TableResult
from procframe.bench.text import align

HEADER = ("backend", "procframe", "multiprocessing", "ratio", "target", "")
ALIGN = "<>>>><"
LEGEND = "ratio = procframe / multiprocessing; MISS: the ratio is above its target"


def format_duration(seconds: float) -> str:
    """``seconds`` with three significant digits in a readable unit: ``1.62 ms``, ``30.1 ms``."""
    if seconds >= 1:
        value, unit = seconds, "s"
    elif seconds >= 1e-3:
        value, unit = seconds * 1e3, "ms"
    else:
        value, unit = seconds * 1e6, "us"
    decimals = min(2, max(0, 2 - math.floor(math.log10(value)))) if value > 0 else 2
    return f"{value:.{decimals}f} {unit}"


def verdict(result: RowResult) -> str:
    """``ok`` if the row meets its target, else ``MISS``."""
    return "ok" if result.ok else "MISS"


def row_cells(result: RowResult) -> tuple[str, ...]:
    """The text cells of one measured row."""
    return (
        result.row.backend,
        format_duration(result.procframe),
        format_duration(result.stdlib),
        f"{result.ratio:.2f}",
        f"<= {result.row.target:.2f}",
        verdict(result),
    )


def format_table(result: TableResult) -> str:
    """One table as text: a title, a header and a line per backend."""
    plural = "1 run" if result.repeats == 1 else f"{result.repeats} runs"
    title = f"{result.table.title} (median of {plural}; lower is better)"
    if not result.rows:
        return f"{title}\n(no backend to compare)"
    lines = align([HEADER, *(row_cells(row) for row in result.rows)], ALIGN)
    return "\n".join([title, *lines])


def format_report(results: Sequence[TableResult]) -> str:
    """Every table, then the legend."""
    return "\n\n".join([*(format_table(result) for result in results), LEGEND])


def row_json(result: RowResult) -> dict[str, Any]:
    """One measured row as plain data (seconds per operation)."""
    return {
        "backend": result.row.backend,
        "iterations": result.iterations,
        "procframe": result.procframe,
        "multiprocessing": result.stdlib,
        "ratio": result.ratio,
        "target": result.row.target,
        "ok": result.ok,
        "procframe_runs": list(result.procframe_runs),
        "multiprocessing_runs": list(result.stdlib_runs),
    }


def report_json(results: Sequence[TableResult]) -> dict[str, Any]:
    """Every table as plain data, with the interpreter that ran them."""
    from procframe import __version__

    return {
        "python": platform.python_version(),
        "procframe": __version__,
        "unit": "seconds",
        "tables": [
            {
                "key": result.table.key,
                "title": result.table.title,
                "repeats": result.repeats,
                "rows": [row_json(row) for row in result.rows],
            }
            for result in results
        ],
    }

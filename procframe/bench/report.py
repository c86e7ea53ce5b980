"""The benchmark's output: aligned text tables, or one JSON document."""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from typing import Any

from procframe.bench.runner import RowResult, TableResult
from procframe.bench.tables import Table, Unit
from procframe.bench.text import align

LEGEND = (
    "ratio = procframe / multiprocessing; MISS: the ratio is on the wrong side of its target; "
    "a second target bounds procframe's own value; target -: a reference row"
)


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


def format_rate(per_second: float) -> str:
    """``per_second`` to three significant digits, thousands separated: ``612,000``."""
    if per_second >= 100:
        return f"{round(per_second, 2 - math.floor(math.log10(per_second))):,.0f}"
    return f"{per_second:.3g}"


def format_value(unit: Unit, value: float) -> str:
    """A measured value in its row's unit."""
    if unit is Unit.TIMES_IDEAL:
        return f"{value:.2f}x"
    return format_rate(value) if unit is Unit.PER_SECOND else format_duration(value)


def format_target(unit: Unit, target: float | None, limit: float | None = None) -> str:
    """``<= 0.80`` for a lower-is-better row, ``>= 2.00`` for a higher-is-better one, then
    the bound of procframe's value if the row has one (``<= 1.00, <= 1.10x``); ``-`` for a
    reference row."""
    relation = ">=" if unit.higher_is_better else "<="
    bounds = [
        *(() if target is None else (f"{relation} {target:.2f}",)),
        *(() if limit is None else (f"{relation} {format_value(unit, limit)}",)),
    ]
    return ", ".join(bounds) or "-"


def verdict(result: RowResult) -> str:
    """``ok`` if the row meets its target, ``MISS`` if not, nothing without a target."""
    return {True: "ok", False: "MISS", None: ""}[result.ok]


def header(result: TableResult) -> tuple[str, ...]:
    """The column names of a table: a label column only if its rows have labels."""
    label = (result.table.label_header,) if result.table.label_header else ()
    return ("backend", *label, "procframe", "multiprocessing", "ratio", "target", "")


def row_cells(result: RowResult, labelled: bool) -> tuple[str, ...]:
    """The text cells of one measured row."""
    return (
        result.row.backend,
        *((result.row.label,) if labelled else ()),
        format_value(result.unit, result.procframe),
        format_value(result.unit, result.stdlib),
        f"{result.ratio:.2f}",
        format_target(result.unit, result.row.target, result.row.limit),
        verdict(result),
    )


UNIT_NAMES = {Unit.PER_SECOND: "rates", Unit.SECONDS: "durations", Unit.TIMES_IDEAL: "x ideal"}


def better_side(table: Table) -> str:
    """``higher is better``; for a table whose rows have units of their own, per unit:
    ``higher is better for rates, lower for durations, x ideal``."""
    better = "higher" if table.unit.higher_is_better else "lower"
    others = [
        unit for unit in dict.fromkeys(map(table.unit_of, table.rows)) if unit is not table.unit
    ]
    if not others:
        return f"{better} is better"
    worse = "lower" if table.unit.higher_is_better else "higher"
    return (
        f"{better} is better for {UNIT_NAMES[table.unit]}, "
        f"{worse} for {', '.join(UNIT_NAMES[unit] for unit in others)}"
    )


def format_title(result: TableResult) -> str:
    """``Title (note; median of 5 runs; higher is better)``."""
    table = result.table
    runs = "1 run" if result.repeats == 1 else f"{result.repeats} runs"
    details = [*((table.note,) if table.note else ()), f"median of {runs}", better_side(table)]
    return f"{table.title} ({'; '.join(details)})"


def format_table(result: TableResult) -> str:
    """One table as text: a title, a header and a line per row."""
    title = format_title(result)
    if not result.rows:
        return f"{title}\n(no backend to compare)"
    labelled = bool(result.table.label_header)
    cells = [header(result), *(row_cells(row, labelled) for row in result.rows)]
    alignment = "<" + "<" * labelled + ">>>><"
    return "\n".join([title, *align(cells, alignment)])


def format_report(results: Sequence[TableResult]) -> str:
    """Every table, then the legend."""
    return "\n\n".join([*(format_table(result) for result in results), LEGEND])


def row_json(result: RowResult) -> dict[str, Any]:
    """One measured row as plain data, in its table's unit."""
    return {
        "backend": result.row.backend,
        "label": result.row.label,
        "case": result.row.case,
        "iterations": result.iterations,
        "procframe": result.procframe,
        "multiprocessing": result.stdlib,
        "ratio": result.ratio,
        "unit": result.unit.value,
        "target": result.row.target,
        "limit": result.row.limit,
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
        "tables": [
            {
                "key": result.table.key,
                "title": result.table.title,
                "note": result.table.note,
                "unit": result.table.unit.value,
                "higher_is_better": result.table.unit.higher_is_better,
                "repeats": result.repeats,
                "rows": [row_json(row) for row in result.rows],
            }
            for result in results
        ],
    }

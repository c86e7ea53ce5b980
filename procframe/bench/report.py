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
    "ratio = procframe / the peer its table names (multiprocessing unless it says otherwise); "
    "MISS: the ratio is on the wrong side of its target; "
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


def format_bytes(count: float) -> str:
    """An amount of memory with three significant digits in GiB or MiB: ``2.13 GiB``."""
    if count >= 1 << 30:
        value, unit = count / (1 << 30), "GiB"
    else:
        value, unit = count / (1 << 20), "MiB"
    decimals = min(2, max(0, 2 - math.floor(math.log10(value)))) if value > 0 else 2
    return f"{value:.{decimals}f} {unit}"


def format_value(unit: Unit, value: float) -> str:
    """A measured value in its row's unit."""
    if math.isnan(value):
        return "-"
    if unit is Unit.TIMES_IDEAL:
        return f"{value:.2f}x"
    if unit is Unit.BYTES:
        return format_bytes(value)
    return format_rate(value) if unit.higher_is_better else format_duration(value)


def format_target(
    unit: Unit,
    target: float | None,
    limit: float | None = None,
    min_share: float | None = None,
    share_header: str = "",
) -> str:
    """``<= 0.80`` for a lower-is-better row, ``>= 2.00`` for a higher-is-better one, then
    the bound of procframe's value if the row has one (``<= 1.00, <= 1.10x``) and its least
    share of the reference row (``>= 3.00, >= 40% of memcpy``); ``-`` for a reference row."""
    relation = ">=" if unit.higher_is_better else "<="
    bounds = [
        *(() if target is None else (f"{relation} {target:.2f}",)),
        *(() if limit is None else (f"{relation} {format_value(unit, limit)}",)),
        *(() if min_share is None else (f">= {min_share:.0%} {share_header}".rstrip(),)),
    ]
    return ", ".join(bounds) or "-"


def verdict(result: RowResult) -> str:
    """``ok`` if the row meets its targets, ``MISS`` if not, nothing without a target,
    ``skipped`` for a row not measured, ``cannot`` for a row no implementation can run."""
    if result.skipped:
        return "cannot" if result.row.cannot else "skipped"
    return {True: "ok", False: "MISS", None: ""}[result.ok]


def share_column(table: Table) -> str:
    """The header of the table's column of shares of reference rows; ``""`` if it has none."""
    if not any(row.min_share is not None for row in table.rows):
        return ""
    return table.share_header or "share"


def header(result: TableResult) -> tuple[str, ...]:
    """The column names of a table: a label column only if its rows have labels, a share
    column only if they have shares."""
    table = result.table
    label = (table.label_header,) if table.label_header else ()
    share = (share_column(table),) if share_column(table) else ()
    return ("backend", *label, "procframe", table.versus_header, "ratio", *share, "target", "")


def format_share(result: RowResult) -> str:
    """procframe's share of its reference row, ``41%``; ``-`` without one."""
    share = result.share
    return "-" if share is None or math.isnan(share) else f"{share:.0%}"


def row_cells(result: RowResult, labelled: bool, shares: str = "") -> tuple[str, ...]:
    """The text cells of one measured row; ``shares`` is the header of the share column of
    its table, if it has one."""
    row = result.row
    return (
        row.backend,
        *((row.label,) if labelled else ()),
        format_value(result.unit, result.procframe),
        format_value(result.unit, result.stdlib),
        "-" if result.skipped else f"{result.ratio:.2f}",
        *((format_share(result),) if shares else ()),
        format_target(result.unit, row.target, row.limit, row.min_share, shares),
        verdict(result),
    )


UNIT_NAMES = {
    Unit.PER_SECOND: "rates",
    Unit.SECONDS: "durations",
    Unit.TIMES_IDEAL: "x ideal",
    Unit.MEGABYTES_PER_SECOND: "MB/s",
    Unit.BYTES: "memory",
}


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
    """One table as text: a title, a header, a line per row, then why rows were skipped."""
    title = format_title(result)
    if not result.rows:
        return f"{title}\n(no backend to compare)"
    labelled = bool(result.table.label_header)
    shares = share_column(result.table)
    cells = [header(result), *(row_cells(row, labelled, shares) for row in result.rows)]
    alignment = "<" + "<" * labelled + ">>>" + ">" * bool(shares) + "><"
    reasons = dict.fromkeys(
        f"{'cannot' if row.row.cannot else 'skipped'}: {row.skipped}"
        for row in result.rows
        if row.skipped
    )
    return "\n".join([title, *align(cells, alignment), *reasons])


def format_report(results: Sequence[TableResult]) -> str:
    """Every table, then the legend."""
    return "\n\n".join([*(format_table(result) for result in results), LEGEND])


def number(value: float | None) -> float | None:
    """``value`` for JSON: None for a value not measured (NaN)."""
    return None if value is None or math.isnan(value) else value


def row_json(result: RowResult) -> dict[str, Any]:
    """One measured row as plain data, in its table's unit (None for what a skipped row
    did not measure); the ``multiprocessing`` figures are those of the implementation named
    by ``versus`` (``stdlib``, or a peer: ``multiprocess``, ``loky``)."""
    first_items = result.first_items
    return {
        "backend": result.row.backend,
        "label": result.row.label,
        "case": result.row.case,
        "versus": result.row.versus,
        "iterations": result.iterations,
        "procframe": number(result.procframe),
        "multiprocessing": number(result.stdlib),
        "ratio": number(result.ratio),
        "unit": result.unit.value,
        "target": result.row.target,
        "limit": result.row.limit,
        "share_of": result.row.share_of or None,
        "share": number(result.share),
        "min_share": result.row.min_share,
        "ok": result.ok,
        "skipped": result.skipped or None,
        "cannot": bool(result.row.cannot),
        "procframe_runs": list(result.procframe_runs),
        "multiprocessing_runs": list(result.stdlib_runs),
        "procframe_first_item_seconds": first_items[0],
        "multiprocessing_first_item_seconds": first_items[1],
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

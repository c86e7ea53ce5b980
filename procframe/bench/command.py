"""The ``bench`` subcommand: options, the choice of backends, the run and its output."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence

from procframe.bench import report
from procframe.bench.cluster import on_cluster
from procframe.bench.runner import (
    DEFAULT_TIMEOUT,
    BenchError,
    TableResult,
    harness_environment,
    measure_table,
)
from procframe.bench.tables import CLUSTER_BACKENDS, PEERS, STDLIB_METHODS, TABLES, Row, Table

REPEATS = 5
QUICK_REPEATS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m procframe bench``."""
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPEATS} repeats of fewer iterations"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"runs per implementation and backend (default {REPEATS}, quick {QUICK_REPEATS}; "
        + "; ".join(
            f"{key} at most {table.max_repeats}"
            for key, table in TABLES.items()
            if table.max_repeats is not None
        )
        + ")",
    )
    parser.add_argument(
        "--iterations", type=int, metavar="K", help="iterations per run, for every row"
    )
    parser.add_argument(
        "--backend",
        action="extend",
        nargs="+",
        metavar="NAME",
        dest="backends",
        help=f"backends to compare (default: those of {', '.join(STDLIB_METHODS)} available; "
        + "; ".join(
            f"{key} only {table.default_backend} (or the first)"
            if table.default_backend
            else f"{key} only the first"
            + ("" if table.backend_limit == 1 else f" {table.backend_limit}")
            for key, table in TABLES.items()
            if table.backend_limit is not None
        )
        + "; "
        + "; ".join(
            f"{name}: procframe's {name} backend against {PEERS[name]}'s own API on one local "
            f"cluster, the {name} table only, measured only when named here or by --table"
            for name in CLUSTER_BACKENDS
        )
        + ")",
    )
    parser.add_argument(
        "--table",
        action="extend",
        nargs="+",
        choices=list(TABLES),
        dest="tables",
        help="tables to measure (default: those with rows on the backends measured, so "
        + "not dask unless --backend names it; with --quick, all but "
        + ", ".join(key for key, table in TABLES.items() if not table.quick)
        + ")",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"limit of one harness run (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def comparable_backends() -> list[str]:
    """procframe's available backends that the standard library also has."""
    from procframe._core.registry import available_backends

    available = set(available_backends())
    return [name for name in STDLIB_METHODS if name in available]


def select_backends(
    asked: Sequence[str] | None,
    comparable: Sequence[str],
    on_request: Sequence[str] = CLUSTER_BACKENDS,
) -> list[str]:
    """The backends to measure: those ``asked`` for, else the ``comparable`` ones; raise
    ``ValueError`` for one that cannot be compared.  A backend ``on_request`` (a cluster's,
    compared with the cluster's own API) is measured only when asked for: its rows say what
    it lacks, if anything."""
    if not asked:
        return list(comparable)
    known = [*comparable, *(name for name in on_request if name not in comparable)]
    for name in asked:
        if name not in known:
            raise ValueError(
                f"backend {name!r} cannot be compared with the standard library here; "
                f"choose from: {', '.join(known) or 'none'}"
            )
    return list(dict.fromkeys(asked))


def row_backends(table: Table) -> list[str]:
    """The backends ``table`` has rows on, in the order of its rows."""
    return list(dict.fromkeys(row.backend for row in table.rows))


def chosen_tables(
    asked: Sequence[str] | None, quick: bool, backends: Sequence[str] | None = None
) -> list[str]:
    """The keys of the tables to measure: those ``asked`` for, or else every table (but,
    in a quick run, those that are not quick) with rows on one of ``backends``, if given."""
    if asked:
        return list(dict.fromkeys(asked))
    return [
        key
        for key, table in TABLES.items()
        if (table.quick or not quick)
        and (backends is None or any(name in backends for name in row_backends(table)))
    ]


def table_backends(table: Table, backends: list[str], asked: bool) -> list[str]:
    """The backends ``table`` is measured on: all of ``backends`` if they were ``asked``
    for (``--backend``), else its ``default_backend`` first (if it is one of them), then the
    others, up to its ``backend_limit``.  A table named by ``--table`` that has rows on none
    of the default ``backends`` (the dask table) is measured on its own."""
    if not asked and not any(name in backends for name in row_backends(table)):
        return row_backends(table)
    if asked or table.backend_limit is None:
        return backends
    preferred = [name for name in backends if name == table.default_backend]
    return [*preferred, *(name for name in backends if name not in preferred)][
        : table.backend_limit
    ]


def table_repeats(table: Table, asked: int | None, quick: bool) -> int:
    """Runs per implementation for ``table``: ``--repeat`` if given, else the default of a
    run (quick or not), at most the table's ``max_repeats``."""
    if asked is not None:
        return asked
    default = QUICK_REPEATS if quick else REPEATS
    return min(default, table.max_repeats or default)


def run(args: argparse.Namespace) -> int:
    """Measure the chosen tables and print them; 0 even when a row misses its target."""
    for option, value in (("--repeat", args.repeat), ("--iterations", args.iterations)):
        if value is not None and value < 1:
            print(f"procframe bench: error: {option} must be at least 1", file=sys.stderr)
            return 2
    try:
        backends = select_backends(args.backends, comparable_backends())
    except ValueError as exc:
        print(f"procframe bench: error: {exc}", file=sys.stderr)
        return 2

    def iterations(row: Row) -> int:
        if args.iterations is not None:
            return int(args.iterations)
        return row.quick_iterations if args.quick else row.iterations

    def progress(message: str) -> None:
        print(f"procframe bench: {message}", file=sys.stderr, flush=True)

    results: list[TableResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="procframe-bench-") as cache:
            env = harness_environment(cache)
            keys = chosen_tables(args.tables, args.quick, backends)
            for key in TABLES:
                if key in keys or args.tables:
                    continue
                table = TABLES[key]
                if not any(name in backends for name in row_backends(table)):
                    if table.cluster:
                        names = " ".join(row_backends(table))
                        progress(f"{table.title}: not measured (--backend {names} asks)")
                elif args.quick:
                    progress(f"{table.title}: not in a --quick run (--table {key} asks)")
            for key in keys:
                table = TABLES[key]
                with on_cluster(table.cluster, env, args.timeout, progress) as run_table:
                    results.append(
                        measure_table(
                            table,
                            table_backends(table, backends, bool(args.backends)),
                            table_repeats(table, args.repeat, args.quick),
                            iterations,
                            run_table,
                            progress,
                            quick=args.quick,
                        )
                    )
    except BenchError as exc:
        print(f"procframe bench: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.report_json(results), indent=2))
    else:
        print(report.format_report(results))
    return 0

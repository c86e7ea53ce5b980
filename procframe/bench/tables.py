"""The benchmark's tables: what is measured, on which backends, and the target ratio of each row."""

from __future__ import annotations

from dataclasses import dataclass

STDLIB_METHODS = ("fork", "spawn", "forkserver")
"""The start methods of the standard library: the backends that can be compared."""


@dataclass(frozen=True)
class Row:
    """One backend in a table, measured on procframe and on the standard library."""

    backend: str
    iterations: int
    quick_iterations: int
    target: float
    """The highest acceptable ratio procframe / multiprocessing."""


@dataclass(frozen=True)
class Table:
    """A set of rows measured by one harness case; values are seconds per operation."""

    key: str
    title: str
    case: str
    rows: tuple[Row, ...]

    def row(self, backend: str) -> Row | None:
        """The row of ``backend``, if the table has one."""
        return next((row for row in self.rows if row.backend == backend), None)


START_JOIN = Table(
    key="start_join",
    title="Process start+join latency",
    case="start_join",
    rows=(
        Row("fork", iterations=200, quick_iterations=50, target=1.0),
        Row("spawn", iterations=20, quick_iterations=6, target=0.8),
        Row("forkserver", iterations=100, quick_iterations=30, target=1.0),
    ),
)

TABLES: dict[str, Table] = {table.key: table for table in (START_JOIN,)}
"""Every table, in the order they are printed."""

"""Plain-text columns, shared by the benchmark's tables and ``procframe info``."""

from __future__ import annotations

from collections.abc import Sequence


def align(lines: Sequence[Sequence[str]], alignment: str, gap: str = "   ") -> list[str]:
    """Columns padded to their widest cell, ``<`` left- or ``>`` right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(alignment))]
    return [
        gap.join(
            cell.ljust(width) if how == "<" else cell.rjust(width)
            for cell, width, how in zip(line, widths, alignment, strict=True)
        ).rstrip()
        for line in lines
    ]

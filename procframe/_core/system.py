"""Facts about the machine."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """The number of CPUs in the system (as ``os.cpu_count``); raises if it is unknown."""
    count = os.cpu_count()
    if count is None:
        raise NotImplementedError("cannot determine the number of CPUs")
    return count

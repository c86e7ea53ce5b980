"""Facts about the machine."""

from __future__ import annotations

import os


def package_root() -> str:
    """The directory this procframe is imported from (the parent of the package)."""
    here = os.path.abspath(__file__)  # <root>/procframe/_core/system.py
    return os.path.dirname(os.path.dirname(os.path.dirname(here)))


def cpu_count() -> int:
    """The number of CPUs in the system (as ``os.cpu_count``); raises if it is unknown."""
    count = os.cpu_count()
    if count is None:
        raise NotImplementedError("cannot determine the number of CPUs")
    return count

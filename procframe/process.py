"""``multiprocessing.process``: the process model's public names.

``BaseProcess`` (the class of every process object, to subclass or check
against), ``current_process()``, ``parent_process()``, ``active_children()``
and ``AuthenticationString`` (the bytes type of ``authkey``).
"""

from __future__ import annotations

from procframe._core.process import (
    AuthenticationString,
    BaseProcess,
    active_children,
    current_process,
    parent_process,
)

__all__ = [
    "AuthenticationString",
    "BaseProcess",
    "active_children",
    "current_process",
    "parent_process",
]

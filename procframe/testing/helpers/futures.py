"""Calls the futures suite submits to a ``ProcessPoolExecutor``.

Workers started by spawn or forkserver import these by name, so they live
here rather than in a test module.  Every wait is bounded, so a broken
executor shows as a failed future, not a hang.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import procframe
from procframe.testing.helpers.pool import (
    power,
    raise_value_error,
    sleep_and_return,
    square,
    square_unless,
    wait_for_path,
)

REUSED = (power, raise_value_error, sleep_and_return, square, square_unless, wait_for_path)
"""Calls of the pool suite's that this suite sends too (by these names)."""

PATIENCE = 60.0
"""Seconds a call waits for anything that should happen at once."""


def multiply(a: Any, b: Any) -> Any:
    """``a * b`` (map over two iterables)."""
    return a * b


def pid(_: Any = None) -> int:
    """The pid of the worker running the call."""
    return os.getpid()


def start_method() -> str | None:
    """The backend the worker runs under."""
    return procframe.get_start_method()


def touch(path: str) -> str:
    """Create ``path``: proof that the call ran."""
    Path(path).touch()
    return path


def exit_now(code: int) -> None:
    """End the worker at once with exit code ``code``, in the middle of the call."""
    os._exit(code)


GREETING: Any = None


def set_greeting(value: Any) -> None:
    """An initializer: set :data:`GREETING`."""
    global GREETING
    GREETING = value


def greeting() -> Any:
    """:data:`GREETING` as the worker sees it."""
    return GREETING


def failing_initializer(message: str) -> None:
    """An initializer that raises ``RuntimeError(message)``."""
    raise RuntimeError(message)

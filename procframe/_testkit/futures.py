"""Calls the futures suite submits to a ``ProcessPoolExecutor``.

Workers started by spawn or forkserver import these by name, so they live
here rather than in a test module.  Every wait is bounded, so a broken
executor shows as a failed future, not a hang.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import procframe

PATIENCE = 60.0
"""Seconds a call waits for anything that should happen at once."""


def square(x: int) -> int:
    """``x * x``."""
    return x * x


def power(x: int, exp: int = 2) -> int:
    """``x ** exp``: a call with a keyword argument."""
    return int(x**exp)


def multiply(a: Any, b: Any) -> Any:
    """``a * b`` (map over two iterables)."""
    return a * b


def pid(_: Any = None) -> int:
    """The pid of the worker running the call."""
    return os.getpid()


def start_method() -> str | None:
    """The backend the worker runs under."""
    return procframe.get_start_method()


def wait_for_path(path: str, value: Any) -> Any:
    """Return ``value`` once ``path`` exists (at most :data:`PATIENCE` seconds later)."""
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {PATIENCE}s")
        time.sleep(0.005)
    return value


def sleep_and_return(seconds: float, value: Any) -> Any:
    """Sleep ``seconds``, then return ``value``."""
    time.sleep(seconds)
    return value


def touch(path: str) -> str:
    """Create ``path``: proof that the call ran."""
    Path(path).touch()
    return path


def raise_value_error(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def square_unless(x: int, bad: int) -> int:
    """``x * x``, but ``ValueError`` for ``bad``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x * x


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

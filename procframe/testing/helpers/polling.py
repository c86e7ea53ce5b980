"""Waiting for a condition that another process or thread makes true."""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PATIENCE = 30.0
"""Seconds to wait for what should happen at once (a loaded 2-core machine included)."""


def eventually(predicate: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

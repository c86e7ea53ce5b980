"""Pool task targets for the scheduling tests: tasks that record each run, or block on a path.

Spawned and forkserver workers import this module, so it imports little.
"""

from __future__ import annotations

import os
import time

from procframe.testing.helpers.pool import PATIENCE, die


def record(x: int, log: str) -> int:
    """Append ``x`` to the file ``log`` (one line per run, so repeats show), then return x*x."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{x}\n".encode())
    finally:
        os.close(fd)
    return x * x


def square_or_block(x: int, blocked: int, path: str) -> int:
    """x*x; task ``blocked`` first waits until ``path`` exists (at most PATIENCE seconds)."""
    if x == blocked:
        deadline = time.monotonic() + PATIENCE
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)
    return x * x


def die_after(seconds: float) -> None:
    """Sleep ``seconds`` (so tasks queue up behind this one), then kill this worker."""
    time.sleep(seconds)
    die("sigkill")


def recorded_runs(log: str) -> list[int]:
    """The items ``record`` ran with, in the order they ran."""
    try:
        with open(log) as f:
            return [int(line) for line in f]
    except FileNotFoundError:
        return []

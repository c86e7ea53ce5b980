"""Killing a pool's workers from outside: their initializers, the probe's task, and the killer.

Workers started by spawn or forkserver import what they run by name, so it
lives here.  A worker shows it is ready (its initializer done) by a file
``ready.<pid>`` in a directory the test names; the parent waits for those
before it kills, so that each kill hits a worker that started fine.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.pool import child_pids

PATIENCE = 60.0
"""Seconds to wait for what should happen at once (a replacement worker to be up)."""

# -- in the workers ---------------------------------------------------------------------

_counts: Any = None  # shared array: how many times each task of the probe ran


def mark_ready(directory: str) -> None:
    """Initializer: create ``directory/ready.<pid>``, saying this worker started fine."""
    Path(directory, f"ready.{os.getpid()}").touch()


def exit_at_start(code: int) -> None:
    """Initializer: end the worker at once with exit code ``code`` (it never gets ready)."""
    os._exit(code)


def adopt_counts(counts: Any) -> None:
    """Initializer of the probe's workers: :func:`counted_square` counts its runs in ``counts``."""
    global _counts
    _counts = counts


def counted_square(x: int, seconds: float) -> int:
    """Count one run of task ``x``, sleep ``seconds`` (a short task), return ``x * x``."""
    _counts[x] += 1
    time.sleep(seconds)
    return x * x


# -- in the test -------------------------------------------------------------------------


def ready_workers(directory: Path, before: set[int]) -> set[int]:
    """Pids of this process's children started since ``before`` that are running and ready."""
    return {pid for pid in child_pids() - before if (directory / f"ready.{pid}").exists()}


def wait_ready(directory: Path, before: set[int], count: int, gone: set[int]) -> set[int]:
    """The ``count`` ready workers, none of them in ``gone`` (killed), once they are up."""

    def up() -> bool:
        ready = ready_workers(directory, before) - gone
        return len(ready) == count and not (child_pids() - before) & gone

    if not eventually(up, PATIENCE):
        raise AssertionError(
            f"expected {count} ready workers, found {sorted(ready_workers(directory, before))} "
            f"(killed: {sorted(gone)})"
        )
    return ready_workers(directory, before) - gone


def kill_rounds(directory: Path, before: set[int], count: int, rounds: int) -> set[int]:
    """Kill all ``count`` (idle, ready) workers ``rounds`` times, each time once all their
    replacements are ready; the pids killed."""
    killed: set[int] = set()
    for _ in range(rounds):
        for pid in wait_ready(directory, before, count, killed):
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    wait_ready(directory, before, count, killed)
    return killed


def open_descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


class Killer:
    """A thread that SIGKILLs a random one of ``pids()`` every ``interval`` seconds, at most
    ``limit`` times; it records when it killed which pid."""

    def __init__(self, pids: Callable[[], set[int]], interval: float, limit: int) -> None:
        self.kills: dict[int, float] = {}  # pid -> monotonic time of its kill
        self._pids = pids
        self._interval = interval
        self._limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-killer", daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(PATIENCE)

    def _run(self) -> None:
        chooser = random.Random(1313)
        while len(self.kills) < self._limit and not self._stop.wait(self._interval):
            alive = sorted(self._pids() - set(self.kills))
            if not alive:
                continue
            pid = chooser.choice(alive)
            self.kills[pid] = time.monotonic()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                del self.kills[pid]  # it had ended already: not a kill


def report(line: str) -> None:
    """Print ``line`` of a probe's numbers (seen with ``pytest -s``), flushed at once: a worker
    forked later must not inherit it unwritten."""
    print(f"\n{line}", flush=True)


def summary(latencies: list[float]) -> str:
    """'median X ms, max Y ms' of ``latencies`` (seconds), or 'none'."""
    if not latencies:
        return "none"
    return f"median {statistics.median(latencies) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"

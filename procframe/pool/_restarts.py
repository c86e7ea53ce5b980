"""When a pool replaces a worker that ended unasked, and when it gives up on its workers.

A worker killed from outside (SIGKILL while idle, the OOM killer, an
operator's ``kill``) says nothing about the next one: it is always replaced.
If workers keep ending that way with no task finishing in between (more
than twice the pool's size, plus two), each further replacement waits a
little longer (doubling up to :data:`MAX_DELAY`), so a machine that kills
every worker does not make the pool spin.

The pool gives up (it is broken) only on evidence that no worker can ever
run a task: :data:`FAILED_STARTS` workers in a row that ended *before they
were ready* by themselves (an exit code, or a crash signal such as SIGSEGV),
while no other worker is ready.  That is a child that cannot load what it
runs (the main module, the initializer or its arguments) or an interpreter
that cannot start.  A worker killed by another signal before it was ready
is counted as killed from outside.  (An initializer that raises breaks the
pool at once: the worker reports it.)
"""

from __future__ import annotations

import signal

FIRST_DELAY = 0.01
"""Seconds the first delayed replacement waits; each next one waits twice as long."""
MAX_DELAY = 1.0
"""The longest a replacement waits."""
FORGET_AFTER = 5.0
"""Seconds without a lost worker after which the delays start over."""
FAILED_STARTS = 3
"""Workers in a row that end by themselves before they are ready: the pool is broken."""
CRASH_SIGNALS = frozenset(
    int(s) for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT)
)
"""Signals a process raises on itself when it crashes (the others come from outside)."""


def ended_by_itself(exitcode: int | None) -> bool:
    """True if a process that ended with ``exitcode`` exited or crashed, not killed from outside."""
    if exitcode is None:
        return False
    return exitcode >= 0 or -exitcode in CRASH_SIGNALS


class Restarts:
    """How soon to replace workers that ended unasked, and whether they can start at all."""

    __slots__ = ("_failed_starts", "_last_loss", "_losses", "_processes")

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._losses = 0  # workers lost since a task last ended
        self._last_loss = 0.0
        self._failed_starts = 0  # workers in a row that ended by themselves before ready

    @property
    def failed_starts(self) -> int:
        """Workers in a row that ended by themselves before they were ready."""
        return self._failed_starts

    def progress(self) -> None:
        """A task ended: the workers run, losses so far were bad luck."""
        self._losses = 0
        self._failed_starts = 0

    def worker_ready(self) -> None:
        """A worker was seen ready: workers can start."""
        self._failed_starts = 0

    def lost(self, exitcode: int | None, ready: bool, now: float) -> float:
        """A worker ended unasked, running no task: seconds its replacement waits.

        ``ready``: it had reached its task loop (its initializer done).
        """
        if now - self._last_loss > FORGET_AFTER:
            self._losses = 0
        self._last_loss = now
        self._losses += 1
        if ready:
            self._failed_starts = 0
        elif ended_by_itself(exitcode):
            self._failed_starts += 1
        extra = self._losses - (2 * self._processes + 2)
        if extra <= 0:
            return 0.0
        return float(min(MAX_DELAY, FIRST_DELAY * 2 ** min(extra - 1, 30)))

    def given_up(self, any_worker_ready: bool) -> bool:
        """True if no worker can start: the last ones ended before ready and none is ready."""
        return self._failed_starts >= FAILED_STARTS and not any_worker_ready

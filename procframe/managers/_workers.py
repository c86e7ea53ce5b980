"""The threads that run a manager server's requests: a bounded pool whose blocked jobs step aside.

At most :data:`RUNNING_LIMIT` threads run requests at once, however many
clients are connected (an idle connection costs no thread).  A request may
block for long (``Queue.get``, ``Condition.wait``, a ``Barrier``, or any
method of a registered type): a blocked request must not keep the others from
running, so it *steps aside*, as a Dask task that ``secede()``\\ s: its thread
no longer counts against the limit, and another takes its place.  The server's
own blocking methods step aside as they start to wait (:func:`step_aside`);
any other request that has run for :data:`STALLED_AFTER` seconds while
requests are queued is counted out as well (:meth:`WorkerPool.relieve`).  A
thread whose request stepped aside goes back to the pool when it ends, or
exits if the pool is full.  So threads are bounded by the requests blocked at
once (each a client waiting, as with one thread per connection) plus the limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

RUNNING_LIMIT = 32
"""Threads that run requests at once, besides those whose requests stepped aside."""
STALLED_AFTER = 0.25
"""Seconds after which a request that still runs while others wait is counted out."""
IDLE_EXIT = 10.0
"""Seconds an idle thread waits for work before it exits (if others remain)."""
KEEP_IDLE = 2
"""Threads that stay however long they idle."""

_current = threading.local()
"""``slot``: the :class:`_Slot` of the pool thread running here, if any."""


class _Slot:
    """One thread of a pool: when its current job started, and whether it stepped aside."""

    __slots__ = ("aside", "pool", "started")

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.started: float | None = None
        self.aside = False


def step_aside() -> None:
    """The request running in this thread is about to block: stop counting it against the
    limit of its pool (nothing outside a pool's thread)."""
    slot: _Slot | None = getattr(_current, "slot", None)
    if slot is not None and not slot.aside:
        slot.pool._step_aside(slot)


class WorkerPool:
    """Runs submitted jobs on at most ``limit`` counted threads (see the module)."""

    def __init__(self, limit: int = RUNNING_LIMIT, name: str = "manager-worker") -> None:
        self._limit = limit
        self._name = name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._jobs: deque[Callable[[], object]] = deque()
        self._counted = 0
        """Threads counted against the limit: idle ones, and those whose job did not step aside."""
        self._threads = 0
        self._idle = 0
        """Idle threads not yet woken for a job."""
        self._running: set[_Slot] = set()
        self._stopping = False

    # -- for the server ----------------------------------------------------------

    def submit(self, job: Callable[[], object]) -> bool:
        """Run ``job()`` on a pool thread, now or once one is free; False once stopped."""
        with self._lock:
            if self._stopping:
                return False
            self._jobs.append(job)
            if self._idle:
                self._idle -= 1
                self._work.notify()
            elif self._counted < self._limit:
                self._start_thread()
        return True

    def backlogged(self) -> bool:
        """True if jobs wait for a thread."""
        return bool(self._jobs)

    def relieve(self) -> None:
        """Count out the jobs that ran for :data:`STALLED_AFTER` while others wait, and start
        threads for the waiting ones."""
        with self._lock:
            if not self._jobs or self._idle or self._stopping:
                return
            stalled_since = time.monotonic() - STALLED_AFTER
            for slot in self._running:
                if not slot.aside and slot.started is not None and slot.started < stalled_since:
                    slot.aside = True
                    self._counted -= 1
            for _ in range(min(len(self._jobs), self._limit - self._counted)):
                if not self._start_thread():
                    break

    def thread_count(self) -> int:
        """Threads the pool has now."""
        return self._threads

    def stop(self) -> None:
        """Take no more jobs; threads exit once the queued ones ran."""
        with self._lock:
            self._stopping = True
            self._idle = 0
            self._work.notify_all()

    # -- threads -----------------------------------------------------------------

    def _start_thread(self) -> bool:
        """Start a counted thread (lock held); False if the system has none to give."""
        try:
            threading.Thread(target=self._serve, name=self._name, daemon=True).start()
        except RuntimeError:  # no thread to spare now: the jobs wait for a free one
            return False
        self._counted += 1
        self._threads += 1
        return True

    def _step_aside(self, slot: _Slot) -> None:
        with self._lock:
            if slot.aside:
                return
            slot.aside = True
            self._counted -= 1
            if self._jobs and not self._idle and not self._stopping:
                self._start_thread()

    def _serve(self) -> None:
        slot = _Slot(self)
        _current.slot = slot
        job = self._next_job(slot)
        while job is not None:
            slot.started = time.monotonic()
            try:
                job()
            except BaseException:  # a job answers its own failures; the thread goes on
                pass
            job = None  # what it holds dies here, not while the thread idles
            job = self._next_job(slot)

    def _next_job(self, slot: _Slot) -> Callable[[], object] | None:
        """The next job for this thread; None when it must exit."""
        with self._lock:
            self._running.discard(slot)
            slot.started = None
            if slot.aside:  # back from a blocked job: rejoin the pool if there is room
                slot.aside = False
                if self._counted >= self._limit or self._stopping:
                    self._threads -= 1
                    return None
                self._counted += 1
            while not self._jobs:
                if self._stopping:
                    self._counted -= 1
                    self._threads -= 1
                    return None
                self._idle += 1
                if not self._work.wait(IDLE_EXIT):
                    # (A notify that raced the timeout counted it out already.)
                    self._idle = max(self._idle - 1, 0)
                    if not self._jobs and self._threads > KEEP_IDLE:
                        self._counted -= 1
                        self._threads -= 1
                        return None
            self._running.add(slot)
            return self._jobs.popleft()

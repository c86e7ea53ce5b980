"""Where a Condition's waiters sleep: one slot each, with a semaphore of its own, in shared memory.

``multiprocessing``'s Condition counts sleepers on shared semaphores and makes
``notify()`` wait until each woken sleeper has acknowledged: three sleep/wake
hand-offs per notification, and a ``notify()`` that never returns when the
sleeper it woke was killed.  Here a waiter takes a slot, releases the lock and
sleeps on the slot's semaphore; ``notify()`` marks the oldest waiting slots
and posts their semaphores, and returns at once; a waiter that wakes (or times
out) learns from its slot's mark whether it was notified.  One hand-off per
notification, and nothing waits for a waiter that may be gone: ``notify()``
skips the slots of processes that no longer exist.

Every method is called with the Condition's lock held, which is what makes the
slot table consistent.  The room also holds a robust mutex, the lock of a
:class:`~procframe.posix.synchronize.RobustCondition`.
"""

from __future__ import annotations

import mmap
import os
from _multiprocessing import SemLock  # type: ignore[import-not-found]

from procframe.posix.heap import Arena
from procframe.posix.robustlock import SIZE as MUTEX_SIZE
from procframe.posix.robustlock import RobustLock, init_robust_mutex
from procframe.posix.semaphore import SEM_VALUE_MAX, SEMAPHORE, address_of, init_semaphore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CAPACITY = 1024
"""Waiters one Condition can hold at once (threads of every process together)."""

# The table is an array of int64: a header, then (state, pid, ticket) per slot.
_NEXT_TICKET, _HIGH_WATER, _WAITING = 0, 1, 2
_HEADER = 8
_FIELDS = 3
_NEW, _FREE, _ASLEEP, _NOTIFIED = 0, 1, 2, 3  # _NEW: never used, its semaphore not initialised
_SEM_STRIDE = 64  # sizeof(sem_t) is 32 on 64-bit Linux; a cache line each
_SEM_BASE = (_HEADER + _FIELDS * CAPACITY) * 8
_MUTEX = _SEM_BASE + _SEM_STRIDE * CAPACITY
_SIZE = (_MUTEX + MUTEX_SIZE + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE


class TooManyWaiters(RuntimeError):
    """More than :data:`CAPACITY` threads wait on one Condition at once."""


def process_exists(pid: int) -> bool:
    """False if process ``pid`` has exited (an unreaped child of ours counts as exited,
    where ``os.waitid`` exists: not on macOS)."""
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:  # not our child: ask the kernel whether it exists at all
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class WaitRoom:
    """The slot table of one Condition, shared by every process that holds the Condition."""

    def __init__(self, arena: Arena | None = None) -> None:
        self._arena = arena if arena is not None else Arena(_SIZE)
        region = self._arena.map
        self._fields = memoryview(region)[:_SEM_BASE].cast("q")
        self._base, self._anchor = address_of(region)
        if arena is None:
            init_robust_mutex(self._base + _MUTEX)
        self._semaphores: dict[int, Any] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return WaitRoom, (self._arena,)

    @property
    def waiting(self) -> int:
        """How many waiters have not been notified yet."""
        return int(self._fields[_WAITING])

    def robust_lock(self) -> RobustLock:
        """The room's robust mutex, as a lock for this process."""
        return RobustLock(self._base + _MUTEX)

    def _semaphore(self, slot: int) -> Any:
        semaphore = self._semaphores.get(slot)
        if semaphore is None:
            address = self._base + _SEM_BASE + _SEM_STRIDE * slot
            # No maximum: two wakers may post one slot if the first died before marking it.
            semaphore = SemLock._rebuild(address, SEMAPHORE, SEM_VALUE_MAX, None)
            self._semaphores[slot] = semaphore
        return semaphore

    def enter(self) -> tuple[int, Any]:
        """Take a slot for the calling thread; return it and the semaphore to sleep on."""
        fields = self._fields
        high_water = fields[_HIGH_WATER]
        for slot in range(high_water):
            if fields[_HEADER + _FIELDS * slot] == _FREE:
                break
        else:
            if high_water < CAPACITY:
                slot = high_water
                init_semaphore(self._base + _SEM_BASE + _SEM_STRIDE * slot, 0)
                fields[_HEADER + _FIELDS * slot] = _FREE
                fields[_HIGH_WATER] = high_water + 1
            else:
                slot = self._reclaim()
        semaphore = self._semaphore(slot)
        while semaphore.acquire(False):  # a post a killed waker left behind: not for us
            pass
        at = _HEADER + _FIELDS * slot
        fields[at + 1] = os.getpid()
        fields[at + 2] = ticket = fields[_NEXT_TICKET]
        fields[_NEXT_TICKET] = ticket + 1
        fields[_WAITING] += 1
        fields[at] = _ASLEEP  # last: a waiter killed before this left the slot free
        return slot, semaphore

    def _reclaim(self) -> int:
        """A slot left behind by a process that died waiting (its semaphore drained by
        :meth:`enter`)."""
        fields = self._fields
        me = os.getpid()
        for slot in range(CAPACITY):
            at = _HEADER + _FIELDS * slot
            state = fields[at]
            pid = fields[at + 1]
            if state in (_ASLEEP, _NOTIFIED) and pid != me and not process_exists(pid):
                fields[at] = _FREE
                if state == _ASLEEP:
                    fields[_WAITING] -= 1
                return slot
        raise TooManyWaiters(f"more than {CAPACITY} threads are waiting on one Condition")

    def leave(self, slot: int, semaphore: Any, woken: bool) -> bool:
        """Give ``slot`` back after its waiter woke (``woken``) or timed out; True if notified."""
        fields = self._fields
        at = _HEADER + _FIELDS * slot
        state = fields[at]
        if not woken and state == _NOTIFIED:  # notified after the timeout, before the lock
            semaphore.acquire(False)
            woken = True
        fields[at] = _FREE
        if state == _ASLEEP:
            fields[_WAITING] -= 1
        return woken

    def wake(self, n: int) -> int:
        """Notify up to ``n`` waiters, oldest first, skipping dead processes; return how many.

        Each step leaves the table usable if the process dies right after it: a
        waiter's semaphore is posted before its slot says so (a waiter woken by a
        waker that died then still wakes, and counts as notified), and the count
        of waiters, never lower than the truth, is recounted here.
        """
        fields = self._fields
        if n <= 0 or fields[_WAITING] == 0:
            return 0
        asleep = sorted(
            (fields[at + 2], slot)
            for slot, at in enumerate(range(_HEADER, _HEADER + _FIELDS * fields[_HIGH_WATER], 3))
            if fields[at] == _ASLEEP
        )
        me = os.getpid()
        woken = 0
        still_asleep = len(asleep)
        for _, slot in asleep:
            if woken == n:
                break
            at = _HEADER + _FIELDS * slot
            pid = fields[at + 1]
            still_asleep -= 1
            if pid != me and not process_exists(pid):
                fields[at] = _FREE  # its semaphore was never posted: nothing to drain
                continue
            self._semaphore(slot).release()
            fields[at] = _NOTIFIED
            woken += 1
        fields[_WAITING] = still_asleep
        return woken

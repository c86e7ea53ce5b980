"""The Lock family, shared between processes: the API of ``threading`` and ``multiprocessing``.

The locks and semaphores stand on :class:`~procframe.posix.semaphore.SharedSemaphore`;
Condition, Event and Barrier take what they are built from out of their context.  The
hot methods (``acquire``, ``release``) are the C methods themselves, bound on
the instance, with no Python frame in between.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from procframe._core import checks
from procframe._core.errors import LockNotOwnedError
from procframe.posix.semaphore import RECURSIVE_MUTEX, SEM_VALUE_MAX, SEMAPHORE, SharedSemaphore
from procframe.posix.waitroom import CAPACITY, TooManyWaiters, WaitRoom, process_exists

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    from procframe.context import Context

    class _Acquire(Protocol):
        """The signature of ``acquire`` (the semaphore's C method, bound on the instance)."""

        def __call__(self, block: bool = True, timeout: float | None = None) -> bool: ...

    T = TypeVar("T")


__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]


class _SemLock:
    """What every primitive shares: a shared semaphore and its C methods."""

    acquire: _Acquire
    release: Callable[[], None]

    def __init__(self, kind: int, value: int, maxvalue: int) -> None:
        self._semaphore = SharedSemaphore(kind, value, maxvalue)
        self._bind()

    def _bind(self) -> None:
        semlock = self._semaphore.semlock
        self.acquire = semlock.acquire
        self.release = semlock.release
        self.__enter__ = semlock.__enter__  # type: ignore[method-assign]
        self.__exit__ = semlock.__exit__  # type: ignore[method-assign]

    # Methods on the class too, for the ``with`` statement (it looks them up on the type).
    def __enter__(self) -> bool:
        return bool(self._semaphore.semlock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._semaphore.semlock.__exit__(*exc)

    def __getstate__(self) -> SharedSemaphore:
        return self._semaphore

    def __setstate__(self, state: SharedSemaphore) -> None:
        self._semaphore = state
        self._bind()

    # threading's protocol between a lock and its Condition.
    def _is_owned(self) -> bool:
        return bool(self._semaphore.semlock._is_mine())

    def _release_save(self) -> int:
        """Release the lock however deep this thread holds it; return the depth."""
        semlock = self._semaphore.semlock
        depth = int(semlock._count())
        for _ in range(depth):
            semlock.release()
        return depth

    def _acquire_restore(self, depth: int) -> None:
        acquire = self._semaphore.semlock.acquire
        for _ in range(depth):
            acquire()


class Semaphore(_SemLock):
    """A counter: ``acquire`` waits while it is zero and decrements it; ``release`` increments."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, got {value}")
        super().__init__(SEMAPHORE, value, SEM_VALUE_MAX)

    def get_value(self) -> int:
        """The current value (not available on every platform)."""
        return int(self._semaphore.semlock._get_value())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """A Semaphore whose ``release`` above the initial value raises ``ValueError``."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, got {value}")
        _SemLock.__init__(self, SEMAPHORE, value, value)

    def __repr__(self) -> str:
        maxvalue = self._semaphore.maxvalue
        return f"<BoundedSemaphore(value={self.get_value()}, maxvalue={maxvalue})>"


class Lock(_SemLock):
    """A non-recursive lock; any process or thread may release it."""

    def __init__(self) -> None:
        super().__init__(SEMAPHORE, 1, 1)

    def locked(self) -> bool:
        """True if the lock is held."""
        return bool(self._semaphore.semlock._is_zero())

    def __repr__(self) -> str:
        return f"<Lock({'locked' if self.locked() else 'unlocked'})>"


class RLock(_SemLock):
    """A recursive lock: its owner may acquire it again; only the owner may release it."""

    def __init__(self) -> None:
        super().__init__(RECURSIVE_MUTEX, 1, 1)

    def __repr__(self) -> str:
        semlock = self._semaphore.semlock
        if semlock._is_mine():
            owner = f"{os.getpid()}:{threading.current_thread().name}"
            return f"<RLock(owner={owner}, count={semlock._count()})>"
        return f"<RLock({'locked' if semlock._is_zero() else 'unlocked'})>"


class Condition:
    """A condition variable between processes (``threading.Condition``'s API).

    Waiters sleep in a :class:`~procframe.posix.waitroom.WaitRoom`: ``notify()``
    wakes the oldest waiters and returns without waiting for them, and skips
    waiters whose process has died.  The lock is any lock of the context
    (``ctx.RLock()`` by default); one with threading's ``_is_owned``,
    ``_release_save`` and ``_acquire_restore`` is used through them, any
    other as a plain non-recursive lock (as ``threading.Condition`` does).
    """

    def __init__(self, lock: Any = None, *, ctx: Context | None = None) -> None:
        if lock is None:
            if ctx is None:
                raise TypeError("a Condition without a lock needs the context to make one (ctx)")
            lock = ctx.RLock()
        self.__setstate__((lock, WaitRoom()))

    def __getstate__(self) -> tuple[Any, ...]:
        return (self._lock, self._room)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        lock, room = state
        self._room: WaitRoom = room
        self._lock: Any = lock
        self.acquire: Callable[..., bool] = lock.acquire
        self.release: Callable[[], None] = lock.release
        self._is_owned: Callable[[], bool] = getattr(lock, "_is_owned", self._held_if_busy)
        self._release_save: Callable[[], Any] = getattr(lock, "_release_save", self._release_once)
        self._acquire_restore: Callable[[Any], None] = getattr(
            lock, "_acquire_restore", self._acquire_once
        )

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    # For a lock without threading's protocol (as threading.Condition does it).
    def _held_if_busy(self) -> bool:
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_once(self) -> None:
        self._lock.release()

    def _acquire_once(self, state: None) -> None:
        self._lock.acquire()

    def _check_owned(self, what: str) -> None:
        if not self._is_owned():
            raise LockNotOwnedError(
                f"cannot {what} a Condition whose lock this thread does not hold"
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify or ``timeout``, re-acquire; False on timeout."""
        self._check_owned("wait on")
        timeout = checks.wait_timeout(timeout)
        room = self._room
        slot, semaphore = room.enter()
        depth = self._release_save()
        try:
            woken = semaphore.acquire(True, timeout)
        except BaseException:
            self._acquire_restore(depth)
            room.leave(slot, semaphore, False)
            raise
        self._acquire_restore(depth)
        return bool(room.leave(slot, semaphore, bool(woken)))

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters."""
        self._check_owned("notify")
        checks.integer("n", n, 0)
        self._room.wake(n)

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(CAPACITY)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true or ``timeout`` passes; return its last value."""
        timeout = checks.wait_timeout(timeout)
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self.wait(remaining)
            result = predicate()
        return result

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r}, waiters={self._room.waiting})>"


_RECHECK = 0.5
"""Seconds between an Event waiter's looks at the flag while it waits."""


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class RobustCondition(Condition):
    """A Condition on a robust lock, for procframe's own short critical sections.

    Event, Barrier and JoinableQueue use it.  Its lock is its WaitRoom's
    robust mutex, which the kernel hands on when its holder dies, so a process
    killed inside ``Event.set()`` cannot stop every other user of the Event.
    The thread that acquires the lock is the one that releases it.  Whoever
    takes the lock from a holder that died wakes every waiter: the dead
    holder may have changed what they wait for without notifying them (a
    spurious wake-up, which every waiter's predicate loop absorbs).
    """

    def __init__(self) -> None:
        self.__setstate__(WaitRoom())

    def __getstate__(self) -> WaitRoom:  # type: ignore[override]
        return self._room

    def __setstate__(self, room: WaitRoom) -> None:  # type: ignore[override]
        lock = room.robust_lock()
        lock.after_owner_died = self._wake_all_after_a_death
        super().__setstate__((lock, room))

    def _wake_all_after_a_death(self) -> None:
        self._room.wake(CAPACITY)

    def __repr__(self) -> str:
        return f"<RobustCondition(waiters={self._room.waiting})>"


class Event:
    """A flag processes can wait for (``threading.Event``'s API).

    The flag is an int in the context's shared memory (``ctx.RawArray``), next
    to a count of ``set()`` calls; only ``set()`` and ``clear()`` write them.
    Reading never changes them, so a process killed anywhere in ``is_set()``
    or ``wait()`` leaves the Event as it was; and as a waiter returns only on
    evidence that ``set()`` ran (the flag, or a new count), the wake-ups that
    follow the death of a process holding the Event's lock are harmless.  A
    waiter also looks at the flag every :data:`_RECHECK` seconds, so one whose
    setter was killed between setting the flag and waking it is late by at
    most that.
    """

    def __init__(self, *, ctx: Context) -> None:
        self._cond = RobustCondition()
        self._flag = ctx.RawArray("i", 2)  # the flag, then how many set() calls (wrapping)

    def is_set(self) -> bool:
        """True once ``set()`` and until ``clear()``."""
        return bool(self._flag[0])

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._cond:
            flag = self._flag
            flag[1] = (flag[1] + 1) & 0x7FFFFFFF
            flag[0] = 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Reset the flag."""
        with self._cond:
            self._flag[0] = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; return the flag.

        True also if ``set()`` ran while this call waited, even if ``clear()``
        followed before it woke (as ``threading.Event.wait``).
        """
        timeout = checks.wait_timeout(timeout)
        flag = self._flag
        if flag[0]:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._cond
        if not cond.acquire(True, timeout):
            return bool(flag[0])
        try:
            sets = flag[1]
            while not flag[0]:
                remaining = _remaining(deadline)
                if remaining == 0.0:
                    return False
                cond.wait(_RECHECK if remaining is None else min(remaining, _RECHECK))
                if flag[1] != sets:
                    return True
            return True
        finally:
            cond.release()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} at {id(self):#x} {'set' if self.is_set() else 'unset'}>"


class Barrier(threading.Barrier):
    """A barrier for ``parties`` processes (``threading.Barrier``'s API and behaviour).

    ``threading.Barrier``'s algorithm, run on a robust Condition, with its
    state and count kept in the context's shared memory (``ctx.RawArray``),
    next to the pid of each party inside the barrier.  Unlike a thread, a
    party can be killed inside the barrier.  One killed while it waited
    breaks the barrier, as ``abort()`` would: the parties waiting get
    ``BrokenBarrierError`` within :data:`_PARTY_CHECK` seconds, as does
    the next ``wait()``, and ``reset()`` makes the barrier whole again for
    the live parties.  One killed on its way out (the barrier had let its
    parties through) is simply counted out.
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: Context,
    ) -> None:
        slots = min(parties, CAPACITY + 1)  # no more can be inside: the rest could not wait
        shared = ctx.RawArray("i", _PIDS + slots)
        self.__setstate__((parties, action, timeout, RobustCondition(), shared))

    def __getstate__(self) -> tuple[Any, ...]:
        return (self._parties, self._action, self._timeout, self._cond, self._shared)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._parties, self._action, self._timeout, self._cond, self._shared = state

    def wait(self, timeout: float | None = None) -> int:
        """Wait for every party; return this party's index (``threading.Barrier.wait``).

        A wait with a timeout (or a barrier made with one) breaks the barrier
        when the time is up, as in ``threading``.
        """
        this: Any = self  # threading.Barrier's private steps, which typeshed does not declare
        timeout = checks.wait_timeout(self._timeout if timeout is None else timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._cond.acquire(True, timeout):
            raise threading.BrokenBarrierError
        try:
            self._enter(deadline)
            slot = self._take_slot()
            index = self._count
            self._count = index + 1
            try:
                if index + 1 == self._parties:
                    this._release()
                else:
                    self._wait_released(deadline)
                return index
            finally:
                self._count -= 1
                self._shared[_PIDS + slot] = 0
                this._exit()
        finally:
            self._cond.release()

    def reset(self) -> None:
        """Return the barrier to its empty state; parties waiting get ``BrokenBarrierError``."""
        with self._cond:
            self._count_out_the_dead()
            if self._count == 0:
                self._state = 0
            elif self._state in (0, -2):
                self._state = -1  # the parties inside raise; the last one out reopens it
            self._cond.notify_all()

    def _enter(self, deadline: float | None) -> None:
        """Wait while the barrier drains or resets; raise if it is (or becomes) broken."""
        this: Any = self
        while True:
            self._count_out_the_dead()
            if self._state not in (-1, 1):
                break
            if not self._sleep(deadline):
                this._break()
                raise threading.BrokenBarrierError
        if self._state < 0:
            raise threading.BrokenBarrierError

    def _wait_released(self, deadline: float | None) -> None:
        """Wait until the last party lets everyone through; raise if the barrier breaks."""
        this: Any = self
        while self._state == 0:
            if not self._sleep(deadline):
                this._break()
                raise threading.BrokenBarrierError
            if self._state == 0:
                self._count_out_the_dead()
        if self._state < 0:
            raise threading.BrokenBarrierError

    def _sleep(self, deadline: float | None) -> bool:
        """Wait for a notification, at most :data:`_PARTY_CHECK` s; False once past ``deadline``."""
        remaining = _remaining(deadline)
        if remaining == 0.0:
            return False
        self._cond.wait(_PARTY_CHECK if remaining is None else min(remaining, _PARTY_CHECK))
        return True

    def _take_slot(self) -> int:
        """Write this process's pid in a free slot of the table of parties inside."""
        shared = self._shared
        for slot in range(len(shared) - _PIDS):
            if shared[_PIDS + slot] == 0:
                shared[_PIDS + slot] = os.getpid()
                return slot
        raise TooManyWaiters(f"more than {len(shared) - _PIDS} parties are inside one Barrier")

    def _count_out_the_dead(self) -> None:
        """Forget the parties inside whose process died; a death while the barrier filled
        breaks it.  The count is then recounted from the table (a party killed between
        writing one and the other left them apart)."""
        shared = self._shared
        me = os.getpid()
        dead = False
        for at in range(_PIDS, len(shared)):
            pid = shared[at]
            if pid and pid != me and not process_exists(pid):
                shared[at] = 0
                dead = True
        if not dead:
            return
        this: Any = self
        self._count = sum(1 for at in range(_PIDS, len(shared)) if shared[at])
        if self._state == 0:
            this._break()
        else:
            self._cond.notify_all()
        this._exit()  # the last party out of a draining or resetting barrier reopens it

    @property
    def _state(self) -> int:
        return int(self._shared[0])

    @_state.setter
    def _state(self, value: int) -> None:
        self._shared[0] = value

    @property
    def _count(self) -> int:
        return int(self._shared[1])

    @_count.setter
    def _count(self, value: int) -> None:
        self._shared[1] = value

    def __repr__(self) -> str:
        return f"<Barrier(parties={self._parties}, waiting={self.n_waiting}, broken={self.broken})>"


_PIDS = 2
"""Where a Barrier's table of the pids of the parties inside starts, after state and count."""
_PARTY_CHECK = 0.25
"""Seconds between a waiting party's looks for parties that died inside the barrier."""

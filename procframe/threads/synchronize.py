"""The Lock family on ``threading``, with ``multiprocessing``'s API where it differs.

``acquire(block=True, timeout=None)`` (``None``: wait for ever, a negative
timeout counts as 0, ``block=False`` ignores the timeout), a Lock released
while unlocked raises ValueError, semaphores have ``get_value()``, a Condition
used without its lock raises :class:`~procframe._core.errors.LockNotOwnedError`
(``multiprocessing``'s AssertionError and ``threading``'s RuntimeError).  Event
and Barrier are ``threading``'s, which have the API already.
"""

from __future__ import annotations

import threading
import time
from threading import get_ident

from procframe._core import checks
from procframe._core.errors import LockNotOwnedError
from procframe.threads._shared import Shared

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]


def _wait_time(timeout: float | None) -> float:
    """``timeout`` as ``threading``'s ``acquire`` takes it (``-1``: for ever)."""
    return -1 if timeout is None else max(timeout, 0.0)


class Lock(Shared):
    """A non-recursive lock; any thread may release it.

    It knows which thread took it (as ``multiprocessing``'s does), so that a
    Condition on it tells its holder from the other threads.
    """

    __slots__ = ("_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False if ``block`` is false or ``timeout`` passes while it is held."""
        got = self._lock.acquire(True, _wait_time(timeout)) if block else self._lock.acquire(False)
        if got:
            self._owner = get_ident()
        return got

    def release(self) -> None:
        """Release the lock; ValueError if it is not held."""
        self._owner = None  # before: once released, another thread may own it
        try:
            self._lock.release()
        except RuntimeError:
            raise ValueError("semaphore or lock released too many times") from None

    def locked(self) -> bool:
        """True if the lock is held."""
        return self._lock.locked()

    def _is_owned(self) -> bool:
        return self._owner == get_ident() and self._lock.locked()

    def __enter__(self) -> bool:
        self._lock.acquire()
        self._owner = get_ident()
        return True

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lock({'locked' if self._lock.locked() else 'unlocked'})>"


class RLock(Shared):
    """A recursive lock: its owner may acquire it again; only the owner may release it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock (again, for its owner); False if ``timeout`` passes first."""
        if not block:
            return self._lock.acquire(False)
        return self._lock.acquire(True, _wait_time(timeout))

    def release(self) -> None:
        """Release one level; RuntimeError if the calling thread does not own the lock."""
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    # threading's protocol between a lock and its Condition.
    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    def _release_save(self) -> Any:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        owner = threading.current_thread().name if self._is_owned() else "another thread or none"
        return f"<RLock(owner={owner})>"


class Semaphore(Shared):
    """A counter: ``acquire`` waits while it is zero and decrements it; ``release`` increments."""

    __slots__ = ("_cond", "_maxvalue", "_value")

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, got {value}")
        self._cond = threading.Condition(threading.Lock())
        self._value = value
        self._maxvalue: int | None = None

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Decrement the value, waiting while it is zero; False if ``timeout`` passes first."""
        with self._cond:
            if not self._value:
                if not block:
                    return False
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._value:
                    if deadline is None:
                        self._cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            self._value -= 1
            return True

    def release(self) -> None:
        """Increment the value, waking one waiter."""
        with self._cond:
            if self._maxvalue is not None and self._value >= self._maxvalue:
                raise ValueError("semaphore or lock released too many times")
            self._value += 1
            self._cond.notify()

    def get_value(self) -> int:
        """The current value."""
        return self._value

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._value})>"


class BoundedSemaphore(Semaphore):
    """A Semaphore whose ``release`` above the initial value raises ``ValueError``."""

    __slots__ = ()

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._maxvalue = value

    def __repr__(self) -> str:
        return f"<BoundedSemaphore(value={self._value}, maxvalue={self._maxvalue})>"


class Condition(Shared, threading.Condition):
    """``threading.Condition`` on a lock of this backend (a new :class:`RLock` by default)."""

    def __init__(self, lock: Any = None) -> None:
        super().__init__(RLock() if lock is None else lock)  # type: ignore[arg-type]

    # threading checks that the lock is held and raises RuntimeError; the checks are
    # not repeated here: an error of an unheld lock is turned into LockNotOwnedError.
    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify or ``timeout``, re-acquire; False on timeout."""
        try:
            return super().wait(checks.wait_timeout(timeout))
        except RuntimeError:
            self._raise_if_not_owned("wait on")
            raise

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true or ``timeout`` passes; return its last value."""
        return super().wait_for(predicate, checks.wait_timeout(timeout))

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (``notify_all`` comes here too)."""
        checks.integer("n", n, 0)
        try:
            super().notify(n)
        except RuntimeError:
            self._raise_if_not_owned("notify")
            raise

    def _raise_if_not_owned(self, what: str) -> None:
        if not self._is_owned():  # type: ignore[attr-defined]
            raise LockNotOwnedError(
                f"cannot {what} a Condition whose lock this thread does not hold"
            ) from None

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r}, waiters={len(self._waiters)})>"  # type: ignore[attr-defined]


class Event(Shared, threading.Event):
    """``threading.Event``: ``set``, ``clear``, ``is_set`` and ``wait(timeout)``."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; return the flag."""
        return super().wait(checks.wait_timeout(timeout))

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} at {id(self):#x} {'set' if self.is_set() else 'unset'}>"


class Barrier(Shared, threading.Barrier):
    """``threading.Barrier``: ``wait``, ``reset``, ``abort``, ``parties``, ``n_waiting``..."""

    def wait(self, timeout: float | None = None) -> int:
        """Wait for every party; return this party's index."""
        return super().wait(checks.wait_timeout(timeout))

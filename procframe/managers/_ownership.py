"""Whom the server acts for, and a reentrant lock owned by a client rather than a thread.

A client's requests run on whichever thread of the server's pool is free (see
:mod:`._workers`), so what a thread would own in a server with one thread per
connection (a ``threading.RLock``, a ``threading.Condition``) is owned here by
the client's connection.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

serving = threading.local()
"""``link``: the connection whose request a server thread runs; ``session``: the session
whose answer the thread is pickling (a proxy in it is held for that session)."""


def current_caller() -> Any:
    """Who the calling thread acts for: the connection whose request it runs, else itself."""
    return getattr(serving, "link", None) or threading.get_ident()


class CallerRLock:
    """A reentrant lock owned by the client that took it, not by a thread.

    ``threading.RLock`` is owned by a thread; a client's requests run on
    whichever thread of the server's pool is free, so this one is owned by the
    client's connection (see :func:`~procframe.managers._server.current_caller`).
    It has the private methods ``threading.Condition`` uses.
    """

    def __init__(self) -> None:
        self._block = threading.Lock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = current_caller()
        if self._owner == me:
            self._count += 1
            return True
        if not self._block.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        if self._owner != current_caller():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def _is_owned(self) -> bool:
        return bool(self._owner == current_caller())

    def _release_save(self) -> tuple[int, Any]:
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._owner = None
        self._count = 0
        self._block.release()
        return state

    def _acquire_restore(self, state: tuple[int, Any]) -> None:
        self._block.acquire()
        self._count, self._owner = state

    def __repr__(self) -> str:
        held = "unlocked" if self._owner is None else f"locked {self._count} time(s)"
        return f"<CallerRLock {held}>"


def caller_condition(lock: Any = None) -> threading.Condition:
    """``threading.Condition(lock)``, whose default lock is a :class:`CallerRLock`."""
    return threading.Condition(CallerRLock() if lock is None else lock)  # type: ignore[arg-type]


_IN_PLACE_OF: dict[Any, Any] = {threading.RLock: CallerRLock, threading.Condition: caller_condition}


def owned_by_callers(factory: Any) -> Any:
    """``factory``, or where it makes thread-owned objects (``threading.RLock`` or
    ``threading.Condition`` registered as the standard library's SyncManager does), the
    factory of the same owned by callers."""
    try:
        return _IN_PLACE_OF.get(factory, factory)
    except TypeError:  # an unhashable callable
        return factory

"""A lock the kernel hands on when its holder dies: a process-shared robust pthread mutex.

A POSIX semaphore has no owner, so nothing can tell that the process holding
a semaphore-based lock was killed.  A robust mutex has one: when its owning
thread dies (even by SIGKILL, at any instruction) the kernel marks it and the
next ``lock`` succeeds with ``EOWNERDEAD``.  procframe's own short critical
sections (inside Event, Barrier and JoinableQueue) use it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import threading
import time
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SIZE = 64
"""Bytes to reserve for one mutex (``sizeof(pthread_mutex_t)`` is 40 on x86-64, 48 on arm64)."""
_ATTR_SIZE = 16
_PROCESS_SHARED = 1
_ROBUST = 1
_SLICE = 0.05
"""Longest a blocked ``acquire`` stays in C before returning to Python (to run signal handlers)."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


@functools.cache
def _pthread() -> Any:
    """libc's robust mutex functions, with their signatures."""
    libc = ctypes.CDLL(None, use_errno=True)
    names = ["mutexattr_init", "mutexattr_setpshared", "mutexattr_setrobust"]
    names += ["mutexattr_destroy", "mutex_init", "mutex_trylock", "mutex_consistent"]
    names += ["mutex_unlock", "mutex_timedlock"]
    try:
        functions = {name: getattr(libc, f"pthread_{name}") for name in names}
    except AttributeError as missing:
        reason = f"procframe needs process-shared robust mutexes, which libc lacks: {missing}"
        raise OSError(errno.ENOSYS, reason) from None
    for function in functions.values():
        function.restype = ctypes.c_int
    for name in ("mutex_trylock", "mutex_consistent", "mutex_unlock"):
        functions[name].argtypes = [ctypes.c_void_p]
    functions["mutex_timedlock"].argtypes = [ctypes.c_void_p, ctypes.POINTER(_Timespec)]
    clocklock = getattr(libc, "pthread_mutex_clocklock", None)  # glibc 2.30+: a monotonic clock
    if clocklock is not None:
        clocklock.restype = ctypes.c_int
        clocklock.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Timespec)]
        monotonic = time.CLOCK_MONOTONIC
        functions["lock_until"] = lambda address, until: clocklock(address, monotonic, until)
        functions["clock"] = time.monotonic
    else:
        functions["lock_until"] = functions["mutex_timedlock"]
        functions["clock"] = time.time
    return types.SimpleNamespace(**functions)


def init_robust_mutex(address: int) -> None:
    """``pthread_mutex_init`` a process-shared robust mutex at ``address`` in shared memory."""
    pthread = _pthread()
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    steps = (
        (pthread.mutexattr_init, (attr,)),
        (pthread.mutexattr_setpshared, (attr, _PROCESS_SHARED)),
        (pthread.mutexattr_setrobust, (attr, _ROBUST)),
        (pthread.mutex_init, (ctypes.c_void_p(address), attr)),
    )
    try:
        for function, args in steps:
            code = function(*args)
            if code:
                raise OSError(code, f"{function.__name__} failed: {os.strerror(code)}")
    finally:
        pthread.mutexattr_destroy(attr)


class RobustLock:
    """A non-recursive lock on a robust mutex at ``address`` (set up by :func:`init_robust_mutex`).

    The thread that acquires must be the one that releases.  After a holder
    died, the next ``acquire`` succeeds: what the lock protected may be half
    updated, so it guards only state that stays usable if a step is missing.
    That ``acquire`` then calls ``after_owner_died`` (if set), with the lock held.
    """

    after_owner_died: Callable[[], object] | None = None

    def __init__(self, address: int) -> None:
        pthread = _pthread()
        self._address = address
        self._trylock = functools.partial(pthread.mutex_trylock, address)
        self._lock_until = pthread.lock_until
        self._clock = pthread.clock
        self._consistent = pthread.mutex_consistent
        self._unlock = functools.partial(pthread.mutex_unlock, address)
        self._owner: tuple[int, int] | None = None

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock, even from a holder that died; False if ``timeout`` passes first."""
        if not block:
            timeout = 0
        code = self._trylock()
        if code == errno.EBUSY and timeout != 0:
            code = self._wait(timeout)
        owner_died = code == errno.EOWNERDEAD
        if owner_died:
            code = self._consistent(self._address)
        if code == errno.EBUSY or code == errno.ETIMEDOUT:
            return False
        if code:
            raise OSError(code, f"cannot lock a robust mutex: {os.strerror(code)}")
        self._owner = (os.getpid(), threading.get_ident())
        if owner_died and self.after_owner_died is not None:
            self.after_owner_died()
        return True

    def _wait(self, timeout: float | None) -> int:
        clock = self._clock
        deadline = None if timeout is None else clock() + max(0.0, timeout)
        until = _Timespec()
        while True:
            now = clock()
            end = now + _SLICE if deadline is None else min(now + _SLICE, deadline)
            until.tv_sec = int(end)
            until.tv_nsec = int((end - until.tv_sec) * 1e9)
            code = int(self._lock_until(self._address, until))
            if code != errno.ETIMEDOUT or (deadline is not None and end >= deadline):
                return code

    def release(self) -> None:
        """Release the lock (this thread must hold it)."""
        if not self.is_mine():
            raise RuntimeError("cannot release a lock this thread does not hold")
        self._owner = None
        code = self._unlock()
        if code:
            raise OSError(code, f"cannot unlock a robust mutex: {os.strerror(code)}")

    def is_mine(self) -> bool:
        """True if the calling thread holds the lock."""
        return self._owner == (os.getpid(), threading.get_ident())

    # threading's protocol between a lock and its Condition.
    _is_owned = is_mine

    def _release_save(self) -> int:
        self.release()
        return 1

    def _acquire_restore(self, depth: int) -> None:
        self.acquire()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

"""The POSIX semaphore under every lock: unnamed, in shared memory reached by descriptor.

``multiprocessing`` opens *named* semaphores (``/dev/shm/sem.mp-...``) so that a
spawned child can open them again by name, and a killed process leaves the
name behind.  procframe puts an unnamed semaphore (``sem_init(pshared=1)``)
in a page of a memfd and hands the *descriptor* to children
(:mod:`procframe._core.reduction`); the kernel frees the page when the last process
holding it exits, however it exits.  The operations themselves are CPython's
C ``_multiprocessing.SemLock``, rebuilt on our semaphore's address, so
``acquire``/``release`` cost what they cost in ``multiprocessing``.
"""

from __future__ import annotations

import mmap
import os
import weakref
from _multiprocessing import SemLock  # type: ignore[import-not-found]

from procframe._core import osutil, reduction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RECURSIVE_MUTEX, SEMAPHORE = 0, 1
SEM_VALUE_MAX: int = SemLock.SEM_VALUE_MAX


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def address_of(region: mmap.mmap) -> tuple[int, Any]:
    """The address of ``region`` and the object that keeps it exported (and so mapped)."""
    import ctypes

    anchor = ctypes.c_char.from_buffer(region)
    return ctypes.addressof(anchor), anchor


def init_semaphore(address: int, value: int) -> None:
    """``sem_init`` a process-shared semaphore of ``value`` at ``address`` in shared memory."""
    import ctypes

    if _libc().sem_init(ctypes.c_void_p(address), 1, value) != 0:
        raise OSError(ctypes.get_errno(), "sem_init failed")


class SharedSemaphore:
    """One process-shared semaphore; ``semlock`` is the C object doing the work."""

    def __init__(self, kind: int, value: int, maxvalue: int, *, _fd: int | None = None) -> None:
        if kind not in (RECURSIVE_MUTEX, SEMAPHORE):
            raise ValueError(f"unknown semaphore kind {kind!r}")
        if not 0 <= value <= SEM_VALUE_MAX:
            raise ValueError(f"semaphore value must be in 0..{SEM_VALUE_MAX}, got {value}")
        self.kind = kind
        self.maxvalue = maxvalue
        created = _fd is None
        self._fd = (
            osutil.anonymous_memory("procframe-semaphore", mmap.PAGESIZE) if _fd is None else _fd
        )
        self._region = mmap.mmap(self._fd, mmap.PAGESIZE)
        address, self._anchor = address_of(self._region)
        if created:
            init_semaphore(address, value)
        self.semlock = SemLock._rebuild(address, kind, maxvalue, None)
        _live.add(self)

    def __reduce__(self) -> tuple[Any, ...]:
        token = reduction.export_fd(self._fd, type(self).__name__)
        return _rebuild, (token, self.kind, self.maxvalue)

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            _close(fd)


def _rebuild(token: int, kind: int, maxvalue: int) -> SharedSemaphore:
    return SharedSemaphore(kind, 0, maxvalue, _fd=reduction.import_fd(token))


_live: weakref.WeakSet[SharedSemaphore] = weakref.WeakSet()


def _forget_ownership() -> None:
    # A forked child owns none of the locks its parent held (SemLock remembers
    # the owner by thread id, and the child's thread may have the same id).
    for semaphore in list(_live):
        semaphore.semlock._after_fork()


os.register_at_fork(after_in_child=_forget_ownership)

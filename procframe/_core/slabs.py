"""Slabs: shared memory that a sender writes a big message into once, and receivers map.

A *slab* is a memfd (named :data:`NAME` in ``/proc/PID/fd``, nowhere else).
A sender writes a message into a slab it keeps mapped, then hands the
receiver a descriptor of it (over a Unix socket, or in a child's start); the
receiver maps it copy-on-write, so what it reads costs no copy and what it
writes stays its own.

Who still uses a slab is the kernel's to say, not a count that a killed
process could leave wrong.  Each hand-over opens a new *open file
description* of the slab (through ``/proc/self/fd``) and takes a shared
``flock`` on it: that description travels in the message, then lives in the
receiver's mapping, and the lock with it.  It ends, whatever way its holders
end, once the message is dropped unread or the last object the receiver built
on it is collected.  The sender reuses a slab (its pages already faulted in:
writing them runs at memory speed, where fresh pages run at a tenth of it)
only when an exclusive ``flock`` on its own description succeeds, that is
when no hand-over of it is alive anywhere.

A sender keeps a few slabs for reuse (:data:`CACHE_BYTES`,
:data:`CACHE_SLABS`, :data:`IDLE_SECONDS`); beyond that it forgets the oldest:
its memory goes back to the system as soon as the receivers' locks on it are
gone.  A forked
child starts with no slabs.  Where ``/proc/self/fd`` cannot be opened, a slab
is handed over once and never reused.
"""

from __future__ import annotations

import _thread
import mmap
import os
import time
from collections import deque

from procframe._core import osutil

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "procframe-slab"
"""The label of every slab's memfd, seen in ``/proc/PID/fd`` and ``/proc/PID/maps``."""
SMALLEST = 1 << 16
"""The capacity of the smallest slab; capacities are powers of two from here."""
CACHE_BYTES = 512 << 20
"""Bytes of slabs (written so far, so faulted in) a process keeps for reuse at most."""
CACHE_SLABS = 256
"""Slabs a process keeps at most, whether receivers still hold them or not."""
IDLE_SECONDS = 10.0
"""A slab not reused for this long is forgotten at the next big message sent or received."""


class Slab:
    """A memfd this process writes messages into, and its writable mapping."""

    __slots__ = ("capacity", "fd", "given_back", "mapping", "used")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.fd = osutil.anonymous_memory(NAME, capacity)
        try:
            self.mapping = mmap.mmap(self.fd, capacity)
        except BaseException:
            os.close(self.fd)
            raise
        self.used = 0
        """Bytes written so far: the pages the slab holds."""
        self.given_back = 0.0
        """When the slab last went back to the cache (``time.monotonic()``)."""

    def in_use(self) -> bool:
        """True while a hand-over of this slab is alive somewhere (its lock is held)."""
        import fcntl

        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def hand_over(self) -> int:
        """A new descriptor of the slab that holds it in use for as long as it lives (in a
        message in flight, or in the receiver's mapping); the caller sends it, then closes it."""
        return hand_over(self.fd)

    def close(self) -> None:
        """Forget the slab here; receivers keep what they mapped."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            self.mapping.close()
            os.close(fd)

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            _close(fd)


def hand_over(fd: int) -> int:
    """A new open file description of the slab open at ``fd`` (this process's slab, or one
    it received), holding a shared lock for as long as it lives."""
    import fcntl

    try:
        new = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return os.dup(fd)  # no /proc: this process never reuses a slab (Cache._reusable)
    try:
        fcntl.flock(new, fcntl.LOCK_SH)
    except BaseException:
        os.close(new)
        raise
    return new


def capacity_for(size: int) -> int:
    """The capacity of the slab a message of ``size`` bytes goes into."""
    return max(SMALLEST, 1 << (size - 1).bit_length())


class Cache:
    """This process's slabs not taken by a writer: free ones, and those handed over (reused
    once nobody holds them), by capacity, each capacity oldest first."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._by_capacity: dict[int, deque[Slab]] = {}
        self._count = 0
        self._bytes = 0
        self._reusable = os.path.isdir("/proc/self/fd")

    def take(self, size: int) -> Slab:
        """A slab with room for ``size`` bytes, the calling thread's alone until it gives it
        back with :meth:`give_back`.

        Only the slab of that capacity handed over longest ago is looked at: receivers
        mostly release in the order they receive, so if that one is still held, the
        others are too, and one system call tells.
        """
        capacity = capacity_for(size)
        with self._lock:
            self._forget_idle()
            slabs = self._by_capacity.get(capacity)
            if slabs and not slabs[0].in_use():
                slab = slabs.popleft()
                if not slabs:
                    del self._by_capacity[capacity]
                self._count -= 1
                self._bytes -= slab.used
                return slab
        return Slab(capacity)

    def give_back(self, slab: Slab, written: int) -> None:
        """``slab`` was handed over (or not used): keep it for reuse, within the bounds."""
        slab.used = max(slab.used, written)
        if not self._reusable:
            slab.close()
            return
        slab.given_back = time.monotonic()
        with self._lock:
            self._by_capacity.setdefault(slab.capacity, deque()).append(slab)
            self._count += 1
            self._bytes += slab.used
            while self._count > CACHE_SLABS or self._bytes > CACHE_BYTES:
                self._drop_one()

    def _forget_idle(self) -> None:
        """Forget the slabs not reused for :data:`IDLE_SECONDS` (the lock is held)."""
        too_old = time.monotonic() - IDLE_SECONDS
        for capacity, slabs in list(self._by_capacity.items()):
            while slabs and slabs[0].given_back < too_old:
                self._drop_one(capacity)

    def _drop_one(self, capacity: int | None = None) -> None:
        """Forget the oldest slab of ``capacity`` (default: the biggest); the lock is held."""
        if capacity is None:
            capacity = max(self._by_capacity)
        slabs = self._by_capacity[capacity]
        slab = slabs.popleft()
        if not slabs:
            del self._by_capacity[capacity]
        self._count -= 1
        self._bytes -= slab.used
        slab.close()

    def clear(self) -> None:
        """Forget every slab (memory a receiver still maps stays with it)."""
        with self._lock:
            while self._count:
                self._drop_one()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's slabs are the parent's."""
        self._lock = _thread.allocate_lock()
        self.clear()


_cache = Cache()
os.register_at_fork(after_in_child=lambda: _cache.forget_after_fork())


def take(size: int) -> Slab:
    """A slab with room for ``size`` bytes (see :meth:`Cache.take`)."""
    return _cache.take(size)


def give_back(slab: Slab, written: int) -> None:
    """Keep ``slab``, in which ``written`` bytes were written, for reuse."""
    _cache.give_back(slab, written)


def forget_idle() -> None:
    """Forget the slabs this process has not reused for :data:`IDLE_SECONDS`."""
    if _cache._count:
        with _cache._lock:
            _cache._forget_idle()


def drop_cache() -> None:
    """Forget every slab this process keeps for reuse (tests use it before a leak check)."""
    _cache.clear()


def map_received(fd: int, size: int) -> Any:
    """The first ``size`` bytes of the slab handed over as ``fd``, mapped copy-on-write.

    The mapping holds the hand-over (and so the slab) until it is collected, whether
    ``fd`` (left open) is closed or not.
    """
    return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)

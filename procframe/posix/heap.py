"""Shared memory for ``Value``/``Array``: blocks carved from arenas reached by descriptor.

An *arena* is a memfd (an unlinked temporary file where memfd does not
exist), ``mmap``'ed ``MAP_SHARED``.  A :class:`Block` is a piece of one arena.
A block crosses to a spawn or forkserver child as (the arena's descriptor,
exported with :func:`procframe._core.reduction.export_fd`, the arena's size, the
block's offset and size); the child maps the arena once, however many blocks
of it arrive.  Under fork the mapping is simply inherited.  Nothing has a
name, so a process killed at any moment leaves nothing behind: the kernel
frees an arena when the last process holding its descriptor or mapping exits.

``multiprocessing`` carves its blocks the same way (``multiprocessing/heap.py``)
but opens its arenas by *name* in spawned children.  As there, a block is
given back to its heap when the object using it is garbage collected in the
process that allocated it: keep a reference to a shared object for as long as
children use it.
"""

from __future__ import annotations

import bisect
import mmap
import os
import threading

from procframe._core import osutil, reduction

ALIGNMENT = 16
"""Every block starts at a multiple of this (``max_align_t`` on 64-bit platforms)."""
ARENA_SIZE = 1 << 20
"""Size of a shared arena; a request of more than half of it gets an arena of its own."""
MEMFD_NAME = "procframe-heap"


class Arena:
    """One shared mapping and the descriptor it came from."""

    __slots__ = ("fd", "map", "size")

    def __init__(self, size: int, fd: int | None = None) -> None:
        self.fd = -1
        self.size = size
        if fd is None:
            fd = osutil.anonymous_memory(MEMFD_NAME, size)
        self.fd = fd
        self.map = mmap.mmap(fd, size)  # MAP_SHARED, read and write

    def __reduce__(self) -> tuple[object, ...]:
        token = reduction.export_fd(self.fd, "a shared ctypes object (Value, Array, ...)")
        return _rebuild_arena, (token, self.size)

    def __repr__(self) -> str:
        return f"<procframe heap Arena fd={self.fd} size={self.size}>"

    def __del__(self, _close: object = os.close) -> None:  # os may be gone at shutdown
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            _close(fd)  # type: ignore[operator]


_imported: dict[int, Arena] = {}
"""Arenas received from the parent, by descriptor: each is mapped once in this process."""


def _rebuild_arena(token: int, size: int) -> Arena:
    fd = reduction.import_fd(token)
    arena = _imported.get(fd)
    if arena is None:
        arena = _imported[fd] = Arena(size, fd)
    return arena


class Block:
    """``size`` bytes at ``offset`` in ``arena``; given back to ``heap`` when collected."""

    __slots__ = ("arena", "heap", "offset", "size", "zeroed")

    def __init__(
        self, arena: Arena, offset: int, size: int, heap: Heap | None, zeroed: bool = False
    ) -> None:
        self.arena = arena
        self.offset = offset
        self.size = size
        self.heap = heap
        self.zeroed = zeroed
        """True if the memory was never used before (so it is all zeros)."""

    def __reduce__(self) -> tuple[object, ...]:
        return _rebuild_block, (self.arena, self.offset, self.size)

    def __repr__(self) -> str:
        return f"<procframe heap Block offset={self.offset} size={self.size} of {self.arena!r}>"

    def __del__(self) -> None:
        heap = self.heap
        if heap is not None:
            self.heap = None
            try:
                heap.free(self.arena, self.offset, self.size)
            except Exception:  # pragma: no cover - at interpreter shutdown
                pass


def _rebuild_block(arena: Arena, offset: int, size: int) -> Block:
    return Block(arena, offset, size, None)


class Heap:
    """A process's allocator: first fit over sorted free spans, coalesced on free.

    ``free`` may run inside a garbage collection triggered in the middle of
    ``malloc`` in the same thread, so it never waits for the lock: it queues
    the span, and whoever holds the lock next puts it back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arenas: list[Arena] = []
        self._free: dict[Arena, list[tuple[int, int]]] = {}  # (offset, size), by offset
        self._used: dict[Arena, int] = {}  # bytes handed out, per arena
        self._touched: dict[Arena, int] = {}  # end of the highest span ever handed out
        self._pending: list[tuple[Arena, int, int]] = []
        self.stale = False  # set in a forked child: the parent owns these arenas

    def malloc(self, size: int, alignment: int = ALIGNMENT) -> Block:
        """A block of at least ``size`` bytes, aligned to ``alignment``."""
        if size < 0:
            raise ValueError(f"cannot allocate a negative size ({size})")
        alignment = max(ALIGNMENT, alignment)
        if alignment & (alignment - 1) or alignment > mmap.PAGESIZE:
            raise ValueError(f"unsupported alignment {alignment}")
        size = osutil.round_up(max(size, 1), ALIGNMENT)
        with self._lock:
            self._put_back_pending()
            if size <= ARENA_SIZE // 2:
                for arena in self._arenas:
                    if arena.size == ARENA_SIZE:
                        block = self._take(arena, size, alignment)
                        if block is not None:
                            return block
            arena = Arena(
                ARENA_SIZE if size <= ARENA_SIZE // 2 else osutil.round_up(size, mmap.PAGESIZE)
            )
            self._arenas.append(arena)
            self._free[arena] = [(0, arena.size)]
            self._used[arena] = 0
            self._touched[arena] = 0
            block = self._take(arena, size, alignment)
            assert block is not None
            return block

    def _take(self, arena: Arena, size: int, alignment: int) -> Block | None:
        spans = self._free[arena]
        for i, (start, length) in enumerate(spans):
            offset = osutil.round_up(start, alignment)
            end = offset + size
            if end > start + length:
                continue
            # The span becomes (what precedes offset) and (what follows end).
            rest = [(s, n) for s, n in ((start, offset - start), (end, start + length - end)) if n]
            spans[i : i + 1] = rest
            self._used[arena] += size
            zeroed = offset >= self._touched[arena]
            self._touched[arena] = max(self._touched[arena], end)
            return Block(arena, offset, size, self, zeroed)
        return None

    def free(self, arena: Arena, offset: int, size: int) -> None:
        """Give back the span of a block (called when the block is collected)."""
        if self.stale:
            return
        self._pending.append((arena, offset, size))
        if self._lock.acquire(False):
            try:
                self._put_back_pending()
            finally:
                self._lock.release()

    def _put_back_pending(self) -> None:
        while self._pending:
            arena, offset, size = self._pending.pop()
            spans = self._free.get(arena)
            if spans is None:  # pragma: no cover - an arena this heap never had
                continue
            i = bisect.bisect(spans, (offset, size))
            end = offset + size
            if i < len(spans) and spans[i][0] == end:  # merge with the next span
                end += spans.pop(i)[1]
            if i and spans[i - 1][0] + spans[i - 1][1] == offset:  # and the previous one
                offset = spans[i - 1][0]
                i -= 1
                spans.pop(i)
            spans.insert(i, (offset, end - offset))
            self._used[arena] -= size
            if self._used[arena] == 0 and arena.size > ARENA_SIZE:
                # A big array's own arena: let it go (it is unmapped once unused).
                self._arenas.remove(arena)
                del self._free[arena], self._used[arena], self._touched[arena]

    def stats(self) -> dict[str, int]:
        """Arenas, their total size and the bytes in use (for tests and curiosity)."""
        with self._lock:
            self._put_back_pending()
            return {
                "arenas": len(self._arenas),
                "size": sum(arena.size for arena in self._arenas),
                "used": sum(self._used.values()),
            }


_heap: Heap | None = None
_heap_lock = threading.Lock()


def get_heap() -> Heap:
    """This process's heap (a forked child starts a new one)."""
    global _heap
    heap = _heap
    if heap is None:
        with _heap_lock:
            if _heap is None:
                _heap = Heap()
            heap = _heap
    return heap


def malloc(size: int, alignment: int = ALIGNMENT) -> Block:
    """A block of shared memory of at least ``size`` bytes from this process's heap."""
    return get_heap().malloc(size, alignment)


def _after_fork_in_child() -> None:
    # The parent keeps allocating from its arenas, which this child shares:
    # allocating from them here would hand out the same memory twice.
    global _heap, _heap_lock
    if _heap is not None:
        _heap.stale = True
    _heap = None
    _heap_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

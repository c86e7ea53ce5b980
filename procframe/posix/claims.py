"""Who holds which big queue item: the claims board of a channel.

A reader that takes a look packet from a channel's pipe has claimed the big
item the packet names (by its token); the item waits as a record in the side
socket.  If that reader is killed before it takes the record, the record must
not stay there for ever (orphans fill the socket until puts block), and nobody
may drop it while the reader lives.  The board makes that decidable:

* Every reading thread owns a *slot*: a page of shared memory stamped with its
  process (pid and start time).  It reads every packet of the pipe straight
  into its slot (``readv``), so the kernel writes a look packet's token into
  shared memory in the very system call that takes the packet: no reader ever
  holds a token the board does not show.  The slot's first byte is zero while
  it holds a claim (a look packet starts with a zero byte, a pickle never
  does); the reader sets it to one once it has its record or gave up.
* A token is *orphaned* when the process claiming it no longer exists, or when
  its reader gave up on it (:class:`~procframe.posix.channel.ItemLostError`)
  and listed it as abandoned.  Whoever meets an orphaned record drops it.

The board knows nothing of sockets: any transport whose items are claimed by
reading a token can ask it whether a token still has a living claimant.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import threading

from procframe._core import osutil

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.posix.robustlock import RobustLock

SLOTS = 64
"""Reading threads one board serves; more read without the protection of a claim."""
TOKEN_SIZE = 16
PACKET_MAX = 4096
"""A slot holds a whole pipe packet (``PIPE_BUF``)."""
_PAGE = mmap.PAGESIZE
_MUTEX = 0  # a robust mutex: taking slots, writing the ring
_RING_NEXT = 64  # int64: where the next abandoned token goes
_RING = 128
_RING_SIZE = 128
"""Abandoned tokens remembered at once (the oldest is forgotten first)."""
_OWNERS = 2304  # (pid, start time) int64 pairs, one per slot
_SLOT_STRIDE = max(_PAGE, PACKET_MAX)
_SIZE = _PAGE + SLOTS * _SLOT_STRIDE
_FREE_BYTE = 1
"""A slot's first byte when it holds no claim."""
assert _RING + _RING_SIZE * TOKEN_SIZE <= _OWNERS and _OWNERS + SLOTS * 16 <= _PAGE


class ReaderSlot:
    """One thread's slot: it reads packets into it and holds its claim there."""

    __slots__ = ("_fd", "_file", "board", "index", "offset", "pid", "region", "thread", "view")

    def __init__(self, board: ClaimsBoard, index: int) -> None:
        self.board = board
        self.index = index
        self.pid = _me[0]
        self.thread = threading.get_ident()
        self.offset = _PAGE + index * _SLOT_STRIDE
        self.view = memoryview(board.map)[self.offset : self.offset + PACKET_MAX]
        self.region = board.map
        self._fd = -1
        self._file: io.FileIO | None = None

    def read(self, fd: int) -> bytes:
        """The next packet of pipe ``fd``, read into the slot (``BlockingIOError`` if none)."""
        file = self._file
        if fd != self._fd or file is None:
            # FileIO.readinto: one read(2) into the slot, as cheap as os.read (os.readv
            # costs about 0.15 us more per call, a tenth of a small item's get).
            file = self._file = io.FileIO(fd, "rb", closefd=False)
            self._fd = fd
        size = file.readinto(self.view)
        if size is None:  # a non-blocking pipe with no packet
            raise BlockingIOError(errno.EAGAIN, "no packet")
        offset = self.offset
        return self.region[offset : offset + size]

    def release_claim(self) -> None:
        """The claimed item is taken or given up: the slot claims nothing any more."""
        self.board.map[self.offset] = _FREE_BYTE

    def __del__(self) -> None:  # the thread ended, or the board is collected
        if self.pid == _me[0]:
            self.board.free_slot(self.index, self.pid)


class ClaimsBoard:
    """The shared page of claims of one channel, mapped in every process that holds it."""

    def __init__(self, fd: int | None = None) -> None:
        creating = fd is None
        self.fd = osutil.anonymous_memory("procframe-queue-claims", _SIZE) if fd is None else fd
        self.map = mmap.mmap(self.fd, _SIZE)
        self._owners = memoryview(self.map)[_OWNERS : _OWNERS + SLOTS * 16].cast("q")
        self._local = threading.local()
        self._recent: ReaderSlot | None = None
        """The slot of the thread that read last: found without looking in ``_local``."""
        self._lock: RobustLock | None = None
        self._anchor: Any = None
        if creating:
            self._robust_lock(init=True)

    def _robust_lock(self, init: bool = False) -> RobustLock:
        if self._lock is None:
            from procframe.posix.robustlock import RobustLock, init_robust_mutex
            from procframe.posix.semaphore import address_of

            base, self._anchor = address_of(self.map)
            if init:
                init_robust_mutex(base + _MUTEX)
            self._lock = RobustLock(base + _MUTEX)
        return self._lock

    # -- readers' slots --------------------------------------------------------------------

    def reader_slot(self) -> ReaderSlot | None:
        """The calling thread's slot (taken at its first read), or None if all are taken."""
        slot = self._recent
        if slot is not None and slot.thread == _get_ident() and slot.pid == _me[0]:
            return slot
        slot = getattr(self._local, "slot", None)
        if slot is None or slot.pid != _me[0]:
            slot = self._take_slot()
        self._recent = slot
        return slot

    def _take_slot(self) -> ReaderSlot | None:
        with self._robust_lock():
            index = self._free_slot_index()
            if index is None:
                return None
            offset = _PAGE + index * _SLOT_STRIDE
            owners = self._owners
            if owners[2 * index] and self.map[offset] == 0:  # its dead owner's claim
                self._abandon_locked(self.map[offset + 1 : offset + 1 + TOKEN_SIZE])
            self.map[offset] = _FREE_BYTE
            owners[2 * index + 1] = _start_time_of_me()
            owners[2 * index] = _me[0]
        slot = self._local.slot = ReaderSlot(self, index)
        return slot

    def _free_slot_index(self) -> int | None:
        """A slot nobody living owns: a free one, else a dead owner's without a claim, else
        any dead owner's (the caller holds the lock)."""
        owners, region = self._owners, self.map
        dead: int | None = None
        dead_claimant: int | None = None
        for index in range(SLOTS):
            pid = owners[2 * index]
            if not pid:
                return index
            if _alive(pid, owners[2 * index + 1]):
                continue
            if region[_PAGE + index * _SLOT_STRIDE] != 0:
                dead = index if dead is None else dead
            elif dead_claimant is None:
                dead_claimant = index
        return dead if dead is not None else dead_claimant

    def free_slot(self, index: int, pid: int) -> None:
        """Give back slot ``index`` of process ``pid`` (its owner thread is done with it)."""
        try:
            if self._owners[2 * index] == pid:
                self.map[_PAGE + index * _SLOT_STRIDE] = _FREE_BYTE
                self._owners[2 * index] = 0
        except ValueError:  # the mapping is already closed
            pass

    def free_my_slots(self) -> None:
        """Give back every slot of this process (it reads no more)."""
        me = _me[0]
        for index in range(SLOTS):
            self.free_slot(index, me)
        self._local = threading.local()
        self._recent = None

    # -- claims --------------------------------------------------------------------------

    def claims(self) -> dict[bytes, tuple[int, int, int]]:
        """A snapshot: each claimed token, its claimant's pid and start time, and its slot."""
        owners, region = self._owners, self.map
        found: dict[bytes, tuple[int, int, int]] = {}
        for index in range(SLOTS):
            pid = owners[2 * index]
            if not pid:
                continue
            offset = _PAGE + index * _SLOT_STRIDE
            token = region[offset : offset + 1 + TOKEN_SIZE]
            if token[0] != 0:
                continue
            owner = (pid, owners[2 * index + 1], index)
            # Read the token again after the owner: if it did not change meanwhile, this
            # owner claimed it (or took the slot of its dead claimant, which abandoned it).
            if region[offset : offset + 1 + TOKEN_SIZE] == token:
                found[token[1:]] = owner
        return found

    def orphaned(self, token: bytes, claims: dict[bytes, tuple[int, int, int]]) -> bool:
        """True if nobody living waits for ``token``: its claimant died, or gave it up.

        ``claims`` is a snapshot from :meth:`claims`.  A token nobody claims may
        still have its look packet in the pipe: that is no orphan.  The caller
        drops the item: a dead claimant's slot is freed (it claims nothing now).
        """
        owner = claims.get(token)
        if owner is None:
            return self._forget_abandoned(token)
        pid, started, index = owner
        if _alive(pid, started):
            return False
        with self._robust_lock():
            offset = _PAGE + index * _SLOT_STRIDE
            if (
                self._owners[2 * index] == pid
                and self.map[offset + 1 : offset + 1 + TOKEN_SIZE] == token
            ):
                self.free_slot(index, pid)
        return True

    def abandon(self, token: bytes) -> None:
        """List ``token`` as given up: whoever meets its record drops it."""
        with self._robust_lock():
            self._abandon_locked(token)

    def _abandon_locked(self, token: bytes) -> None:
        ring_next = memoryview(self.map)[_RING_NEXT : _RING_NEXT + 8].cast("q")
        at = _RING + (ring_next[0] % _RING_SIZE) * TOKEN_SIZE
        self.map[at : at + TOKEN_SIZE] = token
        ring_next[0] = (ring_next[0] + 1) % _RING_SIZE
        ring_next.release()

    def _forget_abandoned(self, token: bytes) -> bool:
        ring = self.map[_RING : _RING + _RING_SIZE * TOKEN_SIZE]
        at = ring.find(token)
        while at >= 0 and at % TOKEN_SIZE:
            at = ring.find(token, at + 1)
        if at < 0:
            return False
        with self._robust_lock():
            start = _RING + at
            if self.map[start : start + TOKEN_SIZE] == token:
                self.map[start : start + TOKEN_SIZE] = bytes(TOKEN_SIZE)
        return True

    # -- life ----------------------------------------------------------------------------

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            self.fd = -1
            _close(fd)


_get_ident = threading.get_ident
_me = [os.getpid()]
"""This process's pid, kept up to date at fork (cheaper than ``os.getpid()`` per read)."""
_my_start: list[int] = []


def _start_time_of_me() -> int:
    if not _my_start:
        _my_start.append(osutil.process_start_time(_me[0]) or 0)
    return _my_start[0]


def _alive(pid: int, started: int) -> bool:
    """True unless process ``pid`` (started at ``started``) has surely ended."""
    if pid == _me[0]:
        return True  # a thread of this process: it gives its slot back when it ends
    now = osutil.living_process_start_time(pid)
    if now is None:
        return not _PROC_READABLE  # without /proc nothing can be proved dead
    return now == started


_PROC_READABLE = osutil.process_start_time(os.getpid()) is not None


def _after_fork_in_child() -> None:
    _me[0] = os.getpid()
    _my_start.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)

"""Shared memory attachable by name: ``SharedMemory`` and ``ShareableList``.

The API of ``multiprocessing.shared_memory``, without ``/dev/shm``.

On Linux a segment is a memfd (sealed against shrinking and growing once
sized) that its *creator process* holds open, and its name says where to find
it:

* A generated name, ``pf_<creator pid>_<descriptor>_<token>``, is opened as
  ``/proc/<pid>/fd/<descriptor>``; the random token is also the memfd's label,
  checked before and after opening, so a reused pid or descriptor never
  attaches the wrong memory.
* A name the caller chooses (``SharedMemory("frames", create=True, size=n)``)
  is published by binding an abstract Unix socket (a name in the kernel that
  disappears with its holder) that carries the creator's pid, descriptor and
  token; attaching finds it in ``/proc/net/unix``.  Creating a name that is
  already in use raises ``FileExistsError``, also when two processes race.

Attaching needs the right to open the creator's ``/proc/<pid>/fd`` (the same
user; ``PermissionError`` otherwise) and the same pid namespace (and, for a
chosen name, network namespace).

The lifetime is close to the standard library's, without its leaks.  There a name
stays in ``/dev/shm`` until some process calls ``unlink()`` or a
resource-tracker process cleans up after the program; if the tracker is
killed too (a killed process group, the OOM killer, a stopped container) the
name and its memory stay until reboot.  Here **a name is attachable until it
is unlinked or the program ends** (the program: its main process and every
process started from it):

* The creator holds the memfd and publishes it while it lives.
* A creator other than the main process also hands a descriptor of each new
  block to the program's *keeper* (:mod:`procframe.posix.shm_keeper`) before
  ``SharedMemory(create=True)`` returns (one round trip): one process per
  program, started by the first creator that needs it, that publishes the
  segments under their names, lets each go when it is unlinked, exits when it
  holds nothing, and dies with the main process (a pidfd), SIGKILL included.
  So however a child creator ends (it returns, is terminated or killed, as
  when a ``with Pool()`` block ends, or calls ``os._exit()``), its names stay
  attachable: the "worker creates a block and returns its name" pattern
  works, and nothing outlives the program.  A creator killed *during* its
  create takes the block with it (nobody had its name yet).  If the keeper
  cannot take the block, the create raises ``OSError`` and leaves nothing;
  where no keeper can run (no Python interpreter: a frozen program) a
  child's blocks last as long as their creator, with a ``RuntimeWarning``.
* The main process's end is the program's: the program's blocks go with it,
  without a warning (nothing leaked: there is nothing to clean up).

``unlink()`` may be called in any process: it marks the segment, tells the
keeper if one holds it, and the creator lets go of it at its next
``close()``, ``unlink()``, new segment or collection of the object, or its
end.  The creator's ``close()`` only unmaps its buffer, and dropping the
creator object does not end the name either (each live name costs its
holder one descriptor, two for a chosen name or in the keeper).  Memory that some
process still maps stays valid after its name is gone, whoever exits or is
killed, and the kernel frees it with the last mapping.  ``unlink()`` raises
``FileNotFoundError`` when the name is no longer attachable (already
unlinked, or the creator's program ended).

Passed to a child started by ``spawn`` or ``forkserver`` as a ``Process``
argument, a segment crosses as a descriptor (:mod:`procframe._core.reduction`), so
the child has it even if the creator exits meanwhile; pickled anywhere else
(a ``Queue``, a ``Pipe``) it travels by name, as in the standard library.

Where memfd or ``/proc`` is missing (macOS, the BSDs), segments are named
POSIX shared memory (``shm_open``), as in the standard library but with no
resource-tracker process and no keeper: there a name outlives its creator
until ``unlink()``, and a program killed before ``unlink()`` leaves it behind.

``ShareableList`` keeps its own layout (a header with the count, a record of
kind, capacity and length per slot, then the values) in a ``SharedMemory``.
As in the standard library, each ``str``/``bytes`` slot has a fixed capacity
chosen at creation (its encoded length rounded up to the next multiple of 8)
and a longer value raises ``ValueError``; unlike it, trailing NUL bytes are
kept and non-ASCII text gets room for its UTF-8 encoding.
"""

from __future__ import annotations

import errno
import mmap
import operator
import os
import struct

from procframe._core import reduction
from procframe._core.generic import SLT, Generic
from procframe.posix import shm_handoff, shm_names, shm_segment
from procframe.posix.shm_names import owners as _owners

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

__all__ = ["ShareableList", "SharedMemory"]

_USE_MEMFD = shm_segment.USABLE
"""True: segments are memfds reached through /proc.  False: named POSIX shared memory."""


def _not_found(name: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


_claimed: set[int] = set()
"""Descriptors received at start that a rebuilt SharedMemory already owns."""


class SharedMemory:
    """A block of shared memory, created or attached by name.

    ``SharedMemory(create=True, size=n)`` makes a block of ``n`` bytes with a
    generated name; ``SharedMemory(name, create=True, size=n)`` one with a
    chosen name; ``SharedMemory(name)`` attaches to an existing block.  See
    the module documentation for how long a name stays attachable.
    ``track`` is accepted for compatibility and ignored: there is no
    resource tracker.
    """

    _name = ""
    _key = ""
    _token = ""
    _size = 0
    _data_len = 0
    _fd = -1
    _mmap: mmap.mmap | None = None
    _buf: memoryview | None = None
    _owner: shm_names.Owner | None = None
    _posix = False

    def __init__(
        self, name: str | None = None, create: bool = False, size: int = 0, *, track: bool = True
    ) -> None:
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            size = operator.index(size)
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        key = None if name is None else shm_names.check_name(name)
        if not _USE_MEMFD:
            self._open_posix(name, create, size)
            return
        if create:
            key, owner = shm_names.create(key, size)
            self._name = key if name is None else name
            self._key, self._token = key, owner.token
            try:
                self._map(owner.fd, size, owner.data_len)
                shm_handoff.keep(owner)  # in a child: the keeper holds it too from now on
            except BaseException:
                self.close()
                shm_handoff.abandon(owner)
                raise
            self._owner = owner
            return
        assert name is not None and key is not None
        found = shm_names.open_by_key(key)
        if found is None:
            raise _not_found(name)
        fd, meta = found
        self._name, self._key, self._fd, self._token = name, key, fd, meta.token
        self._map(fd, meta.size, meta.data_len)

    def _map(self, fd: int, size: int, data_len: int) -> None:
        self._size = size
        self._data_len = data_len
        self._mmap = mmap.mmap(fd, data_len + shm_segment.PAGESIZE)
        self._buf = memoryview(self._mmap)[:size]

    def _open_posix(self, name: str | None, create: bool, size: int) -> None:
        import _posixshmem  # type: ignore[import-not-found]

        self._posix = True
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        if name is None:
            while True:
                name = "pf-" + os.urandom(6).hex()
                try:
                    self._fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
                except FileExistsError:
                    continue
                break
            shm_name = "/" + name
        else:
            shm_name = "/" + name
            self._fd = _posixshmem.shm_open(shm_name, flags, mode=0o600)
        self._name, self._key = name, shm_name
        try:
            if create:
                os.ftruncate(self._fd, size)
            size = os.fstat(self._fd).st_size
            self._mmap = mmap.mmap(self._fd, size)
        except OSError:
            if create:
                _posixshmem.shm_unlink(shm_name)
            self.close()
            raise
        self._size = size
        self._buf = memoryview(self._mmap)

    @classmethod
    def _from_descriptor(cls, fd: int, name: str) -> SharedMemory:
        meta = shm_segment.read_meta(fd)
        if meta is None:
            os.close(fd)
            raise ValueError(f"descriptor {fd} is not a procframe shared memory segment")
        self = cls.__new__(cls)
        self._name, self._key, self._fd, self._token = name, name.lstrip("/"), fd, meta.token
        self._map(fd, meta.size, meta.data_len)
        return self

    def __del__(self) -> None:
        try:
            self.close()
        except BufferError:  # a view of the buffer lives on: it keeps the mapping alive
            self._buf = self._mmap = None
            try:
                self.close()
            except Exception:
                pass
        except Exception:  # OSError, or modules torn down at interpreter exit
            pass

    def __enter__(self) -> SharedMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        fd = self._fd if self._owner is None else self._owner.fd
        if not self._posix and fd >= 0 and reduction.collecting():
            token = reduction.export_fd(fd, "a SharedMemory")
            return _rebuild, (type(self), token, self._name)
        return type(self), (self.name, False, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self) -> memoryview | None:
        """A memoryview of exactly ``size`` bytes of the block (None once closed)."""
        return self._buf

    @property
    def name(self) -> str:
        """The name that attaches to this block (as given, or generated)."""
        return self._name

    @property
    def size(self) -> int:
        """Size of the block in bytes."""
        return self._size

    def close(self) -> None:
        """Unmap the block from this object; the block itself and its name stay.

        Raises ``BufferError`` while a view of ``buf`` is still in use.
        """
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        owner = self._owner
        if owner is not None and owner.fd >= 0 and owner.unlinked():
            owner.release()

    def unlink(self) -> None:
        """Make the name unattachable, from any process; mapped memory stays valid.

        Raises ``FileNotFoundError`` if the name is no longer attachable.
        """
        if self._posix:
            import _posixshmem

            if self._key:
                _posixshmem.shm_unlink(self._key)
            return
        owner = self._owner
        if owner is None or owner.fd < 0:  # another object of the creator's, if any
            owner = _owners.get(self._token)
        if self._mmap is not None:
            was = self._mmap[self._data_len + shm_segment.UNLINKED_AT] != 0
            self._mmap[self._data_len + shm_segment.UNLINKED_AT] = 1
            keeper = shm_segment.keeper_address_in(self._mmap, self._data_len)
        elif owner is not None:
            was = shm_segment.set_flag(owner.fd, owner.data_len, shm_segment.UNLINKED_AT)
            keeper = shm_segment.keeper_address(owner.fd, owner.data_len)
        else:
            # only=: this block, not a later one of the same name
            found = shm_names.open_by_key(self._key, only=self._token)
            if found is None:
                raise _not_found(self._name)
            fd, meta = found
            try:
                was = shm_segment.set_flag(fd, meta.data_len, shm_segment.UNLINKED_AT)
                keeper = shm_segment.keeper_address(fd, meta.data_len)
            finally:
                os.close(fd)
        if owner is not None:
            owner.release()
        if keeper and not was:  # its creator exited: the keeper lets go of the memory now
            shm_handoff.notify_unlinked(keeper)
        if was:
            raise _not_found(self._name)


def _rebuild(cls: type[SharedMemory], token: int, name: str) -> SharedMemory:
    """In a child: the SharedMemory whose descriptor came with the start."""
    fd = reduction.import_fd(token)
    if fd in _claimed:  # the same block passed twice: each object owns a descriptor
        fd = os.dup(fd)
    else:
        _claimed.add(fd)
        os.set_inheritable(fd, False)
    return cls._from_descriptor(fd, name)


# -- ShareableList --------------------------------------------------------------------

_INT, _FLOAT, _BOOL, _NONE, _STR, _BYTES = range(6)
_KINDS: dict[type, int] = {
    int: _INT,
    float: _FLOAT,
    bool: _BOOL,
    type(None): _NONE,
    str: _STR,
    bytes: _BYTES,
}
_FORMATS = ("q", "d", "xxxxxxx?", "xxxxxx?x")
"""The standard library's ``struct`` format of each fixed-size kind (for ``format``)."""
_LIST_MAGIC = b"PFSL"
_HEADER = struct.Struct("=4s4xQ")  # magic, count
_SLOT = struct.Struct("=B7xQQ")  # kind, capacity, length (of a str or bytes value)
_Q = struct.Struct("=q")
_D = struct.Struct("=d")
_LEN = struct.Struct("=Q")
_ENCODING = "utf-8"


class _UnsupportedType(TypeError, KeyError):
    """A value of a type a ShareableList cannot hold (also a KeyError, as in the stdlib)."""

    __str__ = TypeError.__str__


def _unsupported(value: object) -> _UnsupportedType:
    return _UnsupportedType(
        f"a ShareableList holds int, float, bool, str, bytes and None, not {type(value).__name__}"
    )


def _capacity(length: int) -> int:
    return 8 * (length // 8 + 1)


class ShareableList(Generic[SLT]):
    """A fixed-length list of ``int``, ``float``, ``bool``, ``str``, ``bytes`` and ``None``
    values in a :class:`SharedMemory` block.

    ``ShareableList(sequence)`` creates one (``name=`` chooses its block's
    name); ``ShareableList(name=name)`` attaches to an existing one.  Items can
    be replaced (a ``str``/``bytes`` item by one whose encoding fits the slot's
    capacity), not added or removed.
    """

    shm: SharedMemory

    def __init__(self, sequence: Iterable[SLT] | None = None, *, name: str | None = None) -> None:
        if name is not None and sequence is None:
            self._attach(SharedMemory(name))
            return
        values: list[Any] = list(sequence) if sequence is not None else []
        layout = bytearray(_HEADER.pack(_LIST_MAGIC, len(values)))
        data = bytearray()
        for value in values:
            kind = _KINDS.get(type(value))
            length = 0
            if kind is None:
                raise _unsupported(value)
            if kind == _INT:
                data += _Q.pack(value)
            elif kind == _FLOAT:
                data += _D.pack(value)
            elif kind == _BOOL:
                data += _Q.pack(int(value))
            elif kind == _NONE:
                data += bytes(8)
            else:
                encoded = value.encode(_ENCODING) if kind == _STR else value
                length = len(encoded)
                data += encoded + bytes(_capacity(length) - length)
            layout += _SLOT.pack(kind, 8 if kind < _STR else _capacity(length), length)
        shm = SharedMemory(name, create=True, size=len(layout) + len(data))
        assert shm.buf is not None
        shm.buf[: len(layout)] = layout
        shm.buf[len(layout) :] = data
        self._attach(shm)

    def _attach(self, shm: SharedMemory) -> None:
        """Read the layout back from ``shm``: where each slot's kind, length and value are."""
        self.shm = shm
        buf = shm.buf
        if buf is None:
            raise ValueError(f"{shm!r} is closed")
        if len(buf) < _HEADER.size or bytes(buf[:4]) != _LIST_MAGIC:
            raise ValueError(f"{shm.name!r} does not hold a ShareableList")
        count = _HEADER.unpack_from(buf)[1]
        data = _HEADER.size + count * _SLOT.size
        if data > len(buf):
            raise ValueError(f"{shm.name!r} does not hold a ShareableList")
        slots: list[tuple[int, int, int, int]] = []
        for i in range(count):
            record = _HEADER.size + i * _SLOT.size
            capacity = _SLOT.unpack_from(buf, record)[1]
            slots.append((record, record + 16, data, capacity))  # kind, length, value, capacity
            data += capacity
        if data > len(buf):
            raise ValueError(f"{shm.name!r} does not hold a ShareableList")
        self._buf = buf
        self._slots = slots

    def _slot(self, position: int, message: str) -> tuple[int, int, int, int]:
        try:
            return self._slots[operator.index(position)]
        except IndexError:
            raise IndexError(message) from None

    def __getitem__(self, position: int) -> Any:
        kind_at, length_at, at, _ = self._slot(position, "index out of range")
        buf = self._buf
        kind = buf[kind_at]
        if kind == _INT:
            return _Q.unpack_from(buf, at)[0]
        if kind == _FLOAT:
            return _D.unpack_from(buf, at)[0]
        if kind == _STR:
            return str(buf[at : at + _LEN.unpack_from(buf, length_at)[0]], _ENCODING)
        if kind == _BYTES:
            return buf[at : at + _LEN.unpack_from(buf, length_at)[0]].tobytes()
        if kind == _BOOL:
            return _Q.unpack_from(buf, at)[0] != 0
        if kind == _NONE:
            return None
        raise ValueError(f"slot {position} of {self.shm.name!r} holds an unknown kind {kind}")

    def __setitem__(self, position: int, value: Any) -> None:
        kind_at, length_at, at, capacity = self._slot(position, "assignment index out of range")
        buf = self._buf
        kind = _KINDS.get(type(value))
        if kind is None:
            raise _unsupported(value)
        if kind == _INT:
            _Q.pack_into(buf, at, value)
        elif kind == _FLOAT:
            _D.pack_into(buf, at, value)
        elif kind == _BOOL:
            _Q.pack_into(buf, at, int(value))
        elif kind >= _STR:
            encoded = value.encode(_ENCODING) if kind == _STR else value
            length = len(encoded)
            if length > capacity:
                raise ValueError("bytes/str item exceeds available storage")
            buf[at : at + length] = encoded
            _LEN.pack_into(buf, length_at, length)
        buf[kind_at] = kind

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self._slots)):
            yield self[i]

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_list, (type(self), self.shm)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)}, name={self.shm.name!r})"

    @property
    def format(self) -> str:
        """The ``struct`` format of the items as stored now (the standard library's codes)."""
        buf = self._buf
        return "".join(
            _FORMATS[buf[kind_at]] if buf[kind_at] < _STR else f"{capacity}s"
            for kind_at, _, _, capacity in self._slots
        )

    def count(self, value: Any) -> int:
        """The number of items equal to ``value``."""
        return sum(value == item for item in self)

    def index(self, value: Any) -> int:
        """The position of the first item equal to ``value``; ValueError if there is none."""
        for position, item in enumerate(self):
            if value == item:
                return position
        raise ValueError(f"{value!r} not in this container")


def _rebuild_list(cls: type[ShareableList[Any]], shm: SharedMemory) -> ShareableList[Any]:
    self = cls.__new__(cls)
    self._attach(shm)
    return self

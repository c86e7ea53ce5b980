"""Messages between processes: small ones as a pickle, big ones in a slab, buffers out of band.

An object is pickled with protocol 5.  Every buffer in it of at least
:data:`OUT_OF_BAND_MIN` bytes (a numpy array, a ``memoryview``, a ``bytes``
or ``bytearray`` sent as the message itself, anything whose ``__reduce_ex__``
gives a ``pickle.PickleBuffer``) is kept out of the pickle.  If there is none
and the pickle is small, the message is the pickle (``bytes``), as before.
Otherwise the pickle and the buffers are written once, into a slab
(:mod:`procframe._core.slabs`), and the message is the slab's descriptor
(:class:`Outbound`), which the transport hands over.  The receiver maps the
slab and unpickles with the buffers as views of the mapping: a received array
is the sender's bytes in shared memory, copy-on-write, without a copy (a
slab under :data:`MAP_MIN` bytes is read instead: copying it costs less than
mapping it).  ``bytes`` and ``bytearray`` own their memory, so the receiver
copies those out of the slab once.

A message received in a mapping and sent on unchanged (the same pickle, its
buffers the very views received, none of their pages written since) is not
copied again: the slab it came in is handed over again (:func:`_forwarded`).
The receiver could not tell: a slab is never written while a hand-over of it
lives, and each receiver's mapping is copy-on-write.  Buffers already in
other shared memory (a ``SharedMemory`` block, an ``Array``) are copied into
the slab: the receiver would otherwise see the sender's later writes, which a
pickled copy never does.

A slab is laid out as a header (magic, the pickle's length, the number of
buffers), an (offset, length) span for the pickle and one for each buffer,
then the pickle and the buffers, each aligned to :data:`ALIGN` bytes.
"""

from __future__ import annotations

import copyreg
import os
import struct
import weakref
from pickle import PickleBuffer
from pickle import loads as _pickle_loads

from procframe._core import reduction, slabs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUT_OF_BAND_MIN = 1 << 16
"""Buffers of at least this many bytes travel beside the pickle, in the slab (measured through
a Pipe: in band wins at 32 KiB, the slab at 64 KiB)."""
MAP_MIN = 1 << 19
"""A receiver maps slabs of at least this many bytes; it reads smaller ones (measured: reading
wins at 256 KiB, mapping at 512 KiB)."""
ALIGN = 64
"""Where the pickle and each buffer start in a slab: a multiple of this (SIMD loads)."""
_HEADER = struct.Struct("<8sQQ")
_SPAN = struct.Struct("<QQ")
_MAGIC = b"pfslab01"


class _HasBigBuffer(Exception):
    """Raised by :func:`_in_band_only` to leave the fast path."""


def _in_band_only(buffer: PickleBuffer) -> bool:
    if memoryview(buffer).nbytes >= OUT_OF_BAND_MIN:
        raise _HasBigBuffer
    return True


class Outbound:
    """A message written into a slab: the descriptor that hands it over (see the module doc).

    The transport sends :attr:`fd` (``SCM_RIGHTS``, or a child's start) and closes it, or
    takes it over with :meth:`detach`; until then this object closes it when collected.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def detach(self) -> int:
        """The descriptor, now the caller's to close."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self, _close: Any = os.close) -> None:  # os may be gone at shutdown
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _close(fd)


def dumps(
    obj: object, inline_max: int, scan: bool = False, pickle: Any = reduction.dumps
) -> bytes | Outbound:
    """``obj`` as a message: its pickle if that is at most ``inline_max`` bytes and no big
    buffer is in it, else an :class:`Outbound` slab.  ``pickle`` is the sender's serializer's
    ``dumps`` (:mod:`procframe._core.serializing`).  Pickling errors propagate (and release
    descriptors shared meanwhile, as :func:`procframe._core.reduction.dumps`).

    Pickle copies ``bytes``, ``bytearray`` and non-contiguous numpy arrays into its
    stream.  When the message is one of those, or its pickle turns out big, they are
    looked for in it (down to :data:`_SCANNED_DEPTH` levels of tuples and lists) and sent
    out of band too: a small message costs two type checks more than its pickle.  With
    ``scan`` (a pool's calls and results, whose big ``bytes`` are often in a tuple or a
    list), they are looked for first where the first items of nested tuples and lists
    suggest them (:func:`_may_hold_big_buffers`): the pickle is then made once.
    """
    if scan and _may_hold_big_buffers(obj):
        lifted = lift_big_buffers(obj, _SCANNED_DEPTH)
        if lifted is not None:
            return _pack_out_of_band(lifted, pickle)
    cls = type(obj)
    if (cls is bytes or cls is bytearray) and len(obj) >= OUT_OF_BAND_MIN:  # type: ignore[arg-type]
        return _pack_out_of_band(_WholeBuffer(obj), pickle)  # type: ignore[arg-type]
    try:
        data = pickle(obj, _in_band_only)
    except _HasBigBuffer:
        lifted = lift_big_buffers(obj, _SCANNED_DEPTH)
        return _pack_out_of_band(obj if lifted is None else lifted, pickle)
    if len(data) <= inline_max:
        return data  # type: ignore[no-any-return]
    lifted = lift_big_buffers(obj, _SCANNED_DEPTH)
    return _pack(data, []) if lifted is None else _pack_out_of_band(lifted, pickle)


class BigBuffers(list):  # type: ignore[type-arg]
    """A pickle ``buffer_callback`` that keeps buffers of at least :data:`OUT_OF_BAND_MIN`
    bytes out of band, in this list; ``reset()`` forgets them (the pickling starts again)."""

    def __call__(self, buffer: PickleBuffer) -> bool:
        if memoryview(buffer).nbytes < OUT_OF_BAND_MIN:
            return True
        self.append(buffer)
        return False

    reset = list.clear


def _pack_out_of_band(obj: Any, pickle: Any) -> Outbound:
    """``obj`` (its big ``bytes`` lifted already) pickled with its big buffers out of band,
    into a slab."""
    buffers = BigBuffers()
    pickled = pickle(obj, buffers)
    if _received and buffers:
        fd = _forwarded(pickled, buffers)
        if fd is not None:
            return Outbound(fd)
    return _pack(pickled, buffers)


_received: dict[int, tuple[Any, int, list[tuple[int, int]]]] = {}
"""The mappings of messages received here and still alive, by ``id``: a weak reference to
the mapping, a descriptor of its slab, and the message's spans."""
_PAGE_STATE = bytes(1 if (top & 0x80 and not top & 0x20) or top & 0x40 else 0 for top in range(256))
"""By the top byte of a ``/proc/self/pagemap`` entry: 1 if the page was written here (present
but no longer the file's page: copied on write; or swapped, which only private pages are)."""


def _remember(mapping: Any, fd: int, spans: list[tuple[int, int]]) -> None:
    """Keep ``fd`` (a descriptor of the slab ``mapping`` maps) while the mapping lives."""
    key = id(mapping)

    def forget(_: object, key: int = key, fd: int = fd) -> None:
        _received.pop(key, None)
        os.close(fd)

    _received[key] = (weakref.ref(mapping, forget), fd, spans)


def _forwarded(pickled: bytes, buffers: list[PickleBuffer]) -> int | None:
    """A new hand-over of the slab a message came in, if ``pickled`` and ``buffers`` are that
    message unchanged (see the module doc); else None."""
    import ctypes

    places = []
    for buffer in buffers:
        raw = buffer.raw()
        if raw.readonly:
            return None  # what this module maps is writable
        places.append(ctypes.addressof(ctypes.c_char.from_buffer(raw)))
    for ref, fd, spans in list(_received.values()):
        mapping = ref()
        if mapping is None or len(spans) != len(buffers) + 1:
            continue
        base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        wanted = [base + start for start, _ in spans[1:]]
        sizes = [memoryview(buffer).nbytes for buffer in buffers]
        if places != wanted or sizes != [size for _, size in spans[1:]]:
            continue
        start, size = spans[0]
        if mapping[start : start + size] != pickled or _written(base, spans[1:]):
            return None
        return slabs.hand_over(fd)
    return None


def _written(base: int, spans: list[tuple[int, int]]) -> bool:
    """True if a page of these spans of the mapping at ``base`` was written by this process
    (``/proc/self/pagemap``; True where it cannot be read)."""
    import mmap

    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        for start, size in spans:
            first = (base + start) // mmap.PAGESIZE
            last = (base + start + size - 1) // mmap.PAGESIZE
            entries = os.pread(pagemap, 8 * (last - first + 1), 8 * first)
            if len(entries) != 8 * (last - first + 1):
                return True
            if 1 in entries[7::8].translate(_PAGE_STATE):
                return True
    except OSError:
        return True
    finally:
        os.close(pagemap)
    return False


_SCANNED_LENGTH = 256
"""Tuples and lists longer than this are not looked into for big buffers."""
_SCANNED_DEPTH = 3
"""How deep in tuples and lists big buffers are looked for."""
_OTHER, _WHOLE, _SEQUENCE, _ARRAY = range(1, 5)
_BIG_KINDS = (_WHOLE, _ARRAY)
_LEVELS = range(_SCANNED_DEPTH + 1)
_kinds: dict[type, int] = {bytes: _WHOLE, bytearray: _WHOLE, tuple: _SEQUENCE, list: _SEQUENCE}
"""What :func:`lift_big_buffers` does with objects of a type (learnt once per type)."""


def _may_hold_big_buffers(obj: Any) -> bool:
    """Whether ``obj``, or the first item of a tuple or list in it (first items only, down
    to :data:`_SCANNED_DEPTH` levels), is a ``bytes``, ``bytearray`` or numpy array: a few
    lookups, where :func:`lift_big_buffers` looks at every item."""
    kinds = _kinds
    for _ in _LEVELS:
        kind = kinds.get(type(obj)) or _kind(type(obj))
        if kind is not _SEQUENCE:
            return kind in _BIG_KINDS
        if not obj:
            return False
        obj = obj[0]
    return False


def _kind(cls: type) -> int:
    kind = _kinds.get(cls)
    if kind is None:
        numpy_array = cls.__name__ == "ndarray" and cls.__module__ == "numpy"
        kind = _ARRAY if numpy_array else _OTHER
        if len(_kinds) < 1024:
            _kinds[cls] = kind
    return kind


def lift_big_buffers(obj: Any, depth: int) -> Any:
    """``obj`` with each big buffer that pickle would copy into its stream (itself, or in
    tuples and lists down to ``depth``) made to go out of band; None if there is none.

    ``bytes`` and ``bytearray`` are wrapped; a numpy array that is neither C- nor
    Fortran-contiguous (numpy pickles those in band) is replaced by a contiguous copy.
    """
    kind = _kind(type(obj))
    if kind == _OTHER:
        return None
    if kind == _WHOLE:
        return _WholeBuffer(obj) if len(obj) >= OUT_OF_BAND_MIN else None
    if kind == _ARRAY:
        flags = obj.flags
        if flags.c_contiguous or flags.f_contiguous or obj.nbytes < OUT_OF_BAND_MIN:
            return None
        return None if obj.dtype.hasobject else obj.copy()
    if not depth or len(obj) > _SCANNED_LENGTH:
        return None
    items = None
    for i, item in enumerate(obj):
        lifted = lift_big_buffers(item, depth - 1)
        if lifted is not None:
            if items is None:
                items = list(obj)
            items[i] = lifted
    if items is None:
        return None
    return tuple(items) if type(obj) is tuple else items


class _WholeBuffer:
    """A ``bytes`` or ``bytearray`` message, pickled as its type called on its buffer out of
    band: no copy into the pickle, one out of the slab."""

    __slots__ = ("obj",)

    def __init__(self, obj: bytes | bytearray) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self.obj), (PickleBuffer(self.obj),)


def _pack(pickled: Any, buffers: list[Any]) -> Outbound:
    views = [
        memoryview(b).cast("B") if not isinstance(b, PickleBuffer) else b.raw() for b in buffers
    ]
    spans = []
    offset = _align(_HEADER.size + _SPAN.size * (1 + len(views)))
    for size in (memoryview(pickled).nbytes, *(v.nbytes for v in views)):
        spans.append((offset, size))
        offset = _align(offset + size)
    total = spans[-1][0] + spans[-1][1]
    slab = slabs.take(total)
    try:
        mapping = slab.mapping
        _HEADER.pack_into(mapping, 0, _MAGIC, spans[0][1], len(views))
        for i, span in enumerate(spans):
            _SPAN.pack_into(mapping, _HEADER.size + _SPAN.size * i, *span)
        for (start, size), data in zip(spans, (pickled, *views), strict=True):
            mapping[start : start + size] = memoryview(data).cast("B")
        fd = slab.hand_over()
    finally:
        slabs.give_back(slab, total)
    return Outbound(fd)


def _align(offset: int) -> int:
    return (offset + ALIGN - 1) & -ALIGN


def loads(fd: int) -> Any:
    """The object in the slab handed over as ``fd`` (closed here, whatever happens)."""
    views = _open(fd)
    with views[0] as pickled:
        return _pickle_loads(pickled, buffers=views[1:])


def read_bytes(fd: int, maxlength: int | None = None) -> bytes:
    """The bytes of a message that :func:`pack_bytes` wrote into the slab handed over as
    ``fd`` (closed here); ``OSError`` if there are more than ``maxlength``."""
    views = _open(fd, maxlength)
    if len(views) > 1:
        raise OSError("the message holds an object with buffers, not bytes: receive it with recv()")
    with views[0] as data:
        return bytes(data)


def pack_bytes(data: Any) -> Outbound:
    """The bytes-like ``data`` as a slab message (read back with :func:`read_bytes`)."""
    return _pack(data, [])


def pack_buffers(buffers: list[Any]) -> Outbound:
    """``buffers`` (out-of-band buffers of a pickle) as a slab (read with :func:`open_buffers`)."""
    return _pack(b"", buffers)


def open_buffers(fd: int) -> list[memoryview]:
    """The buffers that :func:`pack_buffers` wrote into the slab handed over as ``fd``
    (closed here), for ``pickle.loads(..., buffers=...)``."""
    return _open(fd)[1:]


def _open(fd: int, maxlength: int | None = None) -> list[memoryview]:
    """Views of the pickle (or bytes) and the buffers in the slab handed over as ``fd``."""
    try:
        head = os.pread(fd, _HEADER.size, 0)
        if len(head) != _HEADER.size:
            raise _corrupt("its header is cut short")
        magic, length, count = _HEADER.unpack(head)
        if magic != _MAGIC or count > (1 << 20):
            raise _corrupt("its header is not a procframe slab's")
        if maxlength is not None and length > maxlength:
            raise OSError(f"message of {length} bytes is longer than maxlength {maxlength}")
        raw_spans = os.pread(fd, _SPAN.size * (count + 1), _HEADER.size)
        spans = [_SPAN.unpack_from(raw_spans, _SPAN.size * i) for i in range(count + 1)]
        total = spans[-1][0] + spans[-1][1]
        slabs.forget_idle()
        if total >= MAP_MIN:
            mapping = slabs.map_received(fd, total)
            _remember(mapping, os.dup(fd), spans)
            whole = memoryview(mapping)
        else:
            copy = bytearray(total)
            if os.preadv(fd, [copy], 0) != total:
                raise _corrupt("it is shorter than its header says")
            whole = memoryview(copy)
    finally:
        os.close(fd)
    with whole:
        return [whole[start : start + size] for start, size in spans]


def _corrupt(why: str) -> OSError:
    return OSError(f"a big message cannot be read: {why}")


def _reduce_memoryview(view: memoryview) -> tuple[Any, ...]:
    """A ``memoryview`` crosses as its bytes (out of band when big) and its format and shape."""
    source = view if view.contiguous else view.tobytes()
    return _rebuild_memoryview, (PickleBuffer(source), view.format, view.shape, view.readonly)


def _rebuild_memoryview(
    buffer: Any, fmt: str, shape: tuple[int, ...], readonly: bool
) -> memoryview:
    view = memoryview(buffer)
    if view.format != fmt or view.shape != shape:
        try:
            view = view.cast("B").cast(fmt, shape)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            view = view.cast("B")  # a format cast() cannot make: the bytes, flat
    return view.toreadonly() if readonly else view


copyreg.pickle(memoryview, _reduce_memoryview)

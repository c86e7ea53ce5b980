"""ctypes objects in shared memory: ``RawValue``, ``RawArray``, ``Value``, ``Array``.

The API of ``multiprocessing.sharedctypes``.  The memory comes from
:mod:`procframe.posix.heap` (memfd arenas), and reaches spawn and forkserver
children by descriptor, never by name: a killed process leaves nothing
behind.

A raw object is a ctypes object (an instance of a subclass of the requested
type that knows how to cross to a child): element access is plain ctypes.
``Value``/``Array`` wrap it with a lock (a new procframe ``RLock`` by
default); every access through the wrapper takes the lock, and
``with obj.get_lock():`` makes a read-modify-write atomic.
"""

from __future__ import annotations

import ctypes
import operator
import weakref
from collections.abc import Callable

from procframe._core.generic import CT, Generic, T
from procframe.posix import heap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from ctypes import _SimpleCData  # noqa: F401 (in the quoted base classes below)
    from typing import Any, Protocol, SupportsIndex, overload

    from procframe.context import Context

    class LockLike(Protocol):
        """What a ``lock`` argument must have (procframe's and ``threading``'s locks do)."""

        def acquire(self, /) -> object: ...
        def release(self, /) -> object: ...


__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

typecode_to_type: dict[str, type[Any]] = {
    "c": ctypes.c_char,
    "u": ctypes.c_wchar,
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}
"""The typecodes of the ``array`` module and the ctypes types they stand for."""

_CTYPES_BASES: tuple[type[Any], ...] = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
)


def ctype_of(typecode_or_type: Any) -> type[Any]:
    """The ctypes type that ``typecode_or_type`` names, or a TypeError that says what fits."""
    if isinstance(typecode_or_type, str):
        found = typecode_to_type.get(typecode_or_type)
        if found is None:
            codes = ", ".join(repr(code) for code in typecode_to_type)
            raise TypeError(
                f"unknown typecode {typecode_or_type!r}: use one of {codes} "
                "or a ctypes type (such as ctypes.c_int or a ctypes.Structure subclass)"
            )
        return found
    if isinstance(typecode_or_type, type) and issubclass(typecode_or_type, _CTYPES_BASES):
        if issubclass(typecode_or_type, _SharedCData):
            return typecode_or_type._pf_base
        return typecode_or_type
    raise TypeError(
        f"expected an array typecode (a one-character string such as 'i' or 'd') or a ctypes "
        f"type, got {typecode_or_type!r} of type {type(typecode_or_type).__name__}"
    )


# -- raw objects: ctypes objects on a heap block ---------------------------------


class _SharedCData:
    """Mixed into the subclass of a ctypes type whose instances live on a heap block."""

    __slots__ = ()
    _pf_base: type[Any]  # the ctypes type the user asked for
    _pf_block: heap.Block  # set on each instance: keeps the memory alive

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (_type_spec(type(self)._pf_base), self._pf_block)

    def __repr__(self) -> str:
        base = type(self)._pf_base
        if issubclass(base, ctypes._SimpleCData):
            return f"{base.__name__}({self.value!r})"  # type: ignore[attr-defined]
        return f"<{base.__name__} object at {id(self):#x} in shared memory>"


_shared_types: dict[type[Any], type[Any]] = {}


def _shared_type(base: type[Any]) -> type[Any]:
    """The subclass of ``base`` whose instances live in shared memory (one per type)."""
    shared = _shared_types.get(base)
    if shared is None:
        metaclass: Any = type(base)  # ctypes' own: it lays out the new type
        shared = metaclass(
            base.__name__,
            (_SharedCData, base),
            {"__module__": base.__module__, "__qualname__": base.__qualname__, "_pf_base": base},
        )
        shared = _shared_types.setdefault(base, shared)
    return shared


def _type_spec(ctype: type[Any]) -> Any:
    """``ctype`` in a picklable form: array types (``c_int * 4``) are not importable by name."""
    if issubclass(ctype, ctypes.Array):
        item: Any = ctype._type_
        return (_type_spec(item), ctype._length_)
    return ctype


def _from_spec(spec: Any) -> type[Any]:
    if isinstance(spec, tuple):
        item, length = spec
        return _from_spec(item) * length  # type: ignore[no-any-return]
    return spec  # type: ignore[no-any-return]


def _on_block(base: type[Any], block: heap.Block) -> Any:
    obj = _shared_type(base).from_buffer(block.arena.map, block.offset)
    obj._pf_block = block
    return obj


def _rebuild(spec: Any, block: heap.Block) -> Any:
    return _on_block(_from_spec(spec), block)


def _new_value(ctype: type[Any]) -> Any:
    """A zeroed instance of ``ctype`` in shared memory."""
    size = ctypes.sizeof(ctype)
    block = heap.malloc(size, ctypes.alignment(ctype))
    obj = _on_block(ctype, block)
    if not block.zeroed:
        ctypes.memset(ctypes.addressof(obj), 0, size)
    return obj


if TYPE_CHECKING:

    @overload
    def RawValue(typecode_or_type: type[CT], *args: Any) -> CT: ...
    @overload
    def RawValue(typecode_or_type: str, *args: Any) -> Any: ...


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """A ctypes object in shared memory, initialised with ``args`` (zeroed without)."""
    obj = _new_value(ctype_of(typecode_or_type))
    if args:
        obj.__init__(*args)
    return obj


def array_layout(typecode_or_type: Any, size_or_initializer: Any) -> tuple[type[Any], list[Any]]:
    """The ctypes array type ``RawArray`` makes, and its initial items (``[]``: zeros)."""
    ctype = ctype_of(typecode_or_type)
    try:
        length = operator.index(size_or_initializer)
    except TypeError:
        pass
    else:
        if length < 0:
            raise ValueError(f"array size must be >= 0, got {length}")
        return ctype * length, []
    try:
        initializer = list(size_or_initializer)
    except TypeError:
        raise TypeError(
            "size_or_initializer must be an int or an iterable of initial values, got "
            f"{type(size_or_initializer).__name__}"
        ) from None
    return ctype * len(initializer), initializer


if TYPE_CHECKING:

    @overload
    def RawArray(
        typecode_or_type: type[CT], size_or_initializer: int | Iterable[Any]
    ) -> ctypes.Array[CT]: ...
    @overload
    def RawArray(typecode_or_type: str, size_or_initializer: int | Iterable[Any]) -> Any: ...


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """A ctypes array in shared memory: ``size`` zeros, or a copy of the initializer."""
    array_type, initializer = array_layout(typecode_or_type, size_or_initializer)
    obj = _new_value(array_type)
    if initializer:
        obj.__init__(*initializer)
    return obj


# -- synchronized wrappers ---------------------------------------------------------


class _LockArgumentError(TypeError, AttributeError):
    """A ``lock`` argument that is not a lock (an AttributeError in ``multiprocessing``)."""


def _resolve_lock(lock: Any, ctx: Context | None) -> Any:
    """The lock to wrap with: None for ``lock=False``, a new ``ctx.RLock()`` for True or None."""
    if lock is False:
        return None
    if lock is True or lock is None:
        if ctx is None:
            raise TypeError("a new lock needs the context to make it: pass ctx or a lock")
        return ctx.RLock()
    if not (callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))):
        raise _LockArgumentError(
            f"lock must be True (a new RLock), False (no lock) or a lock object with acquire() "
            f"and release() methods, got {lock!r} of type {type(lock).__name__}"
        )
    return lock


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Context) -> Any:
    """``ctx.RawValue`` wrapped with ``lock``; with ``lock=False``, the raw object itself."""
    ctype = ctype_of(typecode_or_type)
    lock = _resolve_lock(lock, ctx)
    obj = ctx.RawValue(ctype, *args)
    return obj if lock is None else synchronized(obj, lock, ctx=ctx)


def Array(
    typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Context
) -> Any:
    """``ctx.RawArray`` wrapped with ``lock``; with ``lock=False``, the raw array itself."""
    ctype = ctype_of(typecode_or_type)
    lock = _resolve_lock(lock, ctx)
    obj = ctx.RawArray(ctype, size_or_initializer)
    return obj if lock is None else synchronized(obj, lock, ctx=ctx)


def copy(obj: Any) -> Any:
    """A new raw object in shared memory with the contents of the ctypes object ``obj``."""
    if isinstance(obj, SynchronizedBase):
        obj = obj.get_obj()
    if not isinstance(obj, _CTYPES_BASES):
        raise TypeError(f"copy() needs a ctypes object, got {type(obj).__name__}")
    new = _new_value(ctype_of(type(obj)))
    ctypes.memmove(ctypes.addressof(new), ctypes.addressof(obj), ctypes.sizeof(new))
    return new


def synchronized(obj: Any, lock: Any = None, *, ctx: Context | None = None) -> Any:
    """``obj`` (a ctypes object) behind ``lock`` (a new RLock when ``None``)."""
    if isinstance(obj, SynchronizedBase):
        raise TypeError(f"{obj!r} is already synchronized")
    if not isinstance(obj, _CTYPES_BASES):
        raise TypeError(f"synchronized() needs a ctypes object, got {type(obj).__name__}")
    lock = _resolve_lock(True if lock is None else lock, ctx)
    if lock is None:
        raise _LockArgumentError("synchronized() needs a lock; lock=False makes no sense here")
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock)
        if obj._type_ is ctypes.c_wchar:
            return SynchronizedWideString(obj, lock)
        return SynchronizedArray(obj, lock)
    return _wrapper_class(type(obj))(obj, lock)


class SynchronizedBase(Generic[CT]):
    """A ctypes object and the lock that guards it."""

    __slots__ = ("__weakref__", "_lock", "_obj", "acquire", "release")

    def __init__(self, obj: CT, lock: Any) -> None:
        self._obj = obj
        self._lock = lock
        self.acquire: Callable[..., Any] = lock.acquire
        self.release: Callable[..., Any] = lock.release

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def __reduce__(self) -> tuple[Any, ...]:
        return synchronized, (self._obj, self._lock)

    def get_obj(self) -> CT:
        """The raw ctypes object (accessing it does not take the lock)."""
        return self._obj

    def get_lock(self) -> Any:
        """The lock (``with v.get_lock(): v.value += 1`` is atomic)."""
        return self._lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapper for {self._obj!r}>"


class Synchronized(SynchronizedBase["_SimpleCData[T]"], Generic[T]):
    """A wrapped ``Value`` of a simple type: ``.value`` takes the lock."""

    __slots__ = ()

    @property
    def value(self) -> T:
        self.acquire()
        try:
            return self._obj.value
        finally:
            self.release()

    @value.setter
    def value(self, value: T) -> None:
        self.acquire()
        try:
            self._obj.value = value
        finally:
            self.release()


class SynchronizedArray(SynchronizedBase["ctypes.Array[_SimpleCData[T]]"], Generic[T]):
    """A wrapped ``Array``: indexing and slicing take the lock; ``len`` does not."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._obj)

    if TYPE_CHECKING:

        @overload
        def __getitem__(self, i: slice) -> list[T]: ...
        @overload
        def __getitem__(self, i: SupportsIndex) -> T: ...

    def __getitem__(self, i: Any) -> Any:
        self.acquire()
        try:
            return self._obj[i]
        finally:
            self.release()

    if TYPE_CHECKING:

        @overload
        def __setitem__(self, i: slice, value: Iterable[T]) -> None: ...
        @overload
        def __setitem__(self, i: SupportsIndex, value: T) -> None: ...

    def __setitem__(self, i: Any, value: Any) -> None:
        self.acquire()
        try:
            self._obj[i] = value
        finally:
            self.release()


def _locked_property(name: str, doc: str | None = None) -> property:
    """A property reading and writing attribute ``name`` of the wrapped object under the lock."""

    def get(self: SynchronizedBase[Any]) -> Any:
        self.acquire()
        try:
            return getattr(self._obj, name)
        finally:
            self.release()

    def set(self: SynchronizedBase[Any], value: Any) -> None:
        self.acquire()
        try:
            setattr(self._obj, name, value)
        finally:
            self.release()

    return property(get, set, doc=doc)


class SynchronizedString(SynchronizedArray[bytes]):
    """A wrapped char array (typecode ``'c'``): ``.value`` and ``.raw`` take the lock too."""

    __slots__ = ()

    if TYPE_CHECKING:
        value: bytes
        raw: bytes
    else:
        value = _locked_property("value", "The bytes up to the first NUL.")
        raw = _locked_property("raw", "Every byte of the array.")


class SynchronizedWideString(SynchronizedArray[str]):
    """A wrapped wide char array (typecode ``'u'``): ``.value`` takes the lock too."""

    __slots__ = ()

    if TYPE_CHECKING:
        value: str
    else:
        value = _locked_property("value", "The characters up to the first NUL.")


_wrapper_classes: weakref.WeakKeyDictionary[type[Any], type[SynchronizedBase[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _wrapper_class(ctype: type[Any]) -> type[SynchronizedBase[Any]]:
    """The wrapper of a Structure or Union type: a locked property per field."""
    base = getattr(ctype, "_pf_base", ctype)
    wrapper = _wrapper_classes.get(base)
    if wrapper is None:
        names: list[str] = []
        for klass in reversed(base.__mro__):
            for field in klass.__dict__.get("_fields_", ()):
                if field[0] not in names:
                    names.append(field[0])
        namespace: dict[str, Any] = {name: _locked_property(name) for name in names}
        namespace["__slots__"] = ()
        namespace["__module__"] = __name__
        namespace["__doc__"] = f"A wrapped {base.__name__}: each field takes the lock."
        wrapper = type(f"Synchronized{base.__name__}", (SynchronizedBase,), namespace)
        _wrapper_classes[base] = wrapper
    return wrapper

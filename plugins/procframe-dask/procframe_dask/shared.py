"""Value, Array, RawValue and RawArray on the cluster: the ctypes object's bytes in a
state cell (:class:`procframe_dask.sync._Cell`).

Memory that several processes map cannot span machines, so a "raw" object here is a
proxy with the ctypes object's API (``value``, fields, ``len``, indexing, slices,
``raw``): each read and each write takes the bytes and gives them back (so single reads
and writes are atomic, as a word of shared memory is, and a process killed in a write
changes nothing);
``with v.get_lock(): v.value += 1`` is atomic as with ``multiprocessing``.  What needs
the memory itself (``ctypes.addressof``, ``memoryview``, ``numpy.frombuffer``) is not
available: copy out with ``[:]`` or keep large arrays in Dask (``client.scatter``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

from procframe.sharedctypes import array_layout, ctype_of
from procframe_dask._objects import new_name, refuse_unless_spawning
from procframe_dask.sync import _Cell


class _RawProxy:
    """A ctypes object kept on the cluster."""

    def __init__(self, ctype: type[Any], initial: Any = None, _name: str | None = None) -> None:
        new = _name is None
        object.__setattr__(self, "_ctype", ctype)
        object.__setattr__(self, "_name", _name or new_name("sharedctypes"))
        object.__setattr__(
            self,
            "_cell",
            _Cell(self._name, {"raw": None if initial is None else bytes(initial)}, new=new),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        refuse_unless_spawning(self)
        return _attach, (type(self), _type_spec(self._ctype), self._name)

    def _load(self) -> Any:
        return self._ctype.from_buffer_copy(self._cell.read()["raw"])

    def _update(self, change: Callable[[Any], Any]) -> Any:
        with self._cell as state:  # a process killed in here changes nothing (see _Cell)
            obj = self._ctype.from_buffer_copy(state["raw"])
            result = change(obj)
            state["raw"] = bytes(obj)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "value" and _is_scalar(self._ctype):
            # the whole object: no read of the old bytes needed
            with self._cell as state:
                state["raw"] = bytes(self._ctype(value))
            return
        self._update(lambda obj: setattr(obj, name, value))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._ctype.__name__} on the cluster: {self._load()!r}>"


def _is_scalar(ctype: type[Any]) -> bool:
    """A simple ctypes type (c_int, c_double, ...): ``value`` is all of it."""
    return issubclass(ctype, ctypes._SimpleCData)


def _type_spec(ctype: type[Any]) -> Any:
    """A picklable description of ``ctype`` (ctypes array types do not pickle)."""
    if issubclass(ctype, ctypes.Array):
        return ("array", _type_spec(ctype._type_), ctype._length_)
    return ("type", ctype)


def _from_spec(spec: Any) -> type[Any]:
    if spec[0] == "array":
        return _from_spec(spec[1]) * spec[2]  # type: ignore[no-any-return]
    return spec[1]  # type: ignore[no-any-return]


def _attach(cls: type[_RawProxy], spec: Any, name: str) -> _RawProxy:
    return cls(_from_spec(spec), None, name)


class DaskRawValue(_RawProxy):
    """``RawValue``: ``value`` (and a Structure's fields) read and written on the cluster."""


class DaskRawArray(_RawProxy):
    """``RawArray``: ``len``, indexing, slices (and ``value``/``raw`` of a char array)."""

    def __len__(self) -> int:
        return int(self._ctype._length_)

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        def change(obj: Any) -> None:
            obj[index] = value

        self._update(change)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._load()[:])


def raw_value(typecode_or_type: Any, args: tuple[Any, ...]) -> DaskRawValue:
    ctype = ctype_of(typecode_or_type)
    return DaskRawValue(ctype, ctype(*args))


def raw_array(typecode_or_type: Any, size_or_initializer: Any) -> DaskRawArray:
    array_type, initializer = array_layout(typecode_or_type, size_or_initializer)
    return DaskRawArray(array_type, array_type(*initializer))


class DaskSynchronized:
    """``Value``/``Array`` with a lock: each access takes it; ``get_lock()`` and
    ``get_obj()`` as ``multiprocessing``'s wrappers."""

    def __init__(self, obj: _RawProxy, lock: Any) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_lock", lock)

    def __reduce__(self) -> tuple[Any, ...]:
        return DaskSynchronized, (self._obj, self._lock)

    def get_obj(self) -> _RawProxy:
        return self._obj

    def get_lock(self) -> Any:
        return self._lock

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._lock.acquire(*args, **kwargs))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        with self._lock:
            return getattr(self._obj, name)

    def __setattr__(self, name: str, value: Any) -> None:
        with self._lock:
            setattr(self._obj, name, value)

    def __len__(self) -> int:
        return len(self._obj)  # type: ignore[arg-type]

    def __getitem__(self, index: Any) -> Any:
        with self._lock:
            return self._obj[index]  # type: ignore[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        with self._lock:
            self._obj[index] = value  # type: ignore[index]

    def __repr__(self) -> str:
        return f"<DaskSynchronized wrapper for {self._obj!r}>"


class LockArgumentError(TypeError, AttributeError):
    """A ``lock`` argument that is not a lock (an AttributeError in ``multiprocessing``)."""


def _resolve_lock(ctx: Any, lock: Any) -> Any:
    if lock is False:
        return None
    if lock is True or lock is None:
        return ctx.RLock()
    if not (callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))):
        raise LockArgumentError(
            f"lock must be True (a new RLock), False (no lock) or a lock object with acquire() "
            f"and release() methods, got {lock!r} of type {type(lock).__name__}"
        )
    return lock


def value(ctx: Any, typecode_or_type: Any, args: tuple[Any, ...], lock: Any) -> Any:
    ctype_of(typecode_or_type)
    the_lock = _resolve_lock(ctx, lock)
    obj = raw_value(typecode_or_type, args)
    return obj if the_lock is None else DaskSynchronized(obj, the_lock)


def array(ctx: Any, typecode_or_type: Any, size_or_initializer: Any, lock: Any) -> Any:
    ctype_of(typecode_or_type)
    the_lock = _resolve_lock(ctx, lock)
    obj = raw_array(typecode_or_type, size_or_initializer)
    return obj if the_lock is None else DaskSynchronized(obj, the_lock)

"""ctypes objects in shared memory: ``RawValue``, ``RawArray``, ``Value``, ``Array``.

The API of ``multiprocessing.sharedctypes``; the code lives in
:mod:`procframe.posix.sharedctypes`.  A backend's own ``Value``/``Array`` check their
arguments as procframe's do with :func:`ctype_of` (the ctypes type of a typecode or
type, or a clear error) and :func:`array_layout` (an array's type and initial items).
Where ``ctx`` is ``None``, the lock comes from the default context.
"""

from __future__ import annotations

from procframe.context import Context, default_context
from procframe.posix import sharedctypes as _posix
from procframe.posix.sharedctypes import RawArray as RawArray
from procframe.posix.sharedctypes import RawValue as RawValue
from procframe.posix.sharedctypes import Synchronized as Synchronized
from procframe.posix.sharedctypes import SynchronizedArray as SynchronizedArray
from procframe.posix.sharedctypes import SynchronizedBase as SynchronizedBase
from procframe.posix.sharedctypes import SynchronizedString as SynchronizedString
from procframe.posix.sharedctypes import SynchronizedWideString as SynchronizedWideString
from procframe.posix.sharedctypes import array_layout as array_layout
from procframe.posix.sharedctypes import copy as copy
from procframe.posix.sharedctypes import ctype_of as ctype_of
from procframe.posix.sharedctypes import typecode_to_type as typecode_to_type

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from _ctypes import _CData
    from collections.abc import Iterable
    from ctypes import _SimpleCData, c_char
    from typing import Any, Literal, overload

    from procframe._core.generic import CT, T
    from procframe.posix.sharedctypes import LockLike

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

# Typed as typeshed types multiprocessing.sharedctypes (lock=False: the raw object).
if TYPE_CHECKING:

    @overload
    def Value(
        typecode_or_type: type[CT], *args: Any, lock: Literal[False], ctx: Context | None = None
    ) -> CT: ...
    @overload
    def Value(
        typecode_or_type: type[_SimpleCData[T]],
        *args: Any,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> Synchronized[T]: ...
    @overload
    def Value(
        typecode_or_type: type[CT],
        *args: Any,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> SynchronizedBase[CT]: ...
    @overload
    def Value(
        typecode_or_type: str,
        *args: Any,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> Synchronized[Any]: ...
    @overload
    def Value(
        typecode_or_type: str | type[_CData],
        *args: Any,
        lock: bool | LockLike = True,
        ctx: Context | None = None,
    ) -> Any: ...


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Context | None = None) -> Any:
    """A :func:`RawValue` wrapped with ``lock`` (``True``: a new RLock of ``ctx``)."""
    return _posix.Value(typecode_or_type, *args, lock=lock, ctx=ctx or default_context)


if TYPE_CHECKING:

    @overload
    def Array(
        typecode_or_type: type[CT],
        size_or_initializer: int | Iterable[Any],
        *,
        lock: Literal[False],
        ctx: Context | None = None,
    ) -> ctypes.Array[CT]: ...
    @overload
    def Array(
        typecode_or_type: type[c_char],
        size_or_initializer: int | Iterable[Any],
        *,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> SynchronizedString: ...
    @overload
    def Array(
        typecode_or_type: type[_SimpleCData[T]],
        size_or_initializer: int | Iterable[Any],
        *,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> SynchronizedArray[T]: ...
    @overload
    def Array(
        typecode_or_type: str,
        size_or_initializer: int | Iterable[Any],
        *,
        lock: Literal[True] | LockLike = True,
        ctx: Context | None = None,
    ) -> SynchronizedArray[Any]: ...
    @overload
    def Array(
        typecode_or_type: str | type[_CData],
        size_or_initializer: int | Iterable[Any],
        *,
        lock: bool | LockLike = True,
        ctx: Context | None = None,
    ) -> Any: ...


def Array(
    typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Context | None = None
) -> Any:
    """A :func:`RawArray` wrapped with ``lock`` (``True``: a new RLock of ``ctx``)."""
    return _posix.Array(
        typecode_or_type, size_or_initializer, lock=lock, ctx=ctx or default_context
    )


if TYPE_CHECKING:

    @overload
    def synchronized(
        obj: _SimpleCData[T], lock: LockLike | None = None, ctx: Context | None = None
    ) -> Synchronized[T]: ...
    @overload
    def synchronized(
        obj: ctypes.Array[c_char], lock: LockLike | None = None, ctx: Context | None = None
    ) -> SynchronizedString: ...
    @overload
    def synchronized(
        obj: ctypes.Array[_SimpleCData[T]], lock: LockLike | None = None, ctx: Context | None = None
    ) -> SynchronizedArray[T]: ...
    @overload
    def synchronized(
        obj: CT, lock: LockLike | None = None, ctx: Context | None = None
    ) -> SynchronizedBase[CT]: ...


def synchronized(obj: Any, lock: Any = None, ctx: Context | None = None) -> Any:
    """``obj`` (a ctypes object) behind ``lock`` (a new RLock of ``ctx`` when ``None``)."""
    return _posix.synchronized(obj, lock, ctx=ctx or default_context)

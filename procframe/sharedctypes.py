"""ctypes objects in shared memory: ``RawValue``, ``RawArray``, ``Value``, ``Array``.

The API of ``multiprocessing.sharedctypes``; the code lives in
:mod:`procframe.posix.sharedctypes`.  Where ``ctx`` is ``None``, the lock
comes from the default context.
"""

from __future__ import annotations

from typing import Any

from procframe.context import Context, default_context
from procframe.posix import sharedctypes as _posix
from procframe.posix.sharedctypes import RawArray as RawArray
from procframe.posix.sharedctypes import RawValue as RawValue
from procframe.posix.sharedctypes import Synchronized as Synchronized
from procframe.posix.sharedctypes import SynchronizedArray as SynchronizedArray
from procframe.posix.sharedctypes import SynchronizedBase as SynchronizedBase
from procframe.posix.sharedctypes import SynchronizedString as SynchronizedString
from procframe.posix.sharedctypes import SynchronizedWideString as SynchronizedWideString
from procframe.posix.sharedctypes import copy as copy
from procframe.posix.sharedctypes import typecode_to_type as typecode_to_type

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Context | None = None) -> Any:
    """A :func:`RawValue` wrapped with ``lock`` (``True``: a new RLock of ``ctx``)."""
    return _posix.Value(typecode_or_type, *args, lock=lock, ctx=ctx or default_context)


def Array(
    typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Context | None = None
) -> Any:
    """A :func:`RawArray` wrapped with ``lock`` (``True``: a new RLock of ``ctx``)."""
    return _posix.Array(
        typecode_or_type, size_or_initializer, lock=lock, ctx=ctx or default_context
    )


def synchronized(obj: Any, lock: Any = None, ctx: Context | None = None) -> Any:
    """``obj`` (a ctypes object) behind ``lock`` (a new RLock of ``ctx`` when ``None``)."""
    return _posix.synchronized(obj, lock, ctx=ctx or default_context)

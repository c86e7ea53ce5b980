"""``RawValue`` and ``RawArray``: plain ctypes objects in this process's memory.

The threads share them as they are; no shared memory is needed.  ``Value``
and ``Array`` wrap them with a lock of this backend through
:mod:`procframe.posix.sharedctypes`'s ``synchronized`` wrappers, and the
typecodes are that module's.
"""

from __future__ import annotations

from procframe.posix.sharedctypes import array_layout, ctype_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RawArray", "RawValue"]


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """A ctypes object, initialised with ``args`` (zeroed without)."""
    return ctype_of(typecode_or_type)(*args)


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """A ctypes array: ``size`` zeros, or a copy of the initializer's items."""
    array_type, initializer = array_layout(typecode_or_type, size_or_initializer)
    return array_type(*initializer)

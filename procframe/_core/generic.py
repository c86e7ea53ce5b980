"""Generic classes subscriptable at run time (``Queue[int]``) without importing ``typing``.

``class Queue(Generic[T])`` with this module's ``Generic`` and type variables
is, for a type checker, ``typing.Generic`` and ``typing.TypeVar`` (mypy and
pyright read the ``TYPE_CHECKING`` branch).  At run time ``Generic`` is a
slot-less base whose subclasses answer ``Queue[int]`` with a
``types.GenericAlias``, as the builtins do, and the type variables are mere
names: a spawned child that unpickles a queue does not pay for importing
``typing``.  The type variables follow typeshed's stubs of ``multiprocessing``.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _ctypes import _CData
    from typing import Generic as Generic
    from typing import TypeVar

    T = TypeVar("T")
    """The type of the items (a queue's, a result's, a synchronized value's)."""
    S = TypeVar("S")
    """The type of the input items of a pool's ``map``."""
    CT = TypeVar("CT", bound=_CData)
    """A ctypes type (the object a ``SynchronizedBase`` wraps)."""
    SLT = TypeVar("SLT", int, float, bool, str, bytes, None)
    """The item types a ``ShareableList`` stores."""
else:
    import types

    class Generic:
        """Run-time stand-in of ``typing.Generic``: ``C[X]`` is ``types.GenericAlias(C, X)``."""

        __slots__ = ()

        def __class_getitem__(cls, params):
            # Generic[T] in a class header is this base itself.
            return cls if cls is Generic else types.GenericAlias(cls, params)

    T, S, CT, SLT = "T", "S", "CT", "SLT"

__all__ = ["CT", "SLT", "Generic", "S", "T"]

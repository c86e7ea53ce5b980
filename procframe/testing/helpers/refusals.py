"""What the serializer under test refuses: for tests whose outcome depends on it.

The kit runs under one serializer per session (``--procframe-serializer``);
pickle refuses a lambda, cloudpickle carries it, dill even carries a lock.
A test that needs an object the serializer cannot carry takes one from
:func:`refused`, and compares what procframe raises with
:func:`what_the_serializer_raises`.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from typing import Any

from procframe._core import reduction, serializing


def what_the_serializer_raises(obj: object) -> Exception:
    """The exception the program's serializer raises for ``obj`` (pickle's own, under pickle)."""
    with reduction.probing():
        try:
            serializing.default().dumps(obj)
        except Exception as e:
            return e
    raise AssertionError(f"{obj!r} can be pickled by {serializing.default().name!r}")


def refuses(obj: object) -> bool:
    """True if the program's serializer cannot carry ``obj``."""
    with reduction.probing():
        try:
            serializing.default().dumps(obj)
        except Exception:
            return True
    return False


def refused(*candidates: Any) -> list[Any]:
    """The ``candidates`` the program's serializer cannot carry, in order."""
    return [obj for obj in candidates if refuses(obj)]


def carries_functions_by_value() -> bool:
    """True if lambdas and local functions cross (any serializer but pickle)."""
    return not refuses(lambda: 0)


def a_lock() -> Any:
    """A lock: refused by pickle and cloudpickle, carried by dill."""
    return threading.Lock()


class Unpicklable:
    """A callable no serializer carries: its ``__reduce__`` raises what pickle raises."""

    def __call__(self, *args: object) -> None:
        pass

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("Unpicklable refuses to be pickled")

    def __repr__(self) -> str:
        return "<Unpicklable>"


def a_refused_function() -> Any:
    """A function the serializer refuses: a lambda under pickle, else an :class:`Unpicklable`."""
    candidate = lambda: None  # noqa: E731
    return candidate if refuses(candidate) else Unpicklable()


def _count() -> Iterator[int]:
    yield 1


def a_generator() -> Iterator[int]:
    """What no serializer carries: pickle, cloudpickle and dill all refuse a generator."""
    return _count()

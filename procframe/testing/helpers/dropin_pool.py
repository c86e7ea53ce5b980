"""Tasks and objects of the suites that check Pool and ProcessPoolExecutor against the stdlib.

Workers started by spawn or forkserver import these by name.  Each object
here fails to cross in one precise way, as the standard library meets it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from procframe.testing.helpers import refusals


class Unreducible:
    """Pickling it raises ``RuntimeError`` (its ``__reduce__`` does)."""

    def __reduce__(self) -> Any:
        raise RuntimeError("Unreducible refuses to be pickled")


def _refuse_outside(pid: int) -> Unreducible:
    if os.getpid() != pid:
        raise LookupError(f"this object can only be unpickled in process {pid}")
    return Unreducible.__new__(Unreducible)


class OnlyHere:
    """Pickles anywhere; unpickling it raises ``LookupError`` outside the process that made it."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def __reduce__(self) -> Any:
        return _refuse_outside, (self.pid,)


def _never_rebuilt(message: str) -> None:
    raise ValueError(message)


class NotRebuildable:
    """Pickles, but unpickling it raises ``ValueError`` (wherever that happens)."""

    def __reduce__(self) -> Any:
        return _never_rebuilt, ("NotRebuildable cannot be unpickled",)


def return_not_rebuildable() -> NotRebuildable:
    """A result the parent cannot unpickle."""
    return NotRebuildable()


class Box:
    """An object a weak reference can follow: an argument or a result."""

    def __init__(self, value: Any) -> None:
        self.value = value


def unbox(box: Box) -> Any:
    """The value in ``box``."""
    return box.value


def box(value: Any) -> Box:
    """``value`` in a new :class:`Box`."""
    return Box(value)


def exit_with(code: int) -> None:
    """``sys.exit(code)`` in the task."""
    sys.exit(code)


def pid(_: Any = None) -> int:
    """The pid of the process running the task."""
    return os.getpid()


def kill_self(_: Any = None) -> None:
    """SIGKILL the worker running the task."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def what_pickle_raises(obj: object) -> Exception:
    """The exception the serializer under test raises for ``obj`` (``pickle.dumps``'s on this
    Python, under pickle)."""
    return refusals.what_the_serializer_raises(obj)

"""The exceptions of the public API (the names ``multiprocessing`` uses, plus a few)."""

from __future__ import annotations

# _pickle, not pickle: the same classes, without pickle.py's import of re (a spawned
# child imports this module before anything else).
import _pickle


class ProcessError(Exception):
    """Base class of procframe's own errors (as ``multiprocessing.ProcessError``)."""


class BufferTooShort(ProcessError):
    """A receive buffer was too small for the message."""


class TimeoutError(ProcessError):
    """An operation did not finish within its timeout."""


class AuthenticationError(ProcessError):
    """A peer failed the authentication challenge."""


class ProcessStateError(ProcessError, AssertionError, RuntimeError):
    """A Process method was called in a state that forbids it (start twice, join before start).

    It is an ``AssertionError`` as in ``multiprocessing`` and a ``RuntimeError``
    as in ``threading``, so code written for either catches it.
    """


class ProcessNotStartedError(ProcessStateError, ValueError):
    """What needs a started process was asked of one never started (its ``sentinel``).

    A :class:`ProcessStateError`, and a ``ValueError`` as ``multiprocessing``
    raises there (``ValueError('process not started')``).
    """


class LockNotOwnedError(ProcessError, AssertionError, RuntimeError):
    """A Condition was waited on or notified by a thread that does not hold its lock.

    An ``AssertionError`` as in ``multiprocessing`` and a ``RuntimeError`` as in
    ``threading``, so code written for either catches it.
    """


class ProcessPicklingError(_pickle.PicklingError, TypeError):
    """An object handed to a new process cannot be pickled for its backend."""


class BackendError(ValueError):
    """An unknown or unavailable backend was asked for."""


class SerializerError(ValueError):
    """An unknown or unavailable serializer was asked for, or two ends disagree on one."""


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)`` (Python 3.11), or its ``__notes__`` where Python is older."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:
        notes = getattr(error, "__notes__", None)
        error.__notes__ = [*(notes or ()), note]  # type: ignore[attr-defined]


class NotSupportedError(ProcessError, NotImplementedError):
    """What the backend in use cannot do; the message says what to do instead.

    The ``threads`` backend raises it to stop a thread from outside
    (``terminate``, ``kill``, ``interrupt``) and for what needs a manager's
    server; a manager refuses to start its server under a backend that runs
    none (one without the ``manager_server`` capability).
    """

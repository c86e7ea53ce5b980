"""What a process pool's ``get()`` raises when a task or its outcome cannot cross.

Each error is an instance of what ``multiprocessing`` raises in its place, so
that ``except`` clauses written for it still catch it, and says in words
what happened: which argument of which task could not be pickled, what
could not be sent back.
"""

from __future__ import annotations

from pickle import loads

from procframe._core import messages, reduction
from procframe._core.errors import ProcessPicklingError, add_note
from procframe._core.osutil import short_repr
from procframe._core.serializing import explained
from procframe.pool import _frames
from procframe.pool._errors import (
    MaybeEncodingError,
    RemoteTraceback,
    TaskAbortedError,
    pickling_error,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def unpicklable_task(
    job: Any,
    index: int,
    kind: int,
    call: tuple[Any, ...],
    error: Exception,
    serializer: str,
    pickle: Any,
) -> ProcessPicklingError:
    """The error of a task whose call ``pickle`` (of ``serializer``) refused with ``error``,
    naming what fails, with a note on the serializers that would carry it.

    It is also of ``error``'s type (:func:`pickling_error`) and has it as ``__cause__``.
    """
    func = call[0]
    name = getattr(func, "__qualname__", None) or short_repr(func)
    task = f"the task {name}(...)" if kind == _frames.APPLY else f"a task of the map of {name}"
    culprit, refused = _culprit(job, index, kind, call, pickle)
    failure = pickling_error(
        f"cannot send {task} to a pool worker: {culprit} cannot be pickled "
        f"({type(error).__name__}: {error})",
        error,
    )
    if refused:
        explained(failure, refused[0], serializer)
    return failure


def _culprit(
    job: Any, index: int, kind: int, call: tuple[Any, ...], pickle: Any
) -> tuple[str, tuple[object, ...]]:
    """Which part of ``call`` ``pickle`` refuses, as 'its args[1] (<repr>)', and that part
    (in a tuple; empty if none does alone)."""
    parts: list[tuple[str, object]] = [("function", call[0])]
    if kind == _frames.APPLY:
        args, kwds = call[1], call[2]
        parts += [(f"args[{i}]", arg) for i, arg in enumerate(args)]
        parts += [(f"kwds[{key!r}]", value) for key, value in kwds.items()]
    else:
        chunk = call[1]
        first = index * (getattr(job, "_chunksize", None) or len(chunk))
        parts += [(f"input item {first + i}", item) for i, item in enumerate(chunk)]
    with reduction.probing():  # a test: a Connection in ``call`` must not be shared again
        for label, value in parts:
            try:
                pickle(value)
            except Exception:
                return f"its {label} ({short_repr(value)})", (value,)
    return "its function or arguments", ()


def decode(code: int, payload: Any) -> tuple[bool, Any]:
    """(ok, value) from an outcome a worker sent: the result, or the exception to raise."""
    if code == _frames.DONE | _frames.SLAB:
        try:
            return True, messages.loads(payload[1])
        except Exception as e:
            return False, _not_unpicklable_here(e, "<the task's result>", "the task's result")
    if code == _frames.DONE:
        try:
            return True, loads(payload)
        except Exception as e:
            what = f"<the task's result: a pickle of {len(payload)} bytes>"
            return False, _not_unpicklable_here(e, what, "the task's result")
    if code == _frames.UNPICKLABLE:
        exc, value, tb, pickled = loads(payload)
        error: BaseException = MaybeEncodingError._from_reprs(exc, value)
        add_note(error, "procframe: the worker cannot pickle the task's result or exception")
        cause = _load_error(pickled, tb)
        error.__cause__ = cause if cause is not None else RemoteTraceback(tb)
        return False, error
    message, tb, pickled = loads(payload)
    if code == _frames.TASK_RAISED:
        try:
            error = loads(pickled)
        except Exception as e:
            e.__cause__ = RemoteTraceback(tb)
            return False, _not_unpicklable_here(e, message, "the exception the task raised")
        error.__cause__ = RemoteTraceback(tb)
        return False, error
    original = _load_error(pickled, tb)
    if code == _frames.ABORTED:
        error = TaskAbortedError(message)
    elif isinstance(original, Exception):  # BAD_TASK: what unpickling raised in the worker
        error = pickling_error(message, original)
    else:
        error = ProcessPicklingError(message)
    error.__cause__ = original if original is not None else RemoteTraceback(tb)
    return False, error


def _not_unpicklable_here(error: Exception, value: str, what: str) -> MaybeEncodingError:
    """The error of an outcome that unpickling here refused with ``error``."""
    encoding = MaybeEncodingError._from_reprs(repr(error), value)
    add_note(encoding, f"procframe: {what} cannot be unpickled here")
    encoding.__cause__ = error
    return encoding


def _load_error(pickled: bytes | None, tb: str) -> BaseException | None:
    """The exception a worker pickled, its traceback as its cause (None if it cannot be had)."""
    if pickled is None:
        return None
    try:
        error: BaseException = loads(pickled)
    except Exception:
        return None
    if tb:
        error.__cause__ = RemoteTraceback(tb)
    return error

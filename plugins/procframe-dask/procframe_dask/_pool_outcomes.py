"""The result, or the exception, that a pool task's outcome (sent by its worker) stands for."""

from __future__ import annotations

import pickle
from typing import Any

from procframe import ProcessPicklingError
from procframe.pool import (
    BrokenPoolError,
    MaybeEncodingError,
    RemoteTraceback,
    TaskAbortedError,
    TaskTimeoutError,
    WorkerLostError,
)
from procframe_dask import _pool_task as task


def decode(code: int, data: Any, timeout: float | None) -> tuple[bool, Any]:
    """``(ok, value)`` of an outcome ``run`` returned: the result, or the exception to raise."""
    if code == task.OK:
        try:
            return True, pickle.loads(data)
        except Exception as e:
            return False, encoding_error(e, repr(e), "<the task's result>")
    if code == task.RAISED:
        pickled, described, tb = data
        try:
            error = pickle.loads(pickled)
        except Exception as e:
            return False, encoding_error(e, repr(e), described)
        error.__cause__ = RemoteTraceback(tb)
        return False, error
    if code == task.UNPICKLABLE:
        exc, value, tb, pickled = data
        cause = _load((pickled, exc, tb))  # what pickling raised in the worker
        return False, encoding_error(cause, exc, value)
    if code == task.ABORTED:  # the BaseException itself is the cause (an executor raises it)
        error = TaskAbortedError(f"the task raised {data[1]}")
        error.__cause__ = _load(data)
        return False, error
    if code == task.BAD_TASK:
        original = _load(data)
        error = pickling_error(f"a pool worker cannot unpickle the task: {data[1]}", original)
        return False, error
    if code == task.TIMED_OUT:
        return False, TaskTimeoutError(
            f"the task ran longer than its timeout ({timeout} s) and was abandoned: a Dask "
            "worker cannot kill the thread running it, so it stops at its next Python "
            "instruction (a call blocked in C runs to its end)"
        )
    raise ValueError(f"unknown pool task outcome {code!r}")


def initializer_failed(data: tuple[bytes | None, str, str]) -> BrokenPoolError:
    """The pool's error once its initializer failed on a worker (``data`` says how)."""
    return BrokenPoolError.because(_load(data))


def _load(data: tuple[bytes | None, str, str]) -> BaseException:
    """The exception a worker described (pickled if it could), its traceback as its cause."""
    pickled, described, tb = data
    error: BaseException | None = None
    if pickled is not None:
        try:
            error = pickle.loads(pickled)
        except Exception:
            error = None
    if error is None:
        error = RemoteTraceback(f"{described}\n{tb}")
    else:
        error.__cause__ = RemoteTraceback(tb)
    return error


def encoding_error(cause: BaseException | None, exc: str, value: str) -> MaybeEncodingError:
    """``MaybeEncodingError`` with the reprs the worker (or this process) gave."""
    error = MaybeEncodingError(None, None)
    error.exc, error.value = exc, value
    error.args = (exc, value)
    if cause is not None:
        error.__cause__ = cause
    return error


def lost(cause: BaseException) -> WorkerLostError:
    """The error of a task whose Dask workers died under it more often than Dask retries."""
    error = WorkerLostError(0, None)
    error.args = (
        "the Dask workers running this task were lost (Dask reran it on another worker "
        f"each time, up to its 'distributed.scheduler.allowed-failures' limit): {cause}",
    )
    error.__cause__ = cause
    return error


def broken(cause: BaseException) -> BrokenPoolError:
    """The error of a task the cluster could not run (the scheduler is gone, ...)."""
    return BrokenPoolError.because(cause)


_mixed: dict[type[BaseException], type[ProcessPicklingError]] = {}


def pickling_error(message: str, original: BaseException) -> ProcessPicklingError:
    """A ``ProcessPicklingError`` that is also an instance of ``original``'s type, if it can be
    (code written for ``multiprocessing`` catches what pickling raised there).

    The mixed type pickles as a call that makes it again (a manager's server sends it
    back to its caller), not by its name, which is ``ProcessPicklingError``'s."""
    error: ProcessPicklingError
    try:
        error = _pickling_error_type(type(original))(message)
    except Exception:  # a type that cannot be mixed in, or built from one message
        error = ProcessPicklingError(message)
    error.__cause__ = original
    return error


def _pickling_error_type(kind: type[BaseException]) -> type[ProcessPicklingError]:
    if issubclass(ProcessPicklingError, kind) or not issubclass(kind, Exception):
        return ProcessPicklingError
    mixed = _mixed.get(kind)
    if mixed is None:
        namespace = {
            "__module__": ProcessPicklingError.__module__,
            "__doc__": f"A ProcessPicklingError that is also a {kind.__qualname__}.",
            "__reduce__": _reduce_mixed,
            "__str__": BaseException.__str__,  # the message, whatever ``kind`` would print
        }
        mixed = type(ProcessPicklingError.__name__, (ProcessPicklingError, kind), namespace)
        _mixed[kind] = mixed
    return mixed


def _reduce_mixed(error: ProcessPicklingError) -> tuple[object, ...]:
    return _rebuild_pickling_error, (type(error).__bases__[1], str(error))


def _rebuild_pickling_error(kind: type[BaseException], message: str) -> ProcessPicklingError:
    return _pickling_error_type(kind)(message)

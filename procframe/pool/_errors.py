"""How a pool task can fail besides raising: the exceptions ``get()`` raises for them."""

from __future__ import annotations

import signal

from procframe._core.errors import ProcessError, ProcessPicklingError, TimeoutError


class RemoteTraceback(Exception):
    """A worker's traceback: the ``__cause__`` of the exception ``get()`` raises."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerLostError(ProcessError):
    """The worker running the task died (killed, crashed, or exited) before the task ended."""

    def __init__(self, pid: int, exitcode: int | None) -> None:
        super().__init__(f"the worker running this task (pid {pid}) {describe_exit(exitcode)}")
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.pid, self.exitcode)


class TaskTimeoutError(TimeoutError):
    """The task ran longer than its timeout: its worker was killed and replaced."""


class MaybeEncodingError(ProcessError):
    """A task's result or exception could not be pickled in the worker or unpickled here.

    As ``multiprocessing.pool.MaybeEncodingError``: ``exc`` is the repr of
    the exception that pickling (or unpickling) raised, ``value`` the repr of
    the result or exception that could not cross.  That exception itself is
    the ``__cause__`` when it could be brought here.
    """

    exc: str
    value: str

    def __init__(self, exc: object, value: object) -> None:
        self.exc = repr(exc)
        self.value = repr(value)
        super().__init__(self.exc, self.value)

    @classmethod
    def _from_reprs(cls, exc: str, value: str) -> MaybeEncodingError:
        """The error of an exception and a value known only by their reprs."""
        error = cls.__new__(cls)
        error.exc, error.value = exc, value
        error.args = (exc, value)
        return error

    def __str__(self) -> str:
        return f"Error sending result: '{self.value}'. Reason: '{self.exc}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"

    def __reduce__(self) -> tuple[object, ...]:
        return _encoding_error, (self.exc, self.value)


def _encoding_error(exc: str, value: str) -> MaybeEncodingError:
    return MaybeEncodingError._from_reprs(exc, value)


class TaskAbortedError(ProcessError):
    """The task raised a BaseException that is not an Exception (``SystemExit``, ...).

    That exception is the ``__cause__``.
    """


class WorkerStartError(ProcessError, RuntimeError):
    """Pool workers end by themselves before they are ready, so no worker can run a task.

    The ``__cause__`` of the pool's :class:`BrokenPoolError`; ``pid`` and
    ``exitcode`` are the last such worker's, ``attempts`` how many ended so.
    """

    def __init__(self, pid: int, exitcode: int | None, attempts: int) -> None:
        if exitcode is not None and exitcode < 0:
            why = "it crashed: the interpreter or an extension module it loads failed"
        else:
            why = (
                "if it could not load what it runs (the main module, the initializer or "
                f"its arguments), its standard error shows 'procframe: child process {pid} "
                "could not start' and the traceback"
            )
        super().__init__(
            f"pool workers cannot start: {attempts} in a row ended before they were ready, "
            f"the last (pid {pid}) {describe_exit(exitcode)}; {why}"
        )
        self.pid = pid
        self.exitcode = exitcode
        self.attempts = attempts

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.pid, self.exitcode, self.attempts)


class BrokenPoolError(ProcessError):
    """The pool cannot run tasks: its initializer failed, its workers cannot start
    (:class:`WorkerStartError`), or it was terminated before the task ended."""

    @classmethod
    def because(cls, cause: BaseException) -> BrokenPoolError:
        """The error of a pool broken by ``cause`` (its ``__cause__``)."""
        error = cls(f"the pool is broken: {cause}")
        error.__cause__ = cause
        return error


def pickling_error(message: str, original: BaseException) -> ProcessPicklingError:
    """A ``ProcessPicklingError(message)`` caused by ``original``, and an instance of its type.

    Code written for ``multiprocessing`` catches what pickling raised there
    (the ``RuntimeError`` of a ``__reduce__``, the ``AttributeError`` of a local
    function): the error is also of that type, with procframe's message.
    """
    try:
        error = _pickling_error_type(type(original))(message)
        if str(error) != message:
            raise ValueError(f"{type(original).__name__} tells its message its own way")
    except Exception:  # a type that cannot be mixed in, or built from one message
        error = ProcessPicklingError(message)
    error.__cause__ = original
    return error


_mixed_types: dict[type[BaseException], type[ProcessPicklingError]] = {}


def _pickling_error_type(kind: type[BaseException]) -> type[ProcessPicklingError]:
    """``ProcessPicklingError``, made also a subclass of ``kind`` if it is not one already."""
    if issubclass(ProcessPicklingError, kind) or not issubclass(kind, Exception):
        return ProcessPicklingError
    mixed = _mixed_types.get(kind)
    if mixed is None:
        namespace = {
            "__module__": ProcessPicklingError.__module__,
            "__doc__": f"A ProcessPicklingError that is also a {kind.__qualname__}.",
            "__reduce__": _reduce_mixed,
            "__str__": BaseException.__str__,  # the message, whatever ``kind`` would print
        }
        mixed = type(ProcessPicklingError.__name__, (ProcessPicklingError, kind), namespace)
        _mixed_types[kind] = mixed
    return mixed


def _reduce_mixed(error: ProcessPicklingError) -> tuple[object, ...]:
    kind = type(error).__bases__[1]
    return _rebuild_pickling_error, (kind, str(error))


def _rebuild_pickling_error(kind: type[BaseException], message: str) -> ProcessPicklingError:
    return _pickling_error_type(kind)(message)


def describe_exit(exitcode: int | None) -> str:
    """'was killed by SIGKILL', 'exited with code 7', ..."""
    if exitcode is None:
        return "was lost"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"

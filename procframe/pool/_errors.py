"""How a pool task can fail besides raising: the exceptions ``get()`` raises for them."""

from __future__ import annotations

import signal

from procframe._core.errors import ProcessError, TimeoutError


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
    """A task's result or exception could not be pickled in the worker or unpickled here."""


class TaskAbortedError(ProcessError):
    """The task raised a BaseException that is not an Exception (``SystemExit``, ...)."""


class BrokenPoolError(ProcessError):
    """The pool cannot run tasks: its initializer failed, its workers cannot start, or it
    was terminated before the task ended."""

    @classmethod
    def because(cls, cause: BaseException) -> BrokenPoolError:
        """The error of a pool broken by ``cause`` (its ``__cause__``)."""
        error = cls(f"the pool is broken: {cause}")
        error.__cause__ = cause
        return error


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

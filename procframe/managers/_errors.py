"""The errors a manager's caller sees."""

from __future__ import annotations

from procframe._core.errors import ProcessError


class RemoteError(ProcessError):
    """Something failed in the manager's server; ``str()`` holds the server-side traceback.

    An exception raised by a referent's own method is re-raised in the caller
    with its own type, and a ``RemoteError`` with the server's traceback as its
    ``__cause__``; failures that are not the method's own (a method that is
    not exposed, a result that cannot be pickled, an object already freed)
    raise ``RemoteError`` itself.
    """

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        return f"\n{'-' * 75}\n{text}{'-' * 75}" if "\n" in text else text


class ManagerGoneError(ProcessError, ConnectionError):
    """The manager's server cannot be reached: it was shut down, or its process died."""

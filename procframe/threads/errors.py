"""The error of what the ``threads`` backend cannot do."""

from __future__ import annotations

from procframe._core.errors import ProcessError


class NotSupportedError(ProcessError, NotImplementedError):
    """What a process run by a thread, or a manager without a server, cannot do.

    Stopping a thread from outside (``terminate``, ``kill``, ``interrupt``) and
    reaching a manager's server (``connect``, ``register``, ``address``) have
    no meaning in the ``threads`` backend; the message says what to do instead.
    """

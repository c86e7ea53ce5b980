"""``multiprocessing.dummy.connection``: ``Pipe``, ``Listener`` and ``Client`` inside this process.

The connections are the ``threads`` backend's (:mod:`procframe.threads.connection`):
``send(obj)`` hands over ``obj`` itself, and each end has a ``fileno()`` for
``procframe.connection.wait``.  A Listener's ``address`` is a queue, as in
``multiprocessing.dummy``: ``Client(listener.address)`` puts one end of a new
Pipe there and ``accept()`` takes it.
"""

from __future__ import annotations

import queue

from procframe.threads.connection import Connection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Client", "Listener", "Pipe"]

families = [None]
"""The address families: ``None`` only (an address is a Listener's queue)."""


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Two connected ends (the ``threads`` context's ``Pipe``)."""
    from procframe.context import get_context

    return get_context("threads").Pipe(duplex)  # type: ignore[return-value]


class Listener:
    """Accepts the connections that :func:`Client` makes to its ``address`` (a queue).

    ``address`` and ``family`` are accepted and ignored, as in
    ``multiprocessing.dummy``; ``backlog`` bounds the connections waiting to be
    accepted (``Client`` waits while it is full).
    """

    def __init__(self, address: Any = None, family: Any = None, backlog: int = 1) -> None:
        self._backlog: queue.Queue[Connection] | None = queue.Queue(backlog)

    @property
    def address(self) -> queue.Queue[Connection] | None:
        """What :func:`Client` connects to; ``None`` once closed."""
        return self._backlog

    def accept(self) -> Connection:
        """The next connection a Client made, waiting for one."""
        backlog = self._backlog
        if backlog is None:
            raise OSError("the listener is closed")
        return backlog.get()

    def close(self) -> None:
        """Stop listening; the connections not yet accepted are closed (their clients see EOF)."""
        backlog, self._backlog = self._backlog, None
        while backlog is not None and not backlog.empty():
            backlog.get_nowait().close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def Client(address: queue.Queue[Connection]) -> Connection:
    """A connection to the Listener whose ``address`` is given."""
    if not isinstance(address, queue.Queue):
        raise TypeError(
            "a procframe.dummy Client connects to the address of a procframe.dummy Listener "
            f"(listener.address, a queue), not {address!r}"
        )
    mine, theirs = Pipe()
    address.put(theirs)
    return mine

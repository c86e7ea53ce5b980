"""``multiprocessing.queues``: the queue classes, to subclass, annotate and check against.

``Queue(maxsize, ctx=ctx)`` is ``ctx.Queue(maxsize)``, and ``isinstance(q,
Queue)`` holds for the queues of every built-in backend.  A subclass inherits
the POSIX implementation, built with the semaphores ``ctx`` makes, as with
``multiprocessing``::

    class CountingQueue(procframe.queues.Queue):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, ctx=procframe.get_context(), **kwargs)

``ctx`` may be left out: the default context.  See :mod:`procframe._public_class`.
"""

from __future__ import annotations

from queue import Empty, Full

from procframe._core import checks
from procframe._core.generic import T
from procframe._public_class import PublicClass, context_of
from procframe.posix import queues as _posix
from procframe.threads import queues as _threads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context

__all__ = ["Empty", "Full", "JoinableQueue", "Queue", "SimpleQueue"]


class Queue(_posix.Queue[T], metaclass=PublicClass):
    """A FIFO queue between processes: ``Queue(maxsize=0, *, ctx)``."""

    _implementations = (_posix.Queue, _threads.Queue)

    def __init__(self, maxsize: int = 0, *, ctx: Context | None = None) -> None:
        super().__init__(checks.integer("maxsize", maxsize), ctx=context_of(ctx))

    @staticmethod
    def _from_context(maxsize: int = 0, *, ctx: Context | None = None) -> Any:
        return context_of(ctx).Queue(maxsize)


class JoinableQueue(_posix.JoinableQueue[T], metaclass=PublicClass):
    """A Queue with ``task_done()`` and ``join()``: ``JoinableQueue(maxsize=0, *, ctx)``."""

    _implementations = (_posix.JoinableQueue, _threads.JoinableQueue)

    def __init__(self, maxsize: int = 0, *, ctx: Context | None = None) -> None:
        super().__init__(checks.integer("maxsize", maxsize), ctx=context_of(ctx))

    @staticmethod
    def _from_context(maxsize: int = 0, *, ctx: Context | None = None) -> Any:
        return context_of(ctx).JoinableQueue(maxsize)


class SimpleQueue(_posix.SimpleQueue[T], metaclass=PublicClass):
    """A queue with only ``put``, ``get``, ``empty`` and ``close``: ``SimpleQueue(*, ctx)``."""

    _implementations = (_posix.SimpleQueue, _threads.SimpleQueue)

    def __init__(self, *, ctx: Context | None = None) -> None:
        context_of(ctx)
        super().__init__()

    @staticmethod
    def _from_context(*, ctx: Context | None = None) -> Any:
        return context_of(ctx).SimpleQueue()

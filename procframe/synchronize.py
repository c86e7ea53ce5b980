"""``multiprocessing.synchronize``: the Lock family's classes, to subclass and check against.

``Lock(ctx=ctx)`` is ``ctx.Lock()``, ``Semaphore(2, ctx=ctx)`` is
``ctx.Semaphore(2)``, and so on; ``isinstance(lock, Lock)`` holds for the
objects of every built-in backend.  A subclass inherits the POSIX
implementation, built with the parts ``ctx`` makes (a Condition's default
lock, an Event's flag), as with ``multiprocessing``.  ``ctx`` may be left
out: the default context.  See :mod:`procframe._public_class`.
"""

from __future__ import annotations

from collections.abc import Callable

from procframe._core import checks
from procframe._public_class import PublicClass, context_of
from procframe.context import condition_lock
from procframe.posix import synchronize as _posix
from procframe.threads import synchronize as _threads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.context import Context

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"]


class Lock(_posix.Lock, metaclass=PublicClass):
    """A non-recursive lock shared between processes: ``Lock(*, ctx)``."""

    _implementations = (_posix.Lock, _threads.Lock)

    def __init__(self, *, ctx: Context | None = None) -> None:
        context_of(ctx)
        super().__init__()

    @staticmethod
    def _from_context(*, ctx: Context | None = None) -> Any:
        return context_of(ctx).Lock()


class RLock(_posix.RLock, metaclass=PublicClass):
    """A recursive lock shared between processes: ``RLock(*, ctx)``."""

    _implementations = (_posix.RLock, _threads.RLock)

    def __init__(self, *, ctx: Context | None = None) -> None:
        context_of(ctx)
        super().__init__()

    @staticmethod
    def _from_context(*, ctx: Context | None = None) -> Any:
        return context_of(ctx).RLock()


class Semaphore(_posix.Semaphore, metaclass=PublicClass):
    """A semaphore shared between processes: ``Semaphore(value=1, *, ctx)``."""

    _implementations = (_posix.Semaphore, _threads.Semaphore)

    def __init__(self, value: int = 1, *, ctx: Context | None = None) -> None:
        context_of(ctx)
        super().__init__(checks.integer("Semaphore value", value, 0))

    @staticmethod
    def _from_context(value: int = 1, *, ctx: Context | None = None) -> Any:
        return context_of(ctx).Semaphore(value)


class BoundedSemaphore(_posix.BoundedSemaphore, metaclass=PublicClass):
    """A semaphore never released above its initial value: ``BoundedSemaphore(value=1, *, ctx)``."""

    _implementations = (_posix.BoundedSemaphore, _threads.BoundedSemaphore)

    def __init__(self, value: int = 1, *, ctx: Context | None = None) -> None:
        context_of(ctx)
        super().__init__(checks.integer("BoundedSemaphore value", value, 0))

    @staticmethod
    def _from_context(value: int = 1, *, ctx: Context | None = None) -> Any:
        return context_of(ctx).BoundedSemaphore(value)


class Condition(_posix.Condition, metaclass=PublicClass):
    """A condition variable shared between processes: ``Condition(lock=None, *, ctx)``."""

    _implementations = (_posix.Condition, _threads.Condition)

    def __init__(self, lock: Any = None, *, ctx: Context | None = None) -> None:
        super().__init__(condition_lock(lock), ctx=context_of(ctx))

    @staticmethod
    def _from_context(lock: Any = None, *, ctx: Context | None = None) -> Any:
        return context_of(ctx).Condition(lock)


class Event(_posix.Event, metaclass=PublicClass):
    """An event flag shared between processes: ``Event(*, ctx)``."""

    _implementations = (_posix.Event, _threads.Event)

    def __init__(self, *, ctx: Context | None = None) -> None:
        super().__init__(ctx=context_of(ctx))

    @staticmethod
    def _from_context(*, ctx: Context | None = None) -> Any:
        return context_of(ctx).Event()


class Barrier(_posix.Barrier, metaclass=PublicClass):
    """A barrier for ``parties`` processes.

    ``Barrier(parties, action=None, timeout=None, *, ctx)``.
    """

    _implementations = (_posix.Barrier, _threads.Barrier)

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: Context | None = None,
    ) -> None:
        super().__init__(
            checks.integer("parties", parties, 1),
            checks.optional_callable("action", action),
            checks.timeout("timeout", timeout),
            ctx=context_of(ctx),
        )

    @staticmethod
    def _from_context(
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: Context | None = None,
    ) -> Any:
        return context_of(ctx).Barrier(parties, action, timeout)

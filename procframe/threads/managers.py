"""``Manager()`` without a server: SyncManager's factories, returning plain objects.

The objects are those a SyncManager's server holds (``list``, ``dict``,
``queue.Queue``, ``threading``'s locks, Event, Barrier and Condition, a
Namespace, a Value, an ``array.array``, a Pool of this backend), handed out
as they are instead of by proxy: every thread shares them.  What needs a
server (``address``, ``connect``, ``get_server``, ``register``) raises
:class:`~procframe.NotSupportedError`.
"""

from __future__ import annotations

import array
import builtins
import queue
import threading
from collections.abc import Callable, Iterable

from procframe._core.errors import NotSupportedError
from procframe.managers import ManagerGoneError, State
from procframe.managers import Namespace as _Namespace
from procframe.managers import Value as _Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from typing_extensions import Self

    from procframe.context import Context
    from procframe.pool import ThreadPool


def _no_server(what: str) -> NotSupportedError:
    return NotSupportedError(
        f"{what} needs a manager server, and the 'threads' backend's Manager has none: its "
        "objects are plain objects of this process. Use the Manager of a backend of OS "
        "processes (procframe.get_context('forkserver').Manager()) to share objects with "
        "other processes or machines"
    )


class ThreadManager:
    """A started manager whose factories return plain objects shared by the threads."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._state = State.INITIAL

    # -- lifecycle ---------------------------------------------------------------

    def start(self, initializer: Callable[..., object] | None = None, initargs: Any = ()) -> None:
        """Start the manager; ``initializer(*initargs)`` runs here, there being no server."""
        if self._state is not State.INITIAL:
            raise ManagerGoneError(f"cannot start(): the manager is {self._state.value}")
        if initializer is not None:
            if not callable(initializer):
                raise TypeError("initializer must be a callable")
            initializer(*initargs)
        self._state = State.STARTED

    def shutdown(self) -> None:
        """Make no more objects (those made live on while they are used)."""
        self._state = State.SHUTDOWN

    def join(self, timeout: float | None = None) -> None:
        """Return at once: there is no server process to wait for."""

    def __enter__(self) -> Self:
        if self._state is State.INITIAL:
            self.start()
        elif self._state is not State.STARTED:
            raise ManagerGoneError(f"the manager is {self._state.value}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<procframe threads Manager {self._state.value}>"

    # -- what needs a server -------------------------------------------------------

    @property
    def address(self) -> Any:
        """Refused: there is no server to reach."""
        raise _no_server("a manager's address")

    def connect(self) -> None:
        """Refused: there is no server to connect to."""
        raise _no_server("connect()")

    def get_server(self) -> Any:
        """Refused: this manager serves nothing."""
        raise _no_server("get_server()")

    @classmethod
    def register(cls, typeid: str, *args: Any, **kwds: Any) -> None:
        """Refused: registered types are made in a server."""
        raise _no_server(f"register({typeid!r})")

    # -- objects -------------------------------------------------------------------

    def _check(self, typeid: str) -> None:
        if self._state is not State.STARTED:
            raise ManagerGoneError(f"cannot make a {typeid!r}: the manager is {self._state.value}")

    def Queue(self, maxsize: int = 0) -> queue.Queue[Any]:
        """A ``queue.Queue``."""
        self._check("Queue")
        return queue.Queue(maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> queue.Queue[Any]:
        """A ``queue.Queue`` (it has ``task_done`` and ``join``)."""
        self._check("JoinableQueue")
        return queue.Queue(maxsize)

    def Event(self) -> threading.Event:
        """A ``threading.Event``."""
        self._check("Event")
        return threading.Event()

    def Lock(self) -> Any:
        """A ``threading.Lock``."""
        self._check("Lock")
        return threading.Lock()

    def RLock(self) -> Any:
        """A ``threading.RLock``."""
        self._check("RLock")
        return threading.RLock()

    def Semaphore(self, value: int = 1) -> threading.Semaphore:
        """A ``threading.Semaphore``."""
        self._check("Semaphore")
        return threading.Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> threading.BoundedSemaphore:
        """A ``threading.BoundedSemaphore``."""
        self._check("BoundedSemaphore")
        return threading.BoundedSemaphore(value)

    def Condition(self, lock: Any = None) -> threading.Condition:
        """A ``threading.Condition`` on ``lock`` (a Lock or RLock of this manager) or an RLock."""
        self._check("Condition")
        return threading.Condition(lock)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> threading.Barrier:
        """A ``threading.Barrier``."""
        self._check("Barrier")
        return threading.Barrier(parties, action, timeout)  # type: ignore[arg-type]

    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
    ) -> ThreadPool:
        """A Pool of this backend (threads)."""
        self._check("Pool")
        return self._ctx.Pool(processes, initializer, initargs, maxtasksperchild)  # type: ignore[return-value]

    def list(self, sequence: Iterable[Any] = ()) -> builtins.list[Any]:
        """A ``list``."""
        self._check("list")
        return builtins.list(sequence)

    def dict(self, *args: Any, **kwds: Any) -> builtins.dict[Any, Any]:
        """A ``dict``."""
        self._check("dict")
        return builtins.dict(*args, **kwds)

    def Value(self, typecode: Any, value: Any, lock: Any = True) -> _Value:
        """A value with ``get``, ``set`` and ``.value`` (``lock`` is accepted and ignored)."""
        self._check("Value")
        return _Value(typecode, value, lock)

    def Array(self, typecode: str, sequence: Iterable[Any], lock: Any = True) -> array.array[Any]:
        """An ``array.array`` (``lock`` is accepted and ignored)."""
        self._check("Array")
        return array.array(typecode, sequence)

    def Namespace(self, **kwds: Any) -> _Namespace:
        """A bag of attributes."""
        self._check("Namespace")
        return _Namespace(**kwds)

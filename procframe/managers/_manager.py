"""BaseManager and SyncManager: start or connect to a server, and make shared objects."""

from __future__ import annotations

import enum
import threading
import weakref

from procframe._core.capabilities import MANAGER_SERVER
from procframe._core.errors import NotSupportedError, ProcessStateError
from procframe.managers import _client, _types
from procframe.managers import _protocol as protocol
from procframe.managers._errors import ManagerGoneError
from procframe.managers._proxy import AutoProxy, BaseProxy
from procframe.managers._server import Registration, Server, picklable_registry, run_server
from procframe.posix import handshake

TYPE_CHECKING = False  # typing is slow to import: a first Manager() does without it
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeVar, overload

    from _typeshed import SupportsKeysAndGetItem
    from typing_extensions import Self

    _T = TypeVar("_T")
    _KT = TypeVar("_KT")
    _VT = TypeVar("_VT")

SHUTDOWN_TIMEOUT = 1.0
"""Seconds the manager process gets to exit after a shutdown request, before SIGTERM."""


class State(enum.Enum):
    INITIAL = "initial"
    STARTED = "started"
    SHUTDOWN = "shut down"


class BaseManager:
    """Makes objects in a server process and hands out proxies to them.

    ``start()`` launches the server in a child process; ``connect()`` uses one
    that runs already (``get_server().serve_forever()`` elsewhere, possibly on
    another machine with ``address=(host, port)``).  Every connection is
    authenticated with ``authkey`` (default: this process's authkey) before
    anything it sends is read.  ``serializer`` is ``"pickle"`` (the default:
    pickles of ``ctx``'s serializer, so cloudpickle or dill if the program chose
    one), a serializer's name, or ``"xmlrpclib"`` (XML-RPC values: nothing is
    unpickled, and only what XML-RPC carries travels; see
    :mod:`procframe.managers._xmlrpc`).  Client and server must use the same:
    a client of another serializer is refused with ``SerializerError``.
    """

    _registry: dict[str, Registration] = {}

    def __init__(
        self,
        address: Any = None,
        authkey: bytes | None = None,
        serializer: str = protocol.PICKLE,
        ctx: Any = None,
        *,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    ) -> None:
        from procframe._core.process import current_process

        serializer = protocol.resolve_serializer(serializer, ctx)
        if authkey is not None and not isinstance(authkey, (bytes, bytearray)):
            raise TypeError(f"authkey must be bytes, got {type(authkey).__name__}")
        self._address = protocol.address_key(address)
        self._authkey = bytes(current_process().authkey if authkey is None else authkey)
        self._serializer = serializer
        self._ctx = ctx
        self._shutdown_timeout = shutdown_timeout
        self._state = State.INITIAL
        self._process: Any = None
        self._finalizer: Any = None
        self._on_collect: Any = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def address(self) -> Any:
        """The server's address (the real port once started, if port 0 was asked for)."""
        return self._address

    def get_server(self) -> Server:
        """A server for this manager's types at its address, to run with ``serve_forever()``."""
        self._check_state(State.INITIAL, "get_server")
        server = Server(self._registry, self._address, self._authkey, self._serializer)
        self._address = protocol.address_key(server.address)
        return server

    def connect(self) -> None:
        """Use the server already running at ``address``."""
        self._check_state(State.INITIAL, "connect")
        self._server().control(protocol.PING)
        self._state = State.STARTED

    def start(self, initializer: Any = None, initargs: Any = ()) -> None:
        """Start the server in a child process of this manager's context."""
        self._check_state(State.INITIAL, "start")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        from procframe.context import get_context

        ctx = self._ctx or get_context()
        if not ctx.backend.has(MANAGER_SERVER):
            raise NotSupportedError(
                f"backend {ctx.name!r} runs no manager server (it does not declare "
                f"{MANAGER_SERVER!r}): start {type(self).__name__} under a backend of OS "
                "processes (ctx=procframe.get_context('forkserver'))"
            )
        reader, writer = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=run_server,
            args=(
                picklable_registry(self._registry), self._address, self._authkey,
                self._serializer,
                writer, initializer, tuple(initargs),
            ),
            name=f"{type(self).__name__}-server",
        )  # fmt: skip
        self._process._serves_others = True  # at exit: stopped by _Finalizer, never joined
        self._process.start()
        writer.close()
        handshake.prepare()  # while the server starts: its first connection authenticates
        try:
            address = reader.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the manager's server process exited before it served "
                f"(exit code {self._process.exitcode})"
            ) from None
        finally:
            reader.close()
        self._address = protocol.address_key(address)
        self._state = State.STARTED
        from procframe._core.process import on_exit_after_children

        self._finalizer = _Finalizer(
            self._process, self._address, self._authkey, self._serializer, self._shutdown_timeout
        )
        # At exit, once the other children were joined (they may still use the manager).
        on_exit_after_children(self._finalizer)
        self._on_collect = weakref.finalize(self, self._finalizer)
        self._on_collect.atexit = False

    def shutdown(self) -> None:
        """Stop the server this manager started (proxies fail from then on).

        Nothing of the server outlives this: its process is joined and closed
        (its descriptors with it), and no registry keeps anything of it.
        """
        if self._finalizer is not None:
            self._finalizer()
            self._on_collect.detach()
        self._state = State.SHUTDOWN

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server process to exit."""
        if self._process is not None and self._state is not State.SHUTDOWN:
            self._process.join(timeout)

    def __enter__(self) -> Self:
        if self._state is State.INITIAL:
            self.start()
        elif self._state is not State.STARTED:
            raise ManagerGoneError(f"the manager is {self._state.value}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _check_state(self, expected: State, what: str) -> None:
        if self._state is not expected:
            raise ProcessStateError(f"cannot {what}(): the manager is {self._state.value}")

    def _server(self) -> Any:
        """The server, as this process reaches it (see :func:`_client.server_for`)."""
        return _client.server_for(self._address, self._authkey, self._serializer)

    # -- objects -------------------------------------------------------------------

    def _create(self, typeid: str, *args: Any, **kwds: Any) -> Any:
        if self._state is not State.STARTED:
            raise ManagerGoneError(f"cannot make a {typeid!r}: the manager is {self._state.value}")
        server = self._server()
        if isinstance(server, _client.LocalServer):
            raise RuntimeError("a manager cannot make objects from inside its own server")
        typeid, ident, exposed, proxytype = server.control("create", typeid, args, kwds)
        proxytype = self._registry[typeid].proxytype
        token = protocol.Token(typeid, self._address, ident)
        return proxytype(
            token, self._serializer, manager=self, authkey=self._authkey, exposed=exposed,
            incref=False,
        )  # fmt: skip

    def _number_of_objects(self) -> int:
        """How many shared objects the server holds."""
        return self._server().control("number_of_objects")  # type: ignore[no-any-return]

    def _debug_info(self) -> str:
        """One line per shared object the server holds."""
        return self._server().control("debug_info")  # type: ignore[no-any-return]

    @classmethod
    def register(
        cls,
        typeid: str,
        callable: Any = None,
        proxytype: Any = None,
        exposed: Any = None,
        method_to_typeid: Any = None,
        create_method: bool = True,
    ) -> None:
        """Teach this manager class to make (or return) objects of ``typeid``."""
        if not isinstance(typeid, str) or not typeid.isidentifier():
            raise ValueError(f"typeid must be an identifier, got {typeid!r}")
        if "_registry" not in cls.__dict__:
            cls._registry = dict(cls._registry)
        proxytype = proxytype or AutoProxy
        exposed = exposed or getattr(proxytype, "_exposed_", None)
        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)
        if method_to_typeid:
            for method, result_typeid in method_to_typeid.items():
                if not isinstance(method, str) or not isinstance(result_typeid, str):
                    raise TypeError(f"method_to_typeid maps names to typeids: {method!r}")
        cls._registry[typeid] = Registration(
            callable,
            None if exposed is None else tuple(exposed),
            dict(method_to_typeid) if method_to_typeid else None,
            proxytype,
        )
        if create_method:

            def create(self: BaseManager, *args: Any, **kwds: Any) -> Any:
                return self._create(typeid, *args, **kwds)

            create.__name__ = typeid
            create.__doc__ = f"A new shared {typeid} object; its proxy."
            setattr(cls, typeid, create)


class _Finalizer:
    """Stops a manager's server: ask it, wait a little, then SIGTERM (once)."""

    def __init__(
        self, process: Any, address: Any, authkey: bytes, serializer: str, timeout: float
    ) -> None:
        self._process = process
        self._address = address
        self._authkey = authkey
        self._serializer = serializer
        self._timeout = timeout
        self._done = False
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        from procframe._core.process import forget_exit_callback

        forget_exit_callback(self)
        if self._process.is_alive():
            server = _client.server_for(self._address, self._authkey, self._serializer)
            try:
                if isinstance(server, _client.RemoteServer):
                    server.control("shutdown")
            except Exception:
                pass
            self._process.join(self._timeout)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(self._timeout)
                if self._process.is_alive():
                    self._process.kill()
                    self._process.join()
        self._process.close()  # its sentinel; the manager keeps the object (pid, exitcode)
        _client.forget_remote_servers(self._address)


class SyncManager(BaseManager):
    """A manager with shared versions of the synchronization and container types."""

    def Queue(self, maxsize: int = 0) -> Any:
        """A ``queue.Queue`` in the server."""
        return self._create("Queue", maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        """A ``queue.Queue`` in the server (it has ``task_done`` and ``join``)."""
        return self._create("JoinableQueue", maxsize)

    def Event(self) -> _types.EventProxy:
        return self._create("Event")  # type: ignore[no-any-return]

    def Lock(self) -> _types.AcquirerProxy:
        return self._create("Lock")  # type: ignore[no-any-return]

    def RLock(self) -> _types.AcquirerProxy:
        return self._create("RLock")  # type: ignore[no-any-return]

    def Semaphore(self, value: int = 1) -> _types.AcquirerProxy:
        return self._create("Semaphore", value)  # type: ignore[no-any-return]

    def BoundedSemaphore(self, value: int = 1) -> _types.AcquirerProxy:
        return self._create("BoundedSemaphore", value)  # type: ignore[no-any-return]

    def Condition(self, lock: Any = None) -> _types.ConditionProxy:
        """A ``threading.Condition`` in the server; ``lock`` a Lock or RLock proxy of this
        manager (its object is used), or None for a new RLock."""
        return self._create("Condition", lock)  # type: ignore[no-any-return]

    def Barrier(
        self, parties: int, action: Any = None, timeout: float | None = None
    ) -> _types.BarrierProxy:
        return self._create("Barrier", parties, action, timeout)  # type: ignore[no-any-return]

    def Pool(
        self,
        processes: int | None = None,
        initializer: Any = None,
        initargs: Any = (),
        maxtasksperchild: int | None = None,
    ) -> _types.PoolProxy:
        """A procframe Pool whose workers are children of the server process."""
        return self._create(  # type: ignore[no-any-return]
            "Pool", processes, initializer, tuple(initargs), maxtasksperchild
        )

    # (Positional-only parameters spelled with "__": mypy rejects the "/" spelling here.)
    if TYPE_CHECKING:

        @overload
        def list(self) -> _types.ListProxy[Any]: ...
        @overload
        def list(self, __sequence: Iterable[_T]) -> _types.ListProxy[_T]: ...

    def list(self, *args: Any) -> Any:
        """A list in the server (``list(sequence)``)."""
        return self._create("list", *args)

    if TYPE_CHECKING:

        @overload
        def dict(self) -> _types.DictProxy[Any, Any]: ...
        @overload
        def dict(self, **kwds: _VT) -> _types.DictProxy[str, _VT]: ...
        @overload
        def dict(
            self, __mapping: SupportsKeysAndGetItem[_KT, _VT]
        ) -> _types.DictProxy[_KT, _VT]: ...
        @overload
        def dict(
            self, __mapping: SupportsKeysAndGetItem[str, _VT], **kwds: _VT
        ) -> _types.DictProxy[str, _VT]: ...
        @overload
        def dict(self, __iterable: Iterable[tuple[_KT, _VT]]) -> _types.DictProxy[_KT, _VT]: ...
        @overload
        def dict(
            self, __iterable: Iterable[tuple[str, _VT]], **kwds: _VT
        ) -> _types.DictProxy[str, _VT]: ...

    def dict(self, *args: Any, **kwds: Any) -> Any:
        """A dict in the server, made as ``dict(*args, **kwds)``."""
        return self._create("dict", *args, **kwds)

    def Value(self, typecode: Any, value: _T, lock: Any = True) -> _types.ValueProxy[_T]:
        """A value in the server (see :class:`procframe.managers.Value`)."""
        return self._create("Value", typecode, value, lock)  # type: ignore[no-any-return]

    def Array(self, typecode: str, sequence: Iterable[Any], lock: Any = True) -> Any:
        """An ``array.array`` in the server (see :func:`procframe.managers.Array`), by
        ``ArrayProxy``: ``len()``, indexing and slices."""
        return self._create("Array", typecode, sequence, lock)

    def Namespace(self, **kwds: Any) -> _types.NamespaceProxy:
        return self._create("Namespace", **kwds)  # type: ignore[no-any-return]


def _served_pool(
    processes: int | None = None,
    initializer: Any = None,
    initargs: Any = (),
    maxtasksperchild: int | None = None,
) -> Any:
    """A Pool in the server process, made by its context (the manager's backend)."""
    from procframe.context import get_context

    return get_context().Pool(processes, initializer, initargs, maxtasksperchild)


def _register_sync_types() -> None:
    t = _types
    for typeid, made, proxytype in (
        ("Queue", t.Queue, AutoProxy),
        ("JoinableQueue", t.Queue, AutoProxy),
        ("Event", t.Event, t.EventProxy),
        ("Lock", t.Lock, t.AcquirerProxy),
        ("RLock", t.RLock, t.AcquirerProxy),
        ("Semaphore", t.Semaphore, t.AcquirerProxy),
        ("BoundedSemaphore", t.BoundedSemaphore, t.AcquirerProxy),
        ("Condition", t.Condition, t.ConditionProxy),
        ("Barrier", threading.Barrier, t.BarrierProxy),
        ("Pool", _served_pool, t.PoolProxy),
        ("list", list, t.ListProxy),
        ("dict", dict, t.DictProxy),
        ("Value", t.Value, t.ValueProxy),
        ("Array", t.Array, t.ArrayProxy),
        ("Namespace", t.Namespace, t.NamespaceProxy),
    ):
        SyncManager.register(typeid, made, proxytype, create_method=False)
    SyncManager.register("Iterator", proxytype=t.IteratorProxy, create_method=False)
    SyncManager.register("AsyncResult", create_method=False)


_register_sync_types()

__all__ = ["BaseManager", "BaseProxy", "SyncManager"]

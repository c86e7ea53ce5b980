"""Proxies: objects that stand for a shared object and call its methods in the server."""

from __future__ import annotations

import sys
import weakref

from procframe.managers import _client
from procframe.managers import _protocol as protocol
from procframe.managers._errors import RemoteError
from procframe.managers._protocol import Token
from procframe.managers._server import GET_VALUE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# How a pickled proxy is held while it travels: one of these, or (a positive number) the id
# of the transit hold its sender took, which its receiver takes over.
_UNHELD = 0
"""Pickled into a request to its own server: the server holds it while it unpickles it."""
_HELD = -1
"""Pickled into an answer by the server, which counted a hold for the receiving session."""


class BaseProxy:
    """Stands for a shared object held by a manager's server; subclasses add its methods."""

    _exposed_: tuple[str, ...] | None = None
    _method_to_typeid_: dict[str, str] | None = None
    _isauto = False

    def __init__(
        self,
        token: Token,
        serializer: str = protocol.PICKLE,
        manager: Any = None,
        authkey: bytes | None = None,
        exposed: tuple[str, ...] | None = None,
        incref: bool = True,
        manager_owned: bool = False,
    ) -> None:
        serializer = protocol.known_serializer(serializer)
        self._token = token
        self._id = token.id
        self._serializer = serializer
        self._manager = manager
        server = _client.server_for(token.address, authkey, serializer)
        self._server = server
        self._authkey = server.authkey
        if exposed is not None and self._exposed_ is None:
            self._exposed_ = tuple(exposed)
        if not manager_owned:
            _take_hold(self, _UNHELD if incref else _HELD)

    def _callmethod(self, methodname: str, args: Any = (), kwds: Any = None) -> Any:
        """Call ``methodname`` of the shared object; its result (or a proxy, or its exception)."""
        server = self._server
        if isinstance(server, _client.LocalServer):
            return self._call_here(methodname, args, kwds)
        kind, payload = server.request(self._id, methodname, args, kwds)
        if kind == protocol.RETURN:
            return payload
        try:
            return self._outcome(kind, payload)
        finally:
            # The raised exception's traceback holds this frame: a local referring to the
            # exception would make a cycle that keeps this proxy (an exhausted iterator's,
            # say) and its object in the server alive until the garbage collector runs.
            del payload

    def _outcome(self, kind: int, payload: Any) -> Any:
        if kind == protocol.RAISED:
            exc, text = payload
            del payload
            try:
                raise exc from RemoteError(text)
            finally:
                del exc  # no cycle through this frame (see _callmethod)
        if kind == protocol.PROXY:
            return _new_proxy(
                payload, self._token.address, self._manager, self._authkey, self._serializer
            )
        if kind == protocol.RAISED_BY_NAME:
            from procframe.managers._xmlrpc import rebuild_exception

            name, args, text = payload
            rebuilt = rebuild_exception(name, args)
            if rebuilt is not None:
                raise rebuilt from RemoteError(text)
            raise RemoteError(text)
        raise RemoteError(payload)

    def _call_here(self, methodname: str, args: Any, kwds: Any) -> Any:
        """A call by a proxy that lives in its own server's process."""
        from procframe.managers._server import SERVER_SESSION

        local = self._server
        assert isinstance(local, _client.LocalServer)
        server = local.server
        entry = server.objects.get(self._id)
        if entry is None:
            raise RemoteError(f"no shared object with id {self._id}: it was freed")
        kind, payload = server.call(entry, SERVER_SESSION, self._id, methodname, args, kwds or {})
        if kind == protocol.RETURN:
            return payload
        try:
            if kind == protocol.RAISED:
                raise payload[0]
            return self._outcome(kind, payload)
        finally:
            del payload  # no cycle through this frame (see _callmethod)

    def _referent(self) -> Any:
        """The object itself, for a proxy that lives in its own server's process."""
        local = self._server
        if not isinstance(local, _client.LocalServer):
            raise TypeError("only a proxy in its own server's process can reach its object")
        entry = local.server.objects.get(self._id)
        if entry is None:
            raise RemoteError(f"no shared object with id {self._id}: it was freed")
        return entry.obj

    def _getvalue(self) -> Any:
        """A copy of the shared object."""
        return self._callmethod(GET_VALUE)

    def __reduce__(self) -> tuple[Any, ...]:
        server = self._server
        if isinstance(server, _client.LocalServer):
            hosted = server.server
            held = _HELD if hosted.hold_for_reply(self._id) else hosted._transit(None, self._id)
        elif getattr(_client.pickling, "address", None) == server.address:
            held = _UNHELD
        else:
            held = server.transit(self._id)
        authkey = None
        from procframe._core.process import _spawning

        if getattr(_spawning, "active", False):
            authkey = self._authkey
        proxytype = _AUTO if getattr(self, "_isauto", False) else type(self)
        return (
            _rebuild_proxy,
            (proxytype, self._token, self._serializer, self._exposed_, held, authkey),
        )

    def __deepcopy__(self, memo: Any) -> Any:
        return self._getvalue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object, typeid {self._token.typeid!r} at {id(self):#x}>"

    def __str__(self) -> str:
        """The shared object's ``repr``, fetched from the server."""
        try:
            return self._callmethod("__repr__")  # type: ignore[no-any-return]
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


_AUTO = "auto"


def _rebuild_proxy(
    proxytype: Any,
    token: Token,
    serializer: str,
    exposed: tuple[str, ...] | None,
    held: int,
    authkey: bytes | None,
) -> BaseProxy:
    """Unpickle a proxy: take over the hold it travelled with, or take one."""
    if proxytype == _AUTO:
        proxy = _auto_type(token.typeid, exposed)(
            token, serializer, authkey=authkey, manager_owned=True
        )
        proxy._isauto = True
    else:
        proxy = proxytype(token, serializer, authkey=authkey, exposed=exposed, manager_owned=True)
    _take_hold(proxy, held)
    return proxy


def _take_hold(proxy: BaseProxy, held: int) -> None:
    """Count ``proxy`` with its server: take a hold (``_UNHELD``), adopt the one the server
    counted for this session (``_HELD``), or take over transit hold ``held``; released when
    the proxy dies."""
    server = proxy._server
    transit = held if held > 0 else None
    if isinstance(server, _client.LocalServer):
        if held != _HELD:
            server.hold(proxy._id, transit)
    elif held == _HELD:
        server.adopt(proxy._id)
    else:
        server.acquire(proxy._id, transit)
    weakref.finalize(proxy, server.drop, proxy._id)


def _new_proxy(
    made: tuple[Any, ...], address: Any, manager: Any, authkey: bytes, serializer: str
) -> Any:
    """The proxy of an object the server just registered for this session (already held):
    ``made`` is (typeid, ident, exposed, proxytype); the proxy type is the one the manager's
    registry names, else the server's, else AutoProxy."""
    typeid, ident, exposed, proxytype = made
    token = Token(typeid, address, ident)
    registration = getattr(manager, "_registry", {}).get(typeid)
    if registration is not None:
        proxytype = registration.proxytype
    if proxytype is None:
        proxytype = AutoProxy
    return proxytype(
        token, serializer, manager=manager, authkey=authkey, exposed=exposed, incref=False
    )


_proxy_types: dict[tuple[str, tuple[str, ...]], type[BaseProxy]] = {}


def MakeProxyType(name: str, exposed: Any, _cache: Any = None) -> type[BaseProxy]:
    """A proxy class named ``name`` whose methods call the methods named in ``exposed``."""
    exposed = tuple(exposed)
    found = _proxy_types.get((name, exposed))
    if found is not None:
        return found
    # Named after the caller's module, where it is assigned: pickled by reference from there.
    module = sys._getframe(1).f_globals.get("__name__", __name__)
    namespace: dict[str, Any] = {"_exposed_": exposed, "__module__": module}
    for method in exposed:
        namespace[method] = _forwarder(method)
    if "__next__" in exposed and "__iter__" not in exposed:  # an iterator: a for loop takes it
        namespace["__iter__"] = _itself
    made = type(name, (BaseProxy,), namespace)
    _proxy_types[(name, exposed)] = made
    return made


def _forwarder(name: str) -> Any:
    def forward(self: BaseProxy, *args: Any, **kwds: Any) -> Any:
        return self._callmethod(name, args, kwds)

    forward.__name__ = name
    return forward


def _itself(self: BaseProxy) -> BaseProxy:
    return self


def _auto_type(typeid: str, exposed: Any) -> type[BaseProxy]:
    return MakeProxyType(f"AutoProxy[{typeid}]", exposed)


def AutoProxy(
    token: Token,
    serializer: str = protocol.PICKLE,
    manager: Any = None,
    authkey: bytes | None = None,
    exposed: Any = None,
    incref: bool = True,
    manager_owned: bool = False,
) -> BaseProxy:
    """A proxy whose methods are the shared object's exposed methods (asked of the server if
    not given)."""
    if exposed is None:
        server = _client.server_for(token.address, authkey, serializer)
        if isinstance(server, _client.LocalServer):
            exposed = sorted(server.server.objects[token.id].exposed)
        else:
            exposed = server.control("exposed", token.id)
    proxy = _auto_type(token.typeid, exposed)(
        token,
        serializer,
        manager=manager,
        authkey=authkey,
        incref=incref,
        manager_owned=manager_owned,
    )
    proxy._isauto = True
    return proxy

"""What travels between a manager's clients and its server.

A request is ``(ident, method, args, kwds)``: a call of ``method`` on the
object ``ident``, answered by ``(kind, payload)``.  A negative ``ident`` is
:data:`CONTROL`: ``method`` then names a server operation (create an object,
change holds, shut down, ...).  Operations in :data:`ONE_WAY` get no answer;
a client sends them just before a request on the same connection, so the
server has applied them before it answers that request.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from procframe._core import serializer_registry, serializing
from procframe._core.errors import SerializerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONTROL = -1

# kinds of answer
RETURN = 0
"""payload: the method's result."""
RAISED = 1
"""payload: (the exception the method raised, the server-side traceback text)."""
PROXY = 2
"""payload: (typeid, ident, exposed, proxytype or None): the result stays in the server."""
FAILED = 3
"""payload: the text of a :class:`RemoteError` (the server could not do what was asked)."""
MISMATCH = 5
"""payload: why the server refuses this connection: its hello named another serializer."""

# one-way operations
HELLO = "hello"
"""args: (session, idents the session holds already, the client's serializer): the first
message of a connection, sent once it is authenticated."""
REFS = "refs"
"""args: (list of (RELEASE, ident, 0) or (UNTRANSIT, ident, transit id)): holds given up."""
ONE_WAY = frozenset({HELLO, REFS})

PING = "ping"
"""A server operation that does nothing and answers None: the server is there and has read
everything sent before it on that connection (the hello that opened it, say)."""

RELEASE = 0
"""The session holds one proxy fewer of the object."""
UNTRANSIT = 1
"""A proxy that was pickled with a transit hold arrived where the object was held already."""

RAISED_BY_NAME = 4
"""payload: (the name of a builtin exception type, its args, the server-side traceback text):
an exception, where the serializer cannot carry the object (xmlrpclib)."""

PICKLE = "pickle"
"""Messages are pickles, of the context's serializer (pickle unless the program chose another:
``procframe.set_serializer``, ``PROCFRAME_SERIALIZER``, ``get_context(serializer=...)``)."""
XMLRPCLIB = "xmlrpclib"
"""Messages are XML-RPC values: nothing is unpickled, and only what XML-RPC carries travels."""


class Token:
    """Names a shared object: its type's id, the server's address and the object's id."""

    __slots__ = ("address", "id", "typeid")

    def __init__(self, typeid: str, address: Any, id: int) -> None:
        self.typeid = typeid
        self.address = address
        self.id = id

    def __getstate__(self) -> tuple[str, Any, int]:
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state: tuple[str, Any, int]) -> None:
        self.typeid, self.address, self.id = state

    def __repr__(self) -> str:
        return f"Token(typeid={self.typeid!r}, address={self.address!r}, id={self.id})"


def known_serializer(serializer: str) -> str:
    """``serializer`` itself, once checked: ``"xmlrpclib"`` or a declared serializer's name
    (``"pickle"`` meaning pickle).  What a proxy rebuilt in another process is given: the
    name its manager resolved, which the receiving process must not resolve again."""
    if serializer in (XMLRPCLIB, PICKLE):
        return serializer
    return resolve_serializer(serializer)


def resolve_serializer(serializer: str, ctx: Any = None) -> str:
    """The serializer a manager or proxy asked for ``serializer`` uses: ``"pickle"`` means
    ``ctx``'s (the program's default without one), which may be cloudpickle, dill or a
    plugin's; ``"xmlrpclib"`` and any serializer's name stand for themselves.  Raise
    ``ValueError`` for another name."""
    if serializer == XMLRPCLIB:
        return serializer
    if serializer == PICKLE:
        return ctx.serializer if ctx is not None else serializer_registry.default_name()
    if isinstance(serializer, str) and serializer in serializer_registry.serializers():
        serializer_registry.resolve(serializer, "asked of a manager")  # installed?
        return serializer
    others = ", ".join(name for name in serializer_registry.serializers() if name != PICKLE)
    raise SerializerError(
        f"unknown serializer {serializer!r}; procframe managers support 'pickle' and "
        f"'xmlrpclib', and the procframe serializers ({others})"
    )


def codec(serializer: str) -> tuple[Callable[[Any], bytes], Callable[[Any], Any]]:
    """The (dumps, loads) pair of ``serializer`` (resolved) for a manager connection."""
    if serializer != XMLRPCLIB:
        # A serializer's dumps releases the Connections a message that fails to pickle shared.
        return serializing.get(serializer).dumps, pickle.loads
    from procframe.managers import _xmlrpc

    return _xmlrpc.dumps, _xmlrpc.loads


def mismatch(server: str, client: str, address: Any) -> str:
    """The text of the error a client gets from a server of another serializer."""
    return (
        f"the manager at {address!r} uses the {server!r} serializer and this client the "
        f"{client!r} one: both ends must use the same (choose it with "
        "procframe.set_serializer(), get_context(..., serializer=...) or "
        f"{serializer_registry.SERIALIZER_ENV}, or name it: BaseManager(serializer=...))"
    )


def address_key(address: Any) -> Any:
    """``address`` as a dict key (a TCP address may arrive as a list)."""
    return tuple(address) if isinstance(address, list) else address

"""The ``xmlrpclib`` serializer of manager connections: XML-RPC values instead of pickles.

As ``multiprocessing.connection.XmlClient``, every message is one XML-RPC
value (``allow_none``), so nothing a peer sends is unpickled.  Two things are
stricter or truer than the standard library's: an object XML-RPC does not know
is refused with a ``TypeError`` instead of being sent as the struct of its
``__dict__``, and ``bytes`` and ``datetime`` come back as themselves (not as
``xmlrpc.client.Binary`` and ``DateTime``).  Exceptions cannot travel as
objects: a builtin one travels by name and arguments (see :func:`dumps_answer`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from xmlrpc import client as xmlrpc

from procframe.managers import _protocol as protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CARRIES = (
    "None, bool, int (32 bits), float, str, bytes, list, tuple (as a list), dict with str "
    "keys, datetime.datetime"
)
"""What XML-RPC carries, for error messages."""


def _refuse(marshaller: xmlrpc.Marshaller, value: Any, write: Callable[[str], object]) -> None:
    raise TypeError(f"cannot marshal {type(value)} objects")


class _StrictMarshaller(xmlrpc.Marshaller):
    """An XML-RPC marshaller that refuses every object it has no type for (the standard
    library's sends an instance's ``__dict__``)."""

    dispatch = {**xmlrpc.Marshaller.dispatch, "_arbitrary_instance": _refuse}


def dumps(obj: Any) -> bytes:
    """``obj`` as one XML-RPC value; ``TypeError`` or ``OverflowError`` if it cannot be one."""
    try:
        text = _StrictMarshaller("utf-8", allow_none=True).dumps((obj,))
    except (TypeError, OverflowError) as exc:
        raise type(exc)(
            f"the {protocol.XMLRPCLIB!r} serializer cannot send this: {exc} (XML-RPC carries "
            f"{CARRIES})"
        ) from None
    return text.encode("utf-8")


def loads(data: bytes | bytearray) -> Any:
    """The value of one message made by :func:`dumps`."""
    (obj,), _ = xmlrpc.loads(bytes(data).decode("utf-8"), use_builtin_types=True)
    return obj


def dumps_answer(answer: tuple[int, Any]) -> bytes:
    """An answer of the server, its exception (``RAISED``) by name and arguments."""
    kind, payload = answer
    if kind != protocol.RAISED:
        return dumps(answer)
    exc, text = payload
    name: str | None = type(exc).__name__
    if getattr(builtins, type(exc).__name__, None) is not type(exc):
        name = None  # the client rebuilds only builtin exception types
    try:
        return dumps((protocol.RAISED_BY_NAME, (name, exc.args, text)))
    except (TypeError, OverflowError):  # arguments XML-RPC cannot carry
        return dumps((protocol.RAISED_BY_NAME, (name, (str(exc),), text)))


def rebuild_exception(name: str | None, args: Any) -> BaseException | None:
    """The builtin exception ``name(*args)``; None if ``name`` is not one, or it cannot be made."""
    if name is None:
        return None
    made = getattr(builtins, name, None)
    if not (isinstance(made, type) and issubclass(made, BaseException)):
        return None
    try:
        return made(*args)
    except Exception:
        return None

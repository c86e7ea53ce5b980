"""What a Queue or a Pipe of this backend sends: a message as procframe pickles one.

The standard pickle with procframe's reducers (a ``memoryview`` stays one), the
serializer only for what pickle cannot carry (a lambda, a closure); an object it
refuses raises the serializer's own error, with procframe's note naming the object.
Any process reads it with ``pickle.loads``.

Which serializer: the one a context names (``get_context(..., serializer=...)``);
else the program's (``set_serializer``, ``PROCFRAME_SERIALIZER``), and where that is
plain ``pickle``, Dask's cloudpickle, so that lambdas and closures cross this backend
as they cross Dask.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

from procframe import serializers

DASK_SERIALIZER = "cloudpickle"
"""The serializer of this backend when the program chose none: Dask's."""


def default() -> str:
    """The program's serializer, or Dask's where that is plain ``pickle``."""
    chosen = serializers.get_serializer()
    return DASK_SERIALIZER if chosen == serializers.PICKLE else chosen


def of(ctx: Any) -> str:
    """The serializer of the objects ``ctx`` makes (see the module doc): the one it was
    made with (``get_context(..., serializer=...)``), else :func:`default`."""
    import procframe

    try:
        named = ctx is not procframe.get_context(ctx.name)
    except Exception:  # not a context procframe knows by its name: take its word
        named = True
    return str(ctx.serializer) if named else default()


def dumps(obj: object, serializer: str | None = None) -> bytes:
    """``obj`` as bytes for the cluster, by ``serializer`` (:func:`default` if ``None``).

    Under cloudpickle, a pickle that names ``__main__`` or a module registered with
    ``cloudpickle.register_pickle_by_value`` is made again by cloudpickle whole, which
    carries their functions and classes by value: a process of this backend does not
    run its parent's main module again (a spawn child does, so procframe's pickle-first
    step names what is defined there), and the workers cannot import those modules.
    What objects inside ask for with :func:`once_pickled` runs once the bytes are made.
    """
    data, actions = _pickled(obj, serializer)
    for action in actions:
        action()
    return data


def probe(obj: object, serializer: str | None = None) -> None:
    """Raise what :func:`dumps` would raise for ``obj``; nothing it asks for is done."""
    _pickled(obj, serializer)


def once_pickled(key: object, action: Callable[[], None]) -> None:
    """Run ``action`` once the message being pickled in this thread is made, once per
    ``key`` however many times the serializer pickles it (at once outside a message).

    For what an object must do on the cluster when a copy of it is made (a Pipe end
    counts its copies): a pickle that fails, or is made again, does nothing twice."""
    pending = getattr(_message, "pending", None)
    if pending is None:
        action()
    else:
        pending.setdefault(key, action)


_message = threading.local()


def _pickled(obj: object, serializer: str | None) -> tuple[bytes, list[Callable[[], None]]]:
    serializer = serializer or default()
    outer = getattr(_message, "pending", None)
    pending: dict[object, Callable[[], None]] = {}
    _message.pending = pending
    try:
        data = serializers.dumps(obj, serializer)
        if serializer == DASK_SERIALIZER and _names_a_module_by_value(data):
            import cloudpickle

            try:
                data = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # what only procframe's reducers carry (a memoryview): as it is
                pass
    finally:
        _message.pending = outer
    return data, list(pending.values())


def _names_a_module_by_value(data: bytes) -> bool:
    import cloudpickle

    for module in ("__main__", *cloudpickle.list_registry_pickle_by_value()):
        name = module.encode()
        if len(name) < 256 and data.find(b"\x8c" + bytes([len(name)]) + name) >= 0:
            return True
    return False

"""Child targets and objects of the serializer conformance tests (``suite/test_serializers.py``).

What a test hands a child as a lambda, a closure or a local class is made
here, inside functions: pickle cannot save any of them by name, so only a
serializer that carries functions and classes by value (cloudpickle, dill, a
plugin's) gets them across to a fresh interpreter.  Functions that those
reach import procframe where they use it: a function dill carries by value
takes the globals of every function it calls along (``recurse=True``), and
dill pickles a module outside site-packages with its whole state, which
procframe's cannot be (see ``tests/test_serializing.py``).
"""

from __future__ import annotations

from typing import Any

PATIENCE = 60.0
"""Seconds a child waits for what its parent has already sent."""

_remembered: list[str] = []


class Refuses:
    """An object no serializer can carry: its ``__reduce__`` raises ``TypeError``."""

    def __init__(self, label: str = "refuses") -> None:
        self.label = label

    def __reduce__(self) -> Any:
        raise TypeError(f"{self.label}: refused by design")

    def __repr__(self) -> str:
        return f"<Refuses {self.label}>"


def make_adder(offset: int) -> Any:
    """A closure over ``offset`` (a function pickle cannot save by name)."""

    def add(x: int) -> int:
        return x + offset

    return add


def make_local_class() -> type:
    """A class defined inside a function (pickle cannot save it or its instances by name)."""

    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x = x
            self.y = y

        def total(self) -> int:
            return self.x + self.y

    return Point


def remember(token: str) -> None:
    """Keep ``token`` in this process (a pool initializer calls it)."""
    _remembered.append(token)


def make_initializer(token: str) -> Any:
    """A closure that keeps ``token`` in the process that calls it."""
    return lambda: remember(token)


def make_child_target() -> Any:
    """A lambda that runs :func:`use_local_objects` (a Process target pickle cannot save)."""
    return lambda *args: use_local_objects(*args)


def worker_state() -> tuple[list[str], str, Any]:
    """What a pool worker knows: the tokens its initializer kept, its serializer, and a
    lambda made here."""
    from procframe import get_serializer

    return (
        list(_remembered),
        get_serializer(),
        lambda x: f"worker lambda {x}",
    )


def use_local_objects(
    conn: Any, q: Any, sq: Any, jq: Any, add: Any, cls: type, instance: Any, function: Any
) -> None:
    """Call what the parent sent (as arguments, and through each queue and the pipe), send
    local objects back through each of them, and report last through ``conn``.

    The parent reads the queues only after the report: by then this child has
    taken the parent's items out of them.
    """
    from procframe import get_serializer

    from_queue = q.get(timeout=PATIENCE)
    from_simple = sq.get()
    from_joinable = jq.get(timeout=PATIENCE)
    jq.task_done()
    from_pipe = conn.recv()

    class Reply:
        def __init__(self, text: str) -> None:
            self.text = text

    q.put(lambda x: x * 2)
    jq.put(Reply)
    sq.put(make_adder(1000))
    conn.send(
        {
            "args": (add(1), cls(2, 3).total(), instance.total(), function(4)),
            "received": (from_queue(5), from_simple(6), from_joinable(3, 4).total(), from_pipe(8)),
            "serializer": get_serializer(),
            "reply": Reply("through the pipe"),
        }
    )


def exchange_with_listener(address: Any, authkey: bytes, serializer: str) -> None:
    """Connect with ``Client(serializer=...)``; call the lambda received, send the result
    and a lambda back."""
    from procframe.connection import Client

    with Client(address, authkey=authkey, serializer=serializer) as conn:
        received = conn.recv()
        conn.send((received(20), lambda x: x - 1))

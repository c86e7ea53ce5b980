"""Child-side helpers of the suite's drop-in connection tests: default socket timeouts,
connections sent to running processes.

Children import this module (never a test module, which imports pytest).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from procframe.testing.helpers.targets import report

DEFAULT_TIMEOUT = 0.2
"""The default socket timeout the tests set: shorter than every wait they make."""
PAUSE = 3 * DEFAULT_TIMEOUT
"""A pause longer than the default timeout: a socket that kept it times out meanwhile."""


@contextmanager
def default_socket_timeout(seconds: float | None = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Within this block ``socket.getdefaulttimeout()`` is ``seconds``; restored after.

    (A thread-run child shares its parent's process, whose default it must give back.)
    """
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def pause_then_echo(conn: Any, report_path: str) -> None:
    """Under a default socket timeout: wait, receive objects and bytes, send them back."""
    try:
        with default_socket_timeout():
            time.sleep(PAUSE)
            obj = conn.recv()
            data = conn.recv_bytes()
            time.sleep(PAUSE)
            conn.send(["echo", obj])
            conn.send_bytes(data)
            result: Any = {"error": None}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()
    report(report_path, result)


def client_under_default_timeout(
    address: Any, family: str, authkey: bytes | None, report_path: str
) -> None:
    """Under a default socket timeout: connect, wait, send, wait, receive the echo."""
    from procframe.connection import Client

    try:
        with default_socket_timeout(), Client(address, family=family, authkey=authkey) as conn:
            time.sleep(PAUSE)
            conn.send("over a Client")
            reply = conn.recv()
        result: Any = {"error": None, "reply": reply}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    report(report_path, result)


def put_after_a_pause(q: Any, items: list[Any]) -> None:
    """Under a default socket timeout: wait, then put ``items``."""
    with default_socket_timeout():
        for item in items:
            time.sleep(PAUSE)
            q.put(item)


def square_after_a_pause(x: int) -> int:
    """``x * x``, after a pause longer than the default timeout (in a pool worker)."""
    time.sleep(PAUSE)
    return x * x


# -- a Connection sent to a process already running ----------------------------------


def receive_a_connection_and_answer(carrier: Any, report_path: str) -> None:
    """Wait for a Connection on ``carrier`` (a Connection or a queue), then answer each
    message that arrives on it with ``["pong", message]`` until ``None``; report."""
    try:
        received = carrier.get(timeout=60) if hasattr(carrier, "get") else _recv(carrier)
        with received:
            while (message := _recv(received)) is not None:
                received.send(["pong", message])
        result: Any = {"error": None}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    report(report_path, result)


def _recv(conn: Any) -> Any:
    if not conn.poll(60):
        raise TimeoutError("nothing arrived within 60 s")
    return conn.recv()


def send_a_connection_and_exit(ctx_name: str, carrier: Any) -> None:
    """Make a Pipe, send one end over ``carrier`` to the (running) parent, put a message
    in it, and exit at once: the end must still reach the parent."""
    import procframe

    mine, theirs = procframe.get_context(ctx_name).Pipe()
    if hasattr(carrier, "put"):
        carrier.put(theirs)
    else:
        carrier.send(theirs)
    theirs.close()
    mine.send("sent before the sender exited")
    mine.close()


def share_a_connection_and_exit(ctx_name: str) -> None:
    """Pickle a Pipe end for a running process that never collects it, then exit: the
    process must still exit promptly."""
    import pickle

    import procframe

    mine, theirs = procframe.get_context(ctx_name).Pipe()
    pickle.dumps(theirs)
    mine.close()
    theirs.close()

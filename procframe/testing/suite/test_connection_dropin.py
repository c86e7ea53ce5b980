"""Connections as a drop-in for ``multiprocessing.connection``: sockets under a default
timeout, abstract and wrong-family addresses, a Connection sent to a running process."""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.connection import Client, Listener, wait
from procframe.testing.helpers import connections, exchange
from procframe.testing.helpers.targets import read_report

FAMILIES = ["AF_UNIX", "AF_INET"]
KEY = b"a key of the drop-in connection tests"
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets")


@pytest.fixture
def default_timeout() -> Iterator[None]:
    """``socket.setdefaulttimeout(...)`` for the test, as a program may call it; restored."""
    with connections.default_socket_timeout():
        yield


def _address(family: str, tmp_path: Path) -> Any:
    return str(tmp_path / "sock") if family == "AF_UNIX" else ("127.0.0.1", 0)


def _accept(listener: Any) -> Any:
    """Accept, once a client has come (a test must not wait for ever)."""
    assert wait([listener], 60), "no client came within 60 s"
    return listener.accept()


def _connected(listener: Any, authkey: bytes | None) -> tuple[Any, Any]:
    """A Client of ``listener`` and the Connection it accepted (the handshake needs both)."""
    clients: list[Any] = []
    thread = threading.Thread(
        target=lambda: clients.append(Client(listener.address, authkey=authkey))
    )
    thread.start()
    try:
        served = _accept(listener)
    finally:
        thread.join(60)
    return clients[0], served


def _own_copy(ctx: procframe.Context) -> bool:
    """True if a child gets copies of what it is handed (the parent may close its own)."""
    return ctx.backend.has("passes_descriptors")


# -- 1. every socket keeps its blocking mode under socket.setdefaulttimeout() ---------------


@pytest.mark.usefixtures("default_timeout")
def test_a_pipe_works_under_a_default_socket_timeout(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ours, theirs = ctx.Pipe()
    out = tmp_path / "out"
    child = ctx.Process(target=connections.pause_then_echo, args=(theirs, str(out)))
    try:
        child.start()
        if _own_copy(ctx):
            theirs.close()
        ours.send({"n": 1})
        ours.send_bytes(b"x" * 100_000)
        assert ours.poll(60)
        assert ours.recv() == ["echo", {"n": 1}]
        assert ours.recv_bytes() == b"x" * 100_000
        child.join(60)
    finally:
        ours.close()
        exchange.reap(child)
    assert read_report(out) == {"error": None}
    assert child.exitcode == 0


@pytest.mark.usefixtures("default_timeout")
@pytest.mark.parametrize("authkey", [None, KEY], ids=["plain", "authkey"])
@pytest.mark.parametrize("family", FAMILIES)
def test_listener_and_client_work_under_a_default_socket_timeout(
    ctx: procframe.Context, tmp_path: Path, family: str, authkey: bytes | None
) -> None:
    out = tmp_path / "out"
    with Listener(_address(family, tmp_path), family=family, authkey=authkey) as listener:
        child = ctx.Process(
            target=connections.client_under_default_timeout,
            args=(listener.address, family, authkey, str(out)),
        )
        try:
            child.start()
            with _accept(listener) as conn:  # the accepted socket took the default timeout
                assert conn.poll(60)
                obj = conn.recv()
                conn.send(["echo", obj])
            child.join(60)
        finally:
            exchange.reap(child)
    assert read_report(out) == {"error": None, "reply": ["echo", "over a Client"]}


@pytest.mark.usefixtures("default_timeout")
def test_a_queue_works_under_a_default_socket_timeout(ctx: procframe.Context) -> None:
    q = ctx.Queue()
    items = ["small", b"big" * 100_000]  # a big item travels beside the queue's pipe
    child = ctx.Process(target=connections.put_after_a_pause, args=(q, items))
    try:
        child.start()
        assert [q.get(timeout=60) for _ in items] == items
        child.join(60)
    finally:
        exchange.reap(child)
        q.close()
    assert child.exitcode == 0


@pytest.mark.usefixtures("default_timeout")
def test_a_pool_works_under_a_default_socket_timeout(ctx: procframe.Context) -> None:
    with ctx.Pool(2) as pool:
        assert pool.map(connections.square_after_a_pause, range(4)) == [0, 1, 4, 9]
        assert pool.apply(connections.square_after_a_pause, (5,)) == 25
        pool.close()
        pool.join()


@pytest.mark.usefixtures("default_timeout")
def test_a_manager_works_under_a_default_socket_timeout(ctx: procframe.Context) -> None:
    with ctx.Manager() as manager:
        shared = manager.list([1])
        threading.Event().wait(connections.PAUSE)  # longer than the default timeout
        shared.append(2)
        threading.Event().wait(connections.PAUSE)
        assert list(shared) == [1, 2]


# -- 2. addresses: abstract names, the wrong family -------------------------------------


@linux
@pytest.mark.parametrize("authkey", [None, KEY], ids=["plain", "authkey"])
@pytest.mark.parametrize("kind", [str, bytes])
def test_a_listener_takes_an_abstract_address(kind: type, authkey: bytes | None) -> None:
    name = "\0procframe-test-" + os.urandom(8).hex()
    address = name if kind is str else name.encode()
    accepted: list[Any] = []
    with Listener(address, authkey=authkey) as listener:
        assert listener.address == name.encode()  # what getsockname() says, as in the stdlib
        thread = threading.Thread(target=lambda: accepted.append(_accept(listener)))
        thread.start()
        try:
            with Client(address, family="AF_UNIX", authkey=authkey) as client:
                thread.join(60)
                with accepted[0] as served:
                    client.send("abstract")
                    assert served.recv() == "abstract"
        finally:
            thread.join(60)
    assert not os.path.exists(name[1:]), "an abstract address made a file"


@pytest.mark.parametrize(
    ("address", "family", "named"),
    [
        (("127.0.0.1", 0), "AF_UNIX", "a path or an abstract"),
        ("some/path", "AF_INET", "(host, port)"),
        (b"some/path", "AF_INET", "(host, port)"),
        ("\0abstract", "AF_INET", "(host, port)"),
        (("host", 1, 2), None, "neither a path"),
        (42, None, "neither a path"),
    ],
)
@pytest.mark.parametrize("maker", ["Listener", "Client"])
def test_an_address_of_the_wrong_family_is_refused(
    maker: str, address: Any, family: str | None, named: str
) -> None:
    factory: Any = Listener if maker == "Listener" else Client
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")) as caught:
        factory(address, family=family)
    assert isinstance(caught.value, TypeError)  # what the stdlib's socket raises there
    assert caught.value.__class__ is procframe.connection.AddressFamilyError


@pytest.mark.parametrize("maker", ["Listener", "Client"])
def test_an_unknown_family_is_refused(maker: str) -> None:
    factory: Any = Listener if maker == "Listener" else Client
    with pytest.raises(ValueError, match="AF_PIPE"):
        factory("x", family="AF_PIPE")


# -- 3. a Connection sent to a process that is already running ----------------------------


def _check_pair(sent: Any, received: Any, other: Any) -> None:
    """``received`` (what arrived for ``sent``) talks to ``other``, and goes on once the
    sender closes ``sent`` if it is a copy."""
    if received is not sent:
        sent.close()
    received.send("through the received end")
    assert other.poll(30) and other.recv() == "through the received end"
    other.send_bytes(b"back")
    assert received.poll(30) and received.recv_bytes() == b"back"


def _carry(ctx: procframe.Context, carrier: str, sent: Any, close_after_sending: bool) -> Any:
    """Send ``sent`` through a new ``carrier`` (a Pipe or a queue) of ``ctx``; what arrives."""
    if carrier == "Pipe":
        reader, writer = ctx.Pipe(duplex=False)
        writer.send(sent)
        if close_after_sending:
            sent.close()
        assert reader.poll(30)
        received = reader.recv()
        reader.close()
        writer.close()
        return received
    q = getattr(ctx, carrier)()
    q.put(sent)
    if close_after_sending:
        sent.close()
    received = q.get()  # already there: put above, in this process
    q.close()
    return received


@pytest.mark.in_one_process
@pytest.mark.parametrize("carrier", ["Pipe", "Queue", "SimpleQueue"])
def test_a_connection_sent_through_a_pipe_or_queue_works_where_it_arrives(
    ctx: procframe.Context, carrier: str
) -> None:
    sent, other = ctx.Pipe()
    received = _carry(ctx, carrier, sent, close_after_sending=False)
    try:
        _check_pair(sent, received, other)
    finally:
        received.close()
        other.close()


@pytest.mark.requires("passes_descriptors")
@pytest.mark.parametrize("sent_kind", ["pipe-end", "client-connection"])
@pytest.mark.parametrize("carrier", ["Pipe", "Queue", "Connection"])
def test_a_connection_reaches_a_child_that_is_already_running(
    ctx: procframe.Context, tmp_path: Path, carrier: str, sent_kind: str
) -> None:
    out = tmp_path / "out"
    listener = None
    if carrier == "Queue":
        child_side = parent_side = ctx.Queue()
    elif carrier == "Pipe":
        parent_side, child_side = ctx.Pipe()
    else:  # a Listener's connection, itself handed to the child at its start
        listener = Listener(("127.0.0.1", 0), family="AF_INET", authkey=KEY)
        child_side, parent_side = _connected(listener, KEY)
    child = ctx.Process(
        target=connections.receive_a_connection_and_answer, args=(child_side, str(out))
    )
    try:
        child.start()
        if carrier != "Queue":
            child_side.close()
        # Made after the child started: it can only arrive by a message.
        if sent_kind == "pipe-end":
            sent, ours = ctx.Pipe()
        else:
            listener = listener or Listener(("127.0.0.1", 0), family="AF_INET", authkey=KEY)
            sent, ours = _connected(listener, KEY)
        if carrier == "Queue":
            parent_side.put(sent)
        else:
            parent_side.send(sent)
        sent.close()  # the child has a copy of its own
        for message in ("ping", {"n": 2}):
            ours.send(message)
            assert ours.poll(60), "no answer through the Connection sent"
            assert ours.recv() == ["pong", message]
        ours.send(None)
        ours.close()
        child.join(60)
    finally:
        exchange.reap(child)
        parent_side.close()
        if listener is not None:
            listener.close()
    assert read_report(out) == {"error": None}
    assert child.exitcode == 0


@pytest.mark.requires("passes_descriptors")
@pytest.mark.parametrize("carrier", ["Pipe", "Queue"])
def test_a_connection_sent_just_before_its_sender_exits_still_arrives(
    ctx: procframe.Context, carrier: str
) -> None:
    if carrier == "Queue":
        child_side = parent_side = ctx.Queue()
    else:
        parent_side, child_side = ctx.Pipe()
    child = ctx.Process(target=connections.send_a_connection_and_exit, args=(ctx.name, child_side))
    try:
        child.start()
        if carrier == "Queue":
            received = parent_side.get(timeout=60)
        else:
            assert parent_side.poll(60)
            received = parent_side.recv()
        with received:
            assert received.poll(60)
            assert received.recv() == "sent before the sender exited"
        child.join(60)
    finally:
        exchange.reap(child)
        parent_side.close()
    assert child.exitcode == 0


@pytest.mark.requires("passes_descriptors")
def test_a_process_holding_a_connection_nobody_collects_exits_promptly(
    ctx: procframe.Context,
) -> None:
    child = ctx.Process(target=connections.share_a_connection_and_exit, args=(ctx.name,))
    try:
        child.start()
        child.join(30)  # what it shared used to be held for 60 s
        assert not child.is_alive(), "the child waits at exit for a Connection nobody collects"
    finally:
        exchange.reap(child)
    assert child.exitcode == 0


@pytest.mark.in_one_process
@pytest.mark.parametrize("carrier", ["Pipe", "Queue", "SimpleQueue"])
def test_a_connection_sent_then_closed_by_its_sender_works_where_it_arrives(
    ctx: procframe.Context, carrier: str
) -> None:
    sent, other = ctx.Pipe()
    received = _carry(ctx, carrier, sent, close_after_sending=True)  # arrives as its own copy
    try:
        assert not received.closed
        received.send("after the sender closed its end")
        assert other.poll(30) and other.recv() == "after the sender closed its end"
        other.send("back")
        assert received.poll(30) and received.recv() == "back"
        received.close()  # the last copy of that end: the peer sees the end
        assert other.poll(30)
        with pytest.raises(EOFError):
            other.recv()
    finally:
        received.close()
        other.close()


@pytest.mark.in_one_process
@pytest.mark.requires("passes_descriptors")
def test_other_objects_that_hold_descriptors_still_refuse_to_be_pickled(
    ctx: procframe.Context,
) -> None:
    queue = ctx.Queue()
    try:
        for obj in (ctx.Lock(), queue, ctx.Semaphore(2)):
            with pytest.raises((TypeError, pickle.PicklingError), match="descriptor"):
                pickle.dumps(obj)
    finally:
        queue.close()

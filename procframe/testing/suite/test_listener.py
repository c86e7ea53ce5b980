"""procframe.connection.Listener and Client: families, authentication, hostile peers."""

from __future__ import annotations

import os
import pickle
import random
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.connection import Client, Listener
from procframe.posix import connection
from procframe.testing.helpers import exchange
from procframe.testing.helpers.targets import read_report

FAMILIES = ["AF_UNIX", "AF_INET"]
KEY = b"the right key, 32 bytes long...."
WRONG_KEY = b"the wrong key, 32 bytes long...."


def _address(family: str, tmp_path: Path) -> Any:
    return str(tmp_path / "sock") if family == "AF_UNIX" else ("127.0.0.1", 0)


def _raw_socket(family: str) -> socket.socket:
    return socket.socket(socket.AF_UNIX if family == "AF_UNIX" else socket.AF_INET)


def _serve_one(listener: Any) -> Any:
    """Accept a connection, receive one object, answer ``["echo", obj]``; return ``obj``."""
    with listener.accept() as conn:
        obj = conn.recv()
        conn.send(["echo", obj])
    return obj


def _client_thread(address: Any, family: str | None, authkey: bytes | None, out: Path) -> Any:
    thread = threading.Thread(
        target=exchange.client_roundtrip, args=(address, family, authkey, "good", str(out))
    )
    thread.start()
    return thread


class _MakesMarker:
    """Unpickling this creates a directory: proof that someone unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return os.mkdir, (self.path,)


def _framed(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


@pytest.mark.core
@pytest.mark.parametrize("authkey", [None, KEY], ids=["plain", "authkey"])
@pytest.mark.parametrize("family", FAMILIES)
def test_listener_serves_clients_in_children(
    ctx: procframe.Context, tmp_path: Path, family: str, authkey: bytes | None
) -> None:
    with Listener(_address(family, tmp_path), family=family, authkey=authkey) as listener:
        outs = [tmp_path / f"out{i}" for i in range(2)]
        procs = [
            ctx.Process(
                target=exchange.client_roundtrip,
                args=(listener.address, family, authkey, f"hello {i}", str(out)),
            )
            for i, out in enumerate(outs)
        ]
        try:
            for p in procs:
                p.start()
            served = {_serve_one(listener) for _ in procs}
            for p in procs:
                p.join(60)
        finally:
            exchange.reap(*procs)
    assert served == {"hello 0", "hello 1"}
    for i, out in enumerate(outs):
        assert read_report(out) == {"error": None, "reply": ["echo", f"hello {i}"]}
    assert [p.exitcode for p in procs] == [0, 0]


def test_inet_address_and_last_accepted() -> None:
    with Listener(("127.0.0.1", 0), family="AF_INET") as listener:
        host, port = listener.address
        assert host == "127.0.0.1" and isinstance(port, int) and port > 0
        assert listener.last_accepted is None
        # Without a key there is no handshake: Client returns before accept() is called.
        with Client(listener.address, family="AF_INET") as client, listener.accept() as conn:
            with socket.fromfd(client.fileno(), socket.AF_INET, socket.SOCK_STREAM) as s:
                assert tuple(listener.last_accepted) == s.getsockname()
            client.send({"x": 1})
            assert conn.recv() == {"x": 1}
            conn.send_bytes(b"back")
            assert client.recv_bytes() == b"back"
            assert conn.poll(0) is False


def test_family_is_inferred_from_the_address(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")
    with Listener(path) as listener:
        assert listener.address == path
        with Client(path) as client, listener.accept() as conn:
            client.send("unix")
            assert conn.recv() == "unix"
    with Listener(("127.0.0.1", 0)) as listener:
        assert isinstance(listener.address, tuple)
        with Client(listener.address) as client, listener.accept() as conn:
            client.send("inet")
            assert conn.recv() == "inet"
    with Listener() as listener:
        assert listener.address
        with Client(listener.address) as client, listener.accept() as conn:
            conn.send("default")
            assert client.recv() == "default"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_wrong_authkey_fails_on_both_sides_and_the_listener_keeps_serving(
    ctx: procframe.Context, tmp_path: Path, family: str
) -> None:
    bad_out, good_out = tmp_path / "bad", tmp_path / "good"
    with Listener(_address(family, tmp_path), family=family, authkey=KEY) as listener:
        bad = ctx.Process(
            target=exchange.client_roundtrip,
            args=(listener.address, family, WRONG_KEY, "intruder", str(bad_out)),
        )
        good = ctx.Process(
            target=exchange.client_roundtrip,
            args=(listener.address, family, KEY, "friend", str(good_out)),
        )
        try:
            bad.start()
            with pytest.raises(procframe.AuthenticationError):
                listener.accept()
            bad.join(60)
            good.start()
            assert _serve_one(listener) == "friend"
            good.join(60)
        finally:
            exchange.reap(bad, good)
    assert read_report(bad_out)["error"] == "AuthenticationError"
    assert read_report(good_out) == {"error": None, "reply": ["echo", "friend"]}
    assert (bad.exitcode, good.exitcode) == (0, 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_listener_never_unpickles_what_a_bad_peer_sends(tmp_path: Path, family: str) -> None:
    marker = tmp_path / "unpickled"
    evil = _framed(pickle.dumps(_MakesMarker(str(marker))))
    with Listener(_address(family, tmp_path), family=family, authkey=KEY) as listener:
        with _raw_socket(family) as raw:
            raw.connect(listener.address)
            raw.sendall(evil * 3)
            with pytest.raises(procframe.AuthenticationError):
                listener.accept()
        assert not marker.exists(), "the listener unpickled data from an unauthenticated peer"
        thread = _client_thread(listener.address, family, KEY, tmp_path / "good")
        try:
            assert _serve_one(listener) == "good"
        finally:
            thread.join(60)
    assert read_report(tmp_path / "good") == {"error": None, "reply": ["echo", "good"]}
    assert not marker.exists()


def test_a_client_never_unpickles_what_a_bad_server_sends(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    evil = _framed(pickle.dumps(_MakesMarker(str(marker))))
    with socket.socket(socket.AF_INET) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(60)

        def bad_server() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(60)
                try:
                    conn.sendall(evil * 3)
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

        thread = threading.Thread(target=bad_server)
        thread.start()
        try:
            with pytest.raises(procframe.AuthenticationError):
                Client(server.getsockname(), family="AF_INET", authkey=KEY)
        finally:
            thread.join(60)
    assert not marker.exists(), "the client unpickled data from an unauthenticated server"


GARBAGE = {
    "close-at-once": None,
    "http-request": b"GET / HTTP/1.0\r\n\r\n",
    "huge-length-prefix": struct.pack("!IQ", 0xFFFFFFFF, 2**62),
    "wrong-response": _framed(b"\x01" * 32),
    "random-then-close": random.Random(1).randbytes(64),
}


@pytest.mark.parametrize("garbage", list(GARBAGE))
@pytest.mark.parametrize("family", FAMILIES)
def test_the_listener_keeps_serving_after_a_garbage_handshake(
    tmp_path: Path, family: str, garbage: str
) -> None:
    data = GARBAGE[garbage]
    with Listener(_address(family, tmp_path), family=family, authkey=KEY) as listener:
        raw = _raw_socket(family)
        try:
            raw.connect(listener.address)
            if data is None:
                raw.close()
            else:
                raw.sendall(data)
                if garbage.endswith("close"):
                    raw.close()
            # The bad peer stays connected (unless it closed): a listener that waits for
            # the rest of an absurd message hangs here.
            thread = _client_thread(listener.address, family, KEY, tmp_path / "good")
            try:
                try:
                    conn = listener.accept()
                except (procframe.AuthenticationError, OSError, EOFError):
                    conn = listener.accept()  # that was the bad peer; now the good one
                with conn:  # must be the good client: a bad peer never gets through
                    served = conn.recv()
                    conn.send(["echo", served])
            finally:
                thread.join(60)
        finally:
            raw.close()
    assert served == "good"
    assert read_report(tmp_path / "good") == {"error": None, "reply": ["echo", "good"]}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_peer_that_stalls_mid_handshake_does_not_hold_the_listener_forever(
    tmp_path: Path, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A length prefix announcing 100 bytes, 3 of them, and silence: accept() must give
    # up within the handshake timeout (shortened here), not wait for the rest forever.
    monkeypatch.setattr(connection, "HANDSHAKE_TIMEOUT", 1.0)
    outcome: list[BaseException | None] = []

    def accept(listener: Any) -> None:
        try:
            listener.accept().close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with Listener(_address(family, tmp_path), family=family, authkey=KEY) as listener:
        with _raw_socket(family) as raw:
            raw.connect(listener.address)
            raw.sendall(struct.pack("!I", 100) + b"abc")
            thread = threading.Thread(target=accept, args=(listener,), daemon=True)
            thread.start()
            thread.join(60)
            stuck = thread.is_alive()
        thread.join(60)  # closing the raw socket released it
        assert not stuck, "accept() waits forever for a peer that stopped mid-handshake"
        assert len(outcome) == 1 and isinstance(outcome[0], procframe.AuthenticationError)
        thread = _client_thread(listener.address, family, KEY, tmp_path / "good")
        try:
            assert _serve_one(listener) == "good"
        finally:
            thread.join(60)


def test_client_to_nobody_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Client(str(tmp_path / "nobody"), family="AF_UNIX")
    with socket.socket(socket.AF_INET) as s:
        s.bind(("127.0.0.1", 0))
        address = s.getsockname()  # closed at once: nobody listens there
    with pytest.raises(OSError):
        Client(address, family="AF_INET")


def test_closing_a_listener(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with Listener(str(path), family="AF_UNIX") as listener:
        assert path.exists()
    assert not path.exists(), "the socket file outlived the listener"
    with pytest.raises(OSError):
        listener.accept()
    listener.close()  # closing twice is harmless
    with pytest.raises(OSError):
        Client(str(path), family="AF_UNIX")


@pytest.mark.requires("inherits_parent_memory", "separate_memory")
def test_a_forked_child_closing_its_copy_leaves_the_listener_listening(
    ctx: procframe.Context,
) -> None:
    with Listener(("127.0.0.1", 0), family="AF_INET") as listener:
        child = ctx.Process(target=listener.close)  # inherited, never pickled
        child.start()
        child.join()
        assert child.exitcode == 0
        with Client(listener.address, family="AF_INET") as client, listener.accept() as served:
            client.send("still listening")
            assert served.recv() == "still listening"

"""How an authenticating Listener's accept() drives many handshakes, and a Client's deadline.

The conformance probes (``procframe/testing/suite/test_listener_hostile.py``)
show that hostile peers hold nobody up; these pin down the rest: a peer that
answered in time is not failed because the program was busy between two
``accept()`` calls, ``wait([listener])`` sees a handshake that has news, the
number of handshakes in progress is bounded, closing from another thread
leaves no descriptor, and a Client's handshake has one deadline in all.
"""

from __future__ import annotations

import hmac
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.connection import Client, Listener, wait
from procframe.posix import acceptor, connection, handshake
from procframe.testing.helpers import hostile_clients as hostile

KEY = b"acceptor tests: the right key..."
TIMEOUT = 60.0


def _framed(payload: bytes) -> bytes:
    return hostile.frame(payload)


def _read_framed(sock: socket.socket) -> bytes:
    return hostile.read_frame(sock, time.monotonic() + TIMEOUT)


def _connect(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(TIMEOUT)
    sock.connect(address)
    return sock


def _answer(sock: socket.socket, challenge: bytes) -> None:
    """The client's answer to the listener's ``challenge`` message (a right one)."""
    message = challenge[len(handshake.CHALLENGE) :]
    sock.sendall(_framed(b"{sha256}" + hmac.new(KEY, message, "sha256").digest()))


def _finish_as_client(sock: socket.socket, pause: float = 0.0) -> None:
    """After the listener's WELCOME (and ``pause`` seconds): challenge it, check its answer,
    welcome it."""
    assert _read_framed(sock) == handshake.WELCOME
    time.sleep(pause)
    message = b"{sha256}" + b"n" * 40
    sock.sendall(_framed(handshake.CHALLENGE + message))
    handshake.verify(KEY, message, _read_framed(sock))
    sock.sendall(_framed(handshake.WELCOME))


def _accept_in_thread(listener: Listener) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(listener.accept())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_peer_that_answered_in_time_passes_though_the_program_was_busy(tmp_path: Path) -> None:
    """The deadlines run only while accept() does: B's answer waited in its socket while
    the program was busy for longer than the deadline, and B still gets through."""
    with Listener(str(tmp_path / "sock"), backlog=8, authkey=KEY, handshake_timeout=1.0) as ear:
        first, second = _connect(ear.address), _connect(ear.address)
        with first, second:
            thread, out = _accept_in_thread(ear)  # takes both, challenges both
            challenges = [_read_framed(first), _read_framed(second)]
            _answer(first, challenges[0])
            _finish_as_client(first)
            thread.join(TIMEOUT)
            assert isinstance(out[0], connection.Connection), out
            out[0].close()
            _answer(second, challenges[1])  # in time, but nobody is accepting
            time.sleep(2.0)  # the program is busy for two deadlines
            thread, out = _accept_in_thread(ear)
            _finish_as_client(second, pause=0.3)  # accept() waits for B: B's deadline counts
            thread.join(TIMEOUT)
            assert isinstance(out[0], connection.Connection), out
            second.sendall(_framed(b"first message"))
            assert out[0].recv_bytes() == b"first message"  # nothing was read ahead
            out[0].close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll")
def test_wait_sees_a_handshake_in_progress_that_has_news(tmp_path: Path) -> None:
    with Listener(str(tmp_path / "sock"), backlog=8, authkey=KEY) as ear:
        first, second = _connect(ear.address), _connect(ear.address)
        with first, second:
            thread, out = _accept_in_thread(ear)
            challenges = [_read_framed(first), _read_framed(second)]
            _answer(first, challenges[0])
            _finish_as_client(first)
            thread.join(TIMEOUT)
            out[0].close()
            assert wait([ear], 0) == []  # nothing new: B is silent
            _answer(second, challenges[1])
            assert wait([ear], TIMEOUT) == [ear], "the listener's fileno() missed B's answer"
            thread, out = _accept_in_thread(ear)
            _finish_as_client(second)
            thread.join(TIMEOUT)
            out[0].close()


def test_a_new_peer_beyond_the_bound_drops_the_oldest_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acceptor, "MAX_HANDSHAKES", 3)
    ear = Listener(str(tmp_path / "sock"), backlog=8, authkey=KEY)
    peers = hostile.HostileClients(ear.address, 3, kinds=(hostile.SILENT,))
    with hostile.EchoServer(ear) as server, peers:  # the server closes the listener
        peers.start()
        reply = tmp_path / "reply"
        hostile.timed_clients(ear.address, KEY, 1, True, str(reply))
        assert server.wait_for_failures(1, TIMEOUT)
        assert peers.connected() == 2
    assert server.served == 1
    assert "dropped a peer" in server.failures[0] and "3 handshakes" in server.failures[0]


def test_closing_from_another_thread_ends_accept_and_every_handshake(tmp_path: Path) -> None:
    before = hostile.open_descriptors()
    ear = Listener(str(tmp_path / "sock"), backlog=8, authkey=KEY)
    with hostile.HostileClients(ear.address, 5, kinds=(hostile.SILENT,)) as peers:
        thread, out = _accept_in_thread(ear)
        peers.start()
        ear.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert isinstance(out[0], OSError) and not isinstance(
            out[0], procframe.AuthenticationError
        ), out
        assert peers.connected() == 0, "handshakes in progress outlived the listener"
    assert hostile.open_descriptors() == before
    with pytest.raises(OSError):
        ear.accept()
    assert ear.fileno() == -1


def test_a_clients_handshake_has_one_deadline_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that trickles its challenge one byte at a time cannot hold a Client."""
    monkeypatch.setattr(connection, "HANDSHAKE_TIMEOUT", 1.0)
    with socket.socket(socket.AF_INET) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(TIMEOUT)
        stop = threading.Event()

        def trickle() -> None:
            conn, _ = server.accept()
            with conn:
                for byte in _framed(handshake.CHALLENGE + b"{sha256}" + b"x" * 40):
                    if stop.wait(0.2):
                        return
                    try:
                        conn.send(bytes([byte]))
                    except OSError:
                        return

        thread = threading.Thread(target=trickle)
        thread.start()
        began = time.monotonic()
        try:
            with pytest.raises(procframe.AuthenticationError, match=r"within 1\.0 s"):
                Client(server.getsockname(), authkey=KEY)
        finally:
            stop.set()
            thread.join(TIMEOUT)
        assert time.monotonic() - began < 6.0


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("5", TypeError)],
)
def test_a_bad_handshake_timeout_is_refused_by_name(value: Any, error: type) -> None:
    with pytest.raises(error, match="handshake_timeout"):
        Listener(authkey=KEY, handshake_timeout=value)

"""procframe's Listener/Client talk to the standard library's, both ways.

The standard library's side runs in a subprocess (this process never imports
its ``multiprocessing``), on ``sys.executable`` or on the interpreter named by
``PROCFRAME_STDLIB_PYTHON`` (to try another version's).  From Python 3.12 its
handshake is HMAC-SHA256 with a ``{sha256}`` prefix; before, HMAC-MD5, which
procframe accepts from a legacy peer as the 3.12 standard library does.  The
legacy handshake is also tested here with raw sockets, on every version.
"""

from __future__ import annotations

import ast
import hmac
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.connection import Client, Listener, wait
from procframe.posix import handshake
from procframe.posix.connection import message_header
from procframe.testing.helpers import hostile_clients

KEY = b"a key both libraries know"
TIMEOUT = 60.0
PYTHON = os.environ.get("PROCFRAME_STDLIB_PYTHON") or sys.executable
BIG = 100_000
"""Above 16 KiB: the standard library writes the length and the bytes separately."""

STDLIB_CLIENT = textwrap.dedent(
    """
    import ast, sys
    from multiprocessing.connection import Client
    address = ast.literal_eval(sys.argv[1])
    key = bytes.fromhex(sys.argv[2]) if sys.argv[2] else None
    try:
        with Client(address, authkey=key) as conn:
            conn.send({"from": "stdlib", "n": [1, 2]})
            conn.send_bytes(b"s" * 100_000)
            print(repr((conn.recv(), conn.recv_bytes()[::-1][:9])))
    except Exception as exc:
        print(type(exc).__name__)
    """
)

STDLIB_LISTENER = textwrap.dedent(
    """
    import ast, sys
    from multiprocessing.connection import Listener
    address = ast.literal_eval(sys.argv[1])
    key = bytes.fromhex(sys.argv[2]) if sys.argv[2] else None
    with Listener(address, authkey=key) as listener:
        print(repr(listener.address), flush=True)
        try:
            with listener.accept() as conn:
                obj = conn.recv()
                data = conn.recv_bytes()
                conn.send(["echo", obj])
                conn.send_bytes(data[::-1])
                print(repr(len(data)))
        except Exception as exc:
            print(type(exc).__name__)
    """
)


def _stdlib(script: str, address: Any, key: bytes | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-I", "-c", script, repr(address), key.hex() if key else ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out


def _address(family: str, tmp_path: Path) -> Any:
    return str(tmp_path / "sock") if family == "AF_UNIX" else ("127.0.0.1", 0)


@pytest.fixture
def digests_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The digest each answer procframe verifies was made with ("" for legacy HMAC-MD5)."""
    seen: list[str] = []
    verify = handshake.verify

    def recording(authkey: bytes, message: bytes, response: bytes) -> None:
        seen.append(handshake._digest_name_and_mac(response)[0])
        verify(authkey, message, response)

    monkeypatch.setattr(handshake, "verify", recording)
    yield seen


def _stdlib_digest() -> str:
    """What the standard library of ``PYTHON`` answers a ``{sha256}`` challenge with."""
    code = "import sys; print(sys.version_info >= (3, 12))"
    modern = subprocess.run(
        [PYTHON, "-I", "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    return "sha256" if modern.stdout.strip() == "True" else ""


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "authkey"])
@pytest.mark.parametrize("family", ["AF_UNIX", "AF_INET"])
def test_a_stdlib_client_talks_to_a_procframe_listener(
    tmp_path: Path, family: str, key: bytes | None, digests_seen: list[str]
) -> None:
    with Listener(_address(family, tmp_path), family=family, authkey=key) as listener:
        proc = _stdlib(STDLIB_CLIENT, listener.address, key)
        try:
            assert wait([listener], TIMEOUT), "the standard library's client never came"
            with listener.accept() as conn:
                assert conn.poll(TIMEOUT)
                obj = conn.recv()
                data = conn.recv_bytes()
                conn.send(["echo", obj])
                conn.send_bytes(data + b"procframe")
        finally:
            out = _finish(proc)
    assert obj == {"from": "stdlib", "n": [1, 2]}
    assert data == b"s" * BIG
    assert out.strip() == repr((["echo", obj], b"emarfcorp"))
    assert digests_seen == ([_stdlib_digest()] if key else [])


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "authkey"])
@pytest.mark.parametrize("family", ["AF_UNIX", "AF_INET"])
def test_a_procframe_client_talks_to_a_stdlib_listener(
    tmp_path: Path, family: str, key: bytes | None, digests_seen: list[str]
) -> None:
    proc = _stdlib(STDLIB_LISTENER, _address(family, tmp_path), key)
    try:
        assert proc.stdout is not None
        assert wait([proc.stdout], TIMEOUT), "the standard library's listener said nothing"
        address = ast.literal_eval(proc.stdout.readline())
        with Client(address, family=family, authkey=key) as conn:
            conn.send({"from": "procframe"})
            conn.send_bytes(b"p" * BIG + b"end")
            assert conn.poll(TIMEOUT)
            assert conn.recv() == ["echo", {"from": "procframe"}]
            assert conn.recv_bytes() == b"dne" + b"p" * BIG
    finally:
        out = _finish(proc)
    assert out.splitlines()[-1] == repr(BIG + 3)
    assert digests_seen == ([_stdlib_digest()] if key else [])


@pytest.mark.parametrize("side", ["stdlib-client", "stdlib-listener"])
def test_a_wrong_key_fails_on_both_sides(tmp_path: Path, side: str) -> None:
    address = str(tmp_path / "sock")
    if side == "stdlib-client":
        with Listener(address, authkey=KEY) as listener:
            proc = _stdlib(STDLIB_CLIENT, listener.address, b"another key")
            try:
                assert wait([listener], TIMEOUT)
                with pytest.raises(procframe.AuthenticationError):
                    listener.accept()
            finally:
                out = _finish(proc)
    else:
        proc = _stdlib(STDLIB_LISTENER, address, KEY)
        try:
            assert proc.stdout is not None and wait([proc.stdout], TIMEOUT)
            proc.stdout.readline()
            with pytest.raises(procframe.AuthenticationError):
                Client(address, authkey=b"another key")
        finally:
            out = _finish(proc)
    assert out.splitlines()[-1] == "AuthenticationError"


# -- the legacy handshake (the standard library before 3.12), on every version ---------------


def _framed(payload: bytes) -> bytes:
    return hostile_clients.frame(payload)


def _read_framed(sock: socket.socket) -> bytes:
    return hostile_clients.read_frame(sock, time.monotonic() + 60.0)


def _legacy_client(address: Any, key: bytes, outcome: list[bytes]) -> None:
    """The Python 3.11 client: HMAC-MD5 of the challenge, no prefix; then it challenges."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        message = _read_framed(sock)[len(handshake.CHALLENGE) :]
        sock.sendall(_framed(hmac.new(key, message, "md5").digest()))
        outcome.append(_read_framed(sock))
        if outcome[-1] == handshake.WELCOME:
            nonce = os.urandom(20)
            sock.sendall(_framed(handshake.CHALLENGE + nonce))
            answer = _read_framed(sock)
            ok = hmac.compare_digest(answer, hmac.new(key, nonce, "md5").digest())
            sock.sendall(_framed(handshake.WELCOME if ok else handshake.FAILURE))
            outcome.append(b"answered with md5" if ok else answer)


def test_a_legacy_md5_client_is_served(tmp_path: Path) -> None:
    outcome: list[bytes] = []
    with Listener(str(tmp_path / "sock"), authkey=KEY) as listener:
        thread = threading.Thread(target=_legacy_client, args=(listener.address, KEY, outcome))
        thread.start()
        try:
            assert wait([listener], TIMEOUT)
            listener.accept().close()
        finally:
            thread.join(TIMEOUT)
    assert outcome == [handshake.WELCOME, b"answered with md5"]


def test_a_legacy_md5_client_with_a_wrong_key_is_refused(tmp_path: Path) -> None:
    outcome: list[bytes] = []
    with Listener(str(tmp_path / "sock"), authkey=KEY) as listener:
        thread = threading.Thread(target=_legacy_client, args=(listener.address, b"wrong", outcome))
        thread.start()
        try:
            assert wait([listener], TIMEOUT)
            with pytest.raises(procframe.AuthenticationError):
                listener.accept()
        finally:
            thread.join(TIMEOUT)
    assert outcome == [handshake.FAILURE]


def test_the_challenge_names_sha256_and_the_mac_covers_the_prefix(tmp_path: Path) -> None:
    """A client cannot pick a weaker digest: the server's {sha256} is under the MAC."""
    seen: list[bytes] = []
    with Listener(str(tmp_path / "sock"), authkey=KEY) as listener:

        def client() -> None:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(TIMEOUT)
                sock.connect(listener.address)
                seen.append(_read_framed(sock))
                message = seen[0][len(handshake.CHALLENGE) :]
                sock.sendall(_framed(b"{sha256}" + hmac.new(KEY, message, "sha256").digest()))
                seen.append(_read_framed(sock))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            assert wait([listener], TIMEOUT)
            with pytest.raises(procframe.AuthenticationError):  # it never answers our challenge
                listener.accept()
        finally:
            thread.join(TIMEOUT)
    challenge, verdict = seen
    assert challenge.startswith(handshake.CHALLENGE + b"{sha256}")
    assert len(challenge) == len(handshake.CHALLENGE) + len(b"{sha256}") + 40
    assert verdict == handshake.WELCOME


def test_a_procframe_client_answers_a_legacy_server_with_md5() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(TIMEOUT)
        results: list[Any] = []

        def legacy_server() -> None:
            nonce = os.urandom(20)
            theirs.sendall(_framed(handshake.CHALLENGE + nonce))
            answer = _read_framed(theirs)
            results.append(hmac.compare_digest(answer, hmac.new(KEY, nonce, "md5").digest()))
            theirs.sendall(_framed(handshake.WELCOME))

        thread = threading.Thread(target=legacy_server)
        thread.start()
        try:
            conn = procframe.connection.Connection(ours.detach())
            handshake.answer_challenge(conn, KEY)
            conn.close()
        finally:
            thread.join(TIMEOUT)
    assert results == [True]


# -- framing -----------------------------------------------------------------------------


def test_lengths_above_2_gib_use_the_standard_librarys_long_form() -> None:
    """The standard library reads a 4-byte length as signed: above 2**31 - 1 it writes -1
    and an 8-byte length, and so must procframe."""
    assert message_header(0) == struct.pack("!i", 0)
    assert message_header(2**31 - 1) == struct.pack("!i", 2**31 - 1)
    assert message_header(2**31) == struct.pack("!i", -1) + struct.pack("!Q", 2**31)
    assert message_header(2**32) == struct.pack("!i", -1) + struct.pack("!Q", 2**32)


def test_a_long_form_header_is_read_for_any_length() -> None:
    left, right = socket.socketpair()
    with left, right:
        conn = procframe.connection.Connection(left.detach())
        with conn:
            right.sendall(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
            assert conn.recv_bytes() == b"hello"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets")
def test_a_stdlib_client_reaches_a_listener_at_its_abstract_default_address() -> None:
    with Listener(authkey=KEY) as listener:
        assert listener.address.startswith(b"\0")
        proc = _stdlib(STDLIB_CLIENT, listener.address, KEY)
        try:
            assert wait([listener], TIMEOUT)
            with listener.accept() as conn:
                assert conn.poll(TIMEOUT)
                conn.send(["echo", conn.recv()])
                conn.send_bytes(conn.recv_bytes())
        finally:
            out = _finish(proc)
    assert out.startswith("([")

"""procframe's own sockets block as their readers expect, whatever socket.setdefaulttimeout says.

The conformance suite uses the public objects under a default timeout; these
tests look at the sockets the suite cannot reach: the Pipe of systems without
packet pipes, a queue's side sockets, the fork server's, and the helpers
that make them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import procframe
from procframe._core import osutil
from procframe.posix import channel
from procframe.posix import connection as posix_connection
from procframe.testing.helpers.connections import PAUSE, default_socket_timeout
from procframe.testing.helpers.scripts import run_script


@pytest.fixture(autouse=True)
def default_timeout() -> Iterator[None]:
    with default_socket_timeout():
        yield


def _blocks(sock: socket.socket) -> bool:
    return sock.gettimeout() is None and os.get_blocking(sock.fileno())


def test_the_socket_helpers_make_blocking_sockets() -> None:
    with osutil.blocking_socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        assert _blocks(sock)
    left, right = osutil.blocking_socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert _blocks(left) and _blocks(right)


def test_adopting_a_descriptor_leaves_it_blocking() -> None:
    with default_socket_timeout(None):
        left, right = socket.socketpair()
    with left, right:
        adopted = osutil.socket_from_fd(os.dup(left.fileno()), socket.AF_UNIX, socket.SOCK_STREAM)
        with adopted:
            assert _blocks(adopted)
            assert adopted.type == socket.SOCK_STREAM
            assert os.get_blocking(left.fileno())  # the shared open file was never changed


def test_the_socketpair_pipe_works_under_a_default_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where packet pipes do not exist (not Linux), a duplex Pipe is a socket pair."""
    monkeypatch.setattr(osutil, "packet_pipe", lambda nonblocking: None)
    a, b = posix_connection.Pipe()
    with a, b:
        assert type(a) is posix_connection.Connection

        def later() -> None:
            time.sleep(PAUSE)
            b.send("after a pause")

        thread = threading.Thread(target=later)
        thread.start()
        try:
            assert a.recv() == "after a pause"
        finally:
            thread.join(60)


def test_a_queues_side_sockets_block_in_its_creator_and_where_it_is_rebuilt() -> None:
    made = channel.Channel()
    try:
        assert _blocks(made.side_reader) and _blocks(made.side_writer)
        fds = (-1, -1, os.dup(made.side_reader.fileno()), os.dup(made.side_writer.fileno()))
        rebuilt = channel.Channel(fds)  # what a child does with the descriptors it got
        assert _blocks(rebuilt.side_reader) and _blocks(rebuilt.side_writer)
        rebuilt.side_reader.close()
        rebuilt.side_writer.close()
    finally:
        made.close_reader()
        made.close_writer()


@pytest.mark.skipif(
    "forkserver" not in procframe.get_all_start_methods(), reason="needs the fork server"
)
def test_the_fork_server_works_when_main_sets_a_default_timeout(tmp_path: Path) -> None:
    """The fork server imports ``__main__``: a default timeout set there is in force in the
    server (and in this parent) while they pass descriptors and payloads."""
    result = run_script(
        tmp_path,
        """
        import socket
        socket.setdefaulttimeout(0.01)

        import os
        import procframe

        def child(q, n):
            q.put(n)

        if __name__ == '__main__':
            q = procframe.Queue()
            procs = [procframe.Process(target=child, args=(q, n)) for n in range(4)]
            for p in procs:
                p.start()
            got = sorted(q.get(timeout=60) for _ in procs)
            for p in procs:
                p.join(60)
                assert os.get_blocking(p.sentinel)
            assert got == [0, 1, 2, 3], got
            assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        """,
        "forkserver",
    )
    assert result.returncode == 0, result.stderr

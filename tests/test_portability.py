"""Where a Linux-only facility is missing (macOS, the BSDs), procframe falls back or says so.

These tests run on Linux: each takes the facility away (monkeypatch) and
checks the path another system takes, or the error it gets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import subprocess
import sys
import termios
import time
import types
from typing import Any

import pytest

import procframe
from procframe._core import messages, osutil
from procframe._core.process import _ParentProcess
from procframe.managers import SyncManager, _server
from procframe.posix import channel, connection
from procframe.posix.waitroom import process_exists

pytestmark = pytest.mark.timeout(60)

PATIENCE = 10.0


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- pipes ----------------------------------------------------------------------------------


def test_packet_pipes_are_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another system's O_DIRECT is no packet mode, even where pipe2() accepts it."""
    monkeypatch.setattr(osutil, "sys", types.SimpleNamespace(platform="freebsd14"))
    assert osutil.packet_pipe(nonblocking=False) is None


def test_pipes_without_packet_mode_or_a_settable_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "O_DIRECT")
    monkeypatch.delattr(fcntl, "F_SETPIPE_SZ")
    assert osutil.packet_pipe(nonblocking=True) is None
    reader, writer = connection.Pipe(duplex=False)
    left, right = connection.Pipe()
    try:
        assert type(reader) is connection.Connection
        assert type(left) is connection.Connection
        writer.send({"a": 1})
        assert reader.recv() == {"a": 1}
        left.send_bytes(b"x" * 100_000)
        assert right.recv_bytes() == b"x" * 100_000
        right.send("back")
        assert left.recv() == "back"
    finally:
        for end in (reader, writer, left, right):
            end.close()


def test_a_pipe_keeps_its_size_where_it_cannot_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    try:
        before = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
        monkeypatch.delattr(fcntl, "F_SETPIPE_SZ")
        osutil.enlarge_pipe(write_fd)
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) == before
    finally:
        os.close(read_fd)
        os.close(write_fd)


# -- the queues' channel --------------------------------------------------------------------


def test_a_channel_without_seqpacket_sockets_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    before = open_fds()
    monkeypatch.delattr(socket, "SOCK_SEQPACKET")
    with pytest.raises(OSError, match="need Unix SOCK_SEQPACKET sockets") as info:
        channel.Channel()
    assert info.value.errno == errno.EPROTONOSUPPORT
    assert open_fds() == before


def test_a_system_that_refuses_seqpacket_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has the constant, and socketpair() fails with EPROTONOSUPPORT."""

    def refuse(*args: Any) -> Any:
        raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")

    fake = types.SimpleNamespace(AF_UNIX=socket.AF_UNIX, SOCK_SEQPACKET=5, socketpair=refuse)
    monkeypatch.setattr(channel, "socket", fake)
    with pytest.raises(OSError, match="need Unix SOCK_SEQPACKET sockets"):
        channel.Channel()


def test_big_items_without_tiocoutq(monkeypatch: pytest.MonkeyPatch) -> None:
    """The side socket's fill level cannot be read: writers do not hold items back."""
    monkeypatch.delattr(termios, "TIOCOUTQ")
    ch = channel.Channel()
    try:
        assert ch._side_too_full() is False
        item = b"\x80" + b"y" * 100_000  # a pickle never starts with a zero byte
        ch.send(item)  # a pickle too big for a packet: it goes as a slab
        received = ch.receive(PATIENCE)
        assert isinstance(received, int)
        with memoryview(messages.read_bytes(received)) as data:
            assert data == item
    finally:
        ch.close_reader()
        ch.close_writer()


# -- processes ------------------------------------------------------------------------------


def test_process_exists_without_waitid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "waitid")
    assert process_exists(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait(PATIENCE)
    assert not process_exists(child.pid)


def test_the_parent_sentinel_without_pidfd_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open")
    with pytest.raises(NotImplementedError, match="pidfd_open"):
        _ParentProcess("MainProcess", os.getppid()).sentinel  # noqa: B018


# -- the manager's server -------------------------------------------------------------------


def test_a_hang_up_without_pollrdhup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(select, "POLLRDHUP")
    assert _server.hangup_events() == select.POLLHUP
    assert _server.hangup_watcher() is None
    ours, theirs = socket.socketpair()
    link = _server._Link(connection.Connection(ours.detach()))
    _server._serving.link = link
    try:
        assert not _server.caller_gone()
        theirs.close()
        assert _server.caller_gone()
    finally:
        _server._serving.link = None
        link.connection.close()


def get_once(ready: Any, q: Any) -> None:
    ready.set()
    q.get()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork backend")
def test_a_server_without_epoll_or_pollrdhup_drops_a_killed_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its server, forked from here, has neither: the blocked get() of a killed client still
    gives up, rather than take the next item."""
    monkeypatch.delattr(select, "POLLRDHUP")
    monkeypatch.delattr(select, "epoll")
    ctx = procframe.get_context("fork")
    with SyncManager(ctx=ctx) as manager:
        items = manager.list([1])
        items.append(2)
        assert items[:] == [1, 2]
        q, ready = manager.Queue(), manager.Event()
        child = ctx.Process(target=get_once, args=(ready, q))
        child.start()
        try:
            assert ready.wait(PATIENCE)
            time.sleep(0.3)  # for its get() to reach the server
            child.kill()
            child.join(PATIENCE)
        finally:
            if child.is_alive():
                child.kill()
                child.join()
        time.sleep(0.3)  # a waiting get() looks at its caller every WAIT_SLICE seconds
        q.put("after")
        assert q.get(timeout=5.0) == "after", "the killed client's get() took the item"

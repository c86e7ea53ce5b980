"""A Connection pickled outside a child's start: held for its receiver, then released.

The conformance suite proves that it reaches a running process on every
backend; these tests prove what the suite cannot see: nothing is held for ever,
the serving thread ends, only a process with the authkey can collect, a forked
child drops its parent's pending copies.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe._core import fdshare, osutil
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.targets import read_report, report

linux = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")


def _sharer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "procframe-fd-sharer"]


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def pipe() -> Iterator[tuple[Any, Any]]:
    a, b = procframe.get_context("fork").Pipe()
    yield a, b
    a.close()
    b.close()


@linux
def test_a_descriptor_never_collected_is_released(
    pipe: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fdshare, "HOLD_TIMEOUT", 0.5)
    before = _open_fds()
    data = pickle.dumps(pipe[0])
    assert fdshare.pending() == 1
    assert len(_open_fds() - before) >= 2  # the duplicates, the listening socket
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"
    assert fdshare.pending() == 0
    assert _open_fds() <= before, "a duplicate or the socket outlived the hold"
    with pytest.raises(OSError, match="held them longer than"):
        pickle.loads(data)


def test_the_serving_thread_ends_once_everything_is_collected(pipe: tuple[Any, Any]) -> None:
    a, b = pipe
    copies = [pickle.loads(pickle.dumps(a)) for _ in range(3)]
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"
    for copy in copies:
        with copy:
            copy.send("through a copy")
            assert b.recv() == "through a copy"


def test_a_descriptor_is_handed_out_once(pipe: tuple[Any, Any]) -> None:
    data = pickle.dumps(pipe[0])
    pickle.loads(data).close()
    with pytest.raises(OSError, match="handed them out already"):
        pickle.loads(data)


def test_a_received_descriptor_is_not_inheritable(pipe: tuple[Any, Any]) -> None:
    with pickle.loads(pickle.dumps(pipe[0])) as copy:
        assert not os.get_inheritable(copy.fileno())


def test_only_a_process_with_the_authkey_can_collect(pipe: tuple[Any, Any]) -> None:
    me = procframe.current_process()
    data = pickle.dumps(pipe[0])
    key = me.authkey
    me.authkey = b"somebody else's key"
    try:
        with pytest.raises(procframe.AuthenticationError, match="authkey"):
            pickle.loads(data)
    finally:
        me.authkey = key
    with pickle.loads(data) as copy:  # refused, not given away: the right process still can
        copy.send("ok")
        assert pipe[1].recv() == "ok"


def test_an_unrelated_process_cannot_steal_the_descriptor(pipe: tuple[Any, Any]) -> None:
    data = pickle.dumps(pipe[0])
    code = (
        "import pickle, sys\n"
        "try:\n"
        "    pickle.loads(bytes.fromhex(sys.argv[1]))\n"
        "    print('stolen')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, data.hex()], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "AuthenticationError", done.stderr
    with pickle.loads(data) as copy:
        copy.send("still ours")
        assert pipe[1].recv() == "still ours"


def _report_pending(path: str) -> None:
    report(path, {"pending": fdshare.pending(), "threads": len(_sharer_threads())})


@pytest.mark.skipif("fork" not in procframe.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_drops_the_pending_copies(pipe: tuple[Any, Any], tmp_path: Path) -> None:
    data = pickle.dumps(pipe[0])
    out = str(tmp_path / "out")
    child = procframe.get_context("fork").Process(target=_report_pending, args=(out,))
    child.start()
    child.join(60)
    assert read_report(out) == {"pending": 0, "threads": 0}
    assert child.exitcode == 0
    with pickle.loads(data) as copy:  # the parent still holds it
        copy.send("after the fork")
        assert pipe[1].recv() == "after the fork"


# -- at exit: a short grace for what is pending, then nothing is held -------------------------


def test_the_serving_thread_is_daemonic(pipe: tuple[Any, Any]) -> None:
    data = pickle.dumps(pipe[0])
    try:
        assert [t.daemon for t in _sharer_threads()] == [True]  # exit never joins it
    finally:
        pickle.loads(data).close()


@linux
def test_at_exit_what_is_pending_is_dropped_after_the_grace(
    pipe: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fdshare, "EXIT_GRACE", 0.2)
    before = _open_fds()
    data = pickle.dumps(pipe[0])
    fdshare._finish_at_exit()
    assert fdshare.pending() == 0
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"
    assert _open_fds() <= before, "a duplicate or the socket outlived the exit"
    with pytest.raises(OSError, match="has exited"):
        pickle.loads(data)


def test_at_exit_a_receiver_that_is_reading_gets_what_is_pending(pipe: tuple[Any, Any]) -> None:
    data = pickle.dumps(pipe[0])
    received: list[Any] = []
    receiver = threading.Thread(target=lambda: received.append(pickle.loads(data)))
    receiver.start()
    fdshare._finish_at_exit()  # waits for the receiver (well within the grace)
    receiver.join(60)
    with received[0] as copy:
        copy.send("collected during the grace")
        assert pipe[1].recv() == "collected during the grace"


_HOLD_AN_UNCOLLECTED_SHARE = """
import pickle, sys
import procframe
ctx = procframe.get_context(sys.argv[1])
mine, theirs = ctx.Pipe()
q = ctx.Queue()
q.put(theirs)  # nobody reads it
data = pickle.dumps(mine)  # nobody unpickles it
print("shared", flush=True)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_program_holding_an_uncollected_share_exits_promptly(method: str) -> None:
    if method not in procframe.get_all_start_methods():
        pytest.skip(f"needs {method}")
    done = subprocess.run(
        [sys.executable, "-c", _HOLD_AN_UNCOLLECTED_SHARE, method],
        capture_output=True,
        text=True,
        timeout=fdshare.HOLD_TIMEOUT / 2,  # it used to wait for HOLD_TIMEOUT
    )
    assert done.stdout.strip() == "shared", done.stderr
    assert done.returncode == 0, done.stderr


# -- a pickling that fails shares nothing -----------------------------------------------------


def _task(*args: object) -> None:
    """A pool task (never runs: its arguments cannot be pickled)."""


class _Unpicklable:
    """No serializer carries it: its ``__reduce__`` raises what pickle raises."""

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("_Unpicklable refuses to be pickled")


def _unpicklable_with(conn: Any) -> tuple[Any, Any]:
    return (conn, _Unpicklable())


def test_a_failed_pickling_releases_what_it_shared(pipe: tuple[Any, Any]) -> None:
    from procframe._core import reduction

    kept = reduction.dumps(pipe[0])  # a pickling that succeeded: its share stays
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        reduction.dumps(_unpicklable_with(pipe[0]))
    assert fdshare.pending() == 1
    pickle.loads(kept).close()
    assert fdshare.pending() == 0
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"


def test_what_probing_pickles_shares_nothing(pipe: tuple[Any, Any]) -> None:
    from procframe._core import reduction

    with reduction.probing():
        pickle.dumps(pipe[0])
    assert fdshare.pending() == 0
    assert not _sharer_threads()


@pytest.mark.parametrize("carrier", ["Pipe", "Queue", "SimpleQueue"])
def test_an_unpicklable_message_holding_a_connection_shares_nothing(
    pipe: tuple[Any, Any], carrier: str
) -> None:
    ctx = procframe.get_context("fork" if "fork" in procframe.get_all_start_methods() else None)
    if carrier == "Pipe":
        reader, writer = ctx.Pipe(duplex=False)
        closing = [reader, writer]
        send = writer.send
    else:
        q = getattr(ctx, carrier)()
        closing = [q]
        send = q.put
    try:
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            send(_unpicklable_with(pipe[0]))
    finally:
        for obj in closing:
            obj.close()
    assert fdshare.pending() == 0
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"


def test_an_unpicklable_pool_task_holding_a_connection_shares_nothing(
    pipe: tuple[Any, Any],
) -> None:
    ctx = procframe.get_context("fork" if "fork" in procframe.get_all_start_methods() else None)
    with ctx.Pool(1) as pool:
        with pytest.raises(pickle.PicklingError, match=r"args\[1\]"):
            pool.apply(_task, _unpicklable_with(pipe[0]))
        assert fdshare.pending() == 0
    pool.join()
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"


def test_an_unpicklable_manager_call_holding_a_connection_shares_nothing(
    pipe: tuple[Any, Any],
) -> None:
    ctx = procframe.get_context("fork" if "fork" in procframe.get_all_start_methods() else None)
    with ctx.Manager() as manager:
        shared = manager.list()
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            shared.append(_unpicklable_with(pipe[0]))
        assert fdshare.pending() == 0
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"


# -- receivers that stay silent, processes of other users -------------------------------------


def test_a_silent_client_does_not_delay_a_receiver(
    pipe: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fdshare, "SERVE_TIMEOUT", 40.0)  # each used to hold up the next this long
    data = pickle.dumps(pipe[0])
    silent = []
    try:
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            silent.append(sock)
            sock.settimeout(30)
            sock.connect(fdshare._sharer.address)
            assert len(sock.recv(64)) > 0  # challenged, and then silent
        started = time.monotonic()
        with pickle.loads(data) as copy:
            took = time.monotonic() - started
            copy.send("past the silent ones")
            assert pipe[1].recv() == "past the silent ones"
        assert took < fdshare.SERVE_TIMEOUT / 2, f"the receiver waited {took:.1f} s"
    finally:
        for sock in silent:
            sock.close()
    assert eventually(lambda: not _sharer_threads()), "the serving thread is still there"


def test_a_process_of_another_user_is_refused_at_once(
    pipe: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def someone_else(sock: socket.socket) -> tuple[int, int, int]:
        calls.append(sock)
        return (os.getpid(), os.geteuid() + 1, os.getegid())

    data = pickle.dumps(pipe[0])
    monkeypatch.setattr(osutil, "peer_credentials", someone_else)
    with pytest.raises(OSError, match="cannot receive"):
        pickle.loads(data)
    assert calls, "the serving thread did not check its peer"
    assert fdshare.pending() == 1  # refused, not given away
    monkeypatch.undo()
    with pickle.loads(data) as copy:
        copy.send("ours after all")
        assert pipe[1].recv() == "ours after all"


def test_only_a_peer_of_our_user_is_trusted() -> None:
    me = os.geteuid()
    assert osutil.is_same_user((1234, me, 0))
    assert not osutil.is_same_user((1234, me + 1, 0))
    assert osutil.is_same_user(None)  # the system cannot tell: the address is the barrier

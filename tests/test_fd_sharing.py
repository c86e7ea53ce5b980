"""A Connection pickled outside a child's start: held for its receiver, then released.

The conformance suite proves that it reaches a running process on every
backend; these tests prove what the suite cannot see: nothing is held for ever,
the serving thread ends, only a process with the authkey can collect, a forked
child drops its parent's pending copies.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe._core import fdshare
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

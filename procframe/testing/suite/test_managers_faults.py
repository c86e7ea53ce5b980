"""Managers: authentication, hostile input, killed processes, clients over the network.

* Every connection to a manager's server is authenticated before anything
  it sends is unpickled: a wrong key gets ``AuthenticationError``, and raw
  garbage, truncated frames and absurd length prefixes, before or after the
  handshake, neither crash the server nor make it allocate what they
  announce; legitimate clients are served throughout.
* Clients in other interpreters share a network manager's queue and dict.
* A client killed in a blocking call does not wedge the server, and what it
  alone held is freed; a proxy whose manager is gone fails promptly with a
  ``ConnectionError``; a manager does not outlive the process that started it.

The network tests share one server per backend (module-scoped, started
before the first test that needs it, so the leak check of every test counts
its process as already there).
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
import procframe.connection
from procframe import managers
from procframe.managers import _protocol as protocol
from procframe.testing.helpers import managers as tkm
from procframe.testing.helpers import pool as tk_pool
from procframe.testing.helpers import refusals
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.scripts import pid_running
from procframe.testing.helpers.targets import read_report
from procframe.testing.plugin import selected_backends

pytestmark = pytest.mark.timeout(120)

PATIENCE = tkm.PATIENCE
PROMPTLY = 30.0
"""What "promptly" allows on a loaded machine."""
KEY, WRONG_KEY = tkm.KEY, tkm.WRONG_KEY
ANNOUNCED = 1 << 33
"""An absurd message size (8 GiB) below ``connection.MAX_MESSAGE_SIZE``."""
MAX_GROWTH = 2 << 30
"""How much more virtual memory the server may have reserved after hostile input (2 GiB)."""


def vm_peak(pid: int) -> int:
    """The peak virtual memory size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmPeak for {pid}")


def framed(payload: bytes) -> bytes:
    """``payload`` as one message of a connection: a 4-byte big-endian length, then the bytes."""
    return struct.pack("!I", len(payload)) + payload


class _MakesMarker:
    """Unpickling this creates a directory: proof that someone unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return os.mkdir, (self.path,)


# -- one network server per backend -------------------------------------------------------


@pytest.fixture(scope="module")
def _remote_managers(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A started RemoteManager on 127.0.0.1 per backend under test that serves."""
    backends = tkm.serving(selected_backends(request.config))
    with tkm.managers_per_backend(backends, _remote_manager) as started:
        yield started


def _remote_manager(ctx: procframe.Context) -> Any:
    remote = tkm.RemoteManager(address=("127.0.0.1", 0), authkey=KEY, ctx=ctx)
    remote.start()
    return remote


@pytest.fixture
def remote(procframe_backend: str, _remote_managers: dict[str, Any]) -> Any:
    """A started :class:`~procframe.testing.helpers.managers.RemoteManager` (127.0.0.1, KEY)."""
    return _remote_managers[procframe_backend]


def assert_serves(remote: Any) -> None:
    """The server answers its owner and a newly connected client, and still lives."""
    assert pid_running(remote._process.pid), "the server died"
    key = uuid.uuid4().hex
    shared = remote.get_dict()
    shared[key] = "owner"
    client = tkm.RemoteManager(address=remote.address, authkey=KEY)
    client.connect()
    theirs = client.get_dict()
    assert theirs[key] == "owner"
    theirs[key] = "client"
    assert shared[key] == "client"
    del theirs[key]
    assert key not in shared
    client.get_queue().put(key)
    assert remote.get_queue().get(timeout=PATIENCE) == key


# -- authentication ------------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_wrong_authkey_is_refused_and_the_server_keeps_serving(remote: Any) -> None:
    assert procframe.connection.AuthenticationError is procframe.AuthenticationError
    assert_serves(remote)  # this process has a connection with the right key already
    for key in (WRONG_KEY, b"", KEY[:-1]):
        intruder = tkm.RemoteManager(address=remote.address, authkey=key)
        with pytest.raises(procframe.AuthenticationError):
            intruder.connect()
    assert_serves(remote)


@pytest.mark.requires("manager_server")
def test_a_wrong_authkey_tried_first_does_not_lock_out_the_right_one(
    ctx: procframe.Context,
) -> None:
    with tkm.RemoteManager(address=("127.0.0.1", 0), authkey=KEY, ctx=ctx) as server:
        intruder = tkm.RemoteManager(address=server.address, authkey=WRONG_KEY)
        with pytest.raises(procframe.AuthenticationError):
            intruder.connect()
        client = tkm.RemoteManager(address=server.address, authkey=KEY)
        client.connect()
        client.get_dict()["client"] = 1
        assert server.get_dict()["client"] == 1


@pytest.mark.requires("manager_server")
def test_a_client_with_a_wrong_key_in_another_process(
    ctx: procframe.Context, remote: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    intruder = ctx.Process(target=tkm.try_to_connect, args=(remote.address, WRONG_KEY, str(out)))
    intruder.start()
    try:
        intruder.join(PATIENCE)
    finally:
        reap(intruder)
    assert read_report(out, PATIENCE) == "AuthenticationError"
    assert intruder.exitcode == 0
    assert_serves(remote)


@pytest.mark.requires("manager_server")
def test_nothing_is_unpickled_before_authentication(remote: Any, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    evil = framed(pickle.dumps(_MakesMarker(str(marker))))
    with socket.create_connection(remote.address, timeout=PATIENCE) as raw:
        raw.sendall(evil * 3)
        assert_serves(remote)
    assert_serves(remote)
    assert not marker.exists(), "the server unpickled data from an unauthenticated peer"


BEFORE_AUTHENTICATION = {
    "close-at-once": (b"", True),
    "http-request": (b"GET / HTTP/1.0\r\n\r\n", False),
    "random-bytes": (random.Random(1).randbytes(64), True),
    "wrong-response": (framed(b"\x01" * 32), False),
    "escape-to-2**62": (struct.pack("!IQ", 0xFFFFFFFF, 2**62), False),
    "8-GiB-prefix": (struct.pack("!IQ", 0xFFFFFFFF, ANNOUNCED), False),
    "truncated-then-close": (struct.pack("!I", 100) + b"abc", True),
    "truncated-then-stall": (struct.pack("!I", 100) + b"abc", False),
}
"""What a peer sends before the handshake, and whether it closes at once (else it stays)."""


@pytest.mark.requires("manager_server")
@pytest.mark.parametrize("garbage", list(BEFORE_AUTHENTICATION))
def test_garbage_before_authentication(remote: Any, garbage: str) -> None:
    data, close = BEFORE_AUTHENTICATION[garbage]
    peak = vm_peak(remote._process.pid)
    with socket.create_connection(remote.address, timeout=PATIENCE) as raw:
        if data:
            raw.sendall(data)
        if close:
            raw.close()
        # A server that waits for the rest of a message it should have refused, or that
        # handles one handshake at a time, does not serve anyone else while this peer stays.
        began = time.monotonic()
        assert_serves(remote)
        assert time.monotonic() - began < PROMPTLY
    assert_serves(remote)
    assert vm_peak(remote._process.pid) - peak < MAX_GROWTH, "the server allocated a lot"


AFTER_AUTHENTICATION: dict[str, tuple[Any, bool]] = {
    "close-at-once": (b"", True),
    "random-frame": (framed(random.Random(2).randbytes(64)), False),
    "not-a-tuple": (framed(pickle.dumps("hello")), False),
    "short-tuple": (framed(pickle.dumps((1, 2))), False),
    "unknown-object": (framed(pickle.dumps((987654321, "__len__", (), {}))), False),
    "unknown-operation": (framed(pickle.dumps((-1, "no_such_operation", (), {}))), False),
    "bad-arguments": (framed(pickle.dumps((-1, "hello", None, None))), False),
    "ident-not-a-number": (framed(pickle.dumps(("x", "__len__", (), {}))), False),
    "unhashable-name": (framed(pickle.dumps((-1, ["hello"], (), {}))), False),
    "bad-releases": (framed(pickle.dumps((-1, "refs", ("not a list",), {}))), False),
    "release-of-others": (
        lambda ident: framed(pickle.dumps((-1, "refs", ([(0, ident)] * 3,), {}))),
        False,
    ),
    "escape-to-2**62": (struct.pack("!IQ", 0xFFFFFFFF, 2**62), False),
    "8-GiB-prefix": (struct.pack("!IQ", 0xFFFFFFFF, ANNOUNCED), False),
    "8-GiB-prefix-then-close": (struct.pack("!IQ", 0xFFFFFFFF, ANNOUNCED) + b"x" * 1000, True),
    "truncated-then-close": (struct.pack("!I", 100) + b"abc", True),
    "truncated-then-stall": (struct.pack("!I", 100) + b"abc", False),
}
"""What an authenticated peer sends, and whether it closes at once (else it stays).

A function makes the bytes from the id of an object that the test holds.
"""


def hello() -> bytes:
    """The first message of a procframe manager's client (see ``managers._protocol``)."""
    session = f"intruder-{uuid.uuid4().hex}"
    return framed(pickle.dumps((protocol.CONTROL, protocol.HELLO, (session, []), {})))


@pytest.mark.requires("manager_server")
@pytest.mark.parametrize("first", ["", "hello"], ids=["first-message", "after-hello"])
@pytest.mark.parametrize("garbage", list(AFTER_AUTHENTICATION))
def test_garbage_after_authentication(remote: Any, garbage: str, first: str) -> None:
    held = remote.get_dict()  # must survive whatever the peer sends
    make, close = AFTER_AUTHENTICATION[garbage]
    data = make(held._token.id) if callable(make) else make
    if first:
        data = hello() + data
    peak = vm_peak(remote._process.pid)
    conn = procframe.connection.Client(remote.address, authkey=KEY)
    try:
        if data:
            view = memoryview(data)
            while view:
                view = view[os.write(conn.fileno(), view) :]
        if close:
            conn.close()
        began = time.monotonic()
        assert_serves(remote)
        assert time.monotonic() - began < PROMPTLY
    finally:
        conn.close()
    assert_serves(remote)
    assert held.get("no such key", "still held") == "still held"
    assert vm_peak(remote._process.pid) - peak < MAX_GROWTH, "the server allocated a lot"


@pytest.mark.requires("manager_server")
def test_unpicklable_arguments_fail_in_the_caller(remote: Any) -> None:
    shared = remote.get_dict()
    key = uuid.uuid4().hex
    unpicklable = (TypeError, AttributeError, pickle.PicklingError)
    with pytest.raises(unpicklable):
        shared[key] = refusals.a_generator()  # no serializer carries one
    with pytest.raises(unpicklable):
        remote.get_queue().put(x for x in "generator")
    with pytest.raises(unpicklable):
        shared.update({key: refusals.a_refused_function()})
    shared[key] = "fine"  # the connection is still in step
    assert shared[key] == "fine"
    del shared[key]
    assert_serves(remote)


@pytest.mark.requires("manager_server")
def test_an_exception_the_caller_cannot_rebuild(ctx: procframe.Context) -> None:
    with tkm.CalcManager(ctx=ctx) as manager:
        calc = manager.Calculator()
        # The exception itself where the server's and the caller's pickle can rebuild it (a
        # runtime may teach pickle to rebuild any exception: Dask's, through tblib, does).
        with pytest.raises(
            (managers.RemoteError, TypeError, tkm.TwoArgumentError),
            match=r"TwoArgumentError|argument|one and two",
        ):
            calc.raise_unrebuildable()
        assert calc.add(1) == 1  # the connection is still in step


# -- clients in other interpreters --------------------------------------------------------------

SERVER = """\
import sys
from procframe.testing.helpers import managers as tkm

if __name__ == '__main__':
    manager = tkm.RemoteManager(address=('127.0.0.1', 0), authkey=tkm.KEY)
    server = manager.get_server()
    print('serving', server.address[0], server.address[1], flush=True)
    server.serve_forever()
"""
"""A network manager's server in the script's own process."""

PRODUCER = """\
import os
import sys
from procframe.testing.helpers import managers as tkm

if __name__ == '__main__':
    host, port, index, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    manager = tkm.RemoteManager(address=(host, port), authkey=tkm.KEY)
    manager.connect()
    queue = manager.get_queue()
    shared = manager.get_dict()
    for j in range(tkm.ITEMS):
        queue.put((tag, index, j))
        shared[f'{tag}-{index}-last'] = j
    shared[f'{tag}-{index}'] = os.getpid()
    print(os.getpid(), flush=True)
"""
"""A client that puts ITEMS items in the shared queue and writes in the shared dict."""

CONSUMER = """\
import json
import sys
from procframe.testing.helpers import managers as tkm

if __name__ == '__main__':
    host, port, count, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    manager = tkm.RemoteManager(address=(host, port), authkey=tkm.KEY)
    manager.connect()
    queue = manager.get_queue()
    shared = manager.get_dict()
    items = [queue.get(timeout=tkm.PATIENCE) for _ in range(count)]
    shared[f'{tag}-consumer'] = len(items)
    print(json.dumps(items), flush=True)
"""
"""A client that takes ``count`` items from the shared queue and prints them as JSON."""


def _finish(script: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for ``script`` (at most PATIENCE); its output; it must have exited 0."""
    try:
        out, err = script.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        script.kill()
        out, err = script.communicate(timeout=PATIENCE)
        pytest.fail(f"{script.args} did not end within {PATIENCE}s: {err}")
    assert script.returncode == 0, err
    return out, err


@pytest.mark.requires("manager_server")
@pytest.mark.parametrize("how", ["start", "serve_forever"])
def test_clients_in_other_interpreters_share_a_queue_and_a_dict(
    ctx: procframe.Context, procframe_backend: str, tmp_path: Path, how: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    owner: Any = None
    server: subprocess.Popen[str] | None = None
    scripts: list[subprocess.Popen[str]] = []
    try:
        if how == "start":
            owner = tkm.RemoteManager(address=("127.0.0.1", 0), authkey=KEY, ctx=ctx)
            owner.start()
            host, port = owner.address
        else:
            server = tkm.start_script(tmp_path, SERVER, procframe_backend, name="server.py")
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("serving "):
                server.kill()
                pytest.fail(f"no server: {line}{server.communicate(timeout=PATIENCE)[1]}")
            host, port = line.split()[1], int(line.split()[2])
        assert isinstance(port, int) and port > 0  # the real port, not the 0 asked for

        consumer = tkm.start_script(
            tmp_path,
            CONSUMER,
            procframe_backend,
            host,
            port,
            3 * tkm.ITEMS,
            tag,
            name="consumer.py",
        )
        scripts.append(consumer)
        producers = [
            tkm.start_script(
                tmp_path, PRODUCER, procframe_backend, host, port, i, tag, name=f"producer{i}.py"
            )
            for i in range(3)
        ]
        scripts.extend(producers)
        pids = [int(_finish(p)[0]) for p in producers]
        items = [tuple(item) for item in json.loads(_finish(consumer)[0])]

        assert sorted(items) == sorted((tag, i, j) for i in range(3) for j in range(tkm.ITEMS))
        for i in range(3):  # each producer's items in its order
            assert [j for _, k, j in items if k == i] == list(range(tkm.ITEMS))

        client = tkm.RemoteManager(address=(host, port), authkey=KEY)
        client.connect()
        shared = client.get_dict().copy()
        expected = {f"{tag}-{i}": pid for i, pid in enumerate(pids)}
        expected.update({f"{tag}-{i}-last": tkm.ITEMS - 1 for i in range(3)})
        expected[f"{tag}-consumer"] = 3 * tkm.ITEMS
        assert {k: v for k, v in shared.items() if k.startswith(tag)} == expected
        assert client.get_queue().empty()
        del client
    finally:
        for script in scripts:
            if script.poll() is None:
                script.kill()
            script.communicate(timeout=PATIENCE)
        if owner is not None:
            owner.shutdown()
        if server is not None:
            server.send_signal(signal.SIGINT)  # Ctrl-C ends serve_forever()
            try:
                server.communicate(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate(timeout=PATIENCE)
                pytest.fail("serve_forever() did not end on SIGINT")


# -- killed clients, a gone server, a killed owner ------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_client_killed_in_a_blocking_call_does_not_wedge_the_server(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    """procframe only: its waits give up, and the objects that it alone held are freed."""
    with managers.SyncManager(authkey=KEY, ctx=ctx) as manager:
        q, lock, gate = manager.Queue(), manager.Lock(), manager.Lock()
        assert gate.acquire()
        baseline = manager._number_of_objects()
        ready = tmp_path / "ready"
        child = ctx.Process(
            target=tkm.block_in_the_server,
            args=(manager.address, KEY, q, lock, gate, str(ready)),
        )
        child.start()
        try:
            info = read_report(ready, PATIENCE)
            assert manager._number_of_objects() == baseline + info["own"]
            time.sleep(0.5)  # for its q.get() and gate.acquire() to reach the server
            assert child.is_alive()
            child.kill()
            child.join(PATIENCE)
        finally:
            reap(child)
        assert child.exitcode == -signal.SIGKILL

        # Others are served: old proxies, new objects, a new client.
        began = time.monotonic()
        items = manager.list([1, 2])
        items.append(3)
        assert items[:] == [1, 2, 3]
        client = managers.SyncManager(address=manager.address, authkey=KEY)
        client.connect()
        assert client.dict(a=1)["a"] == 1
        # A lock the killed client held stays held, as with threads; the acquire() it was
        # waiting in gives up instead of taking the lock; so does its get() with the item.
        assert lock.acquire(timeout=0.3) is False
        gate.release()
        assert gate.acquire(timeout=PATIENCE), "the killed client's acquire() took the lock"
        q.put("after")
        assert q.get(timeout=PATIENCE) == "after", "the killed client's get() took the item"
        assert time.monotonic() - began < PROMPTLY
        del items, client

        gc.collect()
        assert tk_pool.eventually(lambda: manager._number_of_objects() == baseline, PATIENCE), (
            f"{manager._number_of_objects()} objects, {baseline} before the killed client"
        )


@pytest.mark.requires("manager_server")
def test_a_proxy_fails_promptly_once_its_manager_shut_down(ctx: procframe.Context) -> None:
    """procframe only: the error is a ConnectionError, also for a call in flight."""
    manager = ctx.Manager()
    try:
        items, d, q = manager.list([1]), manager.dict(a=1), manager.Queue()
        blocked = _CallInThread(lambda: q.get(timeout=PATIENCE))
        time.sleep(0.5)  # for the get() to reach the server
    finally:
        manager.shutdown()
    began = time.monotonic()
    outcome = blocked.outcome()
    assert isinstance(outcome, ConnectionError), repr(outcome)
    assert time.monotonic() - began < PROMPTLY
    calls: list[Callable[[], Any]] = [
        lambda: items.append(2),
        lambda: len(items),
        lambda: d["a"],
        lambda: q.put(1),
    ]
    for call in calls:
        began = time.monotonic()
        with pytest.raises(ConnectionError) as info:
            call()
        assert time.monotonic() - began < PROMPTLY
        assert "manager" in str(info.value).lower(), str(info.value)
    manager.join(PATIENCE)


@pytest.mark.requires("manager_server")
def test_a_proxy_fails_promptly_once_its_server_is_killed(ctx: procframe.Context) -> None:
    """procframe only: a ConnectionError, also for a call in flight; shutdown() still works."""
    manager = ctx.Manager()
    try:
        items, q = manager.list([1]), manager.Queue()
        blocked = _CallInThread(lambda: q.get(timeout=PATIENCE))
        time.sleep(0.5)
        os.kill(manager._process.pid, signal.SIGKILL)
        assert isinstance(blocked.outcome(), ConnectionError)
        manager.join(PATIENCE)  # every thread of it is gone: its listening socket is closed
        with pytest.raises(ConnectionError):
            items.append(2)
        with pytest.raises(ConnectionError):
            len(items)
    finally:
        manager.shutdown()  # harmless on a dead server
    manager.join(PATIENCE)


class _CallInThread:
    """Run a call in a thread at once; ``outcome()`` is its result or exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._outcome: list[Any] = []

        def run() -> None:
            try:
                self._outcome.append(call())
            except BaseException as exc:
                self._outcome.append(exc)

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def outcome(self) -> Any:
        self._thread.join(PATIENCE)
        assert not self._thread.is_alive(), "the call hangs"
        return self._outcome[0]


INTERRUPTED = """\
import os
import queue
import signal
import threading
from procframe import Manager

if __name__ == '__main__':
    with Manager() as manager:
        q = manager.Queue()
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            q.get(timeout=60)
        except KeyboardInterrupt:
            print('interrupted', flush=True)
        q.put('next')
        try:
            got = q.get(timeout=10)
        except queue.Empty:
            got = 'lost'
        print(got, len(manager.list([1, 2])), flush=True)
"""
"""Ctrl-C in the middle of a call; then the same thread carries on with the manager."""


@pytest.mark.requires("manager_server")
def test_a_call_interrupted_by_ctrl_c(procframe_backend: str, tmp_path: Path) -> None:
    """procframe only: the interrupted get() gives up instead of taking the next item."""
    script = tkm.start_script(tmp_path, INTERRUPTED, procframe_backend, name="script.py")
    out, err = _finish(script)
    assert out != "interrupted\nlost 2\n", "the interrupted get() took the item put after it"
    assert out == "interrupted\nnext 2\n", err


LEFT_RUNNING = """\
import sys
from procframe import Manager, Process
from procframe.testing.helpers import managers as tkm

if __name__ == '__main__':
    manager = Manager()
    items = manager.list(['early'])
    Process(target=tkm.append_later, args=(items, 0.5, sys.argv[1])).start()
    print('main ends', flush=True)
"""
"""The main module ends while a child still has a call to make to the manager."""


def test_a_manager_left_running_outlives_the_children_at_exit(
    procframe_backend: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    script = tkm.start_script(tmp_path, LEFT_RUNNING, procframe_backend, out, name="script.py")
    printed, err = _finish(script)
    assert printed == "main ends\n", err
    assert read_report(out, 1.0) == ["early", "late"]
    assert "Traceback" not in err, err


KILLED_OWNER = """\
import time
from procframe import Manager
from procframe.testing.helpers import pool as tk_pool

if __name__ == '__main__':
    manager = Manager()
    pool = manager.Pool(1)
    values = manager.list([pool.apply(tk_pool.square, (3,))])
    print('ready', manager._process.pid, values[0], flush=True)
    time.sleep(600)
"""
"""A script with a manager (whose server has a pool) that waits to be killed."""


@pytest.mark.requires("parent_death", "local_pids")  # finds them here by their environment
def test_a_manager_does_not_outlive_its_killed_owner(
    procframe_backend: str, tmp_path: Path
) -> None:
    """procframe only: the manager's server (and its pool) go when its owner is SIGKILLed."""
    with tkm.marked_script(tmp_path, KILLED_OWNER, procframe_backend) as (script, mark):
        assert script.stdout is not None
        line = script.stdout.readline()
        word, pid, value = [*line.split(), "", "", ""][:3]
        if word != "ready":
            script.kill()
            pytest.fail(f"the script failed: {line}{script.communicate(timeout=PATIENCE)[1]}")
        assert value == "9"
        server = int(pid)
        assert pid_running(server)
        assert len(tk_pool.marked_processes(mark)) >= 3  # the script, the server, a worker
        script.kill()
        script.wait(PATIENCE)
        assert tk_pool.eventually(lambda: not pid_running(server)), "the manager outlived its owner"
        assert tk_pool.eventually(lambda: tk_pool.marked_processes(mark) == []), (
            f"still running: {tk_pool.marked_processes(mark)}"
        )


# -- found in review ----------------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_managed_pool_s_task_changes_the_shared_object(ctx: procframe.Context) -> None:
    """A worker the server started (forked from it, on fork) is a client, not a server copy."""
    with ctx.Manager() as manager:
        items = manager.list()
        pool = manager.Pool(1)
        try:
            assert pool.apply(tkm.append_pid, (items,)) == 1
            assert len(items) == 1 and items[0] != os.getpid()
        finally:
            pool.terminate()


@pytest.mark.requires("manager_server")
def test_a_waiter_killed_in_condition_wait_keeps_neither_the_lock_nor_the_notification(
    ctx: procframe.Context,
) -> None:
    with ctx.Manager() as manager:
        cond, ready = manager.Condition(), manager.Event()
        waiter = ctx.Process(target=tkm.wait_on, args=(cond, ready))
        waiter.start()
        assert ready.wait(PATIENCE)
        with cond:  # the waiter is inside wait(): it released the lock
            pass
        os.kill(waiter.pid, signal.SIGKILL)
        waiter.join()
        woken: list[bool] = []
        other = threading.Thread(target=lambda: woken.append(cond_wait(cond)))
        other.start()
        deadline = time.monotonic() + PATIENCE
        while other.is_alive() and time.monotonic() < deadline:
            assert cond.acquire(True, PATIENCE), "the killed waiter kept the lock"
            cond.notify()  # until the live waiter is woken (it may not be waiting yet)
            cond.release()
            other.join(0.05)
        other.join(PATIENCE)
        assert woken == [True], "the live waiter was never woken"
        assert cond.acquire(True, PATIENCE), "the killed waiter kept the lock"
        cond.release()


def cond_wait(cond: Any) -> bool:
    """Wait on ``cond`` (at most PATIENCE); True if notified."""
    with cond:
        return bool(cond.wait(PATIENCE))


@pytest.mark.requires("manager_server")
def test_a_proxy_in_transit_outlives_its_sender(ctx: procframe.Context) -> None:
    with ctx.Manager() as manager:
        channel = ctx.Queue()
        items = manager.list([1, 2, 3])
        sender = ctx.Process(target=tkm.send_back, args=(channel, items))
        sender.start()
        del items  # the proxy in the queue is now the only one
        sender.join()
        gc.collect()
        arrived = channel.get(timeout=PATIENCE)
        assert arrived[:] == [1, 2, 3]
        channel.close()


@pytest.mark.requires("manager_server")
def test_a_proxy_never_reaches_the_next_server_at_its_address(ctx: procframe.Context) -> None:
    first = managers.SyncManager(address=("127.0.0.1", 0), authkey=KEY, ctx=ctx)
    first.start()
    items = first.list([1, 2, 3])
    address = first.address
    first.shutdown()
    second = managers.SyncManager(address=address, authkey=KEY, ctx=ctx)
    second.start()
    try:
        other = second.dict({0: "zero"})
        for _ in range(2):  # the first call finds the connection gone; the second must too
            with pytest.raises(ConnectionError):
                len(items)
        assert other[0] == "zero"
    finally:
        second.shutdown()

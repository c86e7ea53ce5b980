"""Helpers of the managers' load probes: many idle clients, hostile lengths, start/stop loops.

What the probes measure of a server process comes from ``/proc/<pid>/status``;
what they measure of the test's own process, from ``/proc/self/fd`` and
procframe's registries.
"""

from __future__ import annotations

import gc
import os
import pickle
import resource
import statistics
import struct
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import procframe
import procframe.connection
from procframe.managers import AcquirerProxy, BaseManager
from procframe.managers import _protocol as protocol


def status_field(pid: int, name: str) -> int:
    """The number of the ``name:`` line of ``/proc/<pid>/status`` (kB for sizes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} in the status of {pid}")


def threads_of(pid: int) -> int:
    """How many threads process ``pid`` runs."""
    return status_field(pid, "Threads")


def resident_bytes(pid: int) -> int:
    """The resident memory of process ``pid``."""
    return status_field(pid, "VmRSS") * 1024


def descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def ensure_descriptors(needed: int) -> None:
    """Raise this process's soft descriptor limit to ``needed`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise RuntimeError(f"{needed} descriptors are needed; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def framed(payload: bytes) -> bytes:
    """``payload`` as one message of a connection: its 4-byte length, then its bytes."""
    return struct.pack("!I", len(payload)) + payload


def request(name: str, *args: Any) -> bytes:
    """A server operation as a procframe manager client pickles it."""
    return pickle.dumps((protocol.CONTROL, name, args, {}))


def authenticated_client(address: Any, authkey: bytes) -> procframe.connection.Connection:
    """A connection to a manager that has authenticated, opened a session and been answered
    a ping: a client the server serves, idle from then on."""
    conn = procframe.connection.Client(address, authkey=authkey)
    try:
        conn.send_bytes(request(protocol.HELLO, f"idle-{uuid.uuid4().hex}", []))
        conn.send_bytes(request(protocol.PING))
        kind, _ = pickle.loads(conn.recv_bytes())
    except BaseException:
        conn.close()
        raise
    if kind != protocol.RETURN:
        conn.close()
        raise AssertionError(f"the server answered a ping with kind {kind}")
    return conn


def idle_clients(address: Any, authkey: bytes, count: int) -> list[Any]:
    """``count`` authenticated idle connections to the manager at ``address``."""
    clients: list[Any] = []
    try:
        for _ in range(count):
            clients.append(authenticated_client(address, authkey))
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(connections: list[Any]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()


def announce(conn: Any, size: int, body: int = 0) -> None:
    """Send a length prefix of ``size`` bytes (the 8-byte form) and ``body`` bytes of it."""
    data = struct.pack("!IQ", 0xFFFFFFFF, size) + bytes(body)
    view = memoryview(data)
    while view:
        view = view[os.write(conn.fileno(), view) :]


def closed_by_peer(conn: Any, timeout: float) -> bool:
    """True if the peer closes ``conn`` (an end of stream, or a reset) within ``timeout``."""
    if not conn.poll(max(timeout, 0.0)):
        return False
    try:
        conn.recv_bytes()
    except (EOFError, OSError):
        return True
    return False


def round_trips(call: Any, count: int) -> list[float]:
    """The seconds each of ``count`` calls of ``call()`` took."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- start/stop rounds ------------------------------------------------------------------


def registries() -> dict[str, int]:
    """How many entries procframe's registries hold in this process (and weakref's)."""
    from procframe._core import finalize
    from procframe._core import process as process_module

    return {
        "children": len(procframe.active_children()),
        "exit callbacks": len(process_module._after_children) + len(process_module._flushers),
        "finalizers": len(finalize._finalizer_registry),
        "weakref finalizers": len(weakref.finalize._registry),  # type: ignore[attr-defined]
    }


def use_a_manager(ctx: procframe.Context, servers: list[Any]) -> None:
    """Start a manager in this function, use a proxy, shut it down; a weak reference to its
    server's Process goes to ``servers``."""
    manager = ctx.Manager()
    servers.append(weakref.ref(manager._process))
    items = manager.list([1, 2])
    items.append(3)
    assert items[:] == [1, 2, 3]
    manager.shutdown()


def lose_a_manager(ctx: procframe.Context, refs: list[Any]) -> str:
    """Start a manager, kill its server, call a proxy (which fails), shut the manager down;
    weak references to the manager, the proxy and the server's Process go to ``refs``.
    The error's text."""
    manager = ctx.Manager()
    items = manager.list([1])
    refs.extend(weakref.ref(obj) for obj in (manager, items, manager._process))
    manager._process.kill()
    manager._process.join(60.0)
    try:
        items.append(2)
    except ConnectionError as exc:
        failure = str(exc)
    else:
        raise AssertionError("a proxy of a killed server answered")
    manager.shutdown()
    return failure


def survivors(refs: list[Any]) -> list[Any]:
    """What the weak references ``refs`` still reach, after a garbage collection."""
    gc.collect()
    return [obj for obj in (ref() for ref in refs) if obj is not None]


class OwnLockManager(BaseManager):
    """A manager that registers ``threading.RLock`` itself, as the standard library's
    SyncManager does."""


OwnLockManager.register("RLock", threading.RLock, AcquirerProxy)

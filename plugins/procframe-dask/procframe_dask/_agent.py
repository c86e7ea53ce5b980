"""A Process's agent on its worker: takes and gives back shared state on its behalf.

A Condition's or a Barrier's state is the one item of a cluster queue (a
:class:`procframe_dask.sync._Cell`): a step takes it, changes it and puts it back.  A
process killed in between would take the state with it, and one killed while it
waits for the state would leave a get pending on the scheduler that takes the state
later for nobody.  So a Process on the cluster does neither itself: it asks its
agent, a thread of the task that runs it (:func:`procframe_dask._remote.run_process`),
over a Unix socket.  The agent takes the state with its own client and hands it over;
a state handed back is put back by the agent.  When the process dies, the agent puts
back what it still holds for it as it was taken: the step that was cut short never
happened.  A hand-back that reached the socket whole is a step that happened.

The main program has no agent: it takes and puts itself (it does not die alone).
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import struct
import threading
from typing import Any

from procframe_dask import _sliced

FD_ENV = "PROCFRAME_DASK_AGENT_FD"
"""The environment variable that names the agent socket's descriptor in the child."""
_LENGTH = struct.Struct("!I")


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _recv(sock: socket.socket) -> Any:
    """The next message; ``None`` at the end (or a message cut short)."""
    head = _recv_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    body = _recv_exactly(sock, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        try:
            chunk = sock.recv(left)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- the process's side --------------------------------------------------------------


class Agent:
    """The process's line to its agent: one connection per thread, made on first use."""

    def __init__(self, fd: int) -> None:
        self._main = socket.socket(fileno=fd)
        self._lock = threading.Lock()
        self._local = threading.local()

    def _connection(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with self._lock:
                socket.send_fds(self._main, [b"c"], [theirs.fileno()])
            theirs.close()
            self._local.sock = sock
        return sock  # type: ignore[no-any-return]

    def take(self, queue_name: str, timeout: float) -> bytes | None:
        """The item of cluster queue ``queue_name``, taken by the agent; ``None`` if none
        came within ``timeout`` seconds."""
        sock = self._connection()
        try:
            _send(sock, ("take", queue_name, timeout))
            reply = _recv(sock)
        except BaseException:
            self._drop(sock)  # cut short (Ctrl-C...): the agent gives back what it took
            raise
        if reply is None:
            self._drop(sock)
            raise ConnectionError("lost this process's agent on its worker")
        return reply[1]  # type: ignore[no-any-return]

    def give(self, queue_name: str, data: bytes) -> None:
        """Hand ``data`` back: the agent puts it on ``queue_name`` (this returns at once)."""
        sock = self._connection()
        try:
            _send(sock, ("give", queue_name, data))
        except BaseException:
            self._drop(sock)  # a message cut short: the agent gives back what it took
            raise

    def _drop(self, sock: socket.socket) -> None:
        """Close this thread's connection; the next call makes a new one."""
        self._local.sock = None
        sock.close()


_agent: Agent | None = None
_agent_lock = threading.Lock()


def agent() -> Agent | None:
    """This process's agent, if it runs on the cluster as a Process (else ``None``)."""
    global _agent
    if _agent is None:
        fd = os.environ.get(FD_ENV)
        if not fd:
            return None
        with _agent_lock:
            if _agent is None:
                _agent = Agent(int(fd))
    return _agent


# -- the agent's side (in the worker) ------------------------------------------------


def serve(main: socket.socket, queue_of: Any) -> threading.Thread:
    """Serve the process at the other end of ``main`` in a thread of its own, until it
    ends; ``queue_of(name)`` is the cluster queue of that name (made by this worker's
    client).  Returns the thread (it ends when the process has)."""

    def accept() -> None:
        handlers = []
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(main, 16, 1)
            except OSError:
                fds = []
            if not fds:
                break
            handler = threading.Thread(
                target=_serve_connection,
                args=(socket.socket(fileno=fds[0]), queue_of),
                name="procframe-dask-agent",
                daemon=True,
            )
            handler.start()
            handlers.append(handler)
        main.close()
        for handler in handlers:
            handler.join()

    thread = threading.Thread(target=accept, name="procframe-dask-agent", daemon=True)
    thread.start()
    return thread


def _gone(sock: socket.socket) -> bool:
    """True once the process closed its end (it ended, or its thread did)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _serve_connection(sock: socket.socket, queue_of: Any) -> None:
    held: dict[str, bytes] = {}  # what the process holds, as taken
    try:
        while True:
            message = _recv(sock)
            if message is None:
                break
            if message[0] == "give":
                _, name, data = message
                queue_of(name).put(data)
                held.pop(name, None)
                continue
            _, name, timeout = message
            data = _take(sock, queue_of(name), timeout)
            if data is None:
                _send(sock, ("taken", None))
                continue
            held[name] = data
            _send(sock, ("taken", data))
    except OSError:
        pass
    finally:
        sock.close()
        for name, data in held.items():  # the step it was in never happened
            try:
                queue_of(name).put(data)
            except Exception:  # the cluster is gone: nobody waits for it
                pass


def _take(sock: socket.socket, queue: Any, timeout: float) -> bytes | None:
    """The queue's item within ``timeout``, in slices; given back (and ``None``) if the
    process went away meanwhile."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            data: bytes = _sliced.get(queue, min(left, _sliced.GET_SLICE))
        except TimeoutError:
            if _gone(sock):
                return None
            continue
        if _gone(sock):
            queue.put(data)
            return None
        return data

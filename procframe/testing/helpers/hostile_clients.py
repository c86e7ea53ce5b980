"""Hostile and legitimate clients of a ``Listener`` or a manager's server (the listener probes).

:class:`HostileClients` are raw sockets in the test's own process that start
a handshake and never finish it: silent, truncated or trickling, one thread
drives them all.  :func:`timed_clients` runs in a child (every backend's) and
times legitimate ``Client`` connections.  :class:`EchoServer` accepts from a
``Listener`` in a thread, as a server would.  Every wait is bounded by
:data:`PATIENCE`.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import threading
import time
from typing import Any

from procframe.testing.helpers.targets import report

PATIENCE = 60.0
"""Seconds anything that should happen at once may take."""

SILENT = "silent"
"""Reads the challenge, then sends nothing."""
TRUNCATED = "truncated"
"""Reads the challenge, sends a length prefix announcing 100 bytes and 3 of them, then nothing."""
TRICKLING = "trickling"
"""Reads the challenge, then sends a 250-byte message one byte at a time, at long intervals."""
KINDS = (SILENT, TRUNCATED, TRICKLING)

_TRUNCATED_FRAME = struct.pack("!I", 100) + b"abc"
_TRICKLED_LENGTH = 250


def raw_socket(address: Any) -> socket.socket:
    """A socket of the family of ``address`` (a path or abstract name, or (host, port))."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    return socket.socket(family, socket.SOCK_STREAM)


def frame(payload: bytes) -> bytes:
    """``payload`` as one message of the connections' framing (a 4-byte length first)."""
    return struct.pack("!I", len(payload)) + payload


def read_frame(sock: socket.socket, deadline: float) -> bytes:
    """One whole message (a 4-byte length, then the bytes) from the blocking ``sock``."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    (size,) = struct.unpack("!I", exactly(4))
    return exactly(size)


class HostileClients:
    """``count`` raw connections to ``address`` whose handshakes stay in progress.

    The kinds of :data:`KINDS` take turns (or only ``kinds``).  :meth:`start`
    connects them all and waits until each has received its challenge: the
    server has taken it, and its handshake is in progress.  A trickling one
    sends one byte every ``interval`` seconds.  :meth:`close` (or leaving the
    ``with`` block) closes them all and stops the thread.
    """

    def __init__(
        self, address: Any, count: int, interval: float = 1.0, kinds: tuple[str, ...] = KINDS
    ) -> None:
        self.address = address
        self.count = count
        self.interval = interval
        self.kinds = kinds
        self.sockets: list[socket.socket] = []
        self._trickling: list[tuple[socket.socket, bytes]] = []
        self._sent: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refused = 0
        """How many writes found their connection closed by the server."""

    def __enter__(self) -> HostileClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = PATIENCE) -> None:
        """Connect every client and wait for each challenge (``timeout`` in all)."""
        deadline = time.monotonic() + timeout
        for index in range(self.count):
            kind = self.kinds[index % len(self.kinds)]
            sock = raw_socket(self.address)
            self.sockets.append(sock)
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(self.address)
            read_frame(sock, deadline)
            sock.setblocking(False)
            if kind == TRUNCATED:
                sock.send(_TRUNCATED_FRAME)
            elif kind == TRICKLING:
                message = struct.pack("!I", _TRICKLED_LENGTH) + os.urandom(_TRICKLED_LENGTH)
                self._trickling.append((sock, message))
        if self._trickling:
            self._thread = threading.Thread(target=self._trickle, name="hostile-trickler")
            self._thread.start()

    def _trickle(self) -> None:
        sent = 0
        while not self._stop.wait(self.interval):
            for sock, message in self._trickling:
                if sock.fileno() < 0 or sent >= len(message):
                    continue
                try:
                    sock.send(message[sent : sent + 1])
                except OSError:
                    self.refused += 1
                    sock.close()
            sent += 1

    def connected(self) -> int:
        """How many of the clients the server has not closed (nothing to read, no hang-up)."""
        alive = 0
        for sock in self.sockets:
            if sock.fileno() < 0:
                continue
            try:
                data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                alive += 1
                continue
            except OSError:
                continue
            alive += bool(data)  # a FAILURE verdict counts as closed by the server below
        return alive

    def close(self) -> None:
        """Stop trickling and close every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PATIENCE)
        for sock in self.sockets:
            sock.close()


def timed_clients(
    address: Any, authkey: bytes, count: int, echo: bool, report_path: str, spacing: float = 0.0
) -> None:
    """Connect ``count`` times, one after the other (``spacing`` seconds apart), with
    ``Client``; report the seconds each connect-and-authenticate took and the errors.  With
    ``echo``, each connection then sends ``b"ping"`` and expects it back (an
    :class:`EchoServer`)."""
    from procframe.connection import Client

    latencies: list[float] = []
    errors: list[str] = []
    for _ in range(count):
        time.sleep(spacing)
        began = time.perf_counter()
        try:
            conn = Client(address, authkey=authkey)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - began)
        with conn:
            if echo:
                conn.send_bytes(b"ping")
                if not conn.poll(PATIENCE) or conn.recv_bytes() != b"ping":
                    errors.append("no echo")
    report(report_path, {"latencies": latencies, "errors": errors})


def summary(latencies: list[float]) -> dict[str, float]:
    """Median and max of ``latencies``, in milliseconds."""
    return {
        "median_ms": round(statistics.median(latencies) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def open_descriptors() -> int:
    """How many Unix sockets this process has open (the listeners under test are Unix
    sockets; what a backend's runtime opens meanwhile, TCP connections to a cluster or files
    of ``/proc``, is not theirs).  Elsewhere than Linux: every descriptor."""
    unix = _unix_socket_links()
    if unix is not None:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _link(fd) in unix)
    for directory in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(directory):
            return len(os.listdir(directory))
    raise OSError("no directory lists this process's descriptors")


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # closed meanwhile
        return ""


def _unix_socket_links() -> set[str] | None:
    """``socket:[inode]`` of every Unix socket of this machine; None without ``/proc``."""
    try:
        with open("/proc/net/unix") as rows:
            next(rows, None)
            return {f"socket:[{row.split()[6]}]" for row in rows if len(row.split()) > 6}
    except OSError:
        return None


class EchoServer:
    """Accepts from ``listener`` in a thread until it is closed, as a server would: echoes
    one message of each connection; :attr:`failures` are the peers ``accept()`` refused."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.served = 0
        self.failures: list[str] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="echo-server")

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        from procframe import AuthenticationError

        while True:
            try:
                conn = self.listener.accept()
            except AuthenticationError as failure:
                self.failures.append(str(failure))
                continue
            except OSError:
                return  # closed
            except BaseException as exc:  # reported by stop()
                self.error = exc
                return
            with conn:
                try:
                    if conn.poll(PATIENCE):
                        conn.send_bytes(conn.recv_bytes())
                        self.served += 1
                except (OSError, EOFError):
                    pass

    def wait_for_failures(self, count: int, timeout: float) -> bool:
        """True once at least ``count`` peers were refused, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.failures) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Close the listener (which ends ``accept()``) and join the thread."""
        self.listener.close()
        self._thread.join(PATIENCE)
        if self._thread.is_alive():
            raise AssertionError("accept() did not return after the listener was closed")
        if self.error is not None:
            raise AssertionError(f"accept() raised {self.error!r}") from self.error

"""Descriptors handed to a process that is already running (a Connection sent in a message).

A child gets descriptors at its start (:mod:`procframe._core.reduction`).  A
process already running gets them from their sender over a Unix socket:
pickling keeps a duplicate of each descriptor under a random token (so the
sender may close its own), and a serving thread of the sender hands the
duplicates (``SCM_RIGHTS``) to the first process that presents the token and
proves, by an HMAC of a fresh challenge, that it knows the sender's authkey:
a process started by procframe inherits it, an unrelated process does not.
The receiver checks the sender's proof in turn before it trusts what it got.

Nothing is held for ever: a duplicate is closed once collected, or
:data:`HOLD_TIMEOUT` seconds after it was pickled, and the serving thread ends
as soon as nothing is pending (the next pickle starts another).  The thread is
not daemonic: a process that exits while descriptors it sent are pending waits
until they are collected or expire, so a Connection sent just before the
sender exits still arrives.  A forked child drops its copies of the pending
duplicates: they are its parent's to hand out.
"""

from __future__ import annotations

import array
import hmac
import os
import socket
import sys
import threading
import time

from procframe._core import osutil
from procframe._core.errors import AuthenticationError
from procframe._core.fdwait import wait_readable

HOLD_TIMEOUT = 60.0
"""Seconds a descriptor pickled for a running process is held for it; closed after that."""
SERVE_TIMEOUT = 5.0
"""Seconds the serving thread gives one receiver to complete its request."""
COLLECT_TIMEOUT = 30.0
"""Seconds a receiver waits for the sender's serving thread."""

_TOKEN_SIZE = 16
_NONCE_SIZE = 32
_MAC_SIZE = 32
_REQUEST = b"procframe-fd-request"
_GRANT = b"procframe-fd-grant"
_GRANTED, _REFUSED, _UNKNOWN = b"G", b"R", b"U"


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), "sha256").digest()


def _authkey() -> bytes:
    from procframe._core.process import current_process

    return bytes(current_process().authkey)


class SharedFds:
    """The picklable stand-in for descriptors held for a running process: ``collect()`` them."""

    __slots__ = ("address", "count", "token")

    def __init__(self, address: bytes | str, token: bytes, count: int) -> None:
        self.address = address
        self.token = token
        self.count = count

    def __reduce__(self) -> tuple[object, ...]:
        return SharedFds, (self.address, self.token, self.count)

    def collect(self) -> list[int]:
        """Ask the sender for the descriptors; they are this process's to close."""
        key = _authkey()
        nonce = os.urandom(_NONCE_SIZE)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(COLLECT_TIMEOUT)
            try:
                sock.connect(self.address)
                challenge = sock.recv(_NONCE_SIZE)
                if len(challenge) != _NONCE_SIZE:
                    raise EOFError
                mac = _mac(key, _REQUEST, challenge, self.token, nonce)
                sock.sendall(self.token + nonce + mac)
                flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
                space = socket.CMSG_SPACE(self.count * array.array("i").itemsize)
                answer, ancillary, _, _ = sock.recvmsg(1 + _MAC_SIZE, space, flags)
            except (OSError, EOFError) as exc:
                raise _gone(exc) from None
        fds = _received_fds(ancillary)
        status, proof = answer[:1], answer[1:]
        expected = _mac(key, _GRANT, challenge, nonce, self.token, status)
        if not hmac.compare_digest(proof, expected) or status != _GRANTED or len(fds) != self.count:
            for fd in fds:
                os.close(fd)
            if not hmac.compare_digest(proof, expected) or status == _REFUSED:
                raise AuthenticationError(
                    "cannot receive the descriptors of a Connection from the process that "
                    "sent it: the two processes do not share an authkey"
                )
            raise _gone(None)
        if not flags:
            for fd in fds:
                os.set_inheritable(fd, False)
        return fds


def _gone(cause: BaseException | None) -> OSError:
    why = f" ({cause})" if cause is not None and str(cause) else ""
    return OSError(
        "cannot receive the descriptors of a Connection: the process that sent it has exited, "
        f"or has handed them out already, or held them longer than {HOLD_TIMEOUT} s{why}"
    )


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


class _Held:
    __slots__ = ("deadline", "fds", "key")

    def __init__(self, fds: list[int], key: bytes, deadline: float) -> None:
        self.fds = fds
        self.key = key
        self.deadline = deadline

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class _Sharer:
    """This process's held descriptors, its listening socket and its serving thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[bytes, _Held] = {}
        self.listener: socket.socket | None = None
        self.address: bytes | str = b""
        self.private_dir: str | None = None
        self.thread: threading.Thread | None = None

    def share(self, fds: list[int]) -> SharedFds:
        duplicates: list[int] = []
        try:
            for fd in fds:
                duplicates.append(os.dup(fd))
            token = os.urandom(_TOKEN_SIZE)
            held = _Held(duplicates, _authkey(), time.monotonic() + HOLD_TIMEOUT)
            with self.lock:
                if self.listener is None:
                    self._listen()
                self.held[token] = held
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._serve, name="procframe-fd-sharer", daemon=False
                    )
                    self.thread.start()
                return SharedFds(self.address, token, len(duplicates))
        except BaseException:
            for fd in duplicates:
                os.close(fd)
            raise

    def _listen(self) -> None:
        if sys.platform.startswith("linux"):
            address: bytes | str = b"\0procframe-fds-" + os.urandom(12).hex().encode()
        else:  # pragma: no cover - platforms without abstract sockets
            import tempfile

            self.private_dir = tempfile.mkdtemp(prefix="procframe-")
            address = os.path.join(self.private_dir, "fds")
        listener = osutil.blocking_socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(address)
            listener.listen(16)
            listener.setblocking(False)  # accept() after poll() must not block
        except BaseException:
            listener.close()
            raise
        self.listener, self.address = listener, address

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.private_dir is not None:  # pragma: no cover - platforms without abstract sockets
            for remove, path in ((os.unlink, str(self.address)), (os.rmdir, self.private_dir)):
                try:
                    remove(path)
                except OSError:
                    pass
            self.private_dir = None

    def _serve(self) -> None:
        try:
            self._serve_until_idle()
        finally:
            with self.lock:
                if self.thread is threading.current_thread():  # ended by an error
                    for held in self.held.values():
                        held.close()
                    self.held.clear()
                    self._stop_listening()
                    self.thread = None

    def _serve_until_idle(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                for token in [t for t, h in self.held.items() if h.deadline <= now]:
                    self.held.pop(token).close()
                if not self.held:
                    self._stop_listening()
                    self.thread = None
                    return
                listener = self.listener
                wait = min(h.deadline for h in self.held.values()) - now
            assert listener is not None
            if not wait_readable([listener.fileno()], wait):
                continue
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            with conn:
                conn.settimeout(SERVE_TIMEOUT)
                try:
                    self._serve_one(conn)
                except OSError:
                    pass  # that receiver went away or stalled: it sees the failure

    def _serve_one(self, conn: socket.socket) -> None:
        challenge = os.urandom(_NONCE_SIZE)
        conn.sendall(challenge)
        request = conn.recv(_TOKEN_SIZE + _NONCE_SIZE + _MAC_SIZE)
        token = request[:_TOKEN_SIZE]
        nonce = request[_TOKEN_SIZE : _TOKEN_SIZE + _NONCE_SIZE]
        mac = request[_TOKEN_SIZE + _NONCE_SIZE :]
        with self.lock:
            held = self.held.get(token)
            key = held.key if held is not None else _authkey()
            authentic = hmac.compare_digest(mac, _mac(key, _REQUEST, challenge, token, nonce))
            if held is not None and authentic:
                del self.held[token]
            else:
                held = None
        status = _GRANTED if held is not None else _UNKNOWN if authentic else _REFUSED
        proof = _mac(key, _GRANT, challenge, nonce, token, status)
        rights = []
        if held is not None:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", held.fds))]
        try:
            conn.sendmsg([status + proof], rights)
        finally:
            if held is not None:
                held.close()

    def forget_in_child(self) -> None:
        """After a fork, in the child: the parent's held descriptors are not ours."""
        self.lock = threading.Lock()
        for held in self.held.values():
            held.close()
        self.held.clear()
        if self.listener is not None:
            self.listener.close()  # our copy only: the parent keeps listening
            self.listener = None
        self.private_dir = None
        self.thread = None


_sharer = _Sharer()
os.register_at_fork(after_in_child=_sharer.forget_in_child)


def share(fds: list[int]) -> SharedFds:
    """Hold duplicates of ``fds`` for whichever process unpickles the returned stand-in."""
    return _sharer.share(fds)


def pending() -> int:
    """How many sets of descriptors this process holds for others (for tests)."""
    with _sharer.lock:
        return len(_sharer.held)

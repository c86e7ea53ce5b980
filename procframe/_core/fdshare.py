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
:data:`HOLD_TIMEOUT` seconds after it was pickled, or at once if the pickling
that made it fails (:func:`release_after`); the serving thread ends as soon as
nothing is pending (the next pickle starts another).  The thread is daemonic:
a process that exits while descriptors it sent are pending gives their
receivers :data:`EXIT_GRACE` seconds to collect them (a receiver that is
reading needs milliseconds), then drops them and exits.  A forked child drops
its copies of the pending duplicates: they are its parent's to hand out.

The thread serves every connected receiver at once, each within
:data:`SERVE_TIMEOUT`, and refuses a process of another user at once
(``SO_PEERCRED``): a client that connects and stays silent delays nobody.
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
EXIT_GRACE = 2.0
"""Seconds an exiting process keeps serving what is pending for receivers that are reading.

A receiver already blocked reading the message collects within milliseconds: from the
sender's ``put`` to the collected descriptor took at most 0.23 s (median 0.05 s) with
two cores ten times oversubscribed, so this leaves a margin of about ten."""
MAX_CLIENTS = 64
"""Receivers served at once; past it, the oldest connection (likely silent) is dropped."""
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
                space = osutil.rights_space(self.count)
                answer, ancillary, _, _ = sock.recvmsg(1 + _MAC_SIZE, space, flags)
            except (OSError, EOFError) as exc:
                raise _gone(exc) from None
        fds = osutil.received_fds(ancillary)
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


class _Held:
    """Duplicates held for one receiver, and which pickling (``serial``, ``thread``) made them."""

    __slots__ = ("deadline", "fds", "key", "serial", "thread")

    def __init__(self, fds: list[int], key: bytes, deadline: float, serial: int) -> None:
        self.fds = fds
        self.key = key
        self.deadline = deadline
        self.serial = serial
        self.thread = threading.get_ident()

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class _Client:
    """A receiver connected to the serving thread: challenged, its request awaited."""

    __slots__ = ("challenge", "deadline", "sock")

    def __init__(self, sock: socket.socket, challenge: bytes, deadline: float) -> None:
        self.sock = sock
        self.challenge = challenge
        self.deadline = deadline


class _Sharer:
    """This process's held descriptors, its listening socket and its serving thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified when a share goes
        self.held: dict[bytes, _Held] = {}
        self.listener: socket.socket | None = None
        self.address: bytes | str = b""
        self.private_dir: str | None = None
        self.wake_read = self.wake_write = -1
        self.thread: threading.Thread | None = None

    def share(self, fds: list[int], serial: int) -> SharedFds:
        duplicates: list[int] = []
        try:
            for fd in fds:
                duplicates.append(os.dup(fd))
            token = os.urandom(_TOKEN_SIZE)
            held = _Held(duplicates, _authkey(), time.monotonic() + HOLD_TIMEOUT, serial)
            with self.lock:
                if self.listener is None:
                    self._listen()
                self.held[token] = held
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._serve, name="procframe-fd-sharer", daemon=True
                    )
                    self.thread.start()
                return SharedFds(self.address, token, len(duplicates))
        except BaseException:
            for fd in duplicates:
                os.close(fd)
            raise

    def release_after(self, serial: int) -> None:
        """Release what this thread shared after ``serial`` (a pickling that failed)."""
        me = threading.get_ident()
        with self.lock:
            for token, held in list(self.held.items()):
                if held.serial > serial and held.thread == me:
                    self.held.pop(token).close()
            self.changed.notify_all()
        self._wake()

    def finish_at_exit(self) -> None:
        """At exit: give receivers :data:`EXIT_GRACE` seconds to collect what is pending, then
        release it all and stop serving."""
        deadline = time.monotonic() + EXIT_GRACE
        with self.lock:
            while self.held and (remaining := deadline - time.monotonic()) > 0:
                self.changed.wait(remaining)
            for held in self.held.values():
                held.close()
            self.held.clear()
            thread = self.thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(EXIT_GRACE)  # it stops listening as soon as it wakes

    def _wake(self) -> None:
        with self.lock:
            if self.wake_write >= 0:
                try:
                    os.write(self.wake_write, b"\0")
                except BlockingIOError:  # woken already
                    pass

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
            self.wake_read, self.wake_write = os.pipe()
            os.set_blocking(self.wake_write, False)
        except BaseException:
            listener.close()
            raise
        self.listener, self.address = listener, address

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        for fd in (self.wake_read, self.wake_write):
            if fd >= 0:
                os.close(fd)
        self.wake_read = self.wake_write = -1
        if self.private_dir is not None:  # pragma: no cover - platforms without abstract sockets
            for remove, path in ((os.unlink, str(self.address)), (os.rmdir, self.private_dir)):
                try:
                    remove(path)
                except OSError:
                    pass
            self.private_dir = None

    def _serve(self) -> None:
        clients: dict[int, _Client] = {}
        try:
            self._serve_until_idle(clients)
        finally:
            for client in clients.values():
                client.sock.close()
            with self.lock:
                if self.thread is threading.current_thread():  # ended by an error
                    for held in self.held.values():
                        held.close()
                    self.held.clear()
                    self._stop_listening()
                    self.thread = None
                    self.changed.notify_all()

    def _serve_until_idle(self, clients: dict[int, _Client]) -> None:
        """Serve every connected receiver at once, each within its own deadline, so that
        one that stays silent delays nobody; return once nothing is held."""
        while True:
            with self.lock:
                now = time.monotonic()
                for token in [t for t, h in self.held.items() if h.deadline <= now]:
                    self.held.pop(token).close()
                    self.changed.notify_all()
                if not self.held:
                    self._stop_listening()
                    self.thread = None
                    return
                listener, wake_read = self.listener, self.wake_read
                wake_at = min(h.deadline for h in self.held.values())
            assert listener is not None
            for client in clients.values():
                wake_at = min(wake_at, client.deadline)
            listening = listener.fileno()
            for fd in wait_readable([listening, wake_read, *clients], wake_at - now):
                if fd == listening:
                    self._accept(listener, clients)
                elif fd == wake_read:
                    os.read(wake_read, 64)
                elif fd in clients:
                    client = clients.pop(fd)
                    with client.sock:
                        try:
                            self._answer(client)
                        except OSError:
                            pass  # that receiver went away: it sees the failure
            now = time.monotonic()
            for fd in [fd for fd, client in clients.items() if client.deadline <= now]:
                clients.pop(fd).sock.close()  # too slow: it sees the failure

    def _accept(self, listener: socket.socket, clients: dict[int, _Client]) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:  # out of descriptors: that receiver will see its failure
            return
        if not osutil.peer_is_same_user(sock):  # refused at once: only our user may ask
            sock.close()
            return
        if len(clients) >= MAX_CLIENTS:  # the oldest is the likeliest to be silent
            clients.pop(next(iter(clients))).sock.close()
        sock.setblocking(False)
        challenge = os.urandom(_NONCE_SIZE)
        try:
            sock.send(challenge)
        except OSError:
            sock.close()
            return
        clients[sock.fileno()] = _Client(sock, challenge, time.monotonic() + SERVE_TIMEOUT)

    def _answer(self, client: _Client) -> None:
        challenge = client.challenge
        request = client.sock.recv(_TOKEN_SIZE + _NONCE_SIZE + _MAC_SIZE)
        token = request[:_TOKEN_SIZE]
        nonce = request[_TOKEN_SIZE : _TOKEN_SIZE + _NONCE_SIZE]
        mac = request[_TOKEN_SIZE + _NONCE_SIZE :]
        with self.lock:
            held = self.held.get(token)
            key = held.key if held is not None else _authkey()
            authentic = hmac.compare_digest(mac, _mac(key, _REQUEST, challenge, token, nonce))
            if held is not None and authentic:
                del self.held[token]
                self.changed.notify_all()
            else:
                held = None
        status = _GRANTED if held is not None else _UNKNOWN if authentic else _REFUSED
        proof = _mac(key, _GRANT, challenge, nonce, token, status)
        rights = []
        if held is not None:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", held.fds))]
        try:
            client.sock.sendmsg([status + proof], rights)
        finally:
            if held is not None:
                held.close()

    def forget_in_child(self) -> None:
        """After a fork, in the child: the parent's held descriptors are not ours."""
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        for held in self.held.values():
            held.close()
        self.held.clear()
        if self.listener is not None:
            self.listener.close()  # our copy only: the parent keeps listening
            self.listener = None
        for fd in (self.wake_read, self.wake_write):
            if fd >= 0:
                os.close(fd)
        self.wake_read = self.wake_write = -1
        self.private_dir = None
        self.thread = None


_sharer = _Sharer()
os.register_at_fork(after_in_child=_sharer.forget_in_child)


def share(fds: list[int], serial: int) -> SharedFds:
    """Hold duplicates of ``fds`` for whichever process unpickles the returned stand-in.

    ``serial`` numbers the share (:mod:`procframe._core.reduction` counts them), for
    :func:`release_after`.  Until collected, this process holds them at exit for at most
    :data:`EXIT_GRACE` seconds.
    """
    shared = _sharer.share(fds, serial)
    from procframe._core.process import on_exit_after_children

    on_exit_after_children(_finish_at_exit)
    return shared


def release_after(serial: int) -> None:
    """Release at once what the calling thread shared after share number ``serial`` (the
    shares of a pickling that failed: nobody will ever collect them)."""
    _sharer.release_after(serial)


def _finish_at_exit() -> None:
    _sharer.finish_at_exit()


def pending() -> int:
    """How many sets of descriptors this process holds for others (for tests)."""
    with _sharer.lock:
        return len(_sharer.held)

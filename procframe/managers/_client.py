"""A process's side of its managers: one :class:`RemoteServer` per server address.

A RemoteServer holds a connection per thread (a server thread per connection owns
what its client thread acquired, as a ``threading.RLock`` wants), the
process's *session* (how the server counts this process's holds), and how
many live proxies this process has of each object: the server hears only when
that number leaves or reaches zero.  A proxy that dies only queues its
release (a finalizer may run in the middle of another call); the next request
on any connection carries the queued releases just before it, so dropping a
proxy costs no round trip of its own.

A forked child starts a new session and tells the server, with the first
message of its first connection, which objects it inherited; the parent waits
for that before it goes on (only if it holds proxies), so that it cannot free
an object the child is about to use.
"""

from __future__ import annotations

import os
import threading
from collections import deque

from procframe._core.errors import AuthenticationError, SerializerError
from procframe._core.fdwait import wait_readable
from procframe.managers import _protocol as protocol
from procframe.managers._errors import ManagerGoneError, RemoteError
from procframe.managers._stream import Stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe.managers._server import Server

_remote_servers: dict[tuple[Any, bytes, str], RemoteServer] = {}
"""By (address, authkey, serializer)."""
_first_remote_servers: dict[Any, RemoteServer] = {}
"""By address: the first one that connected to it (what an unpickled proxy uses)."""
_remote_servers_lock = threading.Lock()
_hosted: Server | None = None
"""The server running in this process, if any: its own proxies call it directly."""
pickling = threading.local()
"""``address``: the server whose request this thread is pickling: a proxy of that server in
it needs no transit hold (the server holds it as it unpickles the request)."""


def new_session() -> str:
    return f"{os.getpid()}-{os.urandom(6).hex()}"


class RemoteServer:
    """The manager server at ``address``, as this process reaches it: its connections, and
    the holds of this process's proxies of its objects."""

    def __init__(self, address: Any, authkey: bytes, serializer: str = protocol.PICKLE) -> None:
        self.address = address
        self.authkey = bytes(authkey)
        self.serializer = serializer
        self.dumps, self.loads = protocol.codec(serializer)
        self.local = threading.local()
        self.session = new_session()
        self.holdings: dict[int, int] = {}
        """Live proxies in this process, by object id."""
        self.dropped: deque[int] = deque()
        """Ids of proxies that died and are not yet counted out of ``holdings``."""
        self.pending: list[tuple[int, int, int]] = []
        """Changes the server has not heard yet: (RELEASE, id, 0) or (UNTRANSIT, id, transit)."""
        self.inherited: list[int] = []
        """After a fork: the ids this new session must tell the server it holds."""
        self._lock = threading.Lock()
        self._anchor: Stream | None = None
        self._dead: str | None = None
        """Why the server was lost, once it was: a server at the same address later is another
        one, whose objects the proxies made through this one must never reach.  Only the
        text is kept: an exception would keep its traceback's frames, and the objects in
        them (the manager, its proxies), alive for as long as a proxy keeps this object."""

    # -- connections -----------------------------------------------------------

    def stream(self) -> Stream:
        """This thread's connection to the server, opened on first use."""
        try:
            return self.local.stream  # type: ignore[no-any-return]
        except AttributeError:
            return self._connect()

    def _connect(self) -> Stream:
        if self._dead is not None:
            raise ManagerGoneError(self._dead)
        stream = self._open()
        self.local.stream = stream
        _first_remote_servers.setdefault(self.address, self)  # it works: unpickled proxies use it
        if self._anchor is None:
            # The session lives while one of its connections is open: keep the first one
            # open after its thread ends, for as long as this process lives.
            self._anchor = stream
        return stream

    def _open(self) -> Stream:
        """A new authenticated connection, introduced to the server with this session."""
        from procframe.posix.connection import Client

        try:
            connection = Client(self.address, authkey=self.authkey)
        except (OSError, EOFError) as exc:
            raise self.gone(exc, "cannot reach") from exc
        except AuthenticationError as exc:
            if isinstance(exc.__context__, (OSError, EOFError)):  # cut off mid-handshake
                raise self.gone(exc, "cannot reach") from exc
            raise
        with self._lock:
            inherited, self.inherited = self.inherited, []
        stream = Stream(connection)
        hello = (self.session, inherited, self.serializer)
        stream.send(self.dumps((protocol.CONTROL, protocol.HELLO, hello, {})))
        return stream

    def abandon(self, broken: bool) -> None:
        """Close this thread's connection: it broke (``broken``), or a call was interrupted.

        Closing it tells the server that the interrupted call's caller is gone.
        The session must outlive it: an interrupted anchor is replaced first.
        """
        stream: Stream | None = getattr(self.local, "stream", None)
        if stream is None:
            return
        del self.local.stream
        if stream is self._anchor:
            self._anchor = None
            if not broken:
                try:
                    replacement = self._open()
                    replacement.send(self.dumps((protocol.CONTROL, protocol.PING, (), {})))
                    replacement.recv()  # the server counted it in the session
                except Exception:
                    pass
                else:
                    self._anchor = self.local.stream = replacement
        stream.close()

    def request(self, ident: int, name: str, args: Any = (), kwds: Any = None) -> tuple[int, Any]:
        """Send one request on this thread's connection and return the answer (kind, payload).

        Queued hold changes go just before it, on the same connection.
        """
        stream = self.stream()
        pickling.address = self.address
        try:
            data = self.dumps((ident, name, args, kwds or {}))
        finally:
            pickling.address = None
        changes = self._take_changes() if self.dropped or self.pending else None
        try:
            if changes:
                stream.send(self.dumps((protocol.CONTROL, protocol.REFS, (changes,), {})))
                changes = None
            stream.send(data)
            reply = stream.recv()
        except BaseException as exc:
            if changes:  # not sent (whole): the next request sends them
                with self._lock:
                    self.pending[:0] = changes
            broken = isinstance(exc, (OSError, EOFError))
            self.abandon(broken)  # half a conversation: the connection is out of step
            if broken:
                raise self.gone(exc) from exc
            raise
        try:
            answer = self.loads(reply)
        except Exception as exc:
            raise RemoteError(
                f"the manager's answer to {name}() cannot be read ({self.serializer}): {exc!r}"
            ) from exc
        if answer[0] == protocol.MISMATCH:
            self.abandon(broken=True)
            raise SerializerError(answer[1])
        return answer  # type: ignore[no-any-return]

    def control(self, name: str, *args: Any) -> Any:
        """Run a server operation; its result, or ``RemoteError``."""
        kind, payload = self.request(protocol.CONTROL, name, args)
        if kind == protocol.RETURN:
            return payload
        raise RemoteError(payload)

    def gone(self, exc: BaseException, what: str = "lost the connection to") -> ManagerGoneError:
        """The error for a lost server; from now on this object only raises such errors."""
        self._dead = (
            f"{what} the manager at {self.address!r} (shut down, or its process died): {exc!r}"
        )
        _forget(self)
        return ManagerGoneError(self._dead)

    # -- holds -----------------------------------------------------------------

    def adopt(self, ident: int) -> None:
        """A new proxy of ``ident`` for which the server already counted a hold of this session."""
        with self._lock:
            self._settle()
            count = self.holdings.get(ident, 0)
            self.holdings[ident] = count + 1
            if count:
                self.pending.append((protocol.RELEASE, ident, 0))

    def acquire(self, ident: int, transit: int | None) -> None:
        """A new proxy of ``ident`` (unpickled, or made from a token); ``transit``: the id of
        the transit hold taken for it when it was pickled, if one was."""
        with self._lock:
            self._settle()
            count = self.holdings.get(ident, 0)
            if count:
                self.holdings[ident] = count + 1
                if transit is not None:
                    self.pending.append((protocol.UNTRANSIT, ident, transit))
                return
        self.control("hold", ident, transit)
        self.adopt(ident)  # another thread may have taken a hold meanwhile: adopt evens it out

    def transit(self, ident: int) -> int:
        """A proxy of ``ident`` is being pickled to travel: hold it until it arrives; the id
        of that hold."""
        return self.control("transit", ident)  # type: ignore[no-any-return]

    def drop(self, ident: int) -> None:
        """A proxy of ``ident`` died (a finalizer: no lock, no I/O here)."""
        self.dropped.append(ident)

    def _settle(self) -> None:
        """Count the dropped proxies out of ``holdings`` (lock held)."""
        dropped = self.dropped
        while dropped:
            ident = dropped.popleft()
            count = self.holdings.get(ident, 0) - 1
            if count > 0:
                self.holdings[ident] = count
            else:
                self.holdings.pop(ident, None)
                self.pending.append((protocol.RELEASE, ident, 0))

    def _take_changes(self) -> list[tuple[int, int, int]]:
        """The hold changes the server has not heard yet, now taken off the queue."""
        with self._lock:
            self._settle()
            changes = self.pending[:]
            del self.pending[: len(changes)]
        return changes

    def after_fork(self) -> None:
        """In a forked child: a new session that holds what the parent's proxies held."""
        for stream in self.local.__dict__.values():
            stream.close()
        self.local = threading.local()
        if self._anchor is not None:
            self._anchor.close()
        self._anchor = None
        self._lock = threading.Lock()
        self.session = new_session()
        self._settle()
        self.pending = []
        self.inherited = list(self.holdings)


class LocalServer:
    """The manager server running in this process, as its own proxies reach it: direct calls."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.address = server.address
        self.authkey = server.authkey

    def hold(self, ident: int, transit: int | None) -> None:
        from procframe.managers._server import SERVER_SESSION

        self.server._hold(SERVER_SESSION, ident, transit)

    def drop(self, ident: int) -> None:
        self.server.local_drops.append(ident)


def server_for(
    address: Any, authkey: bytes | None, serializer: str = protocol.PICKLE
) -> RemoteServer | LocalServer:
    """The manager server at ``address``, reached with ``authkey``, as this process sees it.

    Without an authkey (a proxy that was unpickled), the RemoteServer this process
    already has for that address, else one with this process's authkey.
    """
    address = protocol.address_key(address)
    hosted = _hosted
    if hosted is not None and protocol.address_key(hosted.address) == address:
        return LocalServer(hosted)
    if authkey is None:
        remote = _first_remote_servers.get(address)
        if remote is not None and remote.serializer == serializer:
            return remote
        from procframe._core.process import current_process

        authkey = current_process().authkey
    key = (address, bytes(authkey), serializer)
    remote = _remote_servers.get(key)
    if remote is None:
        with _remote_servers_lock:
            remote = _remote_servers.get(key)
            if remote is None:
                remote = _remote_servers[key] = RemoteServer(address, key[1], serializer)
    return remote


def _forget(remote: RemoteServer) -> None:
    """Make new proxies and managers of ``remote``'s address use a new RemoteServer."""
    with _remote_servers_lock:
        key = (remote.address, remote.authkey, remote.serializer)
        if _remote_servers.get(key) is remote:
            del _remote_servers[key]
        if _first_remote_servers.get(remote.address) is remote:
            del _first_remote_servers[remote.address]


def forget_remote_servers(address: Any) -> None:
    """Drop the RemoteServers of ``address`` (its manager shut down)."""
    address = protocol.address_key(address)
    with _remote_servers_lock:
        for key in [key for key in _remote_servers if key[0] == address]:
            del _remote_servers[key]
        _first_remote_servers.pop(address, None)


def host_server(server: Server | None) -> None:
    """Record the server running in this process (``None`` once it stopped)."""
    global _hosted
    _hosted = server


FORK_REGISTRATION_TIMEOUT = 5.0
"""Seconds a forking parent waits for its child to tell the server what it inherited."""

_forking = threading.local()
"""``gate``: in a thread that forks while this process holds proxies, a pipe whose write
end the child closes once the server counts what the child inherited."""


def _before_fork() -> None:
    holding = any(remote.holdings for remote in list(_remote_servers.values()))
    _forking.gate = os.pipe() if holding else None


def _after_fork_in_parent() -> None:
    """Wait for the child to hold what it inherited: a release this process sends from
    now on must not free an object the child still uses."""
    gate = getattr(_forking, "gate", None)
    _forking.gate = None
    if gate is None:
        return
    read_end, write_end = gate
    os.close(write_end)
    try:
        wait_readable([read_end], FORK_REGISTRATION_TIMEOUT)
    finally:
        os.close(read_end)


def _after_fork_in_child() -> None:
    global _remote_servers_lock, _hosted
    _remote_servers_lock = threading.Lock()
    _hosted = None  # a process forked by the server (a pool's worker) is a client of it
    gate = getattr(_forking, "gate", None)
    _forking.gate = None
    if gate is not None:
        os.close(gate[0])
    try:
        for remote in list(_remote_servers.values()):
            remote.after_fork()
            if remote.inherited:
                try:
                    remote.control(protocol.PING)  # the first connection's hello lists them
                except Exception:
                    pass
    finally:
        if gate is not None:
            os.close(gate[1])


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)

"""The manager's server: holds the shared objects and runs their methods for clients.

An authenticated connection costs no thread while its client is idle: one
loop thread reads every idle connection (:mod:`._loop`), and a bounded pool
of threads (:mod:`._workers`) runs whole requests, each connection's in
order; a blocking method (``Lock.acquire``, ``Queue.get``) steps aside from
the pool and blocks only its own caller.  Objects are counted per client
*session* (one per client process): an object lives while some session, or
a proxy in transit between processes, holds it.  A session ends when the
last of its connections closes, and a watcher thread notices a closed
connection even while a method runs for it, so the objects of a client that
was killed mid-call are freed all the same.
"""

from __future__ import annotations

import itertools
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque, namedtuple
from collections.abc import Callable
from pickle import HIGHEST_PROTOCOL, dumps, loads

from procframe._core.errors import AuthenticationError
from procframe.managers import _protocol as protocol
from procframe.managers._framing import Framer
from procframe.managers._loop import RequestLoop
from procframe.managers._ownership import owned_by_callers
from procframe.managers._ownership import serving as _serving
from procframe.managers._workers import WorkerPool
from procframe.posix.connection import Connection, Listener

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GET_VALUE = "#GETVALUE"
"""The method name of ``BaseProxy._getvalue()``: the object itself, pickled."""
_ALWAYS: dict[str, Callable[[Any], str]] = {"__repr__": repr, "__str__": str}
"""Methods every object answers, exposed or not (``str(proxy)`` prints the object)."""
ACCEPT_RETRY = 0.05
"""Seconds the server waits after a failed accept() (out of descriptors, say) before the next."""
LINGER_MS = 2
"""Milliseconds a worker waits for a client's next request before it gives the connection
back to the loop: a client's successive calls then cost no hand-over between threads."""
_LINGER_TIMEVAL = struct.pack("@ll", 0, LINGER_MS * 1000)
SERVER_SESSION = "server"
"""The session of the proxies that live in the server process itself (nested in objects)."""

ITERATOR = "Iterator"
"""The typeid of the iterators a method returns by proxy (a dict proxy's ``__iter__``): a
server whose registry lacks it registers it with :data:`ITERATOR_METHODS` exposed."""
ITERATOR_METHODS = ("__next__", "send", "throw", "close")

_VIEW_TYPES: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
"""Dict views cannot be pickled: a method returning one answers a list (as multiprocessing)."""


def linger_on(fd: int) -> bool:
    """Make a read of socket ``fd`` that finds nothing wait :data:`LINGER_MS` at most (it
    then raises ``BlockingIOError``); False where that cannot be set."""
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _LINGER_TIMEVAL)
    except OSError:
        return False
    finally:
        sock.detach()
    return True


def hangup_events() -> int:
    """The ``poll()`` events of a client that hung up.

    ``POLLRDHUP`` (Linux) is a peer that shut its end, even over TCP; where it is
    missing, ``POLLHUP`` alone, which a closed Unix socket raises too.
    """
    return select.POLLHUP | getattr(select, "POLLRDHUP", 0)


def hangup_watcher() -> Any:
    """An ``epoll`` that reports only hang-ups (Linux); None where there is none."""
    if not all(hasattr(select, name) for name in ("epoll", "EPOLLRDHUP", "POLLRDHUP")):
        return None
    return select.epoll()


def caller_gone() -> bool:
    """True if the client whose request this thread runs has hung up.

    Asks the socket itself, not only the watcher: the watcher's thread may not
    have run yet.
    """
    link = getattr(_serving, "link", None)
    if link is None:
        return False
    return not link.open or bool(link.hangup.poll(0))


# collections' namedtuple, not typing's NamedTuple: a first Manager() must not import typing.
Registration = namedtuple("Registration", "factory exposed method_to_typeid proxytype")
Registration.__doc__ = """How the server makes and exposes objects of one typeid: its factory,
exposed method names (or None), method_to_typeid (or None) and proxy type."""

Entry = namedtuple("Entry", "obj exposed method_to_typeid typeid")
Entry.__doc__ = """An object the server holds: the object, the frozenset of names it exposes,
method_to_typeid (or None) and its typeid."""


def public_methods(obj: Any) -> tuple[str, ...]:
    """Names of the callable attributes of ``obj`` that do not start with ``_``."""
    return tuple(name for name in dir(obj) if name[0] != "_" and callable(getattr(obj, name, None)))


class _Link:
    """One client connection, counted in its session while it is open."""

    __slots__ = ("connection", "framer", "hangup", "lingers", "open", "refusal", "session")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.framer = Framer()
        """Its requests, as their bytes arrive (read by the loop, run by a worker)."""
        self.hangup = select.poll()
        """Polls the connection for the client's hang-up (see :func:`caller_gone`)."""
        self.hangup.register(connection.fileno(), hangup_events())
        self.lingers = linger_on(connection.fileno())
        """A worker may wait a little for the client's next request (see _run_requests)."""
        self.session: Any = None
        self.open = True
        self.refusal: str | None = None
        """Why every request of this link is refused (its client's serializer is not ours)."""


class Server:
    """Serves the objects of ``registry`` at ``address`` to clients that know ``authkey``."""

    def __init__(
        self, registry: dict[str, Registration], address: Any, authkey: bytes, serializer: str
    ) -> None:
        self.dumps, self.loads = protocol.codec(serializer)
        self.serializer = serializer
        self._dumps_answer = self.dumps
        if serializer == protocol.XMLRPCLIB:
            from procframe.managers import _xmlrpc

            self._dumps_answer = _xmlrpc.dumps_answer
        self.registry = {
            typeid: registration._replace(factory=owned_by_callers(registration.factory))
            for typeid, registration in picklable_registry(registry).items()
        }
        self.registry.setdefault(ITERATOR, Registration(None, ITERATOR_METHODS, None, None))
        self.authkey = bytes(authkey)
        self.listener = Listener(address, backlog=128, authkey=self.authkey)
        self.address = self.listener.address
        self.objects: dict[int, Entry] = {}
        self._holds: dict[int, dict[Any, int]] = {}
        self._keys_of: dict[Any, set[tuple[Any, int]]] = {}
        """(key, ident) of every hold, by the session that owns it ("transit" for transits)."""
        self._transits = itertools.count(1)
        self._session_links: dict[Any, int] = {}
        self._links: dict[int, _Link] = {}  # by descriptor, while the watcher watches it
        self._lock = threading.Lock()
        self._idents = itertools.count(1)
        self._stopping = threading.Event()
        self.workers = WorkerPool()
        self._loop = RequestLoop(self.workers, self._run_requests, self._drop_link)
        self._watch = hangup_watcher()
        """Where it is None, a hang-up is noticed by the client's own thread, once the method
        it runs returns, or by the method itself (see :func:`caller_gone`)."""
        self.local_drops: deque[int] = deque()
        """Proxies of this server that died in this process (see ``_client.LocalServer``)."""
        self._controls: dict[str, Callable[..., Any]] = {
            "create": self._create,
            "hold": self._hold,
            "transit": self._transit,
            "number_of_objects": self._number_of_objects,
            "debug_info": self._debug_info,
            "exposed": self._exposed,
            protocol.PING: lambda session: None,
            "shutdown": self._shutdown,
        }

    # -- running -----------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until a client asks for shutdown (or Ctrl-C)."""
        from procframe.managers import _client

        _client.host_server(self)
        self._loop.start()
        if self._watch is not None:
            threading.Thread(
                target=self._watch_hangups, name="manager-watcher", daemon=True
            ).start()
        try:
            while not self._stopping.is_set():
                try:
                    # Every client's handshake goes on in here at once: none waits for another.
                    connection = self.listener.accept()
                except AuthenticationError:  # that client failed: the others are served
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    # Out of descriptors, a peer that reset before accept: not the server's end.
                    time.sleep(ACCEPT_RETRY)
                    continue
                self._serve_client(connection)
        except KeyboardInterrupt:
            pass
        finally:
            self._stopping.set()
            self.listener.close()
            self._loop.stop()
            self.workers.stop()
            _client.host_server(None)

    def _shutdown(self, session: Any) -> None:
        # The thread that answers this request closes the listener once the answer is out
        # (see _run_requests): the accepting thread wakes, and serve_forever() returns.
        self._stopping.set()

    # -- one client ------------------------------------------------------------

    def _serve_client(self, connection: Connection) -> None:
        """An authenticated client: its requests are read by the loop from now on."""
        self._loop.adopt(_Link(connection))

    def _drop_link(self, link: _Link) -> None:
        """``link``'s client hung up, or broke the protocol: end it, close its connection."""
        self._end_link(link)
        link.connection.close()

    def _run_requests(self, link: _Link) -> None:
        """Run the requests that arrived whole on ``link`` (in a worker), then give it back.

        A client that sends its next request within :data:`LINGER_MS` of an answer
        (a loop of calls) is served on, without going through the loop again.
        """
        messages = link.framer.messages
        framer, fd, workers = link.framer, link.connection.fileno(), self.workers
        _serving.link = link
        try:
            while not self._stopping.is_set():
                if not messages:
                    if not link.lingers or workers.backlogged():
                        break
                    try:  # waits LINGER_MS at most (the socket's receive timeout)
                        if not framer.read_from(fd):
                            raise framer.eof_error()
                    except BlockingIOError:
                        break
                    continue
                message = messages.popleft()
                if link.session is None:
                    self._greet(link, message)
                else:
                    self._answer(link, message)
        except Exception:  # the client hung up, or sent what is not a request: drop it
            self._drop_link(link)
            return
        finally:
            _serving.link = None
        if self._stopping.is_set():
            self._drop_link(link)
            self.listener.close()  # wakes the accepting thread (the answer went out first)
        elif link.open:
            self._loop.give_back(link)
        else:  # the watcher saw its client hang up while a method ran
            self._drop_link(link)

    def _greet(self, link: _Link, message: Any) -> None:
        """The first message of a connection: the hello that names its session."""
        first = self.loads(message)
        if not (
            isinstance(first, (tuple, list)) and len(first) == 4 and first[1] == protocol.HELLO
        ):
            raise ValueError("a manager connection must open with a hello")
        session, held, *serializer = first[2]
        self._hello(link, session, held)
        if serializer and serializer[0] != self.serializer:
            link.refusal = protocol.mismatch(self.serializer, serializer[0], self.address)

    def _answer(self, link: _Link, message: Any) -> None:
        """Run one request of ``link``'s client and send the answer (nothing for a one-way)."""
        session = link.session
        write = link.connection._write_message
        dumps_answer = self._dumps_answer
        if link.refusal is not None:
            write(dumps_answer((protocol.MISMATCH, link.refusal)))
            return
        try:
            request = self.loads(message)
        except Exception as exc:  # a class the server cannot import, say
            failure = f"the server cannot read the request ({self.serializer}): {exc!r}"
            write(dumps_answer((protocol.FAILED, failure)))
            return
        try:
            ident, name, args, kwds = request
        except (TypeError, ValueError):
            write(dumps_answer((protocol.FAILED, f"malformed request {request!r:.200}")))
            return
        if ident >= 0:
            entry = self.objects.get(ident)
            if entry is None:
                answer: tuple[int, Any] = (
                    protocol.FAILED,
                    f"no shared object with id {ident}: it was freed",
                )
            else:
                answer = self.call(entry, session, ident, name, args, kwds)
        elif name in protocol.ONE_WAY:
            if name == protocol.REFS:
                self._refs(session, *args)
            return
        else:
            answer = self._control(session, name, args, kwds)
        _serving.session = session  # a proxy in the answer is held for this session
        try:
            data = dumps_answer(answer)
        except Exception as exc:  # the method's result (its exception was checked)
            failure = f"the result of {name}() cannot be sent ({self.serializer}): {exc!r}"
            data = dumps_answer((protocol.FAILED, failure))
        finally:
            _serving.session = None
        write(data)
        if self.local_drops:
            self.settle_local_drops()

    def call(
        self, entry: Entry, session: Any, ident: int, name: str, args: Any, kwds: Any
    ) -> tuple[int, Any]:
        """Run ``name`` on the object of ``entry``: the answer to send."""
        obj, exposed, method_to_typeid, typeid = entry
        if name not in exposed:
            if name == GET_VALUE:
                return (protocol.RETURN, obj)
            if name in _ALWAYS:
                return (protocol.RETURN, _ALWAYS[name](obj))
            return (
                protocol.FAILED,
                f"method {name!r} of the {typeid!r} object is not exposed "
                f"(exposed: {', '.join(sorted(exposed))})",
            )
        try:
            result = getattr(obj, name)(*args, **kwds)
        except BaseException as exc:  # the method's own error goes to its caller only
            text = traceback.format_exc()
            try:
                loads(dumps(exc, HIGHEST_PROTOCOL))
            except Exception as failure:
                return (protocol.FAILED, f"{text}(the exception cannot be pickled: {failure!r})\n")
            return (protocol.RAISED, (exc, text))
        if method_to_typeid is not None and name in method_to_typeid:
            try:
                return (protocol.PROXY, self._register(method_to_typeid[name], result, session))
            except ValueError as exc:  # an unregistered typeid
                return (protocol.FAILED, str(exc))
        if type(result) in _VIEW_TYPES:
            result = list(result)
        return (protocol.RETURN, result)

    def _control(self, session: Any, name: str, args: Any, kwds: Any) -> tuple[int, Any]:
        operation = self._controls.get(name)
        if operation is None:
            return (protocol.FAILED, f"unknown manager operation {name!r}")
        try:
            return (protocol.RETURN, operation(session, *args, **kwds))
        except BaseException:  # a factory's SystemExit too: that caller's failure only
            return (protocol.FAILED, traceback.format_exc())

    # -- objects and holds -------------------------------------------------------

    def _create(self, session: Any, typeid: str, args: Any, kwds: Any) -> tuple[Any, ...]:
        registration = self.registry.get(typeid)
        if registration is None or registration.factory is None:
            raise ValueError(f"the manager cannot create objects of typeid {typeid!r}")
        made = self._register(typeid, registration.factory(*args, **kwds), session)
        # The caller makes the proxy its own registry names: a class defined in a script's
        # main module is named differently here, and a client of another script lacks it.
        return (*made[:3], None)

    def _register(self, typeid: str, obj: Any, session: Any) -> tuple[Any, ...]:
        """Keep ``obj`` as a new object held once by ``session``.

        Returns (typeid, ident, exposed, proxytype): what a client makes a proxy of.
        """
        registration = self.registry.get(typeid)
        if registration is None:
            raise ValueError(f"no typeid {typeid!r} is registered with the manager")
        exposed = registration.exposed
        if exposed is None:
            exposed = getattr(registration.proxytype, "_exposed_", None) or public_methods(obj)
        method_to_typeid = registration.method_to_typeid
        if method_to_typeid is None:
            method_to_typeid = getattr(registration.proxytype, "_method_to_typeid_", None)
        ident = next(self._idents)
        entry = Entry(obj, frozenset(exposed), method_to_typeid or None, typeid)
        with self._lock:
            self.objects[ident] = entry
            self._holds[ident] = {}
            self._add_hold(session, ident, self._holds[ident])
        # A class travels only in a pickle (the client's registry or AutoProxy otherwise).
        proxytype = registration.proxytype if self.serializer != protocol.XMLRPCLIB else None
        return (typeid, ident, tuple(exposed), proxytype)

    def _hold(self, session: Any, ident: int, transit: int | None) -> None:
        """``session`` holds ``ident`` once more, taking over transit hold ``transit`` if any."""
        freed = None
        with self._lock:
            holds = self._holds.get(ident)
            if holds is None:
                raise LookupError(f"no shared object with id {ident}: it was freed")
            self._add_hold(session, ident, holds)
            if transit is not None:
                freed = self._change(ident, holds, ("transit", transit), -1)
        del freed

    def _transit(self, session: Any, ident: int) -> int:
        """A proxy of ``ident`` is pickled to travel: hold it until it is unpickled; the id
        of that hold, which travels with it.  It outlives its sender (a child may send a
        proxy and exit before it arrives)."""
        transit = next(self._transits)
        self._hold(("transit", transit), ident, None)
        return transit

    def _add_hold(self, key: Any, ident: int, holds: dict[Any, int]) -> None:
        """One more hold of ``ident`` by ``key`` (a session, or a transit); lock held.

        A session that ended already (its client died while this request ran) holds
        nothing: the hold is not recorded, and the object goes with the caller.
        """
        owner = _owner(key)
        if owner not in self._session_links and owner not in (SERVER_SESSION, "transit"):
            if not holds:
                del self._holds[ident]
                self.objects.pop(ident, None)
            return
        holds[key] = holds.get(key, 0) + 1
        self._keys_of.setdefault(owner, set()).add((key, ident))

    def hold_for_reply(self, ident: int) -> bool:
        """A proxy of ``ident`` is in the answer to the current request: its session holds it.

        False if no request is being answered in this thread.
        """
        session = getattr(_serving, "session", None)
        if session is None:
            return False
        self._hold(session, ident, None)
        return True

    def _refs(self, session: Any, changes: list[tuple[int, int, int]]) -> None:
        freed = []
        with self._lock:
            for change, ident, transit in changes:
                holds = self._holds.get(ident)
                if holds is None:
                    continue
                key = session if change == protocol.RELEASE else ("transit", transit)
                freed.append(self._change(ident, holds, key, -1))
        del freed  # the objects die here, outside the lock

    def release_local(self, ident: int) -> None:
        """A proxy in this process gave up its hold (the server session's)."""
        with self._lock:
            holds = self._holds.get(ident)
            freed = None if holds is None else self._change(ident, holds, SERVER_SESSION, -1)
        del freed

    def settle_local_drops(self) -> None:
        drops = self.local_drops
        while drops:
            self.release_local(drops.popleft())

    def _change(self, ident: int, holds: dict[Any, int], key: Any, delta: int) -> Any:
        """Add ``delta`` to ``key``'s holds of ``ident``; the object if it is freed (lock held)."""
        if key not in holds:
            return None
        count = holds[key] + delta
        if count > 0:
            holds[key] = count
            return None
        del holds[key]
        keys = self._keys_of.get(_owner(key))
        if keys is not None:
            keys.discard((key, ident))
            if not keys and key != SERVER_SESSION and key not in self._session_links:
                del self._keys_of[_owner(key)]
        if holds:
            return None
        del self._holds[ident]
        return self.objects.pop(ident, None)

    # -- sessions ----------------------------------------------------------------

    def _hello(self, link: _Link, session: Any, held: list[int]) -> None:
        if not isinstance(session, str):
            raise TypeError(f"a session is named by a str, not {type(session).__name__}")
        link.session = session
        with self._lock:
            self._session_links[session] = self._session_links.get(session, 0) + 1
            fd = link.connection.fileno()
            self._links[fd] = link
            if self._watch is not None:
                self._watch.register(fd, select.EPOLLRDHUP | select.EPOLLHUP)
        for ident in held:
            try:
                self._hold(session, ident, None)
            except LookupError:
                pass

    def _end_link(self, link: _Link) -> None:
        """The connection of ``link`` closed; the session ends with its last connection."""
        freed: list[Any] = []
        with self._lock:
            if not link.open:
                return
            link.open = False
            session = link.session
            if session is None:
                return
            fd = link.connection.fileno()
            if self._links.get(fd) is link:
                del self._links[fd]
                if self._watch is not None:
                    try:
                        self._watch.unregister(fd)
                    except (OSError, ValueError):
                        pass
            left = self._session_links.get(session, 1) - 1
            if left:
                self._session_links[session] = left
                return
            self._session_links.pop(session, None)
            for key, ident in list(self._keys_of.get(session, ())):
                holds = self._holds.get(ident)
                if holds is not None and key in holds:
                    freed.append(self._change(ident, holds, key, -holds[key]))
            self._keys_of.pop(session, None)
        del freed

    def _watch_hangups(self) -> None:
        """End the links whose clients hung up, even while a method call occupies their thread."""
        assert self._watch is not None
        probe = select.poll()
        while not self._stopping.is_set():
            try:
                events = self._watch.poll(0.5)
            except OSError:
                return
            for fd, _ in events:
                with self._lock:
                    link = self._links.get(fd)
                if link is None:
                    continue
                # The descriptor may have been closed and reused since poll() answered.
                probe.register(fd, hangup_events())
                try:
                    hung_up = bool(probe.poll(0))
                finally:
                    probe.unregister(fd)
                if hung_up:
                    self._end_link(link)

    # -- introspection -----------------------------------------------------------

    def _exposed(self, session: Any, ident: int) -> list[str]:
        entry = self.objects.get(ident)
        if entry is None:
            raise LookupError(f"no shared object with id {ident}: it was freed")
        return sorted(entry.exposed)

    def _number_of_objects(self, session: Any) -> int:
        return len(self.objects)

    def _debug_info(self, session: Any) -> str:
        with self._lock:
            lines = [
                f"  {ident}: typeid={entry.typeid!r}, holds={self._holds.get(ident)}, "
                f"{str(entry.obj)[:75]}"
                for ident, entry in self.objects.items()
            ]
        return "\n".join(lines)


def picklable_registry(registry: dict[str, Registration]) -> dict[str, Registration]:
    """``registry`` without the proxy types that cannot be pickled by reference (an answer
    names a proxy type; a client makes an AutoProxy where it names none)."""
    return {
        typeid: registration._replace(
            proxytype=registration.proxytype if _picklable(registration.proxytype) else None
        )
        for typeid, registration in registry.items()
    }


def _owner(key: Any) -> Any:
    """Whose hold ``key`` is: a session, or "transit" for every transit hold."""
    return "transit" if isinstance(key, tuple) else key


def _picklable(obj: Any) -> bool:
    try:
        dumps(obj)
    except Exception:
        return False
    return True


def run_server(
    registry: dict[str, Registration],
    address: Any,
    authkey: bytes,
    serializer: str,
    writer: Connection,
    initializer: Any,
    initargs: tuple[Any, ...],
) -> None:
    """The manager process: start the server, report its address on ``writer``, serve.

    Ctrl-C in a terminal reaches the whole process group: the server ignores it
    and goes on serving the processes that were not interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    server = Server(registry, address, authkey, serializer)
    writer.send(server.address)
    writer.close()
    sys.stdout.flush()
    server.serve_forever()

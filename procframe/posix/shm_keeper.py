"""The keeper: the process of a program that holds the shared-memory segments its children create.

A segment's name is attachable while some process holds its memfd and
publishes it.  The creator does both; a creator other than the program's
main process also hands a descriptor of each segment it creates to the
program's keeper before it returns it (:mod:`procframe.posix.shm_handoff`),
so that the creator's end, however it comes, loses nothing.  The keeper
publishes each segment exactly as a creator publishes a chosen name: an abstract Unix
socket named after the segment's name, carrying the keeper's pid, descriptor
and token, found through ``/proc/net/unix`` by any process of the same user
(:mod:`procframe.posix.shm_names`).  Nothing is named in a filesystem.

One keeper per program, at the address :func:`address` derives from the
program's identity (the main process's pid and a random token, inherited by
every process of the program), so only the program's own keeper answers
there.  It is started by the first process that needs it and

* lets a segment go as soon as it is unlinked: ``unlink()`` marks the
  segment and sends :data:`UNLINKED` to the address written in the segment's
  metadata (and a sweep every :data:`SWEEP_EVERY` seconds catches a notice
  that was lost);
* exits when the program's main process exits or is killed (a pidfd of it,
  Linux 5.3; else it polls the process's start time), taking every segment
  it holds with it: nothing outlives the program;
* exits when it has held nothing for :data:`LINGER` seconds, so an idle
  program has no keeper.

Requests are SOCK_SEQPACKET messages, one per connection: :data:`HAND_OFF`
(names, one a line, with their memfds by SCM_RIGHTS; answered :data:`ACK`
once every segment is published, or :data:`REFUSED` and the reason when
one cannot be held; if the answer cannot be delivered, the creator died
before it knew, its create never returned, and the segments are let go),
:data:`LIST` (answered with the names it holds that nobody unlinked),
:data:`UNLINKED` (no answer).
"""

from __future__ import annotations

import os
import select
import socket
import time

from procframe._core import osutil
from procframe.posix import shm_names, shm_segment

HAND_OFF = b"H"
LIST = b"L"
UNLINKED = b"U"
ACK = b"A"
REFUSED = b"E"
MAX_FDS = 250
"""Segments in one hand-off message (SCM_RIGHTS carries at most 253 descriptors)."""
MAX_MESSAGE = 1 << 17
"""Longest request: MAX_FDS names of at most 255 UTF-8 bytes, one a line."""
LINGER = 1.0
"""Seconds a keeper that holds nothing waits for a new segment before it exits."""
SWEEP_EVERY = 2.0
"""Seconds between two looks at the unlinked flags of every segment held."""
WATCH_EVERY = 0.5
"""Seconds between two looks at the main process where there is no pidfd."""
MAX_CLIENTS = 64
"""Connections the keeper keeps open at once; past it, the oldest (likely silent) is dropped."""
LISTENER_FD = 3
MAIN_PIDFD = 4
"""Where the keeper finds its listening socket and the main process's pidfd."""


def address(program: str) -> bytes:
    """The abstract socket address of the keeper of ``program``."""
    return f"\0procframe-shm-keeper/{os.getuid()}/{program}".encode("ascii")


class _Kept:
    """A segment the keeper holds: its memfd and the socket that publishes its name."""

    __slots__ = ("data_len", "fd", "key", "publisher", "token")

    def __init__(self, key: str, fd: int, data_len: int, token: str) -> None:
        self.key = key
        self.fd = fd
        self.data_len = data_len
        self.token = token
        self.publisher: socket.socket | None = None

    def unlinked(self) -> bool:
        try:
            return shm_segment.flag(self.fd, self.data_len, shm_segment.UNLINKED_AT)
        except OSError:
            return True

    def release(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Keeper:
    """The keeper's state and loop (run by :func:`main` in the keeper process)."""

    def __init__(
        self, listener: socket.socket, main_pid: int, main_pidfd: int | None, main_start: int
    ) -> None:
        self.listener = listener
        self.address = listener.getsockname()
        if isinstance(self.address, str):
            self.address = self.address.encode("ascii")
        self.main_pid = main_pid
        self.main_pidfd = main_pidfd
        self.main_start = main_start
        self.blocks: dict[str, _Kept] = {}
        self.clients: dict[int, socket.socket] = {}

    # -- segments ------------------------------------------------------------

    def adopt(self, key: str, fd: int) -> str:
        """Hold and publish the segment ``key`` open at ``fd`` and return its token (or close
        ``fd`` and return "" if it is not one, is held already, or was unlinked).

        Raises ``OSError`` (``fd`` closed) if it cannot hold it: out of descriptors, say.
        """
        try:
            meta = shm_segment.read_meta(fd)
        except OSError:
            meta = None
        if (
            meta is None
            or not meta.committed
            or meta.unlinked
            or meta.token in self.blocks
            or not _names_segment(key, meta)
        ):
            os.close(fd)
            return ""
        kept = _Kept(key, fd, meta.data_len, meta.token)
        try:
            publisher = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            kept.publisher = publisher
            locator = f"{shm_names.locator_prefix(key)}{os.getpid()}/{fd}/{meta.token}"
            publisher.bind(b"\0" + locator.encode("ascii"))
            shm_segment.set_keeper_address(fd, meta.data_len, self.address)
        except OSError:
            kept.release()
            raise
        self.blocks[meta.token] = kept
        if kept.unlinked():  # unlinked before its notice could find this keeper
            self.blocks.pop(meta.token)
            kept.release()
            return ""
        return meta.token

    def let_go(self, tokens: list[str]) -> None:
        """Stop holding the segments of ``tokens``."""
        for token in tokens:
            kept = self.blocks.pop(token, None)
            if kept is not None:
                kept.release()

    def sweep(self) -> None:
        """Let go of every segment that has been unlinked."""
        for token, kept in list(self.blocks.items()):
            if kept.unlinked():
                del self.blocks[token]
                kept.release()

    # -- requests ------------------------------------------------------------

    def serve_client(self, fd: int) -> None:
        """Answer the request waiting on the connection ``fd``, then close it."""
        client = self.clients.pop(fd)
        fds: list[int] = []
        try:
            message, fds = _receive(client)
            if message[:1] == HAND_OFF:
                keys = message[1:].decode("utf-8", "replace").split("\n")
                if len(keys) == len(fds):
                    taken: list[str] = []
                    try:
                        for key in keys:
                            taken.append(self.adopt(key, fds.pop(0)))
                    except OSError as exc:  # the creator's create fails, saying why
                        self.let_go(taken)
                        client.send(REFUSED + f"cannot hold {key!r}: {exc}".encode())
                        return
                    try:
                        client.send(ACK)
                    except OSError:  # the creator is gone, and its create never returned
                        self.let_go(taken)
                        raise
            elif message[:1] == LIST:
                self.sweep()  # an unlink whose notice is still on its way counts
                client.send("\n".join(sorted(k.key for k in self.blocks.values())).encode())
            elif message[:1] == UNLINKED:
                self.sweep()
        except OSError:  # the client hung up, or sent nothing readable
            pass
        finally:
            for unused in fds:
                os.close(unused)
            client.close()

    # -- the loop -------------------------------------------------------------

    def main_alive(self) -> bool:
        """False once the program's main process has exited."""
        if self.main_pidfd is not None:
            return not select.select([self.main_pidfd], [], [], 0)[0]
        return osutil.process_start_time(self.main_pid) == self.main_start

    def serve(self) -> None:
        """Serve until the main process is gone, or nothing has been held for LINGER seconds."""
        poller = select.poll()
        listening = self.listener.fileno()
        poller.register(listening, select.POLLIN)
        if self.main_pidfd is not None:
            poller.register(self.main_pidfd, select.POLLIN)
        idle_since: float | None = None
        next_sweep = time.monotonic() + SWEEP_EVERY
        while True:
            now = time.monotonic()
            if self.blocks or self.clients:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= LINGER:
                if not self._accept(poller):
                    return  # the caller closes the listener: a late client is refused, retries
                continue
            wake = next_sweep
            if idle_since is not None:
                wake = min(wake, idle_since + LINGER)
            if self.main_pidfd is None:
                wake = min(wake, now + WATCH_EVERY)
            events = poller.poll(max(wake - now, 0.0) * 1000.0)
            if not self.main_alive():
                return
            for fd, _ in events:
                if fd == listening:
                    self._accept(poller)
                elif fd in self.clients:
                    poller.unregister(fd)
                    self.serve_client(fd)
            if time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + SWEEP_EVERY

    def _accept(self, poller: select.poll) -> bool:
        """Accept the connections waiting, to be served when readable; False if none was."""
        accepted = False
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # none waiting (or out of descriptors: that client will retry)
                return accepted
            if not osutil.peer_is_same_user(client):  # only the program's user may ask
                client.close()
                continue
            if len(self.clients) >= MAX_CLIENTS:
                oldest = next(iter(self.clients))
                poller.unregister(oldest)
                self.clients.pop(oldest).close()
            client.setblocking(False)
            self.clients[client.fileno()] = client
            poller.register(client.fileno(), select.POLLIN)
            accepted = True


def _names_segment(key: str, meta: shm_segment.Meta) -> bool:
    """True if ``key`` is the name of the segment whose metadata is ``meta``."""
    generated = shm_names.parse_generated(key)
    if generated is not None:
        return generated[2] == meta.token and not meta.name
    return meta.name == key


def _receive(client: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors that came with it."""
    message, ancillary, flags, _ = client.recvmsg(MAX_MESSAGE, osutil.rights_space(MAX_FDS))
    received = osutil.received_fds(ancillary)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in received:
            os.close(fd)
        return b"", []
    return message, received


def main(argv: list[str]) -> None:
    """The keeper process: ``argv`` is the main process's pid, its start time, and whether
    descriptor :data:`MAIN_PIDFD` is its pidfd ("pidfd" or "poll")."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the program, not its keeper
    os.chdir("/")
    main_pid, main_start, watch = int(argv[0]), int(argv[1]), argv[2]
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:  # two descriptors a segment
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    listener = socket.socket(fileno=LISTENER_FD)
    listener.setblocking(False)
    keeper = Keeper(listener, main_pid, MAIN_PIDFD if watch == "pidfd" else None, main_start)
    try:
        keeper.serve()
    finally:
        listener.close()  # first: no client may hand anything to a keeper that is leaving
    os._exit(0)  # the kernel closes every segment's memfd and publishing socket

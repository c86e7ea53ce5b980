"""The handshakes in progress of an authenticating ``Listener``: ``accept()`` drives them all.

``accept()`` returns an authenticated connection, and a peer may take its time
(or never finish), so an :class:`Acceptor` takes new sockets and advances every
handshake in progress as its bytes arrive, from one poller, and returns the
first that passes.  Each handshake has one deadline for the whole exchange; a
peer that stalls or trickles costs one socket until then, and nobody waits
for it.  Each ``accept()`` resolves one peer: it returns a connection, or
raises the ``AuthenticationError`` of one that failed, as the standard
library's ``accept()`` does for the peer it took.

The deadlines run only while ``accept()`` does: a program busy between two
calls does not make the handshakes it left pending fail (their peers answered
in time; nobody read the answer).  At most :data:`MAX_HANDSHAKES` are in
progress; a new peer beyond that, or a lack of descriptors, drops the oldest.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time

from procframe._core.errors import AuthenticationError
from procframe.posix.connection import no_delay
from procframe.posix.handshake_steps import Handshake

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_HANDSHAKES = 1024
"""Handshakes one listener has in progress at most; a new peer beyond that drops the oldest."""
NEW_PEERS_PER_ROUND = 64
"""Sockets taken from the kernel's queue per round, so that a flood of new peers does not
delay the answers to those already there."""
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Peer:
    __slots__ = ("address", "deadline", "exchange", "sock")

    def __init__(self, sock: socket.socket, address: Any, exchange: Handshake, deadline: float):
        self.sock = sock
        self.address = address
        self.exchange = exchange
        self.deadline = deadline


class _Poller:
    """Readability of many descriptors: epoll where there is one (its descriptor is readable
    while any of them is), else poll."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = select.poll() if self._epoll is None else None

    def fileno(self) -> int | None:
        """A descriptor readable while a registered one is, or None (no epoll here)."""
        return self._epoll.fileno() if self._epoll is not None else None

    def register(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            assert self._poll is not None
            self._poll.register(fd, select.POLLIN)

    def unregister(self, fd: int) -> None:
        try:
            (self._epoll or self._poll).unregister(fd)  # type: ignore[union-attr]
        except (OSError, KeyError, ValueError):
            pass

    def poll(self, timeout: float | None) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(-1 if timeout is None else timeout)]
        assert self._poll is not None
        return [fd for fd, _ in self._poll.poll(None if timeout is None else timeout * 1000.0)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class Acceptor:
    """Accepts authenticated peers of the non-blocking listening socket ``listening``.

    It owns ``listening`` from now on: :meth:`close` closes it.
    """

    def __init__(self, listening: socket.socket, authkey: bytes) -> None:
        self._listening = listening
        self._authkey = authkey
        self._creator = os.getpid()
        self.last_address: Any = None
        """The address of the last peer resolved (passed or failed)."""
        self._setup()

    def _setup(self) -> None:
        self._poller = _Poller()
        self._poller.register(self._listening.fileno())
        self._peers: dict[int, _Peer] = {}  # by descriptor, oldest first
        self._driving = threading.Lock()  # one accept() at a time drives the handshakes
        self._state = threading.Lock()
        self._busy = False
        self._closed = False
        self._paused_since: float | None = None
        self._paused = 0.0
        """Seconds spent outside accept(): the deadlines' clock stops meanwhile."""

    def fileno(self) -> int:
        """A descriptor readable while a peer waits or a handshake has news: the poller's
        (epoll), else the listening socket's; -1 once closed."""
        if self._closed:
            return -1
        polled = self._poller.fileno()
        return self._listening.fileno() if polled is None else polled

    def _now(self) -> float:
        return time.monotonic() - self._paused

    def accept(self, timeout: float) -> int:
        """The descriptor (blocking) of the next peer that passes its handshake.

        ``timeout``: the seconds a new peer gets for its whole handshake.
        ``AuthenticationError`` for a peer that failed (the others stay in
        progress); ``OSError`` once closed.  :attr:`last_address` is the peer's.
        """
        if os.getpid() != self._creator:  # a forked child: the handshakes are the parent's
            self._forget_inherited()
            self._setup()
        with self._driving:
            with self._state:
                if self._closed:
                    raise OSError("listener is closed")
                self._busy = True
            if self._paused_since is not None:
                self._paused += time.monotonic() - self._paused_since
            try:
                return self._next(timeout)
            finally:
                self._paused_since = time.monotonic()
                with self._state:
                    self._busy = False
                    if self._closed:
                        self._release()

    def _next(self, timeout: float) -> int:
        listening = self._listening.fileno()
        peers = self._peers
        while True:
            if self._closed:
                raise OSError("listener is closed")
            oldest = next(iter(peers.values()), None)
            wait = None if oldest is None else max(oldest.deadline - self._now(), 0.0)
            for fd in self._poller.poll(wait):
                if fd == listening:
                    self._take_new_peers(timeout)
                    continue
                peer = peers.get(fd)
                if peer is None:
                    continue
                try:
                    passed = peer.exchange.advance()
                except AuthenticationError:
                    self._drop(peer)
                    raise
                if passed:
                    del peers[fd]
                    self._poller.unregister(fd)
                    self.last_address = peer.address
                    peer.sock.setblocking(True)
                    return peer.sock.detach()
            oldest = next(iter(peers.values()), None)
            if oldest is not None and oldest.deadline <= self._now():
                self._drop(oldest)
                raise AuthenticationError(
                    f"the peer did not complete authentication within {timeout} s"
                )

    def _take_new_peers(self, timeout: float) -> None:
        """Take waiting sockets from the kernel and send each its challenge."""
        for _ in range(NEW_PEERS_PER_ROUND):
            try:
                sock, address = self._listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS or not self._peers:
                    raise
                raise self._drop_oldest(f"out of descriptors ({exc.strerror})") from None
            self.last_address = address
            sock.setblocking(False)
            no_delay(sock)
            try:
                exchange = Handshake(sock.fileno(), self._authkey, server=True)
            except AuthenticationError:
                sock.close()  # gone before its challenge went out
                raise
            peer = _Peer(sock, address, exchange, self._now() + timeout)
            self._peers[sock.fileno()] = peer
            self._poller.register(sock.fileno())
            if len(self._peers) > MAX_HANDSHAKES:
                raise self._drop_oldest(f"{MAX_HANDSHAKES} handshakes were in progress")

    def _drop_oldest(self, why: str) -> AuthenticationError:
        """Drop the oldest handshake in progress; the error to raise for it."""
        self._drop(next(iter(self._peers.values())))
        return AuthenticationError(f"dropped a peer that had not completed authentication: {why}")

    def _drop(self, peer: _Peer) -> None:
        """Close ``peer``'s socket: it failed (the caller raises its error)."""
        fd = peer.sock.fileno()
        del self._peers[fd]
        self._poller.unregister(fd)
        peer.sock.close()
        self.last_address = peer.address

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the listening socket and drop every handshake in progress, now or, if an
        ``accept()`` runs, as it returns (the caller shut the listening socket down first,
        which wakes it: its descriptor stays open until then, so the poller still sees it).
        """
        if os.getpid() != self._creator:  # this process's copies only
            self._forget_inherited()
            self._listening.close()
            self._closed = True
            return
        with self._state:
            self._closed = True
            if not self._busy:
                self._release()

    def _release(self) -> None:
        for peer in self._peers.values():
            peer.sock.close()
        self._peers.clear()
        self._poller.close()
        self._listening.close()

    def _forget_inherited(self) -> None:
        """Close this process's copies of its parent's handshakes, untouched."""
        for peer in self._peers.values():
            peer.sock.close()
        self._peers.clear()
        self._poller.close()
        self._creator = os.getpid()

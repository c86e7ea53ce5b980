"""One thread that reads the requests of all a manager server's idle connections.

An authenticated connection is *adopted* by the loop.  While its client has
no request running, the loop watches it with a selector and reads what comes
(through the connection's :class:`~._framing.Framer`: no thread and no
memory ahead of the bytes); once a whole request is there, the connection
leaves the selector and goes to the server's worker pool, which runs its
requests in order and gives it back.  A connection is read by one thread at a
time, so its requests keep their order and a blocking request holds up only
its own client.
"""

from __future__ import annotations

import os
import selectors
import threading
from collections import deque

from procframe.managers._workers import STALLED_AFTER, WorkerPool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class RequestLoop:
    """Reads idle connections; hands one with whole requests to ``serve`` on ``pool``.

    ``serve(link)`` runs the requests of ``link.framer.messages`` and gives
    the link back with :meth:`give_back` (or closes it); ``drop(link)`` ends a
    link whose client hung up or sent what is not a message stream.
    """

    def __init__(
        self, pool: WorkerPool, serve: Callable[[Any], None], drop: Callable[[Any], None]
    ) -> None:
        self._pool = pool
        self._serve = serve
        self._drop = drop
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._arrivals: deque[Any] = deque()
        """Links adopted or given back, for the loop's thread to watch."""
        self._stopping = False
        self._closed = False
        self._lock = threading.Lock()
        """Held to write to the wake-up pipe, and to close it: its number may be reused then."""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="manager-loop", daemon=True)
        self._thread.start()

    def adopt(self, link: Any) -> None:
        """Watch ``link`` from now on (any thread); once the loop ended, drop it."""
        with self._lock:
            if not self._closed:
                self._arrivals.append(link)
                self._wake()
                return
        self._drop(link)

    give_back = adopt

    def stop(self) -> None:
        """End the loop; it drops the links it watches."""
        self._stopping = True
        with self._lock:
            if not self._closed:
                self._wake()

    def watched(self) -> int:
        """How many connections the loop watches now."""
        return len(self._selector.get_map()) - 1

    def _wake(self) -> None:
        """Wake the loop's thread (lock held)."""
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, OSError):  # awake already, or stopped
            pass

    def _run(self) -> None:
        selector = self._selector
        try:
            while not self._stopping:
                backlog = self._pool.backlogged()
                for key, _ in selector.select(STALLED_AFTER / 2 if backlog else None):
                    if key.data is None:
                        self._drain_wakeups()
                        continue
                    try:
                        self._read(key.data)
                    except Exception:  # never the loop's end: that client's only
                        self._forget(key.data)
                self._take_arrivals()
                if backlog:
                    self._pool.relieve()
        finally:
            self._close()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _take_arrivals(self) -> None:
        arrivals = self._arrivals
        while arrivals:
            link = arrivals.popleft()
            if link.framer.messages:  # requests arrived along with the last one
                self._submit(link)
                continue
            try:
                self._selector.register(link.connection.fileno(), selectors.EVENT_READ, link)
            except (ValueError, OSError):  # closed meanwhile
                self._drop(link)

    def _read(self, link: Any) -> None:
        fd = link.connection.fileno()
        try:
            count = link.framer.read_from(fd)
        except OSError:  # reset by the peer, or a corrupt length prefix: that link only
            count = 0
        if count and not link.framer.messages:
            return
        self._selector.unregister(fd)
        if count:
            self._submit(link)
        else:
            self._drop(link)

    def _submit(self, link: Any) -> None:
        if not self._pool.submit(lambda: self._serve(link)):
            self._drop(link)

    def _forget(self, link: Any) -> None:
        try:
            self._selector.unregister(link.connection.fileno())
        except (KeyError, ValueError, OSError):
            pass
        self._drop(link)

    def _close(self) -> None:
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                self._selector.unregister(key.fd)
                self._drop(key.data)
        with self._lock:
            self._closed = True
            os.close(self._wake_read)
            os.close(self._wake_write)
        while self._arrivals:
            self._drop(self._arrivals.popleft())
        self._selector.close()

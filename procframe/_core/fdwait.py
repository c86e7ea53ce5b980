"""Wait for file descriptors to become readable, with no limit on descriptor numbers."""

from __future__ import annotations

import select
import time
from collections.abc import Sequence


def wait_readable(fds: Sequence[int], timeout: float | None) -> list[int]:
    """Return the descriptors of ``fds`` that are readable (or hung up) within ``timeout``."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        events = poller.poll(None if remaining is None else remaining * 1000.0)
        if events or remaining == 0.0:
            return [fd for fd, _ in events]


def wait_writable(fd: int, timeout: float | None) -> bool:
    """True if ``fd`` can be written to (or has failed) within ``timeout``."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(None if timeout is None else max(timeout, 0.0) * 1000.0))

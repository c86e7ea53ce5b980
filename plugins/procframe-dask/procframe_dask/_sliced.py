"""A ``distributed.Queue.get`` that a killed caller leaves (almost) nothing behind.

The scheduler serves ``Queue.get`` by awaiting the item in a handler, and does not
cancel that handler when the caller's connection drops: a process killed while it
waits leaves a get pending there, which takes the next item put and loses it (the
reply goes to a dead connection).  :func:`get` waits in slices of :data:`GET_SLICE`
instead: a slice that times out is cancelled by the scheduler cleanly (the item
stays queued), so a dead caller's last get ends within one slice.

What remains possible: an item put within :data:`GET_SLICE` of the caller's death
(while its last slice is pending) is lost with it; so is one the scheduler had sent
to a process that died before reading it (as an item read by a process killed
inside ``get`` is lost locally).  A get with an item waiting costs one round trip,
as before; a waiting one costs a round trip per slice.
"""

from __future__ import annotations

import time
from typing import Any

from procframe_dask import cluster

GET_SLICE = 0.2
"""Seconds one scheduler-side wait lasts at most."""


def get(dask_queue: Any, timeout: float | None) -> Any:
    """The next item of ``dask_queue`` within ``timeout`` seconds (``None``: however long
    it takes); ``TimeoutError`` if none came.  Waits in slices of :data:`GET_SLICE`."""
    if timeout is not None and timeout <= GET_SLICE:
        return dask_queue.get(timeout=timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = GET_SLICE
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"no item within {timeout} s")
            # a slice so short that the scheduler would answer at once is still a look
            wait = max(wait, 0.001)
        try:
            return dask_queue.get(timeout=wait)
        except TimeoutError:
            cluster.check_alive()

"""What the shared objects of this backend have in common: names, handles, pickling.

Every object lives on the cluster's scheduler under a name (a ``distributed.Queue``,
``Variable`` or ``Event`` of that name, or several).  An object pickles as its
class and names, so the copy a child or a worker unpickles reaches the same
cluster objects (through :func:`procframe_dask.cluster.client`, which in a child
connects to ``PROCFRAME_DASK_ADDRESS``).
"""

from __future__ import annotations

import logging
import pickle
import uuid
from typing import Any

from procframe import backends
from procframe_dask import cluster

NOW = 0.001
"""The timeout of a non-blocking call on the scheduler.  A zero timeout would give up
before even a ready ``asyncio.Queue`` answers (``asyncio.wait_for(..., 0)`` on
Python 3.11); a millisecond lets a ready one answer at once and a waiting one fail
at once."""


class _QuietTimeouts(logging.Filter):
    """Drop the scheduler's log of a queue call that timed out: for this backend a timeout
    is an answer (``queue.Empty``, a lock not taken), not an error.  Applies where the
    scheduler runs in this process (the LocalCluster started here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        return not (isinstance(exc, TimeoutError) and "handling op queue_" in message)


logging.getLogger("distributed.core").addFilter(_QuietTimeouts())


def new_name(kind: str) -> str:
    """A cluster-wide unique name for a new object of ``kind``."""
    return f"procframe-{kind}-{uuid.uuid4().hex}"


def dask_queue(name: str, maxsize: int = 0) -> Any:
    """The ``distributed.Queue`` called ``name`` (created on the scheduler if it is new)."""
    from distributed import Queue

    return Queue(name, client=cluster.client(), maxsize=maxsize)


def dask_variable(name: str) -> Any:
    """The ``distributed.Variable`` called ``name``."""
    from distributed import Variable

    return Variable(name, client=cluster.client())


def dask_event(name: str) -> Any:
    """The ``distributed.Event`` called ``name``."""
    from distributed import Event

    return Event(name, client=cluster.client())


def dumps(obj: Any) -> bytes:
    """``obj`` as bytes for the cluster (cloudpickle: lambdas and closures too)."""
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def refuse_unless_spawning(obj: object) -> None:
    """Refuse to pickle ``obj`` except as an argument of a Process being started
    (as ``multiprocessing`` refuses a Lock or a Queue sent through a queue or a pool)."""
    if not backends.spawning():
        raise RuntimeError(
            f"{type(obj).__name__} objects should only be shared between processes "
            "through inheritance (pass it to the Process as an argument; to send one "
            "through a queue or a pool, use a Manager's proxy instead)"
        )


def timeout_of(block: bool, timeout: Any) -> float | None:
    """The scheduler-side timeout of a call with ``block``/``timeout`` (``None``: forever);
    a timeout that is NaN or not a number is refused, naming it, as procframe refuses it."""
    if not block:
        return NOW
    seconds = backends.wait_timeout(timeout)
    if seconds is None:
        return None
    return max(seconds, NOW)

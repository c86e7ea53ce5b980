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
import threading
import uuid
from collections.abc import Iterable
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
        quiet = "handling op queue_" in message or "handling op variable_" in message
        return not (isinstance(exc, TimeoutError) and quiet)


logging.getLogger("distributed.core").addFilter(_QuietTimeouts())


def new_name(kind: str) -> str:
    """A cluster-wide unique name for a new object of ``kind``."""
    return f"procframe-{kind}-{uuid.uuid4().hex}"


def dask_queue(name: str, maxsize: int = 0) -> Any:
    """The ``distributed.Queue`` called ``name`` (created on the scheduler if it is new)."""
    from distributed import Queue

    return Queue(name, client=cluster.client(), maxsize=maxsize)  # type: ignore[no-untyped-call]


def dask_variable(name: str) -> Any:
    """The ``distributed.Variable`` called ``name``."""
    from distributed import Variable

    return Variable(name, client=cluster.client())  # type: ignore[no-untyped-call]


def dask_event(name: str) -> Any:
    """The ``distributed.Event`` called ``name``."""
    from distributed import Event

    return Event(name, client=cluster.client())  # type: ignore[no-untyped-call]


def dumps(obj: Any) -> bytes:
    """``obj`` as bytes for the cluster, as the backend's queues pickle their items
    (:func:`procframe_dask._wire.dumps`: procframe's pickling, cloudpickle where needed)."""
    from procframe_dask import _wire

    return _wire.dumps(obj)


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


LIFE_START_TIMEOUT = 60.0
"""Seconds a process's life token gets to reach the scheduler (once per process)."""

_life_lock = threading.Lock()
_life: Any = None


def life_key() -> str:
    """The key of this process's life token, which the scheduler forgets when the process dies.

    The token is a trivial task's future, made once per process (one round trip) and
    held for the life of its client; when the process dies, however (SIGKILL
    included), the scheduler drops its client and forgets the keys only that client
    wanted.  A waiter records this key; the others ask :func:`dead_among`.
    """
    global _life
    client = cluster.client()
    with _life_lock:
        if _life is None or _life.client is not client:
            future = client.submit(int, key=new_name("life"), pure=False)
            future.result(timeout=LIFE_START_TIMEOUT)  # known to the scheduler before it is named
            _life = future
        return str(_life.key)


def dead_among(keys: Iterable[str]) -> set[str]:
    """Which of these life keys belong to processes that died (one round trip; none if empty)."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    client = cluster.client()
    status = client.sync(client.scheduler.get_task_status, keys=wanted)
    return {key for key in wanted if status.get(key) is None}


def queue_put(name: str, data: Any) -> None:
    """Put ``data`` on the existing cluster queue ``name`` (one round trip: no create)."""
    client = cluster.client()
    client.sync(client.scheduler.queue_put, name=name, data=data, timeout=None)

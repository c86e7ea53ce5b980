"""Whether a Process of this backend has ended, asked from anywhere on the cluster.

A Process runs under a task key; its worker sets the Event ``<key>-ended`` as soon as
the OS process has exited (killed or not), and passes the key to the process in
``PROCFRAME_DASK_PROCESS``.  What waits on the cluster on behalf of a process (a
Condition's waiter) records :func:`own_key`, so that others can skip it once
:func:`ended` says it is gone instead of handing it what it cannot take.
"""

from __future__ import annotations

import os

from procframe_dask._objects import dask_event

KEY_ENV = "PROCFRAME_DASK_PROCESS"


def ended_name(key: str) -> str:
    return f"{key}-ended"


def own_key() -> str | None:
    """The task key of the Process this code runs in; ``None`` in the main program."""
    return os.environ.get(KEY_ENV) or None


def ended(key: str | None) -> bool:
    """True once the Process of task ``key`` has exited (``None``, the main program: False)."""
    return key is not None and bool(dask_event(ended_name(key)).is_set())

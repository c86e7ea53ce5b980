"""What runs on a Dask worker for one task (an apply, or one chunk of a map) of a pool.

:func:`run` is the Dask task.  It never raises: it returns an outcome
``(code, data)`` that the pool turns into the task's result or exception,
so that a task's error keeps its traceback, a result that cannot be pickled
fails only its task, and Dask's own retries are kept for lost workers.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import threading
import traceback
from typing import Any

APPLY, MAP, STARMAP = 0, 1, 2
"""What a task runs: ``func(*args, **kwds)``, ``[func(x) ...]``, ``[func(*x) ...]``."""

OK, RAISED, ABORTED, BAD_TASK, UNPICKLABLE, BROKEN, TIMED_OUT = range(7)
"""Outcome codes: the result (pickled); the task raised an Exception; it raised a
BaseException that is not one; the worker could not unpickle it; the result or
exception could not be pickled; the pool's initializer failed here; too long."""

ADDRESS_ENV = "PROCFRAME_DASK_ADDRESS"
SERIALIZER = "cloudpickle"
"""How a pool's functions, arguments, results and exceptions are pickled (as procframe
pickles a message: plain data by pickle, a memoryview stays one, only what pickle cannot
carry by cloudpickle): a worker cannot import the caller's ``__main__``, so functions
defined there must travel by value."""

_lock = threading.Lock()
_initialized: dict[str, tuple[bytes | None, str, str] | None] = {}
"""Per pool (by key): ``None`` once its initializer ran here, or how it failed."""
_running: dict[str, set[int]] = {}
"""Per pool (by key): the threads running its tasks here (``stop`` interrupts them)."""


class TaskExpired(BaseException):
    """Raised into the thread of a task that ran past its timeout."""


def run(
    body: bytes,
    task_pool: str,
    task_init: bytes | None,
    task_func: bytes,
    task_kind: int,
    task_timeout: float | None,
    task_authkey: bytes | None = None,
) -> tuple[int, Any]:
    """Run one task of pool ``task_pool`` on ``body``; its outcome ``(code, data)``.

    ``body`` varies from task to task (``client.map`` maps over it); the
    others are the same for every task of a submission, passed by keyword
    names that ``client.map`` does not take for its own.
    """
    _adopt_cluster()
    if task_authkey is not None:
        _adopt_authkey(task_authkey)
    failed = _initialize(task_pool, task_init)
    if failed is not None:
        return BROKEN, failed
    try:
        function = pickle.loads(task_func)
        payload = pickle.loads(body)
    except BaseException as e:
        return BAD_TASK, _described(e, "the worker cannot unpickle the task")
    if task_timeout is None:
        return _execute(task_kind, function, payload, task_pool)
    return _execute_within(task_timeout, task_kind, function, payload, task_pool)


def _initialize(pool_key: str, init: bytes | None) -> tuple[bytes | None, str, str] | None:
    """Run the pool's initializer once in this worker process; how it failed, if it did."""
    if init is None:
        return None
    with _lock:
        if pool_key in _initialized:
            return _initialized[pool_key]
        _adopt_cluster()
        try:
            initializer, initargs = pickle.loads(init)
            initializer(*initargs)
            failure = None
        except BaseException as e:
            failure = _described(e, "the pool's initializer raised")
        _initialized[pool_key] = failure
        return failure


_adopted = False


def _adopt_cluster() -> None:
    """Once per worker process: procframe's default backend there is dask, and objects a
    task unpickles reach this worker's cluster (procframe_dask.cluster reads the address)."""
    global _adopted
    if _adopted:
        return
    with _adopt_lock:
        if _adopted:
            return
        try:
            from distributed import get_worker

            address = get_worker().scheduler.address
        except Exception:  # not on a worker (a test calling run() directly)
            return
        os.environ.setdefault(ADDRESS_ENV, address)
        import procframe

        procframe.set_start_method("dask", force=True)
        _adopted = True


_adopt_lock = threading.Lock()


def _adopt_authkey(authkey: bytes) -> None:
    """This worker process's authkey is the pool owner's, as a pool worker's is its parent's:
    a manager's proxy that a task unpickles connects to its server with it.

    A worker process has one authkey: programs with different authkeys sharing a cluster
    would each set theirs (the last task's wins while it runs)."""
    import procframe

    process = procframe.current_process()
    if bytes(process.authkey) != authkey:
        process.authkey = authkey


def _execute(kind: int, function: Any, payload: Any, pool_key: str) -> tuple[int, Any]:
    _adopt_cluster()
    me = threading.get_ident()
    with _lock:
        _running.setdefault(pool_key, set()).add(me)
    try:
        return _call(kind, function, payload)
    finally:
        with _lock:
            _running.get(pool_key, set()).discard(me)


def _call(kind: int, function: Any, payload: Any) -> tuple[int, Any]:
    try:
        if kind == APPLY:
            args, kwds = payload
            value = function(*args, **kwds)
        elif kind == MAP:
            value = [function(x) for x in payload]
        else:
            value = [function(*x) for x in payload]
    except TaskExpired:
        return TIMED_OUT, None
    except Exception as e:
        return _raised(RAISED, e)
    except BaseException as e:  # SystemExit...: the caller gets it (executor) or its wrapper
        return ABORTED, _described(e, "the task raised")
    try:
        return OK, dumps(value)
    except Exception as e:
        return UNPICKLABLE, (repr(e), _safe_repr(value), traceback.format_exc(), _pickled(e))


def dumps(value: object) -> bytes:
    """``value`` pickled as the backend's queues pickle their items, by :data:`SERIALIZER`
    (:func:`procframe_dask._wire.dumps`: what names ``__main__`` or a module pickled by
    value goes by cloudpickle whole, as a worker cannot import it)."""
    from procframe_dask import _wire

    return _wire.dumps(value, SERIALIZER)


class _Plain:
    """An exception pickled as the standard pickle pickles it, by its own ``__reduce__``.

    Dask installs tblib's reducers for every exception class in its processes: they pickle
    the traceback and the chain along (failing on what those hold) and rebuild an exception
    without its ``__init__`` (a ``SystemExit`` loses its ``code``).  This process sends the
    traceback as text instead."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        return self.error.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


def _pickled(error: BaseException) -> bytes | None:
    try:
        return dumps(_Plain(error))
    except Exception:
        return None


def _raised(code: int, error: Exception) -> tuple[int, Any]:
    tb = traceback.format_exc()
    try:
        pickled = dumps(_Plain(error))
        pickle.loads(pickled)  # an exception that cannot be rebuilt is refused here, named
    except Exception as e:
        return UNPICKLABLE, (repr(e), _safe_repr(error), tb, _pickled(e))
    return code, (pickled, repr(error), tb)


def _described(error: BaseException, what: str) -> tuple[bytes | None, str, str]:
    """``error`` pickled if it can be (else None), its repr, and the traceback."""
    tb = f"{what}:\n{traceback.format_exc()}"
    return _pickled(error), repr(error), tb


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def _execute_within(
    timeout: float, kind: int, function: Any, payload: Any, pool_key: str
) -> tuple[int, Any]:
    """Run the task in a thread of its own, and give up on it after ``timeout`` seconds.

    A Dask worker cannot kill the thread that runs a task: a task past its
    timeout gets :class:`TaskExpired` raised in its thread (it stops at its
    next Python instruction; a call blocked in C ends first), and this Dask
    task returns at once, so the worker's slot is free for the next task.
    """
    outcome: list[tuple[int, Any]] = []
    thread = threading.Thread(
        target=lambda: outcome.append(_execute(kind, function, payload, pool_key)),
        name="procframe-dask-timed-task",
        daemon=True,
    )
    thread.start()
    thread.join(timeout)
    if outcome:
        return outcome[0]
    with _lock:
        if thread.ident in _running.get(pool_key, ()):
            _interrupt(thread.ident)
    return TIMED_OUT, None


def stop(pool_key: str) -> int:
    """Interrupt the tasks of pool ``pool_key`` running here (it was terminated); how many.

    Run on every worker by ``client.run``.  Code in C runs to its end first.
    """
    with _lock:
        threads = _running.pop(pool_key, set())
        _initialized.pop(pool_key, None)
        for ident in threads:
            _interrupt(ident)
    return len(threads)


def _interrupt(ident: int) -> None:
    """Raise :class:`TaskExpired` in thread ``ident`` (at its next Python instruction)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(TaskExpired))

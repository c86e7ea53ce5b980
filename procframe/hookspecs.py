"""Every hook procframe calls, with when it is called and how results combine.

A plugin is any object (a module, a class instance) whose methods carry the
``procframe.hookimpl`` marker and are named after a spec below.  Plugins come
from procframe itself (the built-in backends) and from the entry-point group
``procframe``.

procframe calls hooks only when something is *created* or changes state
(a process launched, bootstrapped, seen to exit), never on a hot path such as
``put``/``get``/``send``/``recv``/``acquire``/``release``.

Backend hooks are dispatched to the *selected* backend only: when a context
for backend ``B`` calls one, the implementations of every other backend plugin
are left out, while plugins that are not backends (observers, wrappers) still
take part.  A backend therefore never needs to check which backend was asked
for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from procframe.api.backend import BackendInfo, Launcher
    from procframe.api.process import BaseProcess
    from procframe.connection import Connection

NAME = "procframe"

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)


# -------------------------------------------------------------------------
# Registration
# -------------------------------------------------------------------------


@hookspec
def procframe_declare_backend() -> BackendInfo | None:
    """Declare the backend this plugin provides, or return ``None``.

    Called once per plugin manager, when the list of backends is first
    needed (``get_context``, ``python -m procframe info``, ...).  Not
    firstresult: every plugin that is a backend answers, and the answers make
    the list of backends.  A backend that cannot run on this machine still
    declares itself, with ``available=False`` and a ``reason``, so that asking
    for it gives a clear error rather than "unknown backend".
    """


# -------------------------------------------------------------------------
# Backend: launching processes
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_launch_process(process: BaseProcess, backend: BackendInfo) -> Launcher | None:
    """Start ``process`` as a new OS process and return its :class:`Launcher`.

    Called by ``Process.start()`` in the parent, once per process.
    firstresult: the selected backend's implementation answers.  A wrapper
    (``@hookimpl(wrapper=True)``) in any plugin sees every launch, which is how
    a plugin times or logs starts without being a backend.  Raise to refuse
    the launch (for example a pickling error naming the object that cannot
    cross to the child).
    """


# -------------------------------------------------------------------------
# Observers: process lifecycle
# -------------------------------------------------------------------------


@hookspec
def procframe_process_started(process: BaseProcess, backend: BackendInfo) -> None:
    """``process`` was launched; called in the parent right after ``start()``.

    Not firstresult; return values are ignored.  ``process.pid`` is set.
    """


@hookspec
def procframe_child_bootstrap(process: BaseProcess, backend: BackendInfo) -> None:
    """Called in the child, just before ``process.run()``.

    Not firstresult; return values are ignored.  Under a backend whose child
    inherits the parent's memory (``fork``) every registered plugin is called.
    In a fresh interpreter (``spawn``, ``forkserver``) the plugins come from
    the entry points; plugins registered in code in the parent are not there.
    An exception raised here fails the child like an exception in ``run()``.
    """


@hookspec
def procframe_process_exited(process: BaseProcess, exitcode: int) -> None:
    """The parent saw ``process`` exit with ``exitcode``.

    Called once per process, from whichever of ``join``, ``is_alive``,
    ``exitcode`` or ``active_children`` first sees the exit.  ``exitcode`` is
    negative (``-signal``) for a process killed by a signal.  Not firstresult.
    """


# -------------------------------------------------------------------------
# Backend: objects shared between processes (creation time only)
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_make_pipe(duplex: bool, backend: BackendInfo) -> tuple[Connection, Connection] | None:
    """Make the two ends of a ``Pipe(duplex)``.

    Called by ``ctx.Pipe()``.  firstresult.  procframe's POSIX default is a
    ``trylast`` implementation (a socket pair, or ``os.pipe`` when not duplex);
    a backend overrides it by implementing this hook.
    """


@hookspec(firstresult=True)
def procframe_make_queue(kind: str, maxsize: int, backend: BackendInfo) -> object | None:
    """Make a queue: ``kind`` is ``"Queue"``, ``"SimpleQueue"`` or ``"JoinableQueue"``.

    Called by ``ctx.Queue(maxsize)`` and its siblings (``maxsize`` is 0 for
    SimpleQueue).  firstresult; procframe's POSIX default is ``trylast``.
    """


@hookspec(firstresult=True)
def procframe_make_lock(kind: str, args: tuple[object, ...], backend: BackendInfo) -> object | None:
    """Make a synchronization primitive.

    ``kind`` is ``"Lock"``, ``"RLock"``, ``"Semaphore"``, ``"BoundedSemaphore"``,
    ``"Condition"``, ``"Event"`` or ``"Barrier"``; ``args`` are the constructor's
    arguments.
    Called by the context's factory of that name.  firstresult; procframe's
    POSIX default (unnamed semaphores in shared memory) is ``trylast``.
    """


@hookspec(firstresult=True)
def procframe_make_pool(
    processes: int | None,
    initializer: object,
    initargs: tuple[object, ...],
    maxtasksperchild: int | None,
    task_timeout: float | None,
    context: object,
    backend: BackendInfo,
) -> object | None:
    """Make a pool of worker processes started through ``context`` (this backend's).

    Called by ``ctx.Pool(...)`` with its arguments.  firstresult; procframe's
    default (:class:`procframe.pool.Pool`) is ``trylast``.  The hook runs once
    per pool, never per task.
    """


@hookspec(firstresult=True)
def procframe_make_manager(context: object, backend: BackendInfo) -> object | None:
    """Make and start a manager whose server is started through ``context`` (this backend's).

    Called by ``ctx.Manager()``.  firstresult; procframe's default (a started
    :class:`procframe.managers.SyncManager`) is ``trylast``.  The hook runs
    once per manager; proxy calls never go through a hook.
    """


@hookspec(firstresult=True)
def procframe_make_shared(
    kind: str, args: tuple[object, ...], kwargs: dict[str, object], backend: BackendInfo
) -> object | None:
    """Make a ctypes object in memory shared with child processes.

    ``kind`` is ``"Value"``, ``"Array"``, ``"RawValue"`` or ``"RawArray"``;
    ``args`` are the factory's positional arguments (the typecode or ctypes
    type first) and ``kwargs`` its keyword arguments (``{"lock": ...}`` for
    Value and Array, as given: ``True`` asks for a new RLock of this backend).
    Called by the context's factory of that name.  firstresult; procframe's
    POSIX default (memfd arenas passed to children by descriptor,
    :mod:`procframe.sharedctypes`) is ``trylast``.
    """

"""Every hook procframe calls: when it is called, with what, and what it returns.

This module is the contract between procframe's public API and its backends.
A plugin is any object (a module, a class instance) whose methods carry the
``procframe.hookimpl`` marker and are named after a spec below.  Plugins come
from procframe itself (:data:`procframe.plugins.BUILTIN_PLUGINS`, loaded like
third-party ones) and from the entry-point group ``procframe``.

procframe calls hooks only when something is *created* or changes state (a
process launched, bootstrapped, seen to exit; a Queue or a Lock made), never
on a hot path such as ``put``/``get``/``send``/``recv``/``acquire``/``release``
or per task of a Pool.

Backend hooks are dispatched to the *selected* backend only: when the context
of backend ``B`` calls one, the implementations of every other backend plugin
are left out, while plugins that are not backends (the shared POSIX
primitives, the default Pool and Manager, observers, wrappers) take part.
A backend therefore never checks which backend was asked for.

**Factories.** There is one hook per factory of :class:`procframe.Context`,
named after it (``ctx.RawArray`` -> ``procframe_make_raw_array``).  Each gets
``ctx``, the context making the object, and the factory's arguments, already
checked by the context (a backend gets a ``maxsize`` that is an ``int``, a
``value`` that is an ``int >= 0``, ...; the ctypes factories' typecodes and
sizes excepted).  All are firstresult: the first
implementation that returns something other than ``None`` wins.  procframe's
own implementations are ``trylast`` (the POSIX primitives in
:mod:`procframe.posix.plugin`, the Pool and the Manager in
:mod:`procframe.defaults`), so a backend overrides any of them by implementing
the hook, and the others stay in place.

An object that procframe builds from other objects takes them from ``ctx``:
a Queue's semaphores, a Condition's default lock, an Event's and a Barrier's
shared state, ``Value``'s lock, a Pool's processes and shared state, a
Manager's server process.  So an object a backend makes is used everywhere
procframe builds with it.  Two parts are the POSIX objects' own, not the
context's: a queue's channel (its packet pipe), and the lock that Event,
Barrier and JoinableQueue hold for their short critical sections, a robust
mutex that the kernel hands on when its holder dies (a Lock held by a killed
process would stop every other user of the object for good); a backend that
wants either of its own implements those factories.  What each factory returns
must have the API of its
``multiprocessing`` namesake (the conformance kit, ``pytest -p
procframe.testing``, checks it); objects that travel to children as
arguments of ``Process`` must be picklable under the backend's launcher.
"""

from __future__ import annotations

from procframe._core.markers import HookimplMarker, HookspecMarker

TYPE_CHECKING = False  # typing is slow to import, and the first get_context imports this
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from procframe._core.backend import BackendInfo, Launcher
    from procframe._core.process import BaseProcess
    from procframe._core.serializer_registry import SerializerInfo
    from procframe.context import Context

NAME = "procframe"

hookspec = HookspecMarker(NAME)
hookimpl = HookimplMarker(NAME)

__all__ = [
    "NAME",
    "hookimpl",
    "hookspec",
    "procframe_child_bootstrap",
    "procframe_declare_backend",
    "procframe_declare_serializers",
    "procframe_launch_process",
    "procframe_make_array",
    "procframe_make_barrier",
    "procframe_make_bounded_semaphore",
    "procframe_make_condition",
    "procframe_make_event",
    "procframe_make_joinable_queue",
    "procframe_make_lock",
    "procframe_make_manager",
    "procframe_make_pipe",
    "procframe_make_pool",
    "procframe_make_queue",
    "procframe_make_raw_array",
    "procframe_make_raw_value",
    "procframe_make_rlock",
    "procframe_make_semaphore",
    "procframe_make_simple_queue",
    "procframe_make_value",
    "procframe_process_exited",
    "procframe_process_started",
    "procframe_set_executable",
    "procframe_set_forkserver_preload",
]


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


@hookspec
def procframe_declare_serializers() -> Iterable[SerializerInfo] | None:
    """Declare the serializers this plugin provides (any number), or return ``None``.

    Called once per plugin manager, when a serializer other than ``pickle`` is
    first named (``set_serializer``, ``PROCFRAME_SERIALIZER``,
    ``get_context(..., serializer=...)``, ``python -m procframe info``).  Not
    firstresult: the answers of every plugin make the list.  A serializer whose
    package is missing still declares itself, with ``available=False``, a
    ``reason`` and how to ``install`` it, so that asking for it says so.  Its
    ``dumps`` and ``loads`` are called only for what pickle cannot carry, never
    per message of plain data (:mod:`procframe._core.serializing`).
    """


# -------------------------------------------------------------------------
# Backend: launching processes
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_launch_process(process: BaseProcess, backend: BackendInfo) -> Launcher | None:
    """Start ``process`` and return its :class:`~procframe.backends.Launcher`.

    Called by ``Process.start()`` in the parent, once per process.
    firstresult: the selected backend's implementation answers.  A wrapper
    (``@hookimpl(wrapper=True)``) in any plugin sees every launch, which is how
    a plugin times or logs starts without being a backend.  Raise to refuse
    the launch (for example a pickling error naming the object that cannot
    cross to the child).  In the child, the backend calls
    ``process._bootstrap()``, which runs the process and returns its exit code.
    """


@hookspec
def procframe_set_executable(executable: str) -> None:
    """Called by ``set_executable()``: the Python interpreter new interpreters run.

    Called (from the module or any context) on every plugin: the setting is
    process-wide, as in ``multiprocessing``.  A backend
    that starts no interpreter ignores it; one that does validates the path
    and raises ``ValueError`` if it is not an executable file.
    """


@hookspec
def procframe_set_forkserver_preload(module_names: list[str]) -> None:
    """Called by ``set_forkserver_preload()``: modules a fork server imports before forking.

    Called (from the module or any context) on every plugin, with a checked
    list of module names; backends without a server ignore it.
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
    inherits the parent's memory (``fork``, ``threads``) every registered
    plugin is called.  In a fresh interpreter (``spawn``, ``forkserver``) the
    plugins come from the entry points; plugins registered in code in the
    parent are not there.  An exception raised here fails the child like an
    exception in ``run()``.
    """


@hookspec
def procframe_process_exited(process: BaseProcess, exitcode: int) -> None:
    """The parent saw ``process`` exit with ``exitcode``.

    Called once per process, from whichever of ``join``, ``is_alive``,
    ``exitcode`` or ``active_children`` first sees the exit.  ``exitcode`` is
    negative (``-signal``) for a process killed by a signal.  Not firstresult.
    """


# -------------------------------------------------------------------------
# Factories: pipes and queues
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_make_pipe(ctx: Context, duplex: bool) -> tuple[Any, Any] | None:
    """Called by ``ctx.Pipe(duplex)``: two connected ends (``multiprocessing``'s Connection API).

    With ``duplex=False``, the first end only receives and the second only
    sends.  Each end's ``fileno()`` is a descriptor that ``procframe.connection.wait``
    and ``select`` can watch.
    """


@hookspec(firstresult=True)
def procframe_make_queue(ctx: Context, maxsize: int) -> Any:
    """Called by ``ctx.Queue(maxsize)``: a FIFO between processes; ``maxsize <= 0`` means unbounded.

    The API of ``multiprocessing.Queue``: ``put``/``get`` (with ``block`` and
    ``timeout``, raising ``queue.Full``/``queue.Empty``), their ``_nowait``
    forms, ``qsize``, ``empty``, ``full``, ``close``, ``join_thread`` and
    ``cancel_join_thread``.
    """


@hookspec(firstresult=True)
def procframe_make_simple_queue(ctx: Context) -> Any:
    """Called by ``ctx.SimpleQueue()``: ``put``, ``get``, ``empty`` and ``close``, unbounded."""


@hookspec(firstresult=True)
def procframe_make_joinable_queue(ctx: Context, maxsize: int) -> Any:
    """Called by ``ctx.JoinableQueue(maxsize)``: a Queue with ``task_done()`` and ``join()``."""


# -------------------------------------------------------------------------
# Factories: synchronization
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_make_lock(ctx: Context) -> Any:
    """Called by ``ctx.Lock()``: a non-recursive lock any process or thread may release.

    ``acquire(block=True, timeout=None) -> bool``, ``release()``, the context
    manager protocol.  For a Condition of this backend to wait on it, it may
    also offer threading's ``_is_owned()``, ``_release_save()`` and
    ``_acquire_restore(state)`` (without them, a Condition treats it as a
    plain non-recursive lock, as ``threading.Condition`` does).
    """


@hookspec(firstresult=True)
def procframe_make_rlock(ctx: Context) -> Any:
    """Called by ``ctx.RLock()``: a recursive lock; only its owner releases it (as ``ctx.Lock``)."""


@hookspec(firstresult=True)
def procframe_make_semaphore(ctx: Context, value: int) -> Any:
    """Called by ``ctx.Semaphore(value)``: ``acquire``, ``release``, ``get_value()``.

    ``value >= 0``.
    """


@hookspec(firstresult=True)
def procframe_make_bounded_semaphore(ctx: Context, value: int) -> Any:
    """Called by ``ctx.BoundedSemaphore(value)``: a Semaphore that refuses to exceed ``value``.

    A ``release()`` above ``value`` raises ValueError.
    """


@hookspec(firstresult=True)
def procframe_make_condition(ctx: Context, lock: Any) -> Any:
    """Called by ``ctx.Condition(lock)``: a condition variable on ``lock``, a lock made by ``ctx``.

    ``lock`` is ``None`` for a new ``ctx.RLock()``.  The API of
    ``threading.Condition``; ``notify`` without holding the lock raises
    RuntimeError.
    """


@hookspec(firstresult=True)
def procframe_make_event(ctx: Context) -> Any:
    """Called by ``ctx.Event()``: ``set``, ``clear``, ``is_set`` and ``wait(timeout)``."""


@hookspec(firstresult=True)
def procframe_make_barrier(
    ctx: Context, parties: int, action: Callable[[], object] | None, timeout: float | None
) -> Any:
    """Called by ``ctx.Barrier(parties, action, timeout)``: ``threading.Barrier``'s API."""


# -------------------------------------------------------------------------
# Factories: shared ctypes objects
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_make_raw_value(ctx: Context, typecode_or_type: Any, args: tuple[Any, ...]) -> Any:
    """Called by ``ctx.RawValue(typecode_or_type, *args)``: a ctypes object children share.

    ``typecode_or_type`` is an ``array`` typecode (``'i'``, ``'d'``, ...) or a
    ctypes type, as the caller gave it (the four ctypes factories get their
    arguments unchecked: :func:`procframe.posix.sharedctypes.ctype_of` and
    ``array_layout`` resolve and check them); ``args`` initialize it.
    """


@hookspec(firstresult=True)
def procframe_make_raw_array(ctx: Context, typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """Called by ``ctx.RawArray(typecode_or_type, size_or_initializer)``: a shared ctypes array.

    ``size_or_initializer`` is a length (zeros) or a sequence of initial items.
    """


@hookspec(firstresult=True)
def procframe_make_value(
    ctx: Context, typecode_or_type: Any, args: tuple[Any, ...], lock: Any
) -> Any:
    """Called by ``ctx.Value(typecode_or_type, *args, lock=lock)``: a RawValue behind a lock.

    ``lock`` is ``True`` (a new ``ctx.RLock()``), ``False`` (the raw object, as
    ``RawValue``) or a lock object to use.
    """


@hookspec(firstresult=True)
def procframe_make_array(
    ctx: Context, typecode_or_type: Any, size_or_initializer: Any, lock: Any
) -> Any:
    """Called by ``ctx.Array(typecode_or_type, size_or_initializer, lock=lock)``: a locked RawArray.

    ``lock`` as for :func:`procframe_make_value`.
    """


# -------------------------------------------------------------------------
# Factories: pools and managers (once per pool or manager, never per task or call)
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def procframe_make_pool(
    ctx: Context,
    processes: int | None,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    maxtasksperchild: int | None,
    task_timeout: float | None,
) -> Any:
    """Called by ``ctx.Pool(...)``: a pool of workers with the API of ``multiprocessing.pool.Pool``.

    ``processes`` is ``None`` (one per CPU) or an int >= 1; ``task_timeout``
    (seconds, > 0) stops a task that runs longer.  procframe's default
    (:class:`procframe.pool.Pool`, ``trylast``, in :mod:`procframe.defaults`)
    starts its workers with ``ctx.Process`` and keeps its shared state in
    ``ctx.RawArray``; it talks
    to each worker over a socket pair of its own (its serving thread
    multiplexes non-blocking byte streams, which a Pipe's message API does not
    offer), so a backend that wants tasks to travel another way implements
    this hook.
    """


@hookspec(firstresult=True)
def procframe_make_manager(ctx: Context) -> Any:
    """Called by ``ctx.Manager()``: a *started* manager with the API of ``SyncManager``.

    procframe's default (a :class:`procframe.managers.SyncManager`,
    ``trylast``) starts its server with ``ctx.Process``; proxy calls never go
    through a hook.
    """

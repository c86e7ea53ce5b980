"""The :class:`Context`: the public API bound to one backend, one factory per public name.

Each factory checks its arguments and calls the backend's hook of the same
name (``ctx.Queue`` -> ``procframe_make_queue``, see
:mod:`procframe.hookspecs`), passing the context itself, so that what the
object is built from comes from the same backend.  Hooks are called at
creation time only.

Selection order: ``get_context(name)`` > ``set_backend(name)`` >
``PROCFRAME_BACKEND`` > the platform default (:mod:`procframe._core.registry`).
The module-level API of ``procframe`` is :data:`default_context`'s.

The names of ``multiprocessing.context`` are here too: ``BaseContext`` (the
:class:`Context` class), ``DefaultContext``, ``ForkContext``, ``SpawnContext``
and ``ForkServerContext`` (the classes of the three built-in backends'
contexts, for ``isinstance`` and annotations), ``ForkProcess``,
``SpawnProcess`` and ``ForkServerProcess`` (their ``ctx.Process``), the
exception classes and :func:`assert_spawning`.
"""

from __future__ import annotations

import _thread
import os

from procframe._core import checks, reduction, registry, serializer_registry
from procframe._core.errors import (
    AuthenticationError,
    BackendError,
    BufferTooShort,
    NotSupportedError,
    ProcessError,
    TimeoutError,
)
from procframe._core.process import BaseProcess, Process

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    import ctypes
    import logging
    from _ctypes import _CData
    from collections.abc import Callable, Iterable
    from ctypes import _SimpleCData, c_char
    from types import ModuleType
    from typing import Any, Literal, overload

    from procframe import managers, pool
    from procframe._core.backend import BackendInfo
    from procframe._core.generic import CT, T
    from procframe._core.process import _ParentProcess
    from procframe.posix import queues, synchronize
    from procframe.posix.connection import Connection
    from procframe.posix.sharedctypes import (
        LockLike,
        Synchronized,
        SynchronizedArray,
        SynchronizedBase,
        SynchronizedString,
    )

    ForkProcess: type[BaseProcess]
    SpawnProcess: type[BaseProcess]
    ForkServerProcess: type[BaseProcess]

__all__ = [
    "AuthenticationError",
    "BaseContext",
    "BufferTooShort",
    "Context",
    "DefaultContext",
    "ForkContext",
    "ForkProcess",
    "ForkServerContext",
    "ForkServerProcess",
    "Process",
    "ProcessError",
    "SpawnContext",
    "SpawnProcess",
    "TimeoutError",
    "assert_spawning",
    "default_context",
    "get_all_start_methods",
    "get_context",
    "get_serializer",
    "get_start_method",
    "set_backend",
    "set_serializer",
]

_lock = _thread.RLock()
_contexts: dict[tuple[str, str | None], Context] = {}
_set_by_code: str | None = None
"""The backend code of this process chose (``set_backend``/``set_start_method``), if any.

Only a choice made in this process (or inherited by fork, as in ``multiprocessing``)
counts as set for ``set_start_method``: the backend a spawned child adopts from its
parent does not, so a module-level ``set_start_method`` of the same backend,
re-run in the child, passes.
"""


def get_context(method: str | None = None, *, serializer: str | None = None) -> Context:
    """The context of backend ``method``, or of the default backend when ``None``.

    With ``serializer``, the context's objects and children use that serializer
    (``"cloudpickle"``, ``"dill"``, a plugin's) instead of the program's default.
    """
    if method is None:
        name, source = registry.default_backend_name(), "the default"
    else:
        name, source = method, "asked for by name"
    info = registry.resolve(name, source)
    if serializer is not None and serializer != serializer_registry.PICKLE:
        serializer_registry.resolve(serializer, "passed to get_context")
    key = (name, serializer)
    context = _contexts.get(key)
    if context is None or context.backend is not info:
        with _lock:
            context = _contexts.get(key)
            if context is None or context.backend is not info:
                context = _CONTEXT_CLASSES.get(name, Context)(info, serializer)
                _contexts[key] = context
    return context


def set_backend(name: str | None, force: bool = False) -> None:
    """Choose the default backend for this process, once (``force=True`` to change it).

    Choosing the same backend again is accepted; another one raises
    ``RuntimeError('context has already been set: ...')`` without ``force``.
    """
    global _set_by_code
    with _lock:
        registry.choose(name, force)
        _set_by_code = name


def set_serializer(name: str | None, force: bool = False) -> None:
    """Choose the program's serializer (``pickle``, ``cloudpickle``, ``dill``, a plugin's),
    once (``force=True`` to change it); children and pool workers use it too.

    An unknown or uninstalled name raises :class:`~procframe.serializers.SerializerError`
    at once, naming the serializers that exist and how to install the one asked for.
    """
    serializer_registry.choose(name, force)


def get_serializer() -> str:
    """The name of the program's serializer (what contexts use unless they name one)."""
    return serializer_registry.default_name()


def set_start_method(method: str | None, force: bool = False) -> None:
    """Choose the default backend, as ``multiprocessing.set_start_method``: once.

    Unlike :func:`set_backend`, a second call raises
    ``RuntimeError('context has already been set')`` even for the same backend,
    unless ``force=True``; ``set_start_method(None, force=True)`` clears the choice.
    """
    if not force and method == registry.chosen() and _running_the_parents_main():
        return  # the parent's main module, run again here: the parent made this choice
    with _lock:
        if not force and _set_by_code is not None and registry.chosen() == _set_by_code:
            raise RuntimeError(
                f"context has already been set: the procframe backend is {_set_by_code!r} "
                "(set_start_method or set_backend was called before); pass force=True to "
                "change it"
            )
        set_backend(method, force)


def _running_the_parents_main() -> bool:
    """True while this process runs its parent's main module (spawn, forkserver)."""
    from procframe._core.process import current_process

    return bool(getattr(current_process(), "_inheriting", False))


def assert_spawning(obj: object) -> None:
    """Raise ``RuntimeError`` unless ``obj`` is being pickled to start a child process.

    For ``__getstate__``/``__reduce__`` of objects that only cross to a child as
    arguments of ``Process`` (or by inheritance), as in ``multiprocessing``.
    """
    if not reduction.collecting():
        raise RuntimeError(
            f"{type(obj).__name__} objects should only be shared between processes "
            "through inheritance"
        )


def get_start_method(allow_none: bool = False) -> str | None:
    """The default backend's name; with ``allow_none``, ``None`` unless it was set."""
    if allow_none and registry.chosen() is None:
        return None
    return registry.default_backend_name()


def get_all_start_methods() -> list[str]:
    """The available backends, the platform default first."""
    return registry.available_backends()


def condition_lock(lock: Any) -> Any:
    """``lock`` if a Condition can use it (``None``: the Condition makes one); else TypeError."""
    if lock is not None and not (
        callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))
    ):
        raise TypeError(f"a Condition needs a lock with acquire() and release(), not {lock!r}")
    return lock


def _broadcast(hook_name: str, **kwargs: Any) -> None:
    """Call ``hook_name`` on every plugin (a process-wide setting)."""
    from procframe._core.plugins import hook_manager

    getattr(hook_manager().hook, hook_name)(**kwargs)


class Context:
    """The public API bound to one backend; ``procframe.get_context(name)`` returns one."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    def __init__(self, backend: BackendInfo, serializer: str | None = None) -> None:
        self._backend = backend
        self._serializer = serializer
        self._process_class: type[BaseProcess] | None = None

    # -- identity -------------------------------------------------------------

    @property
    def backend(self) -> BackendInfo:
        """What the backend declared: name, capabilities, plugin."""
        return self._backend

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name

    @property
    def serializer(self) -> str:
        """The name of the serializer this context's objects and children use.

        The one passed to ``get_context(..., serializer=...)``, else the program's
        default (:func:`procframe.set_serializer`, ``PROCFRAME_SERIALIZER``, ``pickle``).
        """
        return self._serializer or serializer_registry.default_name()

    def get_start_method(self, allow_none: bool = False) -> str | None:
        """The backend's name (``multiprocessing`` calls backends start methods)."""
        return self.name

    def get_context(self, method: str | None = None, *, serializer: str | None = None) -> Context:
        """This one when both are ``None``; else the context of backend ``method`` (this
        one's when ``None``) with ``serializer`` (this one's when ``None``)."""
        if method is None and serializer is None:
            return self
        return get_context(method or self.name, serializer=serializer or self._serializer)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Refused, as in ``multiprocessing``: a context is bound to its backend."""
        raise ValueError(
            f"cannot set start method of concrete context (this one is bound to backend "
            f"{self.name!r}); call procframe.set_start_method() to choose the default backend"
        )

    @property
    def reducer(self) -> ModuleType:
        """How objects are reduced to cross to a child: procframe's reduction module.

        procframe pickles with the standard pickle (and the context's serializer for
        what pickle cannot carry: :attr:`serializer`), and objects that hold a
        descriptor cross to a child by descriptor (:mod:`procframe._core.reduction`).
        """
        return reduction

    @reducer.setter
    def reducer(self, value: ModuleType) -> None:
        # Refused rather than stored: procframe would never use another reducer,
        # and a setting that changes nothing would fail silently.
        if value is not reduction:
            raise NotSupportedError(
                f"procframe cannot use another reducer ({value!r}): objects cross to a child "
                "by the standard pickle, and those holding a descriptor by descriptor; make "
                "a type picklable with __reduce__ or copyreg instead"
            )

    def allow_connection_pickling(self) -> None:
        """Accepted for compatibility: connections already cross to a child by descriptor."""

    def __repr__(self) -> str:
        serializer = f" serializer={self._serializer!r}" if self._serializer else ""
        return f"<procframe Context backend={self.name!r}{serializer}>"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._serializer is None:
            return get_context, (self.name,)
        return _context_with_serializer, (self.name, self._serializer)

    # -- processes ------------------------------------------------------------

    @property
    def Process(self) -> type[BaseProcess]:
        """The Process class whose instances start under this backend."""
        if self._process_class is None:
            from procframe._core.process import bound_process_class

            self._process_class = bound_process_class(self.name, self._serializer)
        return self._process_class

    def current_process(self) -> BaseProcess:
        """The process object of the calling process (or thread-process)."""
        from procframe._core.process import current_process

        return current_process()

    def parent_process(self) -> _ParentProcess | None:
        """The parent of the calling process, or ``None`` in the main process."""
        from procframe._core.process import parent_process

        return parent_process()

    def active_children(self) -> list[BaseProcess]:
        """The children of this process still running (joining those that have exited)."""
        from procframe._core.process import active_children

        return active_children()

    def cpu_count(self) -> int:
        """The number of CPUs of this machine."""
        from procframe._core.system import cpu_count

        return cpu_count()

    def set_executable(self, executable: str) -> None:
        """The Python interpreter that backends starting fresh interpreters use (process-wide)."""
        _broadcast("procframe_set_executable", executable=os.fsdecode(executable))

    def set_forkserver_preload(self, module_names: list[str]) -> None:
        """Modules a fork server imports once, before it forks any child (process-wide)."""
        if not isinstance(module_names, (list, tuple)) or not all(
            isinstance(name, str) for name in module_names
        ):
            raise TypeError(
                f"set_forkserver_preload() expects a list of module names, got {module_names!r}"
            )
        _broadcast("procframe_set_forkserver_preload", module_names=list(module_names))

    def freeze_support(self) -> None:
        """Accepted for compatibility: procframe needs nothing for frozen programs on POSIX."""

    def get_logger(self) -> logging.Logger:
        """procframe's logger (``procframe.util.get_logger``); children inherit its level."""
        from procframe._core.logsupport import get_logger

        return get_logger()

    def log_to_stderr(self, level: int | str | None = None) -> logging.Logger:
        """Print procframe's log records to stderr, at ``level`` if given (children too)."""
        from procframe._core.logsupport import log_to_stderr

        return log_to_stderr(level)

    # -- factories ----------------------------------------------------------------

    def _make(self, hook_name: str, what: str, **kwargs: Any) -> Any:
        made = registry.hook(self.name, hook_name)(ctx=self, **kwargs)
        if made is None:
            raise BackendError(
                f"backend {self.name!r} cannot make {what}: no plugin implements {hook_name}"
            )
        return made

    def Pipe(self, duplex: bool = True) -> tuple[Connection, Connection]:
        """Two connected ends; with ``duplex=False``, (read-only end, write-only end)."""
        return self._make("procframe_make_pipe", "a Pipe", duplex=bool(duplex))  # type: ignore[no-any-return]

    def Queue(self, maxsize: int = 0) -> queues.Queue[Any]:
        """A FIFO queue between processes; ``maxsize > 0`` bounds it."""
        maxsize = checks.integer("maxsize", maxsize)
        return self._make("procframe_make_queue", "a Queue", maxsize=maxsize)  # type: ignore[no-any-return]

    def JoinableQueue(self, maxsize: int = 0) -> queues.JoinableQueue[Any]:
        """A Queue with ``task_done()`` and ``join()``."""
        maxsize = checks.integer("maxsize", maxsize)
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_joinable_queue", "a JoinableQueue", maxsize=maxsize
        )

    def SimpleQueue(self) -> queues.SimpleQueue[Any]:
        """A queue with only ``put``, ``get``, ``empty`` and ``close``."""
        return self._make("procframe_make_simple_queue", "a SimpleQueue")  # type: ignore[no-any-return]

    def Lock(self) -> synchronize.Lock:
        """A non-recursive lock shared between processes."""
        return self._make("procframe_make_lock", "a Lock")  # type: ignore[no-any-return]

    def RLock(self) -> synchronize.RLock:
        """A recursive lock shared between processes."""
        return self._make("procframe_make_rlock", "an RLock")  # type: ignore[no-any-return]

    def Semaphore(self, value: int = 1) -> synchronize.Semaphore:
        """A semaphore shared between processes."""
        value = checks.integer("Semaphore value", value, 0)
        return self._make("procframe_make_semaphore", "a Semaphore", value=value)  # type: ignore[no-any-return]

    def BoundedSemaphore(self, value: int = 1) -> synchronize.BoundedSemaphore:
        """A semaphore that refuses to be released above its initial value."""
        value = checks.integer("BoundedSemaphore value", value, 0)
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_bounded_semaphore", "a BoundedSemaphore", value=value
        )

    def Condition(self, lock: Any = None) -> synchronize.Condition:
        """A condition variable shared between processes, on ``lock`` (a new RLock if None)."""
        lock = condition_lock(lock)
        return self._make("procframe_make_condition", "a Condition", lock=lock)  # type: ignore[no-any-return]

    def Event(self) -> synchronize.Event:
        """An event flag shared between processes."""
        return self._make("procframe_make_event", "an Event")  # type: ignore[no-any-return]

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> synchronize.Barrier:
        """A barrier for ``parties`` processes."""
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_barrier",
            "a Barrier",
            parties=checks.integer("parties", parties, 1),
            action=checks.optional_callable("action", action),
            timeout=checks.timeout("timeout", timeout),
        )

    # The factories of shared ctypes objects are typed as typeshed types multiprocessing's,
    # except where typeshed is wrong: with lock=False they return the raw object.
    if TYPE_CHECKING:

        @overload
        def Value(self, typecode_or_type: type[CT], *args: Any, lock: Literal[False]) -> CT: ...
        @overload
        def Value(
            self,
            typecode_or_type: type[_SimpleCData[T]],
            *args: Any,
            lock: Literal[True] | LockLike = True,
        ) -> Synchronized[T]: ...
        @overload
        def Value(
            self, typecode_or_type: type[CT], *args: Any, lock: Literal[True] | LockLike = True
        ) -> SynchronizedBase[CT]: ...
        @overload
        def Value(
            self, typecode_or_type: str, *args: Any, lock: Literal[True] | LockLike = True
        ) -> Synchronized[Any]: ...
        @overload
        def Value(
            self, typecode_or_type: str | type[_CData], *args: Any, lock: bool | LockLike = True
        ) -> Any: ...

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """A ctypes object in shared memory behind a lock (``lock=True``: a new RLock).

        ``typecode_or_type`` is an ``array`` typecode (``'i'``, ``'d'``, ``'c'``,
        ...) or a ctypes type; ``lock=False`` gives the raw object; any object
        with ``acquire`` and ``release`` may be given as the lock.
        """
        return self._make(
            "procframe_make_value",
            "a Value",
            typecode_or_type=typecode_or_type,
            args=args,
            lock=lock,
        )

    if TYPE_CHECKING:

        @overload
        def Array(
            self,
            typecode_or_type: type[CT],
            size_or_initializer: int | Iterable[Any],
            *,
            lock: Literal[False],
        ) -> ctypes.Array[CT]: ...
        @overload
        def Array(
            self,
            typecode_or_type: type[c_char],
            size_or_initializer: int | Iterable[Any],
            *,
            lock: Literal[True] | LockLike = True,
        ) -> SynchronizedString: ...
        @overload
        def Array(
            self,
            typecode_or_type: type[_SimpleCData[T]],
            size_or_initializer: int | Iterable[Any],
            *,
            lock: Literal[True] | LockLike = True,
        ) -> SynchronizedArray[T]: ...
        @overload
        def Array(
            self,
            typecode_or_type: str,
            size_or_initializer: int | Iterable[Any],
            *,
            lock: Literal[True] | LockLike = True,
        ) -> SynchronizedArray[Any]: ...
        @overload
        def Array(
            self,
            typecode_or_type: str | type[_CData],
            size_or_initializer: int | Iterable[Any],
            *,
            lock: bool | LockLike = True,
        ) -> Any: ...

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        """A ctypes array in shared memory behind a lock: ``size`` zeros, or the initializer's."""
        return self._make(
            "procframe_make_array",
            "an Array",
            typecode_or_type=typecode_or_type,
            size_or_initializer=size_or_initializer,
            lock=lock,
        )

    if TYPE_CHECKING:

        @overload
        def RawValue(self, typecode_or_type: type[CT], *args: Any) -> CT: ...
        @overload
        def RawValue(self, typecode_or_type: str, *args: Any) -> Any: ...

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """A ctypes object in shared memory, without a lock."""
        return self._make(
            "procframe_make_raw_value", "a RawValue", typecode_or_type=typecode_or_type, args=args
        )

    if TYPE_CHECKING:

        @overload
        def RawArray(
            self, typecode_or_type: type[CT], size_or_initializer: int | Iterable[Any]
        ) -> ctypes.Array[CT]: ...
        @overload
        def RawArray(
            self, typecode_or_type: str, size_or_initializer: int | Iterable[Any]
        ) -> Any: ...

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        """A ctypes array in shared memory, without a lock."""
        return self._make(
            "procframe_make_raw_array",
            "a RawArray",
            typecode_or_type=typecode_or_type,
            size_or_initializer=size_or_initializer,
        )

    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        *,
        task_timeout: float | None = None,
    ) -> pool.Pool:
        """A pool of worker processes; ``task_timeout`` stops tasks that run longer."""
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_pool",
            "a Pool",
            processes=checks.pool_size(processes),
            initializer=checks.optional_callable("initializer", initializer),
            initargs=tuple(initargs),
            maxtasksperchild=checks.tasks_per_child(maxtasksperchild),
            task_timeout=checks.timeout("task_timeout", task_timeout, positive=True),
        )

    def Manager(self) -> managers.SyncManager:
        """A started SyncManager whose server process runs under this backend."""
        return self._make("procframe_make_manager", "a Manager")  # type: ignore[no-any-return]


class DefaultContext(Context):
    """The context of whichever backend is the default at each call: the module-level API."""

    def __init__(self) -> None:  # no backend of its own: it is looked up at each call
        self._process_class = None
        self._serializer = None

    @property
    def backend(self) -> BackendInfo:
        """What the default backend declared."""
        return get_context().backend

    @property
    def Process(self) -> type[BaseProcess]:
        """The Process class; its instances start under the default backend of ``start()``."""
        from procframe._core.process import Process

        return Process

    def get_start_method(self, allow_none: bool = False) -> str | None:
        """The default backend's name; with ``allow_none``, ``None`` unless it was set."""
        return get_start_method(allow_none)

    def get_context(self, method: str | None = None, *, serializer: str | None = None) -> Context:
        """The context of backend ``method`` (the default backend when ``None``), with
        ``serializer`` if given (:func:`get_context`)."""
        return get_context(method, serializer=serializer)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Choose the default backend, once: a second call needs ``force=True``.

        :func:`set_start_method`; :func:`set_backend` also accepts the same backend again.
        """
        set_start_method(method, force=force)

    def get_all_start_methods(self) -> list[str]:
        """The available backends, the platform default first."""
        return get_all_start_methods()

    def _make(self, hook_name: str, what: str, **kwargs: Any) -> Any:
        return get_context()._make(hook_name, what, **kwargs)

    def __repr__(self) -> str:
        return "<procframe DefaultContext>"

    def __reduce__(self) -> tuple[Any, ...]:
        return _the_default_context, ()


def _context_with_serializer(name: str, serializer: str) -> Context:
    return get_context(name, serializer=serializer)


def _the_default_context() -> DefaultContext:
    return default_context


BaseContext = Context
"""``multiprocessing.context.BaseContext``: every context is a :class:`Context`."""


class ForkContext(Context):
    """The context of the ``fork`` backend."""


class SpawnContext(Context):
    """The context of the ``spawn`` backend."""


class ForkServerContext(Context):
    """The context of the ``forkserver`` backend."""


_CONTEXT_CLASSES: dict[str, type[Context]] = {
    "fork": ForkContext,
    "spawn": SpawnContext,
    "forkserver": ForkServerContext,
}
_PROCESS_CLASSES = {
    "ForkProcess": "fork",
    "SpawnProcess": "spawn",
    "ForkServerProcess": "forkserver",
}


def __getattr__(name: str) -> type[BaseProcess]:
    # Made on first use: a spawned child imports this module.
    backend = _PROCESS_CLASSES.get(name)
    if backend is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from procframe._core.process import bound_process_class

    return bound_process_class(backend)


default_context = DefaultContext()
"""The module-level API of ``procframe`` is this object's methods."""

"""Backend selection and the :class:`Context`: one factory per public name, bound to one backend.

Selection order: ``get_context(name)`` > ``set_backend(name)`` >
``PROCFRAME_BACKEND`` > the platform default.  A child runs under the backend
that launched it: the launcher passes the name and the child calls
:func:`_adopt_backend`, so the environment is never read again there.
"""

from __future__ import annotations

import _thread
import os
import sys

from procframe.api.errors import BackendError

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from pluggy import HookCaller

    from procframe import managers, pool
    from procframe.api import queues, synchronize
    from procframe.api.backend import BackendInfo, Launcher
    from procframe.api.process import BaseProcess, _ParentProcess
    from procframe.connection import Connection

BACKEND_ENV = "PROCFRAME_BACKEND"

_lock = _thread.RLock()
_chosen: str | None = None  # set_backend() / inherited from the launching parent
_contexts: dict[str, Context] = {}
_backends: dict[str, BackendInfo] | None = None


def platform_default() -> str:
    """forkserver on Linux (fork is unsafe once a process has threads), spawn elsewhere."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def backends() -> dict[str, BackendInfo]:
    """Every declared backend, available or not, by name."""
    global _backends
    found = _backends
    if found is None:
        with _lock:
            if _backends is None:
                _backends = _declared_backends()
            found = _backends
    return found


def _declared_backends() -> dict[str, BackendInfo]:
    from procframe.api.backend import BackendInfo
    from procframe.plugins import get_plugin_manager

    pm = get_plugin_manager()
    found: dict[str, BackendInfo] = {}
    for info in reversed(pm.hook.procframe_declare_backend()):
        if not isinstance(info, BackendInfo):
            culprit = _declaring_plugin(info)
            raise TypeError(
                f"procframe_declare_backend of plugin {culprit!r} returned "
                f"{type(info).__name__}, expected procframe.api.backend.BackendInfo or None"
            )
        if info.name in found:
            first, second = pm.get_name(found[info.name].plugin), pm.get_name(info.plugin)
            raise BackendError(
                f"two plugins declare backend {info.name!r}: {first} and {second}; "
                "uninstall or block one of them"
            )
        found[info.name] = info
    return found


def _declaring_plugin(answer: object) -> str:
    """The name of the plugin whose procframe_declare_backend returns ``answer`` (error path)."""
    from procframe.plugins import get_plugin_manager

    for impl in get_plugin_manager().hook.procframe_declare_backend.get_hookimpls():
        if impl.function() is answer or impl.function() == answer:
            return impl.plugin_name
    return "unknown"


def available_backends() -> list[str]:
    """Names of the backends that can run here, the default first."""
    names = sorted(name for name, info in backends().items() if info.available)
    default = platform_default()
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


def _resolve(name: str, source: str) -> BackendInfo:
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    known = backends()
    info = known.get(name)
    if info is None:
        listed = ", ".join(sorted(known)) or "none"
        raise BackendError(
            f"unknown procframe backend {name!r} ({source}); backends that exist: {listed}. "
            "A third-party backend is found once its package, which declares an entry point "
            "in the 'procframe' group, is installed; `python -m procframe info` lists them"
        )
    if not info.available:
        listed = ", ".join(available_backends()) or "none"
        raise BackendError(
            f"procframe backend {name!r} ({source}) is not available here: {info.reason}. "
            f"Available: {listed}"
        )
    return info


def default_backend_name() -> str:
    """The name the default context uses: set_backend > PROCFRAME_BACKEND > platform default."""
    if _chosen is not None:
        return _chosen
    from_env = os.environ.get(BACKEND_ENV, "").strip()
    if from_env:
        _resolve(from_env, f"from the environment variable {BACKEND_ENV}")
        return from_env
    return platform_default()


def get_context(method: str | None = None) -> Context:
    """The context of backend ``method``, or of the default backend when ``None``."""
    name = default_backend_name() if method is None else method
    context = _contexts.get(name)
    if context is None:
        with _lock:
            context = _contexts.get(name)
            if context is None:
                source = "asked for by name" if method is not None else "the default"
                context = Context(_resolve(name, source))
                _contexts[name] = context
    return context


def set_backend(name: str, force: bool = False) -> None:
    """Choose the default backend for this process, once (``force=True`` to change it)."""
    global _chosen
    with _lock:
        if _chosen is not None and not force and name != _chosen:
            raise RuntimeError(
                f"the procframe backend was already set to {_chosen!r}; "
                "pass force=True to change it"
            )
        if name is None:
            if not force:
                raise ValueError("set_backend(None) needs force=True (it clears the choice)")
            _chosen = None
            return
        _resolve(name, "passed to set_backend")
        _chosen = name


def get_start_method(allow_none: bool = False) -> str | None:
    """The default backend's name; with ``allow_none``, ``None`` unless it was set."""
    if _chosen is None and allow_none:
        return None
    return default_backend_name()


def get_all_start_methods() -> list[str]:
    """The available backends, the platform default first."""
    return available_backends()


def _adopt_backend(name: str) -> None:
    """Make ``name`` this process's default (in a child: the backend that launched it)."""
    global _chosen
    _chosen = name


def _forget_contexts() -> None:
    """Drop cached contexts and backend declarations (the plugin set changed)."""
    global _backends
    with _lock:
        _contexts.clear()
        _backends = None


class Context:
    """The public API bound to one backend; ``procframe.get_context(name)`` returns one."""

    def __init__(self, backend: BackendInfo) -> None:
        self._backend = backend
        self._process_class: type[BaseProcess] | None = None
        self._callers: dict[str, HookCaller] = {}

    # -- identity -------------------------------------------------------------

    @property
    def backend(self) -> BackendInfo:
        """What the backend declared: name, capabilities, plugin."""
        return self._backend

    @property
    def name(self) -> str:
        return self._backend.name

    def get_start_method(self, allow_none: bool = False) -> str:
        """The backend's name (``multiprocessing`` calls backends start methods)."""
        return self._backend.name

    def get_context(self, method: str | None = None) -> Context:
        """Another context, or this one when ``method`` is ``None``."""
        return self if method is None else get_context(method)

    def __repr__(self) -> str:
        return f"<procframe Context backend={self.name!r}>"

    # -- factories -------------------------------------------------------------

    @property
    def Process(self) -> type[BaseProcess]:
        """The Process class whose instances start under this backend."""
        if self._process_class is None:
            from procframe.api.process import bound_process_class

            self._process_class = bound_process_class(self.name)
        return self._process_class

    def Pipe(self, duplex: bool = True) -> tuple[Connection, Connection]:
        """Two connected ends; with ``duplex=False``, (read-only end, write-only end)."""
        return self._make("procframe_make_pipe", "a Pipe", duplex=bool(duplex))  # type: ignore[no-any-return]

    def Queue(self, maxsize: int = 0) -> queues.Queue:
        """A FIFO queue between processes; ``maxsize > 0`` bounds it."""
        return self._make("procframe_make_queue", "a Queue", kind="Queue", maxsize=maxsize)  # type: ignore[no-any-return]

    def JoinableQueue(self, maxsize: int = 0) -> queues.JoinableQueue:
        """A Queue with ``task_done()`` and ``join()``."""
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_queue", "a JoinableQueue", kind="JoinableQueue", maxsize=maxsize
        )

    def SimpleQueue(self) -> queues.SimpleQueue:
        """A queue with only ``put``, ``get``, ``empty`` and ``close``."""
        return self._make(  # type: ignore[no-any-return]
            "procframe_make_queue", "a SimpleQueue", kind="SimpleQueue", maxsize=0
        )

    def Lock(self) -> synchronize.Lock:
        """A non-recursive lock shared between processes."""
        return self._lock("Lock")  # type: ignore[no-any-return]

    def RLock(self) -> synchronize.RLock:
        """A recursive lock shared between processes."""
        return self._lock("RLock")  # type: ignore[no-any-return]

    def Semaphore(self, value: int = 1) -> synchronize.Semaphore:
        """A semaphore shared between processes."""
        return self._lock("Semaphore", value)  # type: ignore[no-any-return]

    def BoundedSemaphore(self, value: int = 1) -> synchronize.BoundedSemaphore:
        """A semaphore that refuses to be released above its initial value."""
        return self._lock("BoundedSemaphore", value)  # type: ignore[no-any-return]

    def Condition(self, lock: Any = None) -> synchronize.Condition:
        """A condition variable shared between processes."""
        return self._lock("Condition", lock)  # type: ignore[no-any-return]

    def Event(self) -> synchronize.Event:
        """An event flag shared between processes."""
        return self._lock("Event")  # type: ignore[no-any-return]

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """A ctypes object in shared memory behind a lock (``lock=True``: a new RLock).

        ``lock=False`` gives the raw object; any object with ``acquire`` and
        ``release`` may be given as the lock.
        """
        return self._shared("Value", (typecode_or_type, *args), {"lock": lock})

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        """A ctypes array in shared memory behind a lock (``lock=True``: a new RLock)."""
        return self._shared("Array", (typecode_or_type, size_or_initializer), {"lock": lock})

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """A ctypes object in shared memory, without a lock."""
        return self._shared("RawValue", (typecode_or_type, *args), {})

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        """A ctypes array in shared memory, without a lock."""
        return self._shared("RawArray", (typecode_or_type, size_or_initializer), {})

    def _shared(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._make("procframe_make_shared", f"a {kind}", kind=kind, args=args, kwargs=kwargs)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> synchronize.Barrier:
        """A barrier for ``parties`` processes."""
        return self._lock("Barrier", parties, action, timeout)  # type: ignore[no-any-return]

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
            processes=processes,
            initializer=initializer,
            initargs=tuple(initargs),
            maxtasksperchild=maxtasksperchild,
            task_timeout=task_timeout,
            context=self,
        )

    def Manager(self) -> managers.SyncManager:
        """A started SyncManager whose server process runs under this backend."""
        return self._make("procframe_make_manager", "a Manager", context=self)  # type: ignore[no-any-return]

    def _lock(self, kind: str, *args: Any) -> Any:
        return self._make("procframe_make_lock", f"a {kind}", kind=kind, args=args)

    def _make(self, hook_name: str, what: str, **kwargs: Any) -> Any:
        made = self._hook(hook_name)(backend=self._backend, **kwargs)
        if made is None:
            raise BackendError(
                f"backend {self.name!r} cannot make {what}: no plugin implements {hook_name}"
            )
        return made

    def current_process(self) -> BaseProcess:
        from procframe.api.process import current_process

        return current_process()

    def parent_process(self) -> _ParentProcess | None:
        from procframe.api.process import parent_process

        return parent_process()

    def active_children(self) -> list[BaseProcess]:
        from procframe.api.process import active_children

        return active_children()

    def cpu_count(self) -> int:
        from procframe.api.system import cpu_count

        return cpu_count()

    def set_forkserver_preload(self, module_names: list[str]) -> None:
        """Modules the fork server imports once, before it forks any child."""
        from procframe.backends.forkserver import set_forkserver_preload

        set_forkserver_preload(module_names)

    def set_executable(self, executable: str) -> None:
        """The Python interpreter that spawn-style backends start."""
        from procframe.backends.spawn import set_executable

        set_executable(executable)

    # -- hook dispatch (creation time only) -----------------------------------

    def _hook(self, name: str) -> HookCaller:
        """``name`` called on this backend's plugin and every plugin that is not a backend.

        Cached: the context is dropped whenever procframe.plugins changes the plugin set.
        """
        caller = self._callers.get(name)
        if caller is None:
            from procframe.plugins import get_plugin_manager

            mine = self._backend.plugin
            others = [info.plugin for info in backends().values() if info.plugin is not mine]
            caller = get_plugin_manager().subset_hook_caller(name, remove_plugins=others)
            self._callers[name] = caller
        return caller

    def has_observers(self, hook_name: str) -> bool:
        """True if some plugin implements ``hook_name`` for this backend (skip the call if not)."""
        return bool(self._hook(hook_name).get_hookimpls())

    def _launch(self, process: BaseProcess) -> Launcher:
        launcher = self._hook("procframe_launch_process")(process=process, backend=self._backend)
        if launcher is None:
            raise BackendError(
                f"backend {self.name!r} ({type(self._backend.plugin).__name__}) "
                "did not implement procframe_launch_process"
            )
        return launcher  # type: ignore[no-any-return]

    def _notify_started(self, process: BaseProcess) -> None:
        caller = self._hook("procframe_process_started")
        if caller.get_hookimpls():
            caller(process=process, backend=self._backend)

    def _notify_exited(self, process: BaseProcess, exitcode: int) -> None:
        caller = self._hook("procframe_process_exited")
        if caller.get_hookimpls():
            caller(process=process, exitcode=exitcode)

    def _notify_bootstrap(self, process: BaseProcess) -> None:
        self._hook("procframe_child_bootstrap")(process=process, backend=self._backend)

    def __reduce__(self) -> tuple[Any, ...]:
        return get_context, (self.name,)

"""The backends the plugins declare, the one this process uses, and the hook calls bound to one.

Selection order: an explicit name > :func:`choose` (``set_backend``, or the
backend that launched this child, :func:`adopt`, or in a thread that runs a
process, :func:`adopt_in_thread`) > ``PROCFRAME_BACKEND`` >
the platform default.  A backend's hook calls go to its own plugin and to
every plugin that is not a backend (observers, the shared POSIX primitives);
other backends are left out, so a backend never checks which one was asked for.

Kept free of pluggy at import: a spawned child adopts its backend without
loading the plugins, unless a plugin must see its bootstrap.
"""

from __future__ import annotations

import _thread
import os
import sys

from procframe._core.errors import BackendError

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    from pluggy import HookCaller as PluggyHookCaller

    from procframe._core.backend import BackendInfo, Launcher
    from procframe._core.builtin_hooks import HookCaller as BuiltinHookCaller
    from procframe._core.process import BaseProcess

    HookCaller = PluggyHookCaller | BuiltinHookCaller

BACKEND_ENV = "PROCFRAME_BACKEND"

_lock = _thread.RLock()
_chosen: str | None = None


class _ThreadChoice(_thread._local):
    name: str | None = None
    """The backend of the process a thread runs, if it runs one (:func:`adopt_in_thread`)."""


_in_thread = _ThreadChoice()
_declared: dict[str, BackendInfo] | None = None
_callers: dict[tuple[str, str], HookCaller] = {}
_observed: dict[tuple[str, str], bool] = {}


def platform_default() -> str:
    """forkserver on Linux (fork is unsafe once a process has threads), spawn elsewhere."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def backends() -> dict[str, BackendInfo]:
    """Every declared backend, available or not, by name."""
    global _declared
    found = _declared
    if found is None:
        with _lock:
            if _declared is None:
                _declared = _declare()
            found = _declared
    return found


def _declare() -> dict[str, BackendInfo]:
    from procframe._core.backend import BackendInfo
    from procframe._core.plugins import hook_manager, on_change

    on_change(forget)
    pm = hook_manager()
    found: dict[str, BackendInfo] = {}
    for impl in pm.hook.procframe_declare_backend.get_hookimpls():
        info = impl.function()
        if info is None:
            continue
        if not isinstance(info, BackendInfo):
            raise TypeError(
                f"procframe_declare_backend of plugin {impl.plugin_name!r} returned "
                f"{type(info).__name__}, expected procframe.backends.BackendInfo or None"
            )
        if info.name in found:
            first = pm.get_name(found[info.name].plugin)
            raise BackendError(
                f"two plugins declare backend {info.name!r}: {first} and {impl.plugin_name}; "
                "uninstall or block one of them"
            )
        found[info.name] = info
    return found


def available_backends() -> list[str]:
    """Names of the backends that can run here, the platform default first."""
    names = sorted(name for name, info in backends().items() if info.available)
    default = platform_default()
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


def resolve(name: str, source: str) -> BackendInfo:
    """The backend ``name``, or a :class:`BackendError` listing those that exist."""
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


def chosen() -> str | None:
    """The backend chosen in code (or inherited from the launching parent), if any."""
    return _in_thread.name or _chosen


def default_backend_name() -> str:
    """The default backend's name: chosen > ``PROCFRAME_BACKEND`` > platform default."""
    name = _in_thread.name or _chosen
    if name is not None:
        return name
    from_env = os.environ.get(BACKEND_ENV, "").strip()
    if from_env:
        resolve(from_env, f"from the environment variable {BACKEND_ENV}")
        return from_env
    return platform_default()


def choose(name: str | None, force: bool = False) -> None:
    """Make ``name`` this process's default backend, once (``force=True`` to change it)."""
    global _chosen
    with _lock:
        if _chosen is not None and not force and name != _chosen:
            raise RuntimeError(
                f"context has already been set: the procframe backend is {_chosen!r}; "
                "pass force=True to change it"
            )
        if name is None:
            if not force:
                raise ValueError("set_backend(None) needs force=True (it clears the choice)")
            _chosen = None
            return
        resolve(name, "passed to set_backend")
        _chosen = name


def adopt(name: str) -> None:
    """In a child: run under ``name``, the backend that launched it (no check, no plugins)."""
    global _chosen
    _chosen = name


def adopt_in_thread(name: str | None) -> None:
    """In a thread that runs a process: run under ``name`` there (``None``: as the others)."""
    _in_thread.name = name


def hook(backend: str, hook_name: str) -> HookCaller:
    """``hook_name`` called on ``backend``'s plugin and every plugin that is not a backend.

    Cached until the plugin set changes.  Creation time only: never per put,
    get, send, recv, acquire or release.
    """
    caller = _callers.get((backend, hook_name))
    if caller is None:
        from procframe._core.plugins import hook_manager

        mine = backends()[backend].plugin
        others = [info.plugin for info in backends().values() if info.plugin is not mine]
        caller = hook_manager().subset_hook_caller(hook_name, remove_plugins=others)
        _callers[(backend, hook_name)] = caller
    return caller


def has_observers(backend: str, hook_name: str) -> bool:
    """True if some plugin implements ``hook_name`` for ``backend`` (skip the call if not).

    False for a backend no plugin declares any more (its plugin was unregistered
    while one of its processes ran).  Cached with the hook callers: it is asked
    at every start.
    """
    observed = _observed.get((backend, hook_name))
    if observed is None:
        observed = backend in backends() and bool(hook(backend, hook_name).get_hookimpls())
        _observed[(backend, hook_name)] = observed
    return observed


def launch(process: BaseProcess, backend: BackendInfo) -> Launcher:
    """Start ``process`` through ``backend``'s ``procframe_launch_process``."""
    launcher = hook(backend.name, "procframe_launch_process")(process=process, backend=backend)
    if launcher is None:
        raise BackendError(
            f"backend {backend.name!r} ({type(backend.plugin).__name__}) "
            "did not implement procframe_launch_process"
        )
    return launcher  # type: ignore[no-any-return]


def notify_started(process: BaseProcess, backend: BackendInfo) -> None:
    """Call the ``procframe_process_started`` observers, if any."""
    if has_observers(backend.name, "procframe_process_started"):
        hook(backend.name, "procframe_process_started")(process=process, backend=backend)


def notify_exited(process: BaseProcess, backend: str, exitcode: int) -> None:
    """Call the ``procframe_process_exited`` observers, if any."""
    if has_observers(backend, "procframe_process_exited"):
        hook(backend, "procframe_process_exited")(process=process, exitcode=exitcode)


def bootstrap_observed(backend: str) -> bool:
    """True if a plugin implements ``procframe_child_bootstrap`` for ``backend``'s children.

    Asked in the parent at launch, so that a child without observers need not
    load the plugins (pluggy, the entry points).
    """
    return has_observers(backend, "procframe_child_bootstrap")


def notify_bootstrap(process: BaseProcess, backend: str) -> None:
    """In the child, before ``run()``: call the ``procframe_child_bootstrap`` observers."""
    hook(backend, "procframe_child_bootstrap")(process=process, backend=backends()[backend])


def forget() -> None:
    """Drop the declared backends and cached hook callers (the plugin set changed)."""
    global _declared
    with _lock:
        _declared = None
        _callers.clear()
        _observed.clear()

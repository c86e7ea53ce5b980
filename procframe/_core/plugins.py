"""The plugin manager: built-in plugins, then entry points, then validation.

Built-in plugins are listed by module name in :data:`BUILTIN_PLUGINS` and
loaded the way entry points are (pytest's ``default_plugins``): nothing in
``_core`` imports a backend.  The manager is built on first use (importing
procframe loads no plugin) and is process-wide.  Tests that register plugins
call :func:`reset_plugin_manager`.

procframe calls its hooks through :func:`hook_manager`.  While the built-in
plugins are the only ones (no entry point in the group, nothing registered in
code), that is a :class:`~procframe._core.builtin_hooks.BuiltinPluginManager`,
which calls them in pluggy's order without importing pluggy; the first
:func:`get_plugin_manager` (which :func:`register` calls) builds pluggy's
manager, and from then on every hook call goes through pluggy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from procframe._core import hookspecs
from procframe._core.builtin_hooks import BuiltinPluginManager, Unsupported

TYPE_CHECKING = False  # pluggy and typing are imported once a plugin beyond the built-ins exists
if TYPE_CHECKING:
    import pluggy

    from procframe._core.entrypoints import EntryPoint

ENTRY_POINT_GROUP = "procframe"
DISABLE_AUTOLOAD_ENV = "PROCFRAME_DISABLE_PLUGIN_AUTOLOAD"

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_builtin: BuiltinPluginManager | None = None
_origins: dict[str, str] = {}


class PluginLoadError(RuntimeError):
    """A plugin found through the ``procframe`` entry points failed to load."""


BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("procframe.posix", "procframe.posix.plugin:plugin"),
    ("procframe.defaults", "procframe.defaults"),
    ("procframe.backends.fork", "procframe.backends.fork:plugin"),
    ("procframe.backends.spawn", "procframe.backends.spawn:plugin"),
    ("procframe.backends.forkserver", "procframe.backends.forkserver:plugin"),
    ("procframe.threads", "procframe.threads:plugin"),
    ("procframe.serializers", "procframe.serializers.builtin:plugin"),
)
"""(name, entry-point value) of every plugin procframe ships: the shared POSIX
primitives, the default Pool and Manager, the built-in backends and serializers."""

_on_change: list[Callable[[], None]] = []


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the plugin set changes (what was derived from it is stale)."""
    if callback not in _on_change:
        _on_change.append(callback)


def _changed() -> None:
    for callback in _on_change:
        callback()


def _builtin_plugins() -> list[tuple[str, object]]:
    """(name, plugin) of every built-in plugin, loaded like an entry point."""
    from procframe._core.entrypoints import EntryPoint

    return [
        (name, EntryPoint(name, value, ENTRY_POINT_GROUP, "procframe", "").load())
        for name, value in BUILTIN_PLUGINS
    ]


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _entry_points() -> list[EntryPoint]:
    """The entry points to load: none when autoload is disabled."""
    from procframe._core.entrypoints import entry_points

    return [] if _autoload_disabled() else entry_points(ENTRY_POINT_GROUP)


def _load_entry_points(pm: pluggy.PluginManager, found: list[EntryPoint]) -> None:
    for ep in found:
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"procframe plugin {ep.name!r} ({ep.value}, from {ep.dist_name} "
                f"{ep.dist_version}) failed to import: {exc!r}; uninstall it or set "
                f"{DISABLE_AUTOLOAD_ENV}=1"
            ) from exc
        pm.register(plugin, name=ep.name)
        _origins[ep.name] = f"{ep.dist_name} {ep.dist_version}"


def _build(found: list[EntryPoint]) -> pluggy.PluginManager:
    import pluggy

    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in _builtin_plugins():
        pm.register(plugin, name=name)
    _load_entry_points(pm, found)
    pm.check_pending()
    return pm


def _builtin_only(found: list[EntryPoint]) -> BuiltinPluginManager | None:
    """The built-ins' own manager, if no entry point was ``found`` and none needs pluggy."""
    if found:
        return None
    try:
        return BuiltinPluginManager(_builtin_plugins())
    except Unsupported:
        return None


def hook_manager() -> pluggy.PluginManager | BuiltinPluginManager:
    """What procframe calls its hooks through: pluggy's manager once built, else the built-ins'."""
    global _manager, _builtin
    manager = _manager or _builtin
    if manager is None:
        with _lock:
            if _manager is None and _builtin is None:
                found = _entry_points()
                _builtin = _builtin_only(found)
                if _builtin is None:
                    _manager = _build(found)
            manager = _manager or _builtin
    assert manager is not None
    return manager


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide pluggy plugin manager, building it on first use.

    From then on, procframe calls every hook through it.
    """
    global _manager, _builtin
    pm = _manager
    switched = False
    if pm is None:
        with _lock:
            if _manager is None:
                _manager = _build(_entry_points())
                switched, _builtin = _builtin is not None, None
            pm = _manager
    if switched:
        _changed()  # the hook callers taken from the built-ins' manager are stale
    return pm


def reset_plugin_manager() -> None:
    """Forget the plugin manager and what was derived from it (backends, hook callers).

    The next use rebuilds both, reading the entry points again.  Meant for
    tests and for programs that install plugins at run time.
    """
    global _manager, _builtin
    with _lock:
        _manager = _builtin = None
    _changed()


def plugin_origin(name: str) -> str:
    """Where plugin ``name`` came from: "procframe", "<dist> <version>" or "registered in code"."""
    if name in dict(BUILTIN_PLUGINS):
        return "procframe"
    return _origins.get(name, "registered in code")


def register(plugin: object, name: str | None = None) -> str | None:
    """Register ``plugin`` (an object with hookimpls) and validate it."""
    pm = get_plugin_manager()
    registered = pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except Exception:
        pm.unregister(plugin)  # a rejected plugin must not poison later registrations
        raise
    _changed()
    return registered


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register`."""
    get_plugin_manager().unregister(plugin)
    _changed()


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[object]:
    """Register ``plugin`` for the duration of a ``with`` block."""
    register(plugin, name)
    try:
        yield plugin
    finally:
        unregister(plugin)

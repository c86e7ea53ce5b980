"""The plugin manager: built-in backends, then entry points, then validation.

The manager is built on first use (importing procframe loads no plugin) and
is process-wide.  Tests that register plugins call :func:`reset_plugin_manager`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pluggy

from procframe import hookspecs

ENTRY_POINT_GROUP = "procframe"
DISABLE_AUTOLOAD_ENV = "PROCFRAME_DISABLE_PLUGIN_AUTOLOAD"

_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_origins: dict[str, str] = {}


class PluginLoadError(RuntimeError):
    """A plugin found through the ``procframe`` entry points failed to load."""


def _builtin_plugins() -> list[tuple[str, object]]:
    from procframe.backends import builtin_backends, defaults

    plugins: list[tuple[str, object]] = [("procframe.backends.defaults", defaults.plugin)]
    plugins += [(f"procframe.backends.{b.name}", b) for b in builtin_backends()]
    return plugins


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from procframe._entrypoints import entry_points

    for ep in entry_points(ENTRY_POINT_GROUP):
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


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in _builtin_plugins():
        pm.register(plugin, name=name)
    if not _autoload_disabled():
        _load_entry_points(pm)
    pm.check_pending()
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, building it on first use."""
    global _manager
    pm = _manager
    if pm is None:
        with _lock:
            if _manager is None:
                _manager = _build()
            pm = _manager
    return pm


def reset_plugin_manager() -> None:
    """Forget the plugin manager and every backend context built from it.

    The next use rebuilds both, reading the entry points again.  Meant for
    tests and for programs that install plugins at run time.
    """
    global _manager
    with _lock:
        _manager = None
    from procframe.api import context

    context._forget_contexts()


def plugin_origin(name: str) -> str:
    """Where plugin ``name`` came from: "procframe", "<dist> <version>" or "registered in code"."""
    if name.startswith("procframe."):
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
    _invalidate_backends()
    return registered


def unregister(plugin: object) -> None:
    """Remove a plugin registered with :func:`register`."""
    get_plugin_manager().unregister(plugin)
    _invalidate_backends()


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[object]:
    """Register ``plugin`` for the duration of a ``with`` block."""
    register(plugin, name)
    try:
        yield plugin
    finally:
        unregister(plugin)


def _invalidate_backends() -> None:
    from procframe.api import context

    context._forget_contexts()

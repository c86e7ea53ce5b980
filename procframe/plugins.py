"""The plugin manager: register, unregister and inspect procframe plugins.

The code lives in :mod:`procframe._core.plugins`.
"""

from __future__ import annotations

from procframe._core.plugins import (
    BUILTIN_PLUGINS,
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PluginLoadError,
    get_plugin_manager,
    plugin_origin,
    register,
    registered,
    reset_plugin_manager,
    unregister,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PluginLoadError",
    "get_plugin_manager",
    "plugin_origin",
    "register",
    "registered",
    "reset_plugin_manager",
    "unregister",
]

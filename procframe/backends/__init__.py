"""Backends that start OS processes (fork, spawn, forkserver), and what a backend author uses.

A backend is a plugin (see :mod:`procframe.hookspecs`) that declares a
:class:`BackendInfo` and implements ``procframe_launch_process``, returning a
:class:`Launcher` per process; it may implement any factory hook as well.  A
backend that starts OS processes subclasses :class:`ProcessBackend` (or a
built-in backend) and registers an instance through the ``procframe``
entry-point group.  The capability constants below are what a backend may
declare, and what the conformance kit's ``requires`` marks ask for.

The names are imported on first use: every spawned child imports this package.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is slow to import, and every spawned child imports this
if TYPE_CHECKING:
    from procframe._core.backend import BackendInfo, Launcher
    from procframe._core.capabilities import (
        HOST_MEMORY,
        INHERITS_PARENT_MEMORY,
        KNOWN_CAPABILITIES,
        LOCAL_PIDS,
        MANAGER_SERVER,
        PARENT_DEATH,
        PASSES_DESCRIPTORS,
        PICKLES_PROCESS,
        POSIX_SIGNALS,
        REIMPORTS_MAIN,
        SEPARATE_MEMORY,
        TASK_TIMEOUTS,
        TASKS_RUN_ONCE,
    )
    from procframe._core.checks import wait_timeout
    from procframe._core.logsupport import inherit as inherit_logging
    from procframe._core.logsupport import inherited_settings as logging_settings
    from procframe._core.osutil import arm_parent_death
    from procframe._core.process import (
        exit_work_before_threads_stop,
        spawning,
        spawning_payload,
    )
    from procframe.backends.base import ChildLauncher, DescriptorLauncher, ProcessBackend

__all__ = [
    "HOST_MEMORY",
    "INHERITS_PARENT_MEMORY",
    "KNOWN_CAPABILITIES",
    "LOCAL_PIDS",
    "MANAGER_SERVER",
    "PARENT_DEATH",
    "PASSES_DESCRIPTORS",
    "PICKLES_PROCESS",
    "POSIX_SIGNALS",
    "REIMPORTS_MAIN",
    "SEPARATE_MEMORY",
    "TASKS_RUN_ONCE",
    "TASK_TIMEOUTS",
    "BackendInfo",
    "ChildLauncher",
    "DescriptorLauncher",
    "Launcher",
    "ProcessBackend",
    "arm_parent_death",
    "exit_work_before_threads_stop",
    "inherit_logging",
    "logging_settings",
    "spawning",
    "spawning_payload",
    "wait_timeout",
]
_IN_BASE = ("ChildLauncher", "DescriptorLauncher", "ProcessBackend")


def __getattr__(name: str) -> object:
    if name in _IN_BASE:
        from procframe.backends import base

        return getattr(base, name)
    if name in ("logging_settings", "inherit_logging"):
        # A backend that starts children its own way passes them the parent's logging:
        # ``logging_settings()`` in the parent (None if unconfigured), then
        # ``inherit_logging(settings)`` in the child, before it runs.
        from procframe._core import logsupport

        return logsupport.inherited_settings if name == "logging_settings" else logsupport.inherit
    if name in ("spawning_payload", "spawning", "exit_work_before_threads_stop"):
        # ``with spawning_payload(): pickle.dumps(process)``: a backend's own launcher may
        # pickle a Process, authkey included, for the child it starts; its objects'
        # ``__reduce__`` asks ``spawning()`` whether they are crossing to that child.
        # ``exit_work_before_threads_stop()``: for a backend that needs thread pools to
        # join its children or finish its pools at exit.
        from procframe._core import process

        return getattr(process, name)
    if name == "arm_parent_death":
        # ``arm_parent_death(signum, parent_pid, kernel_may_signal)`` in a child a backend
        # started its own way: ``signum`` once its parent dies (SIGKILL after a grace).
        from procframe._core import osutil

        return osutil.arm_parent_death
    if name == "wait_timeout":
        # A backend's blocking calls check their ``timeout`` as procframe's do.
        from procframe._core.checks import wait_timeout

        return wait_timeout
    if name in ("BackendInfo", "Launcher"):
        from procframe._core import backend

        return getattr(backend, name)
    if name in __all__:
        from procframe._core import capabilities

        return getattr(capabilities, name)
    raise AttributeError(f"module 'procframe.backends' has no attribute {name!r}")

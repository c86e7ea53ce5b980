"""The ``forkserver`` backend: a server process, started on first use, forks each child.

The machinery is in :mod:`procframe.backends.forkserver_client` (the parent's
side) and :mod:`procframe.backends.forkserver_main` (the server), imported
only when the backend is used.
"""

from __future__ import annotations

import os
import sys

from procframe.api.backend import (
    PARENT_DEATH,
    PASSES_DESCRIPTORS,
    PICKLES_PROCESS,
    POSIX_SIGNALS,
    REIMPORTS_MAIN,
    BackendInfo,
    Launcher,
)
from procframe.api.process import BaseProcess
from procframe.backends.posix import ProcessBackend

_CLIENT = "procframe.backends.forkserver_client"


def set_forkserver_preload(module_names: list[str]) -> None:
    """Modules the fork server imports before forking; takes effect when it next starts."""
    if not isinstance(module_names, (list, tuple)) or not all(
        isinstance(name, str) for name in module_names
    ):
        raise TypeError("set_forkserver_preload() expects a list of module names")
    from procframe.backends import forkserver_client

    forkserver_client._preload[:] = module_names


def server_pid() -> int | None:
    """The pid of this process's fork server, if one is running."""
    client = sys.modules.get(_CLIENT)
    return None if client is None else client.server.pid


class ForkServerBackend(ProcessBackend):
    """Safe with threads like spawn, and near fork's speed once the server runs."""

    name = "forkserver"
    capabilities = frozenset(
        {PASSES_DESCRIPTORS, PICKLES_PROCESS, REIMPORTS_MAIN, POSIX_SIGNALS, PARENT_DEATH}
    )
    description = "a server process forks each child; the target travels by pickle"

    def unavailable_reason(self) -> str:
        if not hasattr(os, "fork") or sys.version_info < (3, 9):
            return "needs os.fork and descriptor passing over Unix sockets"
        return ""

    def launch(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        from procframe.backends import forkserver_client

        return forkserver_client.server.launch(process, backend.name)


plugin = ForkServerBackend()

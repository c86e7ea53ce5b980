"""The ``forkserver`` backend: a server process, started on first use, forks each child.

The machinery is in :mod:`procframe.backends.forkserver_client` (the parent's
side) and :mod:`procframe.backends.forkserver_server` (the server), imported
only when the backend is used.
"""

from __future__ import annotations

import os

from procframe._core.backend import BackendInfo, Launcher
from procframe._core.capabilities import PICKLES_PROCESS, REIMPORTS_MAIN
from procframe._core.hookspecs import hookimpl
from procframe._core.process import BaseProcess
from procframe.backends.base import OS_PROCESS_CAPABILITIES, ProcessBackend


class ForkServerBackend(ProcessBackend):
    """Safe with threads like spawn, and near fork's speed once the server runs."""

    name = "forkserver"
    capabilities = OS_PROCESS_CAPABILITIES | {PICKLES_PROCESS, REIMPORTS_MAIN}
    description = "a server process forks each child; the target travels by pickle"

    def unavailable_reason(self) -> str:
        if not hasattr(os, "fork"):
            return "needs os.fork and descriptor passing over Unix sockets"
        return ""

    def launch(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        from procframe.backends import forkserver_client

        return forkserver_client.server.launch(process, backend.name)

    @hookimpl
    def procframe_set_executable(self, executable: str) -> None:
        """The fork server is a new interpreter: it runs ``executable`` when it next starts."""
        from procframe.backends import spawn

        spawn.set_executable(executable)

    @hookimpl
    def procframe_set_forkserver_preload(self, module_names: list[str]) -> None:
        """Modules the fork server imports before forking; takes effect when it next starts."""
        from procframe.backends import forkserver_client

        forkserver_client._preload[:] = module_names


plugin = ForkServerBackend()

"""The ``spawn`` backend: the child is a fresh Python interpreter."""

from __future__ import annotations

import os
import sys

from procframe._core import osutil, system
from procframe._core.backend import BackendInfo, Launcher
from procframe._core.capabilities import PICKLES_PROCESS, REIMPORTS_MAIN
from procframe._core.hookspecs import hookimpl
from procframe._core.process import BaseProcess
from procframe.backends import payload
from procframe.backends.base import OS_PROCESS_CAPABILITIES, ProcessBackend, SpawnedChild

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

_executable: str | None = None


def set_executable(executable: str) -> None:
    """Use ``executable`` instead of ``sys.executable`` for new interpreters."""
    if not os.access(executable, os.X_OK):
        raise ValueError(f"{executable!r} is not an executable file")
    global _executable
    _executable = executable


def get_executable() -> str:
    """The interpreter that spawn-style backends start."""
    return _executable or sys.executable


def interpreter_command(code: str) -> list[str]:
    """The command line that runs ``code`` in a new interpreter with this one's flags.

    The new interpreter imports this procframe: ``-c`` puts the working directory
    first on ``sys.path``, where another ``procframe`` (a checkout, a folder of that
    name) would win.  The parent's ``sys.path`` replaces this one before the
    program's modules are imported.
    """
    import subprocess

    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    first = f"import sys; sys.path.insert(0, {system.package_root()!r}); "
    return [get_executable(), *flags, "-c", first + code]


def start_interpreter(code: str, pass_fds: tuple[int, ...]) -> subprocess.Popen[Any]:
    """Start a new interpreter running ``code``; it inherits only ``pass_fds`` and stdio."""
    import subprocess

    return subprocess.Popen(interpreter_command(code), pass_fds=pass_fds, close_fds=True)


class SpawnBackend(ProcessBackend):
    """Safe with threads and portable; each child pays for an interpreter start."""

    name = "spawn"
    capabilities = OS_PROCESS_CAPABILITIES | {PICKLES_PROCESS, REIMPORTS_MAIN}
    description = "a fresh interpreter per child; the target travels by pickle"

    def launch(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        data, fds, _slab = payload.encode(process, backend.name)  # open until launched
        payload_r, payload_w = os.pipe()
        sentinel_r, sentinel_w = os.pipe()
        try:
            popen = start_interpreter(
                "from procframe.backends.child import spawn_main; "
                f"spawn_main({payload_r}, {sentinel_w})",
                pass_fds=(payload_r, sentinel_w, *fds),  # the same numbers in the child
            )
        except BaseException:
            for fd in (payload_w, sentinel_r):
                os.close(fd)
            raise
        finally:
            os.close(payload_r)
            os.close(sentinel_w)
        try:
            osutil.write_all(payload_w, data)
        except BrokenPipeError:
            pass  # the child died before reading; its exit code tells the story
        finally:
            os.close(payload_w)
        return SpawnedChild(popen, sentinel_r)

    @hookimpl
    def procframe_set_executable(self, executable: str) -> None:
        """Start ``executable`` for new interpreters (spawn's children, the fork server)."""
        set_executable(executable)


plugin = SpawnBackend()

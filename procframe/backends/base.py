"""What the backends that start OS processes share: the plugin base and the launchers.

fork, spawn and forkserver differ only in how a child is launched and what it
inherits; each overrides :meth:`ProcessBackend.launch` (and its capabilities)
and nothing else.  Their pipes, queues, locks and shared memory are the
POSIX primitives (:mod:`procframe.posix`), which take part in every backend's
hook calls; a subclass overrides any of them by implementing its factory hook.
"""

from __future__ import annotations

import abc
import os

from procframe._core.backend import BackendInfo, Launcher
from procframe._core.capabilities import (
    HOST_MEMORY,
    LOCAL_PIDS,
    MANAGER_SERVER,
    PARENT_DEATH,
    PASSES_DESCRIPTORS,
    POSIX_SIGNALS,
    SEPARATE_MEMORY,
    TASK_TIMEOUTS,
    TASKS_RUN_ONCE,
)
from procframe._core.fdwait import wait_readable
from procframe._core.hookspecs import hookimpl
from procframe._core.process import BaseProcess

OS_PROCESS_CAPABILITIES = frozenset(
    {
        SEPARATE_MEMORY,
        LOCAL_PIDS,
        POSIX_SIGNALS,
        PARENT_DEATH,
        PASSES_DESCRIPTORS,
        TASK_TIMEOUTS,
        MANAGER_SERVER,
        HOST_MEMORY,
        TASKS_RUN_ONCE,
    }
)
"""What every built-in backend that starts OS processes on this machine declares."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any, ClassVar


class ProcessBackend(abc.ABC):
    """Base of a backend plugin that starts OS processes.

    A subclass sets ``name``, ``capabilities`` and ``description`` and
    implements :meth:`launch`; a third-party backend may subclass it (or a
    built-in backend) and register an instance through the ``procframe``
    entry-point group.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""

    def unavailable_reason(self) -> str:
        """Why this backend cannot run here, or ``""`` when it can."""
        return ""

    def info(self) -> BackendInfo:
        """The declaration of this backend."""
        reason = self.unavailable_reason()
        return BackendInfo(
            name=self.name,
            plugin=self,
            capabilities=self.capabilities,
            available=not reason,
            reason=reason,
            description=self.description,
        )

    @hookimpl
    def procframe_declare_backend(self) -> BackendInfo:
        return self.info()

    @hookimpl
    def procframe_launch_process(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        return self.launch(process, backend)

    @abc.abstractmethod
    def launch(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        """Start ``process`` and return its launcher."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend {self.name!r}>"


UNKNOWN_EXITCODE = 255
"""The exit code reported for a child whose status was collected by someone else."""


def exitcode_from_status(status: int) -> int:
    """A ``waitpid`` status as a ``Process.exitcode``: the exit code, or ``-signum``."""
    return os.waitstatus_to_exitcode(status)


class DescriptorLauncher(Launcher):
    """A launcher whose sentinel is a descriptor it owns; signals go to the pid."""

    def __init__(self, pid: int, sentinel: int) -> None:
        self.pid = pid
        self.sentinel = sentinel
        self.returncode: int | None = None

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def close(self, _close: Any = os.close) -> None:  # os may be gone by the last __del__
        if self.sentinel >= 0:
            fd, self.sentinel = self.sentinel, -1
            _close(fd)

    def __del__(self) -> None:  # a Process dropped without close() must not leak its sentinel
        self.close()


class ChildLauncher(DescriptorLauncher):
    """A direct child of this process whose sentinel is a pipe it holds open until it exits."""

    @abc.abstractmethod
    def _reap(self, block: bool) -> int | None:
        """Collect the child's exit status, waiting for it if ``block``."""

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._reap(block=False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            if timeout is not None and not wait_readable([self.sentinel], timeout):
                return self.poll()
            self.returncode = self._reap(block=True)
        return self.returncode


class ForkedChild(ChildLauncher):
    """A child made by ``os.fork`` in this process, reaped with ``waitpid``."""

    def _reap(self, block: bool) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Someone else reaped it (a SIGCHLD handler, os.wait() in user code).
            return UNKNOWN_EXITCODE
        if pid == 0:
            return None
        return exitcode_from_status(status)


class SpawnedChild(ChildLauncher):
    """A child started as a new program; ``subprocess.Popen`` owns its reaping."""

    def __init__(self, popen: subprocess.Popen[Any], sentinel: int) -> None:
        super().__init__(popen.pid, sentinel)
        self._popen = popen

    def _reap(self, block: bool) -> int | None:
        return self._popen.wait() if block else self._popen.poll()

    def send_signal(self, signum: int) -> None:
        self._popen.send_signal(signum)  # does nothing once the child has been reaped

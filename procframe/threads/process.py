"""A process run by a thread of this OS process: its launcher.

The thread runs the process with :func:`procframe._core.thread_run.run_in_thread`:
``current_process()`` is the process there, exit codes are a process's.  The
launcher's ``pid`` is the thread's native id (``threading.get_native_id()``,
what ``top -H`` and ``/proc/<pid>/task`` show): unique while the thread runs,
but not a process, so nothing may ``os.kill`` it (this backend does not
declare ``local_pids``).  The sentinel is the read end of a pipe whose write
end the thread closes when the process has ended.
"""

from __future__ import annotations

import os
import threading

from procframe._core.backend import Launcher
from procframe._core.errors import NotSupportedError, ProcessStateError
from procframe._core.process import BaseProcess
from procframe._core.thread_run import run_in_thread, thread_parent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe._core.process import _ParentProcess


class ThreadLauncher(Launcher):
    """Runs one process in a new thread; ``pid`` is the thread's native id."""

    def __init__(self, process: BaseProcess, backend: str, notify_bootstrap: bool) -> None:
        self.returncode: int | None = None
        self._name = process.name
        self._backend = backend
        self.sentinel, self._write_end = os.pipe()
        self._thread = threading.Thread(
            target=self._run,
            args=(process, thread_parent(), notify_bootstrap),
            name=process.name,
            daemon=process.daemon,
        )
        try:
            self._thread.start()
        except BaseException:
            os.close(self._write_end)
            self.close()
            raise
        native_id = self._thread.native_id
        assert native_id is not None  # set before start() returns
        self.pid = native_id

    def _run(self, process: BaseProcess, parent: _ParentProcess, notify_bootstrap: bool) -> None:
        code = 1
        try:
            code = run_in_thread(process, parent, self._backend, notify_bootstrap)
        finally:
            self.returncode = code  # before the sentinel fires: whoever it wakes sees the code
            os.close(self._write_end)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self._thread is threading.current_thread():
            raise ProcessStateError(f"process {self._name!r} cannot join itself")
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self.returncode

    def send_signal(self, signum: int) -> None:
        self._refuse(f"send signal {signum} to")

    def terminate(self) -> None:
        self._refuse("terminate")

    def kill(self) -> None:
        self._refuse("kill")

    def interrupt(self) -> None:
        self._refuse("interrupt")

    def _refuse(self, what: str) -> None:
        if self.returncode is not None:
            return  # signalling a process that has exited does nothing, as for the others
        raise NotSupportedError(
            f"cannot {what} process {self._name!r}: backend {self._backend!r} runs it in a "
            "thread of this process, and a thread cannot be stopped from outside. Have it "
            "return when asked (an Event it checks, a sentinel item on its queue), or start "
            "it under a backend of OS processes (procframe.get_context('forkserver'))"
        )

    def close(self, _close: Any = os.close) -> None:  # os may be gone by the last __del__
        if self.sentinel >= 0:
            fd, self.sentinel = self.sentinel, -1
            _close(fd)

    def __del__(self) -> None:  # a Process dropped without close() must not leak its sentinel
        if getattr(self, "sentinel", -1) >= 0:
            self.close()

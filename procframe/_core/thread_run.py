"""Processes that are threads of this OS process: how a backend such as ``threads`` runs one.

:func:`run_in_thread` runs a process in the calling thread, which then sees
that process as :func:`~procframe._core.process.current_process`, and
:func:`thread_parent` is the parent it sees.
"""

from __future__ import annotations

import _thread
import os
import threading

from procframe._core import lognames, registry, serializer_registry
from procframe._core import process as process_module
from procframe._core.process import BaseProcess, _ParentProcess, current_process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procframe._core.backend import Launcher


class _ThreadParent(_ParentProcess):
    """The parent of a process run by a thread of this OS process (``parent_process()`` there).

    The parent is either another such process (its launcher tells whether it
    runs) or this OS process's own process, which outlives every thread it
    runs: alive until its main thread has finished, and without a sentinel.
    """

    def __init__(self, process: BaseProcess, in_thread: bool) -> None:
        super().__init__(process.name, process.pid or os.getpid())
        self._process = process
        self._in_thread = in_thread

    def _launcher(self) -> Launcher | None:
        return self._process._launcher if self._in_thread else None

    @property
    def sentinel(self) -> int:
        """The parent's sentinel, if it is a process run by a thread too."""
        launcher = self._launcher()
        if launcher is None:
            raise NotImplementedError(
                f"the parent {self.name!r} is this OS process itself, which outlives the "
                "threads it runs: it has no sentinel"
            )
        return launcher.sentinel

    def is_alive(self) -> bool:
        """True while the parent runs."""
        launcher = self._launcher()
        if launcher is not None:
            return launcher.poll() is None
        if self._in_thread:  # its launcher is being attached: it has just started
            return True
        return threading.main_thread().is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the parent exits, or until ``timeout`` seconds have passed."""
        launcher = self._launcher()
        if launcher is not None:
            launcher.wait(timeout)
            return
        threading.main_thread().join(timeout)


def thread_parent() -> _ParentProcess:
    """The calling process as a process it starts in a thread of its own will see its parent.

    Called in the parent (by a backend that runs processes in threads of this OS
    process), and handed to :func:`run_in_thread`.
    """
    return _ThreadParent(current_process(), process_module._state.process is not None)


def run_in_thread(
    process: BaseProcess, parent: _ParentProcess, backend: str, notify_bootstrap: bool
) -> int:
    """Run ``process`` in the calling thread, as a process of its own; return its exit code.

    For backends whose processes are threads of this OS process.  Within the
    thread, ``current_process()`` is ``process`` (its ``pid`` the thread's
    native id), ``parent_process()`` is ``parent``, the default backend is
    ``backend`` and ``active_children()`` lists the children it starts; threads
    that it starts in turn see this OS process's own process.  Exit codes and
    the traceback of an exception are those of :meth:`BaseProcess._bootstrap`,
    but none of the steps of a new OS process are taken (stdin, exit handlers,
    waiting for every thread).  When ``run()`` ends, the process stops its own
    children as a process does at exit.  Never raises.
    """
    state = process_module._state
    state.process, state.parent, state.children = process, parent, set()
    state.pid = _thread.get_native_id()
    registry.adopt_in_thread(backend)
    serializer_registry.adopt_in_thread(process._serializer_name())
    lognames.name_records_by_process(current_process)  # its log records carry its name
    try:
        return process._run_here(notify_bootstrap, finish=process_module._stop_children)
    finally:
        process._drop_target()
        registry.adopt_in_thread(None)
        serializer_registry.adopt_in_thread(None)
        state.process = state.parent = state.children = state.pid = None

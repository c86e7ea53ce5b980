"""The ``fork`` backend: the child is an ``os.fork`` copy of the parent."""

from __future__ import annotations

import os
import sys
import threading

from procframe._core import osutil, registry
from procframe._core.backend import BackendInfo, Launcher
from procframe._core.capabilities import INHERITS_PARENT_MEMORY
from procframe._core.process import BaseProcess, preopen_devnull
from procframe.backends.base import OS_PROCESS_CAPABILITIES, ForkedChild, ProcessBackend

# Held from pipe() to the parent's close of the child's end, so that a fork on
# another thread cannot inherit that end and keep the sentinel from firing.
_fork_lock = threading.Lock()


class ForkBackend(ProcessBackend):
    """Fast, and the child sees everything the parent had; unsafe once the parent has threads."""

    name = "fork"
    capabilities = OS_PROCESS_CAPABILITIES | {INHERITS_PARENT_MEMORY}
    description = "os.fork(): the child is a copy of the parent"

    def unavailable_reason(self) -> str:
        if not hasattr(os, "fork"):
            return "os.fork() does not exist on this platform"
        return ""

    def launch(self, process: BaseProcess, backend: BackendInfo) -> Launcher:
        kernel_may_signal = osutil.launched_from_main_thread()
        osutil.load_prctl()  # once here, not in every child
        preopen_devnull()
        notify_bootstrap = registry.bootstrap_observed(backend.name)
        parent_pid = os.getpid()
        with _fork_lock:
            sentinel_r, sentinel_w = os.pipe()
            osutil.flush_standard_streams()  # or the child writes the parent's buffer again
            pid = os.fork()
            if pid == 0:
                _run_forked_child(
                    process, backend, sentinel_r, parent_pid, kernel_may_signal, notify_bootstrap
                )
            os.close(sentinel_w)
        return ForkedChild(pid, sentinel_r)


def _run_forked_child(
    process: BaseProcess,
    backend: BackendInfo,
    sentinel_r: int,
    parent_pid: int,
    kernel_may_signal: bool,
    notify_bootstrap: bool,
) -> None:
    global _fork_lock
    _fork_lock = threading.Lock()  # the copy inherited from the parent is held
    code = 1
    try:
        os.close(sentinel_r)
        osutil.arm_parent_death(osutil.death_signal(process.daemon), parent_pid, kernel_may_signal)
        registry.adopt(backend.name)
        code = process._bootstrap(notify_bootstrap)
    except BaseException:  # pragma: no cover - _bootstrap does not raise
        sys.excepthook(*sys.exc_info())
    finally:
        os._exit(code)


plugin = ForkBackend()

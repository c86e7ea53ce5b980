"""The helpers of ``multiprocessing.util`` that libraries use, on procframe's processes.

``Finalize`` and :func:`register_after_fork` work as the standard library's:
finalizers with an ``exitpriority`` run at exit, highest first, those of 0 and
more before the children are joined, the others after; a child starts with
none of its parent's finalizers and runs the after-fork callbacks before its
``run()``.  The logger is named ``procframe``; children inherit its level and
whether :func:`log_to_stderr` was called.
"""

from __future__ import annotations

import threading

from procframe._core.finalize import Finalize, is_exiting, register_after_fork
from procframe._core.logsupport import (
    DEBUG,
    DEFAULT_LOGGING_FORMAT,
    INFO,
    LOGGER_NAME,
    NOTSET,
    SUBDEBUG,
    SUBWARNING,
    debug,
    get_logger,
    info,
    log_to_stderr,
    sub_debug,
    sub_warning,
)
from procframe._core.process import current_process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "DEBUG",
    "DEFAULT_LOGGING_FORMAT",
    "INFO",
    "LOGGER_NAME",
    "NOTSET",
    "SUBDEBUG",
    "SUBWARNING",
    "Finalize",
    "ForkAwareLocal",
    "ForkAwareThreadLock",
    "debug",
    "get_logger",
    "get_temp_dir",
    "info",
    "is_exiting",
    "log_to_stderr",
    "register_after_fork",
    "sub_debug",
    "sub_warning",
]

TEMP_DIR_PREFIX = "procframe-"


def get_temp_dir() -> str:
    """A temporary directory of this process, made on first use and removed at exit.

    As in ``multiprocessing``, a child started after the directory was made
    shares it (the parent removes it, after joining its children).
    """
    config = current_process()._config
    tempdir: str | None = config.get("tempdir")
    if tempdir is None:
        import shutil
        import tempfile

        tempdir = tempfile.mkdtemp(prefix=TEMP_DIR_PREFIX)
        info("created temp directory %s", tempdir)
        # shutil.rmtree held strongly: the finalizer may run late in the shutdown.
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, tempdir, config), exitpriority=-100)
        config["tempdir"] = tempdir
    return tempdir


def _remove_temp_dir(
    rmtree: Callable[..., object], tempdir: str, config: dict[str, object]
) -> None:
    rmtree(tempdir, ignore_errors=True)
    if config.get("tempdir") == tempdir:
        config["tempdir"] = None


class ForkAwareThreadLock:
    """A ``threading.Lock`` that a new child process finds released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        register_after_fork(self, ForkAwareThreadLock._at_fork_reinit)

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        self._lock.__exit__(*args)


def _clear_local(local: ForkAwareLocal) -> None:
    local.__dict__.clear()


class ForkAwareLocal(threading.local):
    """A ``threading.local`` that a new child process finds empty."""

    def __init__(self) -> None:
        register_after_fork(self, _clear_local)

    def __reduce__(self) -> tuple[type[ForkAwareLocal], tuple[()]]:
        return type(self), ()

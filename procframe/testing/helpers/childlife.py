"""Targets of the suite's tests of what a child does as it starts and ends (procframe.util).

This module imports ``logging`` at the top on purpose: a spawned child has
it imported before its bootstrap, when it unpickles its target.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from procframe import util
from procframe.testing.helpers.targets import report


def append_line(path: str, line: str) -> None:
    """Append ``line`` to the file ``path`` (a finalizer's trace)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def register_finalizers(path: str) -> None:
    """Register finalizers of several priorities, and one on an object dropped at once."""
    util.Finalize(None, append_line, args=(path, "low"), exitpriority=-1)
    util.Finalize(None, append_line, args=(path, "zero-a"), exitpriority=0)
    util.Finalize(None, append_line, args=(path, "high"), kwargs={}, exitpriority=5)
    util.Finalize(None, append_line, args=(path, "zero-b"), exitpriority=0)
    util.Finalize(_KEPT, append_line, args=(path, "never"))  # no priority: not at exit
    owner = _Owner()
    util.Finalize(owner, append_line, args=(path, "collected"))
    del owner  # the weakref fires now: "collected" comes first


class _Owner:
    pass


_KEPT = _Owner()


class AfterForkProbe:
    """Registers itself with ``register_after_fork`` when made and when unpickled."""

    def __init__(self) -> None:
        self.ran_in: int | None = None
        util.register_after_fork(self, AfterForkProbe._after_fork)

    def _after_fork(self) -> None:
        self.ran_in = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {"ran_in": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        util.register_after_fork(self, AfterForkProbe._after_fork)


def report_after_fork(path: str, probe: AfterForkProbe) -> None:
    """Report whether the probe's after-fork callback ran in this process."""
    report(path, {"ran_here": probe.ran_in == os.getpid()})


def use_temp_dir(path: str) -> None:
    """Make this process's temporary directory, put a file in it, report the directory."""
    tempdir = util.get_temp_dir()
    with open(os.path.join(tempdir, "file"), "w", encoding="utf-8") as f:
        f.write("x")
    report(path, {"tempdir": tempdir, "same_again": util.get_temp_dir() == tempdir})


def describe_logger(path: str) -> None:
    """Report procframe's logger as this process sees it."""
    logger = util.get_logger()
    handlers = [
        [type(h).__name__, h.formatter._fmt if h.formatter else None] for h in logger.handlers
    ]
    report(
        path,
        {"name": logger.name, "level": logger.getEffectiveLevel(), "handlers": handlers},
    )


class _KeepProcessNames(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.processName)


def log_process_name(path: str) -> None:
    """Log one record and report the ``processName`` it carries."""
    logger = logging.getLogger(f"{__name__}.{os.getpid()}.{threading.get_ident()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    keep = _KeepProcessNames()
    logger.addHandler(keep)
    try:
        logger.info("hello")
    finally:
        logger.removeHandler(keep)
    report(path, keep.names)


def report_main_thread_native_id(path: str) -> None:
    """Report the main thread's native id and the calling (main) thread's."""
    report(
        path,
        {
            "main_thread": threading.main_thread().native_id,
            "mine": threading.get_native_id(),
            "is_main": threading.current_thread() is threading.main_thread(),
        },
    )

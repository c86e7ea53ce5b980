"""Functions the conformance suite runs in children.

They live apart from the tests so that a spawned child imports only this
module (not pytest).  Children report back through files, which every backend
can reach without any other procframe feature.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import procframe


def report(path: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (the parent polls for it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def read_report(path: str | os.PathLike[str], timeout: float = 30.0) -> Any:
    """Wait for a report written by :func:`report` and return its value."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no report at {path} after {timeout}s")
        time.sleep(0.01)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def noop() -> None:
    """Do nothing."""


def exit_with(code: Any) -> None:
    """``sys.exit(code)``."""
    sys.exit(code)


def raise_value_error(message: str, stderr_path: str) -> None:
    """Send stderr to ``stderr_path``, then raise ``ValueError(message)``."""
    sys.stderr = open(stderr_path, "w", encoding="utf-8")  # noqa: SIM115 - the child's stderr
    raise ValueError(message)


def sleep_forever(ready_path: str | None = None) -> None:
    """Report readiness (our pid) if asked, then sleep until killed."""
    if ready_path:
        report(ready_path, os.getpid())
    while True:
        time.sleep(60)


def sleep_for(seconds: float) -> None:
    """Sleep ``seconds``."""
    time.sleep(seconds)


def wait_for_interrupt(ready_path: str, stderr_path: str) -> None:
    """Report readiness, then sleep until SIGINT turns into KeyboardInterrupt."""
    sys.stderr = open(stderr_path, "w", encoding="utf-8")  # noqa: SIM115 - the child's stderr
    report(ready_path, os.getpid())
    while True:
        # Short sleeps: a SIGINT that lands after the report and just before a
        # sleep begins does not interrupt it; it takes effect when the sleep ends.
        time.sleep(0.1)


def ignore_sigterm_and_sleep(ready_path: str) -> None:
    """Ignore SIGTERM, report readiness, sleep until killed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sleep_forever(ready_path)


def describe_self(path: str) -> None:
    """Report what the child sees of itself and its parent."""
    me = procframe.current_process()
    parent = procframe.parent_process()
    report(
        path,
        {
            "name": me.name,
            "pid": os.getpid(),
            "ident": me.ident,
            "daemon": me.daemon,
            "authkey": bytes(me.authkey).hex(),
            "parent_pid": parent.pid if parent else None,
            "parent_name": parent.name if parent else None,
            "parent_alive": parent.is_alive() if parent else None,
            "backend": procframe.get_start_method(),
            "main_name": getattr(sys.modules.get("__main__"), "__name__", None),
        },
    )


def echo_args(path: str, *args: Any, **kwargs: Any) -> None:
    """Report the arguments received."""
    report(path, {"args": list(args), "kwargs": kwargs})


def start_grandchild(path: str, daemon: bool = False) -> None:
    """Start a child of our own (same default backend) that describes itself; report its exit."""
    child = procframe.Process(target=describe_self, args=(path + ".grandchild",), daemon=daemon)
    child.start()
    child.join(60)
    report(path, {"exitcode": child.exitcode, "backend": procframe.get_start_method()})


def try_start_child(path: str) -> None:
    """Try to start a child and report the error, if any (a daemon may not have children)."""
    try:
        child = procframe.Process(target=noop)
        child.start()
        child.join()
    except Exception as exc:
        report(path, {"error": type(exc).__name__, "message": str(exc)})
    else:
        report(path, {"error": None})


def write_marker(path: str) -> None:
    """Create ``path`` (the child ran)."""
    Path(path).write_text(str(os.getpid()), encoding="utf-8")


class Recorder(procframe.Process):
    """A Process subclass that overrides run()."""

    def __init__(self, path: str, value: int) -> None:
        super().__init__()
        self.path = path
        self.value = value

    def run(self) -> None:
        report(self.path, {"value": self.value * 2, "name": self.name})


def sleep_then_mark(seconds: float, path: str) -> None:
    """Sleep ``seconds``, then write ``done`` to ``path``."""
    time.sleep(seconds)
    Path(path).write_text("done", encoding="utf-8")


def leave_a_thread_running(path: str) -> None:
    """Start a non-daemonic thread that marks ``path`` after a while, and return at once."""
    import threading

    threading.Thread(target=sleep_then_mark, args=(0.3, path)).start()

"""Tasks the pool suite sends to pool workers, and helpers of its scripts.

Workers started by spawn or forkserver import tasks by name, so they live
here rather than in a test module (which imports pytest).  Every wait is
bounded, so a broken pool shows as a failed task, not a hang.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import procframe
from procframe.testing.helpers import refusals
from procframe.testing.helpers.polling import eventually

PATIENCE = 60.0
"""Seconds a task waits for anything that should happen at once."""

MARK = "PROCFRAME_TEST_POOL"
"""An environment variable a script's processes inherit: how a test finds them all."""

# -- plain tasks -------------------------------------------------------------------


def square(x: int) -> int:
    """``x * x``."""
    return x * x


def add(a: Any, b: Any) -> Any:
    """``a + b`` (starmap's two-argument task)."""
    return a + b


def power(x: int, exp: int = 2) -> int:
    """``x ** exp``: a task with a keyword argument."""
    return int(x**exp)


def identity(x: Any) -> Any:
    """``x``, unchanged."""
    return x


def pid_of_worker(_: Any = None) -> int:
    """The pid of the worker running the task."""
    return os.getpid()


def start_method(_: Any = None) -> str | None:
    """The backend the worker runs under."""
    return procframe.get_start_method()


def sleep_and_return(seconds: float, value: Any) -> Any:
    """Sleep ``seconds``, then return ``value``."""
    time.sleep(seconds)
    return value


def wait_for_path(path: str, value: Any) -> Any:
    """Return ``value`` once ``path`` exists (at most :data:`PATIENCE` seconds later)."""
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {PATIENCE}s")
        time.sleep(0.005)
    return value


def slower_first(x: int) -> int:
    """``x * x``, after a sleep that is longer the smaller ``x`` is (under 10)."""
    time.sleep(0.02 * max(0, 10 - x))
    return x * x


def slow_marking(x: int, directory: str = ".") -> int:
    """Mark ``started.<pid>`` in ``directory``, sleep a second, return ``x``."""
    (Path(directory) / f"started.{os.getpid()}").touch()
    time.sleep(1.0)
    return x


# -- failing tasks -----------------------------------------------------------------


def raise_value_error(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def square_unless(x: int, bad: int) -> int:
    """``x * x``, but ``ValueError`` for ``bad``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x * x


def return_a_generator() -> Any:
    """Return something no serializer can pickle."""
    return refusals.a_generator()


def raise_holding_a_generator() -> None:
    """Raise an exception no serializer can pickle (a generator among its arguments)."""
    raise ValueError("holds a generator", refusals.a_generator())


class TwoArgumentError(Exception):
    """Pickles, but cannot be unpickled: ``__init__`` needs two arguments, ``args`` holds one."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")
        self.second = second


def raise_two_argument_error() -> None:
    """Raise :class:`TwoArgumentError`."""
    raise TwoArgumentError("one", "two")


def raise_system_exit(code: int) -> None:
    """``raise SystemExit(code)``."""
    raise SystemExit(code)


def raise_keyboard_interrupt() -> None:
    """``raise KeyboardInterrupt``."""
    raise KeyboardInterrupt


def die(how: str) -> None:
    """End the worker in the middle of the task: ``sigkill``, ``exit7`` or ``segfault``."""
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "exit7":
        os._exit(7)
    elif how == "segfault":
        import ctypes
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file to write
        ctypes.string_at(0)
    else:
        raise ValueError(f"unknown way to die: {how!r}")
    time.sleep(PATIENCE)  # a signal may take a moment to arrive


def die_on(x: int, victim: int, how: str = "sigkill") -> int:
    """``x``, except that the worker dies (see :func:`die`) on ``victim``."""
    if x == victim:
        die(how)
    time.sleep(0.01)
    return x


# -- initializers ------------------------------------------------------------------

INIT_VALUE: Any = None
INIT_CALLS = 0


def initialize(value: Any) -> None:
    """Set :data:`INIT_VALUE` to ``value`` and count the call."""
    global INIT_VALUE, INIT_CALLS
    INIT_VALUE = value
    INIT_CALLS += 1


def worker_state(_: Any = None) -> tuple[int, Any, int]:
    """(pid, :data:`INIT_VALUE`, :data:`INIT_CALLS`) as this worker sees them."""
    return os.getpid(), INIT_VALUE, INIT_CALLS


def failing_initializer(path: str, message: str) -> None:
    """Append a line to ``path`` (one per call), then raise ``RuntimeError(message)``."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    raise RuntimeError(message)


# -- the parent's side ----------------------------------------------------------------

PROMPTLY = 30.0
"""What "promptly" allows on a loaded machine."""


class Calls:
    """A callback that records what it received, and in which process and thread."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.where: list[tuple[int, int]] = []
        self._called = threading.Event()

    def __call__(self, value: Any) -> None:
        self.values.append(value)
        self.where.append((os.getpid(), threading.get_ident()))
        self._called.set()

    def wait(self) -> list[Any]:
        """The values received, once there is one (an AssertionError if none comes)."""
        if not self._called.wait(PATIENCE):
            raise AssertionError("the callback was never called")
        return self.values

    def ran_in_a_pool_thread(self) -> bool:
        """True if every call ran in this process, not in its main thread."""
        main = threading.main_thread().ident
        return all(pid == os.getpid() and ident != main for pid, ident in self.where)


def child_pids() -> set[int]:
    """Pids of this process's running procframe children (a pool's workers among them)."""
    return {p.pid for p in procframe.active_children() if p.pid is not None}


def workers_of(before: set[int], count: int) -> set[int]:
    """The pids of the ``count`` workers started since ``before`` (waiting for them)."""
    if not eventually(lambda: len(child_pids() - before) == count):
        raise AssertionError(f"expected {count} workers, found {sorted(child_pids() - before)}")
    return child_pids() - before


# -- finding a script's processes ----------------------------------------------------


def marked_processes(mark: str) -> list[int]:
    """Pids of every running process whose environment holds ``MARK=mark``."""
    needle = f"{MARK}={mark}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def kill_marked(mark: str) -> list[int]:
    """SIGKILL every running process marked ``mark``; return their pids."""
    pids = marked_processes(mark)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids

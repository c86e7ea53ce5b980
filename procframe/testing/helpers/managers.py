"""What the managers suite's children, servers and scripts need: registered types and targets.

A manager's server started by ``spawn`` or ``forkserver`` imports the
callables of its registry by name, and so do children and the scripts of the
remote tests, so everything lives here at module level (never in a test
module, which imports pytest).  Every wait is bounded by :data:`PATIENCE`.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import procframe
from procframe.managers import BaseManager, BaseProxy, DictProxy, SyncManager
from procframe.testing.helpers import refusals
from procframe.testing.helpers.pool import MARK, kill_marked
from procframe.testing.helpers.scripts import script_env, write_script
from procframe.testing.helpers.targets import report

PATIENCE = 60.0
"""Seconds anything that should happen at once may take."""

KEY = b"managers suite: the right key..."
"""The authkey of the suite's network managers."""
WRONG_KEY = b"managers suite: the wrong key..."

ITEMS = 25
"""How many items each producer of the remote tests puts in the shared queue."""


# -- managers and scripts of the tests ------------------------------------------------


def serving(backends: list[str]) -> list[str]:
    """The backends of ``backends`` that run manager servers (they declare ``manager_server``)."""
    from procframe._core import registry
    from procframe._core.capabilities import MANAGER_SERVER

    return [name for name in backends if registry.backends()[name].has(MANAGER_SERVER)]


@contextmanager
def managers_per_backend(
    backends: list[str], start: Callable[[procframe.Context], Any]
) -> Iterator[dict[str, Any]]:
    """``start(ctx)`` for every backend at once (a manager started later, by the first test
    of its backend, would count as that test's leak); each is shut down at the end."""
    started: dict[str, Any] = {}
    try:
        for name in backends:
            started[name] = start(procframe.get_context(name))
        yield started
    finally:
        for manager in started.values():
            manager.shutdown()


def start_script(
    directory: Path, source: str, backend: str, *args: Any, name: str = "script.py", mark: str = ""
) -> subprocess.Popen[str]:
    """Run ``source`` in a fresh interpreter under ``backend``; ``mark`` tags its processes
    (see :func:`procframe.testing.helpers.pool.marked_processes`)."""
    env = script_env(backend)
    if mark:
        env[MARK] = mark
    return subprocess.Popen(
        [sys.executable, str(write_script(directory, source, name)), *map(str, args)],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def marked_script(
    directory: Path, source: str, backend: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """:func:`start_script` with a fresh mark; at the end every marked process is killed."""
    mark = uuid.uuid4().hex
    script = start_script(directory, source, backend, mark=mark)
    try:
        yield script, mark
    finally:
        if script.poll() is None:
            script.kill()
        kill_marked(mark)  # first: a survivor would hold the script's pipes open
        script.communicate(timeout=PATIENCE)


# -- a class to register -------------------------------------------------------------


class Calculator:
    """A referent with state, a failing method, an iterator, and an unpicklable result."""

    def __init__(self, start: int = 0) -> None:
        self._total = start
        self._history: list[int] = []

    def add(self, x: int, times: int = 1) -> int:
        """Add ``x * times``; return the new total."""
        self._total += x * times
        self._history.append(x * times)
        return self._total

    def total(self) -> int:
        return self._total

    def reset(self) -> None:
        self._total = 0
        self._history.clear()

    def history(self) -> Iterator[int]:
        """An iterator over what was added (registered to come back as an ``Iterator`` proxy)."""
        return iter(list(self._history))

    def fail(self, message: str) -> None:
        """Raise ``ValueError(message)`` in the server."""
        raise ValueError(message)

    def unpicklable(self) -> Any:
        """Return something no serializer can pickle."""
        return refusals.a_generator()

    def raise_unpicklable(self) -> None:
        """Raise an exception no serializer can pickle (a generator among its arguments)."""
        raise ValueError("holds a generator", refusals.a_generator())

    def raise_unrebuildable(self) -> None:
        """Raise an exception that pickles but cannot be unpickled."""
        raise TwoArgumentError("one", "two")

    def where(self) -> dict[str, Any]:
        """The server's pid and backend."""
        return {"pid": os.getpid(), "backend": procframe.get_start_method()}


class TwoArgumentError(Exception):
    """Pickles, but cannot be unpickled: ``__init__`` needs two arguments, ``args`` holds one."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")
        self.second = second


class IteratorProxy(BaseProxy):
    """The proxy of a server-side iterator (the documentation's example)."""

    _exposed_ = ("__next__",)

    def __iter__(self) -> IteratorProxy:
        return self

    def __next__(self) -> Any:
        return self._callmethod("__next__")


class CounterProxy(BaseProxy):
    """A hand-written proxy type of :class:`Calculator` that shows only two methods."""

    _exposed_ = ("add", "total")

    def add(self, x: int) -> Any:
        return self._callmethod("add", (x,))

    def total(self) -> Any:
        return self._callmethod("total")


STATE: dict[str, Any] = {}
"""What the initializer of a manager's server recorded (in the server)."""


def initialize(value: Any) -> None:
    """A server initializer: record ``value`` and the server's pid in :data:`STATE`."""
    STATE["value"] = value
    STATE["pid"] = os.getpid()


class StateView:
    """A referent that reads :data:`STATE` in the server."""

    def get(self) -> dict[str, Any]:
        return dict(STATE)


class CalcManager(BaseManager):
    """A manager of :class:`Calculator` objects, registered every way ``register`` allows."""


CalcManager.register("Calculator", Calculator, method_to_typeid={"history": "Iterator"})
CalcManager.register("RestrictedCalculator", Calculator, exposed=("add", "total"))
CalcManager.register("Counter", Calculator, proxytype=CounterProxy)
CalcManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
CalcManager.register("state", StateView)


# -- a network server's shared objects --------------------------------------------------

SHARED_QUEUE: queue.Queue[Any] = queue.Queue()
SHARED_DICT: dict[Any, Any] = {}


def get_queue() -> queue.Queue[Any]:
    """The server's one queue."""
    return SHARED_QUEUE


def get_dict() -> dict[Any, Any]:
    """The server's one dict."""
    return SHARED_DICT


DICT_METHODS = (
    "__contains__",
    "__getitem__",
    "__len__",
    "__setitem__",
    "__delitem__",
    "copy",
    "get",
    "update",
)


class RemoteManager(BaseManager):
    """The documentation's "remote manager": a queue and a dict that every client shares."""


RemoteManager.register("get_queue", get_queue)
RemoteManager.register("get_dict", get_dict, exposed=DICT_METHODS)
CalcManager.register("shared_dict", get_dict, proxytype=DictProxy)  # the README's spelling


# -- children -----------------------------------------------------------------------


def mutate(d: Any, items: Any, ns: Any, value: Any, lock: Any, out: Any, rounds: int) -> None:
    """Change every proxy it is given: what the parent must see afterwards."""
    pid = os.getpid()
    d[pid] = "child"
    items.append(pid)
    ns.last = pid
    for _ in range(rounds):
        with lock:
            value.value += 1
    out.put(pid)


def wait_for_path(path: str) -> None:
    """Return once ``path`` exists (``TimeoutError`` after :data:`PATIENCE`)."""
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {PATIENCE}s")
        time.sleep(0.01)


def hold_then_use(held: Any, ready: str, go: str, out: str) -> None:
    """Report readiness, wait for ``go``, then use ``held`` and report what it holds."""
    report(ready, os.getpid())
    wait_for_path(go)
    held.append("child")
    report(out, list(held[:]))


def block_in_the_server(
    address: Any, authkey: bytes, q: Any, lock: Any, gate: Any, ready: str
) -> None:
    """Connect, make objects of its own, take ``lock``, report, then block in the server.

    A thread blocks in ``gate.acquire()`` (the test holds ``gate``) and the main
    thread in ``q.get()`` (``q`` is empty), until the test kills this process.
    """
    manager: Any = SyncManager(address=address, authkey=authkey)
    manager.connect()
    own = [manager.list(range(100)), manager.dict(a=1), manager.Event(), manager.Queue()]
    lock.acquire()
    threading.Thread(target=gate.acquire, daemon=True).start()
    report(ready, {"pid": os.getpid(), "own": len(own)})
    q.get()
    time.sleep(PATIENCE)


def try_to_connect(address: Any, authkey: bytes, out: str) -> None:
    """Connect to a RemoteManager and use it; report the error's type name, or None."""
    manager: Any = RemoteManager(address=address, authkey=authkey)
    try:
        manager.connect()
        manager.get_dict()
    except Exception as exc:
        report(out, type(exc).__name__)
        return
    report(out, None)


def use_proxies_from_queues(managed: Any, plain: Any, back: Any) -> None:
    """Take a proxy from each queue, change its object, send back what the objects hold."""
    d = managed.get(timeout=PATIENCE)
    items = plain.get(timeout=PATIENCE)
    d["child"] = os.getpid()
    items.append("child")
    back.put({"managed": d.copy(), "plain": list(items[:])})


def append_later(items: Any, delay: float, out: str) -> None:
    """Sleep ``delay`` seconds, append to ``items``, report what it holds (or the error)."""
    time.sleep(delay)
    try:
        items.append("late")
        report(out, list(items[:]))
    except Exception as exc:
        report(out, f"{type(exc).__name__}: {exc}")


def append_pid(items: Any) -> int:
    """A managed Pool's task: append this worker's pid to the managed list ``items``."""
    items.append(os.getpid())
    return len(items)


def wait_on(cond: Any, ready: Any) -> None:
    """Wait on the managed Condition ``cond`` for ever, once ``ready`` (an Event) is set."""
    with cond:
        ready.set()
        cond.wait()


def send_back(channel: Any, proxy: Any) -> None:
    """Put ``proxy`` on ``channel`` (a procframe Queue) and exit at once."""
    channel.put(proxy)

"""A process tree busy with every shared object, for the suite to SIGKILL at any point.

:data:`SCRIPT` runs as a fresh interpreter under the backend under test.  Its
main process makes one of every kind of shared object, starts two children
(one daemonic, one not) and all three use the objects for a few seconds;
the main process reports the tree's pids first.  Every wait is bounded but
one: ``Condition.wait`` takes its lock back without a bound (as in
``threading``), so only the first child, the one the suite kills, sleeps in
it.  Whichever process is killed, the others finish and exit by themselves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import procframe

SCRIPT = """\
import faulthandler
import signal
import sys
from procframe.testing.helpers import crash

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks a hung tree where it is

if __name__ == "__main__":
    crash.main(sys.argv[1], float(sys.argv[2]))
"""

BIG = b"x" * 10_000
"""A queue item too big for one pipe packet: it travels in a memory record of its own."""


def make_everything(ctx: Any) -> dict[str, Any]:
    """One object of every shared kind procframe makes (shared_memory included)."""
    from procframe.shared_memory import ShareableList, SharedMemory

    return {
        "lock": ctx.Lock(),
        "rlock": ctx.RLock(),
        "semaphore": ctx.Semaphore(2),
        "bounded": ctx.BoundedSemaphore(2),
        "condition": ctx.Condition(),
        "event": ctx.Event(),
        "barrier": ctx.Barrier(3, timeout=0.2),
        "value": ctx.Value("i", 0),
        "array": ctx.Array("d", 8),
        "raw": ctx.RawArray("i", 8),
        "queue": ctx.Queue(),
        "simple": ctx.SimpleQueue(),
        "joinable": ctx.JoinableQueue(),
        "pipe": ctx.Pipe(),
        "shm": SharedMemory(create=True, size=100_000),
        "list": ShareableList([0, 1.5, "text", b"bytes", None, True]),
    }


def churn(objects: dict[str, Any], until: float, main: bool, waits: bool) -> None:
    """Use every object until ``time.monotonic()`` passes ``until``.

    Only ``main`` reads the Pipe (an end has one reader at a time), and only a
    process that ``waits`` sleeps on the Condition.
    """
    import queue as queue_module
    import threading

    while time.monotonic() < until:
        for name in ("lock", "rlock", "semaphore", "bounded"):
            if objects[name].acquire(timeout=0.05):
                objects[name].release()
        cond = objects["condition"]
        if cond.acquire(timeout=0.05):
            try:
                cond.notify_all()
                if waits:
                    cond.wait(0.01)
            finally:
                cond.release()
        event = objects["event"]
        event.set()
        event.clear()
        event.wait(0.005)
        try:
            objects["barrier"].wait()
        except threading.BrokenBarrierError:
            objects["barrier"].reset()
        for name in ("value", "array"):  # a dead holder of a lock must not stop the others
            synchronized = objects[name]
            if synchronized.get_lock().acquire(timeout=0.05):
                try:
                    if name == "value":
                        synchronized.get_obj().value += 1
                    else:
                        synchronized.get_obj()[os.getpid() % 8] += 1.0
                finally:
                    synchronized.get_lock().release()
        objects["raw"][os.getpid() % 8] += 1
        for name in ("queue", "joinable"):
            objects[name].put(BIG)
            objects[name].put(os.getpid())
            for _ in range(2):
                try:
                    objects[name].get(timeout=0.05)
                except queue_module.Empty:
                    pass
                except Exception:  # an item lost with a killed peer: the point of the test
                    pass
        objects["simple"].put(BIG)
        try:
            objects["simple"].get()
        except Exception:  # an item lost with a killed peer
            pass
        if main:
            sender, receiver = objects["pipe"]
            sender.send(BIG)
            receiver.recv()
        objects["shm"].buf[os.getpid() % 100] = 1
        objects["list"][0] = os.getpid()


def work(objects: dict[str, Any], seconds: float, waits: bool) -> None:
    """A child's part: :func:`churn` for ``seconds``."""
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    churn(objects, time.monotonic() + seconds, main=False, waits=waits)


def main(report_path: str, seconds: float) -> None:
    """Make everything, start the children, report the pids, churn; then join the children."""
    ctx = procframe.get_context()
    objects = make_everything(ctx)
    children = [
        ctx.Process(target=work, args=(objects, seconds, first), daemon=first)
        for first in (True, False)
    ]
    for child in children:
        child.start()
    pids = {"parent": os.getpid(), "children": [child.pid for child in children]}
    tmp = Path(f"{report_path}.tmp")
    tmp.write_text(repr(pids), encoding="utf-8")
    tmp.replace(report_path)
    churn(objects, time.monotonic() + seconds, main=True, waits=False)
    for child in children:
        child.join(30)

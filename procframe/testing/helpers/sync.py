"""Child-side helpers of the Lock family's suite: Lock, RLock, semaphores, Condition, Event.

Children import this module (never a test module, which imports pytest) and
report back through files (:func:`procframe.testing.helpers.targets.report`).  Every
wait here is bounded, so a broken primitive shows as a wrong report, not a hang.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from procframe.testing.helpers.targets import read_report, report

PATIENCE = 60.0
"""Seconds a child waits for anything that should happen at once."""


def error_name(call: Any, *args: Any) -> str | None:
    """The name of the exception ``call(*args)`` raises, or None if it returns."""
    try:
        call(*args)
    except Exception as exc:
        return type(exc).__name__
    return None


# -- exclusion ---------------------------------------------------------------


def increment_under(lock: Any, path: str, times: int) -> None:
    """``times`` read-modify-writes of the integer in ``path``, each under ``lock``.

    The pause between the read and the write makes a lost update likely
    whenever two processes are inside at once.
    """
    for _ in range(times):
        with lock:
            value = int(Path(path).read_text(encoding="utf-8"))
            time.sleep(0.0005)
            Path(path).write_text(str(value + 1), encoding="utf-8")


def hold_for(lock: Any, path: str, seconds: float) -> None:
    """Hold ``lock`` (any acquirable) for ``seconds``; report when, by the system-wide clock."""
    if not lock.acquire(timeout=PATIENCE):
        report(path, None)
        return
    try:
        entered = time.monotonic()
        time.sleep(seconds)
        left = time.monotonic()
    finally:
        lock.release()
    report(path, [entered, left])


# -- crossing to a child ---------------------------------------------------------


def acquire_while_held_then_after(lock: Any, path: str, release_path: str) -> None:
    """Report whether ``lock`` (held by the parent) is free, then take it once released.

    Reports ``{"free": ..., "waited": ...}`` in two steps: ``path`` right away,
    then ``path + ".after"`` once the blocking acquire returned; keeps the lock.
    """
    report(path, {"free": bool(lock.acquire(False)), "error": None})
    got = bool(lock.acquire(timeout=PATIENCE))
    report(path + ".after", {"got": got})
    read_report(release_path, timeout=PATIENCE)  # the parent has seen our report
    if got:
        lock.release()


def time_acquire(lock: Any, path: str, timeout: float) -> None:
    """Report ``lock.acquire(timeout=timeout)``'s result and how long it took."""
    began = time.monotonic()
    got = bool(lock.acquire(timeout=timeout))
    elapsed = time.monotonic() - began
    if got:
        lock.release()
    report(path, {"got": got, "elapsed": elapsed})


def take_and_keep(lock: Any, path: str) -> None:
    """Acquire ``lock`` and exit still holding it; report whether it was taken."""
    report(path, {"got": bool(lock.acquire(timeout=PATIENCE))})


def release_once(lock: Any, path: str) -> None:
    """Release ``lock`` once; report the exception's name, or None."""
    report(path, {"error": error_name(lock.release)})


def probe_rlock(rlock: Any, path: str) -> None:
    """Report what this process may do with an RLock another process holds."""
    report(
        path,
        {"free": bool(rlock.acquire(False)), "release_error": error_name(rlock.release)},
    )


def recursive_rlock(rlock: Any, path: str, depth: int) -> None:
    """Acquire ``rlock`` ``depth`` times, release as often, then once more; report."""
    taken = [bool(rlock.acquire(timeout=PATIENCE)) for _ in range(depth)]
    for _ in range(depth):
        rlock.release()
    report(path, {"taken": taken, "extra_release_error": error_name(rlock.release)})


def hold_forever(lock: Any, ready_path: str) -> None:
    """Acquire ``lock``, report our pid, and sleep until killed."""
    lock.acquire()
    report(ready_path, os.getpid())
    while True:
        time.sleep(60)


# -- semaphores ------------------------------------------------------------------


def acquire_n_and_keep(sem: Any, n: int, path: str) -> None:
    """Acquire ``sem`` ``n`` times without blocking; report the results; keep them."""
    report(path, {"got": [bool(sem.acquire(False)) for _ in range(n)]})


# -- Condition -------------------------------------------------------------------


def wait_on(cond: Any, ready_path: str, result_path: str, timeout: float) -> None:
    """Under ``cond``: report ready, ``wait(timeout)``; report its result and our ownership."""
    with cond:
        report(ready_path, os.getpid())
        began = time.monotonic()
        woken = bool(cond.wait(timeout))
        elapsed = time.monotonic() - began
        report(result_path, {"woken": woken, "elapsed": elapsed})
    # ``with`` released the lock: wait() gave it back to us.


def wait_for_file(
    cond: Any, ready_path: str, flag_path: str, result_path: str, timeout: float
) -> None:
    """Under ``cond``: report ready, ``wait_for`` ``flag_path`` to exist; report the result."""
    with cond:
        report(ready_path, os.getpid())
        began = time.monotonic()
        result = cond.wait_for(lambda: os.path.exists(flag_path), timeout)
        elapsed = time.monotonic() - began
        report(result_path, {"result": bool(result), "elapsed": elapsed})


def notify_under(cond: Any, how: str, flag_path: str | None = None) -> None:
    """Create ``flag_path`` if given, then ``notify()``/``notify_all()``, holding ``cond``."""
    with cond:
        if flag_path is not None:
            Path(flag_path).write_text("set", encoding="utf-8")
        if how == "all":
            cond.notify_all()
        else:
            cond.notify(int(how))


def condition_unowned(cond: Any, path: str) -> None:
    """Report the errors of ``wait``, ``notify`` and ``notify_all`` without holding ``cond``."""
    report(
        path,
        {
            "wait": error_name(cond.wait, 0.01),
            "notify": error_name(cond.notify),
            "notify_all": error_name(cond.notify_all),
        },
    )


# -- Event -----------------------------------------------------------------------


def wait_event(event: Any, ready_path: str, result_path: str, timeout: float) -> None:
    """Report ready, ``event.wait(timeout)``; report its result and ``is_set()``."""
    report(ready_path, os.getpid())
    began = time.monotonic()
    got = bool(event.wait(timeout))
    elapsed = time.monotonic() - began
    report(result_path, {"got": got, "is_set": bool(event.is_set()), "elapsed": elapsed})


def set_event(event: Any, path: str) -> None:
    """``event.set()``; report ``is_set()`` after it."""
    event.set()
    report(path, {"is_set": bool(event.is_set())})


def clear_event(event: Any, path: str) -> None:
    """Report ``is_set()``, ``event.clear()``, report ``is_set()`` again."""
    before = bool(event.is_set())
    event.clear()
    report(path, {"before": before, "after": bool(event.is_set())})


def use_every_kind(
    lock: Any, rlock: Any, sem: Any, bsem: Any, cond: Any, event: Any, path: str
) -> None:
    """Take ``lock``, ``rlock``, ``cond`` and two of ``sem``, over-release ``bsem``, set ``event``.

    Exits holding what it took; reports what each step gave.
    """
    done = {
        "lock": bool(lock.acquire(timeout=PATIENCE)),
        "rlock": bool(rlock.acquire(timeout=PATIENCE)),
        "sem": [bool(sem.acquire(False)) for _ in range(2)],
        "bsem": error_name(bsem.release),
        "cond": bool(cond.acquire(timeout=PATIENCE)),
    }
    event.set()
    report(path, {**done, "event": bool(event.is_set())})


def die_inside(obj: Any, ready_path: str) -> None:
    """Take ``obj``'s own lock (an Event's, a JoinableQueue's), as its methods do; report our
    pid, and sleep until killed."""
    obj._cond.__enter__()
    report(ready_path, os.getpid())
    while True:
        time.sleep(60)

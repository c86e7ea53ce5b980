"""Child-side helpers of the ``procframe.shared_memory`` suite.

Children import this module (never a test module, which imports pytest).
Bytes travel in reports as latin-1 text (JSON has no bytes).
"""

from __future__ import annotations

import os
import time
from typing import Any

from procframe.shared_memory import ShareableList, SharedMemory
from procframe.testing.helpers.targets import read_report, report

PATIENCE = 60.0


def text(data: bytes | memoryview) -> str:
    """``data`` as the latin-1 text a report carries."""
    return bytes(data).decode("latin-1")


def attach_and_write(name: str, data: str, report_path: str) -> None:
    """Attach to ``name``; report what the block holds; write ``data`` (latin-1) at its start."""
    shm = SharedMemory(name)
    assert shm.buf is not None
    seen = {"name": shm.name, "size": shm.size, "data": text(shm.buf)}
    shm.buf[: len(data)] = data.encode("latin-1")
    shm.close()
    report(report_path, seen)


def write_through(shm: SharedMemory, data: str, report_path: str) -> None:
    """Given the object itself: report what it holds, then write ``data`` at its start."""
    assert shm.buf is not None
    seen = {"name": shm.name, "size": shm.size, "data": text(shm.buf)}
    shm.buf[: len(data)] = data.encode("latin-1")
    report(report_path, seen)


def create_and_wait(name: str | None, size: int, data: str, ready_path: str) -> None:
    """Create a block (``name`` or a generated one) holding ``data``; report its name and
    memfd token; then sleep until killed."""
    shm = SharedMemory(name, create=True, size=size)
    assert shm.buf is not None
    shm.buf[: len(data)] = data.encode("latin-1")
    report(ready_path, {"name": shm.name, "token": shm._token, "pid": os.getpid()})
    while True:
        time.sleep(60)


def create_and_hold(name: str | None, size: int, data: str, ready_path: str, go_path: str) -> None:
    """Create a block holding ``data``, report its name, wait for ``go``, then return
    (without close or unlink: the block goes to the program's keeper)."""
    shm = SharedMemory(name, create=True, size=size)
    assert shm.buf is not None
    shm.buf[: len(data)] = data.encode("latin-1")
    report(ready_path, {"name": shm.name, "token": shm._token})
    read_report(go_path, timeout=PATIENCE)


def attach_and_unlink(name: str, report_path: str) -> None:
    """Attach to ``name``, unlink it, and report whether it can still be attached."""
    shm = SharedMemory(name)
    shm.unlink()
    try:
        SharedMemory(name).close()
    except FileNotFoundError:
        attachable = False
    else:
        attachable = True
    assert shm.buf is not None
    report(report_path, {"attachable": attachable, "data": text(shm.buf[:4])})
    shm.close()


def race_to_create(name: str, go_path: str, report_path: str, done_path: str) -> None:
    """At ``go``, try to create a block named ``name``; report "won" or "lost"; a winner
    holds the name until ``done``."""
    read_report(go_path, timeout=PATIENCE)
    try:
        shm = SharedMemory(name, create=True, size=64)
    except FileExistsError:
        report(report_path, "lost")
        return
    report(report_path, "won")
    read_report(done_path, timeout=PATIENCE)
    shm.unlink()
    shm.close()


def change_list(sl: ShareableList[Any], report_path: str) -> None:
    """Report a ShareableList's items and name; then replace some of them."""
    report(report_path, {"items": _jsonable(list(sl)), "name": sl.shm.name, "len": len(sl)})
    sl[0] = -sl[0]
    sl[-1] = "from child"
    sl[2] = None


def attach_list_and_change(name: str, report_path: str) -> None:
    """Attach to the ShareableList ``name`` and do what :func:`change_list` does."""
    sl = ShareableList(name=name)
    change_list(sl, report_path)
    sl.shm.close()


def _jsonable(items: list[Any]) -> list[Any]:
    return [text(item) if isinstance(item, bytes) else item for item in items]

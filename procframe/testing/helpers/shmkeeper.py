"""Child-side helpers and probes of the suite's tests of blocks that outlive their creator.

Children import this module (never a test module, which imports pytest).
"""

from __future__ import annotations

import os
import time
from typing import Any

from procframe.shared_memory import SharedMemory
from procframe.testing.helpers.targets import read_report, report

PATIENCE = 60.0

SCRIPT = """\
import sys
import procframe
from procframe.testing.helpers import shmkeeper

if __name__ == "__main__":
    shmkeeper.program_main(sys.argv[1], sys.argv[2])
"""
"""A program whose child creates a block and exits; its main process then reports the
block and either waits to be killed (``wait``) or, once ``<report>.go`` exists (the test
has attached the block), ends without unlinking it (``end``)."""


def create_and_return(queue: Any, name: str | None, size: int, data: bytes) -> None:
    """Create a block (``name`` or a generated one) holding ``data``; put its name and
    memfd token on ``queue``; return without close or unlink."""
    shm = SharedMemory(name, create=True, size=size)
    assert shm.buf is not None
    shm.buf[: len(data)] = data
    queue.put((shm.name, shm._token))


def create_for_pool(name: str | None, data: bytes) -> tuple[str, str]:
    """As :func:`create_and_return`, for a Pool: the name and token are the result."""
    shm = SharedMemory(name, create=True, size=len(data))
    assert shm.buf is not None
    shm.buf[:] = data
    return shm.name, shm._token


def create_and_report(report_path: str, data: str) -> tuple[str, str]:
    """Create a block holding ``data`` (latin-1); report its name, memfd token and this
    process's pid; return them (name, token)."""
    shm = SharedMemory(create=True, size=len(data))
    assert shm.buf is not None
    shm.buf[:] = data.encode("latin-1")
    report(report_path, {"name": shm.name, "token": shm._token, "pid": os.getpid()})
    return shm.name, shm._token


def create_and_exit_at_once(report_path: str, data: str) -> None:
    """As :func:`create_and_report`, then ``os._exit(0)``: no exit handler runs."""
    create_and_report(report_path, data)
    os._exit(0)


def create_and_sleep(report_path: str, data: str) -> None:
    """As :func:`create_and_report`, then sleep until killed (a task that times out)."""
    create_and_report(report_path, data)
    time.sleep(PATIENCE * 10)


def create_and_unlink(queue: Any) -> None:
    """Create a block, unlink it and close it; put its token on ``queue``."""
    shm = SharedMemory(create=True, size=64)
    shm.unlink()
    shm.close()
    queue.put(shm._token)


def leave_an_orphan_creator(method: str, ready_path: str, report_path: str) -> None:
    """Start a child that outlives this process; once it is running, end at once.

    The child (:func:`create_as_orphan`) ignores SIGTERM, so the end of its parent does not
    end it: it is reparented, then creates a block.
    """
    import procframe

    child = procframe.get_context(method).Process(
        target=create_as_orphan, args=(ready_path, report_path)
    )
    child.start()
    read_report(ready_path, timeout=PATIENCE)
    os._exit(0)  # no join: the child lives on


def create_as_orphan(ready_path: str, report_path: str) -> None:
    """Survive the end of the parent, wait to be reparented, create a block and report it."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    report(ready_path, parent)
    deadline = time.monotonic() + PATIENCE
    while os.getppid() == parent:
        if time.monotonic() > deadline:
            raise TimeoutError("the parent did not exit")
        time.sleep(0.01)
    create_and_report(report_path, "made by an orphan")


def attach_and_read(queue: Any, name: str, size: int, write: bytes) -> None:
    """Attach to ``name``; put its first ``size`` bytes on ``queue``; write ``write`` there."""
    shm = SharedMemory(name)
    assert shm.buf is not None
    queue.put(bytes(shm.buf[:size]))
    shm.buf[: len(write)] = write
    shm.close()


def attach_and_unlink(queue: Any, name: str) -> None:
    """Attach to ``name``, unlink it, and put whether it can still be attached on ``queue``."""
    shm = SharedMemory(name)
    shm.unlink()
    try:
        SharedMemory(name).close()
    except FileNotFoundError:
        queue.put(False)
    else:
        queue.put(True)
    shm.close()


def unattachable(name: str) -> bool:
    """True if no block can be attached by ``name`` (never made, unlinked, or ended)."""
    try:
        SharedMemory(name).close()
    except FileNotFoundError:
        return True
    return False


def holders(token: str) -> list[int]:
    """Pids of every process holding a descriptor of the memfd labelled ``token``."""
    label = f"procframe-shm:{token}"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if label in os.readlink(f"/proc/{entry}/fd/{fd}"):
                    pids.append(int(entry))
                    break
            except OSError:
                continue
    return pids


def keepers(main_pid: int) -> list[int]:
    """Pids of the running keepers of the program whose main process is ``main_pid``."""
    from procframe.testing.helpers.scripts import pid_running

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if (
            any(b"procframe.posix.shm_keeper" in arg for arg in argv)
            and str(main_pid).encode() in argv
            and pid_running(int(entry))
        ):
            found.append(int(entry))
    return found


def program_main(report_path: str, end: str) -> None:
    """The main process of :data:`SCRIPT`: see there."""
    import procframe

    ctx = procframe.get_context()
    queue = ctx.Queue()
    child = ctx.Process(target=create_and_return, args=(queue, None, 1 << 20, b"kept"))
    child.start()
    name, token = queue.get(timeout=PATIENCE)
    child.join(PATIENCE)
    with SharedMemory(name) as shm:  # kept for the program after its creator exited
        assert shm.buf is not None
        data = bytes(shm.buf[:4]).decode()
    report(report_path, {"name": name, "token": token, "data": data, "pid": os.getpid()})
    if end == "wait":
        time.sleep(PATIENCE)
    else:  # end once the test has attached the block from outside (it says so by a file)
        go = report_path + ".go"
        deadline = time.monotonic() + PATIENCE
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)

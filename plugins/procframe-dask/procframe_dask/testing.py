"""The pytest plugin of the dask backend's tests (``pytest -p procframe_dask.testing``): a
real cluster, a scheduler and two workers, separate OS processes.

Started once per session on 127.0.0.1, each in a working directory of its own
(nothing is shared with the tests but the network), and named to the backend
through ``PROCFRAME_DASK_ADDRESS`` (children and scripts inherit it).  The
program's client, and the threads Dask keeps for the program's life, are made before
the first test, so they are not counted as a test's leak.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 60.0
"""Seconds the scheduler and the workers get to start."""
STOP_GRACE = 3.0
"""Seconds the scheduler and the workers get to stop before they are killed."""
_ADDRESS = re.compile(r"Scheduler at:\s+(tcp://[0-9.]+:[0-9]+)")


def _dask(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "dask"), *args],
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_address(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _ADDRESS.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"the scheduler did not start: {log.read_text(errors='replace')}")


@pytest.fixture(scope="session", autouse=True)
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a scheduler with two workers, started for the session."""
    root = tmp_path_factory.mktemp("cluster")
    started: list[subprocess.Popen[bytes]] = []
    try:
        (root / "scheduler").mkdir()
        scheduler = _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            cwd=root / "scheduler",
            log=root / "scheduler.log",
        )
        started.append(scheduler)
        address = _wait_for_address(root / "scheduler.log", scheduler)
        for name in ("worker-1", "worker-2"):
            (root / name).mkdir()
            started.append(
                _dask(
                    "worker",
                    address,
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                    "--local-directory",
                    str(root / name),
                    cwd=root / name,
                    log=root / f"{name}.log",
                )
            )
        started.append(_watchdog([process.pid for process in started]))
        os.environ["PROCFRAME_DASK_ADDRESS"] = address
        from procframe_dask import cluster

        client = cluster.client()
        client.wait_for_workers(2, timeout=START_TIMEOUT)
        _start_dasks_threads(client)
        yield address
        cluster.close()
    finally:
        os.environ.pop("PROCFRAME_DASK_ADDRESS", None)
        _stop(started)


def _stop(started: list[subprocess.Popen[bytes]]) -> None:
    """End the cluster's processes and all they started (each heads a process group:
    its nanny, worker, fork server and the Processes it forked), SIGKILL after
    :data:`STOP_GRACE` seconds."""
    for process in started:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in started:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in started:
        _signal_group(process, signal.SIGKILL)  # what is left of its group
        process.wait(30)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _watchdog(groups: list[int]) -> subprocess.Popen[bytes]:
    """A process that kills these process groups if this one dies first (a test session
    killed would otherwise leave its cluster, and what runs there, behind)."""
    code = (
        "import os, signal, sys, time\n"
        "parent = os.getppid()\n"
        "while os.getppid() == parent:\n"
        "    time.sleep(1)\n"
        "for group in map(int, sys.argv[1:]):\n"
        "    try:\n"
        "        os.killpg(group, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, *map(str, groups)], start_new_session=True)


def _start_dasks_threads(client: object) -> None:
    """Start the threads Dask keeps for the program's life (the one that runs futures'
    callbacks, the one that (de)serializes big messages) before the first test, so
    that they do not count as the leak of whichever test first needs them."""
    import threading

    from distributed.utils import offload

    called = threading.Event()
    future = client.submit(abs, -1, pure=False)  # type: ignore[attr-defined]
    future.add_done_callback(lambda _: called.set())
    future.result(timeout=START_TIMEOUT)
    called.wait(START_TIMEOUT)
    client.sync(offload, abs, -1)  # type: ignore[attr-defined]

"""After a SIGKILL anywhere in a process tree, nothing procframe created outlives the survivors.

``multiprocessing`` leaves named semaphores and ``/dev/shm`` segments behind
when a process dies without cleaning up.  Here a script's process tree uses
every kind of shared object while the test SIGKILLs one of its processes (the
main one or a child) at some moment; once the survivors have exited, no new
name exists in ``/dev/shm``, and no process holds any of the shared memory
the tree used (listed, before the kill, from the tree's open descriptors).
"""

from __future__ import annotations

import ast
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from procframe.testing.helpers.crash import SCRIPT
from procframe.testing.helpers.devshm import procframe_names
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import pid_running, script_env, write_script

pytestmark = [
    pytest.mark.requires("passes_descriptors"),
    pytest.mark.skipif(
        not Path("/proc/self/fd").is_dir(), reason="needs /proc to list descriptors"
    ),
]

CHURN = 1.0
"""Seconds each process of the tree uses the objects (a kill "busy" comes halfway)."""
PATIENCE = 60.0
TREE_MARK = "PROCFRAME_TEST_TREE"
"""An environment variable every process of the tree inherits: how the test finds them all."""


def shared_memory_held(pids: list[int] | None = None) -> set[tuple[int, int]]:
    """(device, inode) of every memfd or deleted /dev/shm file open in ``pids`` (default: all)."""
    if pids is None:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    held = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            path = f"{fd_dir}/{fd}"
            try:
                target = os.readlink(path)
                if target.startswith(("/memfd:", "/dev/shm/")):
                    info = os.stat(path)
                    held.add((info.st_dev, info.st_ino))
            except OSError:
                continue
    return held


def holders(inodes: set[tuple[int, int]]) -> dict[int, str]:
    """Command line of every process holding one of ``inodes``: what a failure names."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and shared_memory_held([int(entry)]) & inodes:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def tree_processes(mark: str) -> list[int]:
    """Pids of every living process whose environment carries ``mark`` (a tree and its helpers)."""
    needle = f"{TREE_MARK}={mark}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read() and pid_running(int(entry)):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def read_stderr(tree: subprocess.Popen[bytes]) -> str:
    """What the tree wrote to its stderr (once its processes are gone), closing the pipe."""
    if tree.stderr is None or tree.stderr.closed:
        return ""
    with tree.stderr:
        return tree.stderr.read().decode(errors="replace")


CASES = [
    ("main", "starting"),
    ("main", "early"),
    ("main", "busy"),
    ("child", "early"),
    ("child", "busy"),
]
"""Who is killed, and when: while the tree is starting (making its objects and children),
just after it started, or halfway through its work."""


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("victim", "moment"), CASES, ids=[f"{v}-{m}" for v, m in CASES])
def test_nothing_remains_after_a_sigkill(
    procframe_backend: str, tmp_path: Path, victim: str, moment: str
) -> None:
    report = tmp_path / "pids"
    before = procframe_names()
    mark = uuid.uuid4().hex
    env = {**script_env(procframe_backend), TREE_MARK: mark}
    script = write_script(tmp_path, SCRIPT)
    tree = subprocess.Popen(
        [sys.executable, str(script), str(report), str(CHURN)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if moment == "starting":  # somewhere in making the objects and starting the children
            time.sleep(random.uniform(0.05, 0.5))
        else:
            assert eventually(report.exists, PATIENCE), "the tree never reported its pids"
            time.sleep(random.uniform(0.0, 0.2) if moment == "early" else CHURN / 2)
        used = shared_memory_held(tree_processes(mark))
        if moment != "starting":
            assert used, "the tree holds no shared memory: the test would prove nothing"
        if victim == "main":
            tree.kill()
        else:
            os.kill(
                ast.literal_eval(report.read_text(encoding="utf-8"))["children"][0], signal.SIGKILL
            )
        try:
            tree.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            for pid in tree_processes(mark):  # each prints its threads' stacks to stderr
                os.kill(pid, signal.SIGUSR1)
            time.sleep(1.0)
            for pid in tree_processes(mark):
                os.kill(pid, signal.SIGKILL)
            tree.wait()
            pytest.fail(f"the tree hung after its {victim} was killed:\n{read_stderr(tree)}")
        assert eventually(lambda: not tree_processes(mark), PATIENCE), (
            f"processes of the tree outlived it: {tree_processes(mark)}"
        )
        # A process that is exiting has already lost its environment (so it no longer
        # counts as the tree's) but may not have closed its descriptors yet.
        assert eventually(lambda: not (used & shared_memory_held()), PATIENCE), (
            f"the tree's shared memory outlived the tree, held by {holders(used)}"
        )
    finally:
        if tree.poll() is None:
            tree.kill()
            tree.wait()
        for pid in tree_processes(mark):
            os.kill(pid, signal.SIGKILL)
        stderr = read_stderr(tree)
    assert procframe_names() - before == set()
    if victim == "child":  # the main process carried on and finished
        assert tree.returncode == 0, stderr
    else:
        assert tree.returncode == -signal.SIGKILL

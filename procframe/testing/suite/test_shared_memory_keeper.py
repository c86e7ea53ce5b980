"""A shared-memory block outlives the process that created it, not the program.

The pattern "a worker creates a block and returns its name": the creator
exits, and the block stays attachable by name, from any process of the
program (those started later included), until some process unlinks it or
the program ends.  Then nothing is left: no process, no descriptor of the
block, nothing in ``/dev/shm``; a program killed by SIGKILL while such a
block exists leaves nothing either.  (Under ``threads`` the creator is a
thread of the main process and holds the block there: the same tests hold.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.posix import shared_memory
from procframe.posix.shm_handoff import kept_names
from procframe.shared_memory import SharedMemory
from procframe.testing.helpers import shmkeeper
from procframe.testing.helpers.devshm import procframe_names
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import script_env, write_script
from procframe.testing.helpers.targets import read_report

pytestmark = pytest.mark.timeout(180)

PATIENCE = 60.0
MEMFD = pytest.mark.skipif(
    not shared_memory._USE_MEMFD, reason="blocks are named POSIX shared memory here"
)


@pytest.fixture(params=["generated", "chosen"])
def name(request: pytest.FixtureRequest) -> str | None:
    """A generated name (None), or a chosen one that no other test uses."""
    return None if request.param == "generated" else f"procframe-test-{uuid.uuid4().hex[:12]}"


def _run(ctx: procframe.Context, target: Any, *args: Any) -> None:
    """Run ``target`` in a child of ``ctx`` to its end; it must exit 0."""
    p = ctx.Process(target=target, args=args)
    p.start()
    try:
        p.join(PATIENCE)
    finally:
        reap(p)
    assert p.exitcode == 0


def _nothing_left(token: str) -> None:
    """No process holds the block's memory any more, and no keeper runs for this program."""
    if shared_memory._USE_MEMFD:
        assert eventually(lambda: not shmkeeper.holders(token)), (
            f"the block is still held by {shmkeeper.holders(token)}"
        )
        assert eventually(lambda: not shmkeeper.keepers(os.getpid())), (
            f"the keeper {shmkeeper.keepers(os.getpid())} outlived its last block"
        )
    assert kept_names() == set()


@pytest.mark.core
def test_a_block_outlives_the_child_that_created_it(
    ctx: procframe.Context, name: str | None
) -> None:
    before = procframe_names()
    queue = ctx.Queue()
    _run(ctx, shmkeeper.create_and_return, queue, name, 4096, b"made by a child")
    made, token = queue.get(timeout=PATIENCE)
    assert name is None or made == name
    shm = SharedMemory(made)  # its creator has exited
    try:
        assert shm.buf is not None and bytes(shm.buf[:15]) == b"made by a child"
        assert shm.size == 4096
        _run(ctx, shmkeeper.attach_and_read, queue, made, 15, b"MADE")  # a later child
        assert queue.get(timeout=PATIENCE) == b"made by a child"
        assert bytes(shm.buf[:4]) == b"MADE"
        with pytest.raises(FileExistsError):  # the name is still taken
            SharedMemory(made, create=True, size=8)
        shm.unlink()
        assert shmkeeper.unattachable(made)
        with pytest.raises(FileNotFoundError):
            shm.unlink()
        assert bytes(shm.buf[:4]) == b"MADE"  # a mapping outlives the name
    finally:
        shm.close()
    _nothing_left(token)
    assert procframe_names(made) - before == set()


def test_any_process_may_unlink_a_kept_block(ctx: procframe.Context, name: str | None) -> None:
    queue = ctx.Queue()
    _run(ctx, shmkeeper.create_and_return, queue, name, 64, b"x")
    made, token = queue.get(timeout=PATIENCE)
    _run(ctx, shmkeeper.attach_and_unlink, queue, made)  # a sibling of the creator
    assert queue.get(timeout=PATIENCE) is False
    assert shmkeeper.unattachable(made)
    _nothing_left(token)
    if name is not None:  # the name is free again
        again = SharedMemory(name, create=True, size=8)
        again.unlink()
        again.close()


def test_blocks_of_a_pool_worker_outlive_the_pool(ctx: procframe.Context) -> None:
    with ctx.Pool(1) as pool:
        made, token = pool.apply(shmkeeper.create_for_pool, (None, b"from a worker"))
        pool.close()
        pool.join()  # the worker exited
    with SharedMemory(made) as shm:
        assert shm.buf is not None and bytes(shm.buf) == b"from a worker"
        shm.unlink()
    _nothing_left(token)


@MEMFD
@pytest.mark.parametrize("end", ["wait", "end"])
def test_the_end_of_the_program_frees_a_kept_block(
    procframe_backend: str, tmp_path: Path, end: str
) -> None:
    """Killed (SIGKILL of the main process) or ended normally, the program takes the block
    with it, without a warning: nothing could leak, so there is nothing to warn about."""
    before = procframe_names()
    report = tmp_path / "made"
    program = subprocess.Popen(
        [sys.executable, str(write_script(tmp_path, shmkeeper.SCRIPT)), str(report), end],
        cwd=tmp_path,
        env=script_env(procframe_backend),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    made = None
    try:
        made = read_report(report, timeout=PATIENCE)
        assert made["data"] == "kept"
        with SharedMemory(made["name"]) as shm:  # attachable from outside the program, too
            assert shm.buf is not None and bytes(shm.buf[:4]) == b"kept"
        if end == "wait":
            program.kill()
        _, stderr = program.communicate(timeout=PATIENCE)
    finally:
        if program.poll() is None:
            program.kill()
            program.communicate()
    if end == "wait":
        assert program.returncode == -signal.SIGKILL
    else:
        assert (program.returncode, stderr) == (0, "")
    assert eventually(lambda: not shmkeeper.keepers(made["pid"])), (
        f"the keeper {shmkeeper.keepers(made['pid'])} outlived the program"
    )
    assert eventually(lambda: not shmkeeper.holders(made["token"])), (
        f"the block is still held by {shmkeeper.holders(made['token'])}"
    )
    assert shmkeeper.unattachable(made["name"])
    assert procframe_names() - before == set()

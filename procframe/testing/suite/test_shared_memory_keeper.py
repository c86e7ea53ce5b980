"""A shared-memory block outlives the process that created it, not the program.

The pattern "a worker creates a block and returns its name": the creator
ends, and the block stays attachable by name, from any process of the
program (those started later included), until some process unlinks it or
the program ends; however the creator ends: it returns, leaving a
``with Pool()`` block terminates it, ``Pool.terminate()``, a task timeout,
``os._exit()``, or it outlived its own parent.  Then nothing is left: no
process, no descriptor of the block, nothing in ``/dev/shm``; a program
killed by SIGKILL while such a block exists leaves nothing either.  (Under
``threads`` the creator is a thread of the main process and holds the block
there: the same tests hold.)
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
import procframe.pool
from procframe.posix import shared_memory
from procframe.posix.shm_handoff import kept_names
from procframe.shared_memory import SharedMemory
from procframe.testing.helpers import shmem, shmkeeper
from procframe.testing.helpers.devshm import procframe_names
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import pid_running, script_env, write_script
from procframe.testing.helpers.targets import read_report, report

pytestmark = [pytest.mark.timeout(180), pytest.mark.requires("host_memory")]

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


def _attach_read_unlink(made: str, data: bytes) -> None:
    """Attach to ``made`` (its creator is gone), check that it holds ``data``, unlink it."""
    with SharedMemory(made) as shm:
        assert shm.buf is not None and bytes(shm.buf[: len(data)]) == data
        shm.unlink()
    assert shmkeeper.unattachable(made)


@pytest.mark.core
def test_a_block_made_in_a_with_pool_block_outlives_it(
    ctx: procframe.Context, name: str | None
) -> None:
    """``with Pool() as p: name = p.apply(make_block)``, attached after the ``with`` block,
    whose end terminated the workers."""
    with ctx.Pool(2) as pool:
        made, token = pool.apply(shmkeeper.create_for_pool, (name, b"from a worker"))
    _attach_read_unlink(made, b"from a worker")
    _nothing_left(token)


def test_a_block_made_by_a_worker_outlives_pool_terminate(
    ctx: procframe.Context, name: str | None
) -> None:
    pool = ctx.Pool(2)
    try:
        made, token = pool.apply(shmkeeper.create_for_pool, (name, b"terminated"))
    finally:
        pool.terminate()
        pool.join()
    _attach_read_unlink(made, b"terminated")
    _nothing_left(token)


@pytest.mark.requires("task_timeouts")
def test_a_block_outlives_a_worker_killed_by_a_task_timeout(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    made_at = tmp_path / "made"
    with ctx.Pool(1) as pool:
        late = pool.apply_async(shmkeeper.create_and_sleep, (str(made_at), "late"), timeout=5.0)
        with pytest.raises(procframe.pool.TaskTimeoutError):
            late.get(timeout=PATIENCE)
        made = read_report(made_at, timeout=PATIENCE)
        assert eventually(lambda: not pid_running(made["pid"]))
        _attach_read_unlink(made["name"], b"late")
    _nothing_left(made["token"])


@pytest.mark.requires("separate_memory")
def test_a_block_outlives_a_child_that_ends_with_os_exit(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    made_at = tmp_path / "made"
    _run(ctx, shmkeeper.create_and_exit_at_once, str(made_at), "os._exit")
    made = read_report(made_at, timeout=PATIENCE)
    _attach_read_unlink(made["name"], b"os._exit")
    _nothing_left(made["token"])


@pytest.mark.requires("separate_memory", "posix_signals")
def test_a_block_outlives_a_grandchild_that_outlived_its_parent(
    ctx: procframe.Context, procframe_backend: str, tmp_path: Path
) -> None:
    """The grandchild, reparented when its parent ended, creates a block and returns; the
    program's keeper, which it starts, takes it (no keeper ran: each test leaves none)."""
    assert eventually(lambda: not shmkeeper.keepers(os.getpid()))
    ready, made_at = tmp_path / "ready", tmp_path / "made"
    _run(ctx, shmkeeper.leave_an_orphan_creator, procframe_backend, str(ready), str(made_at))
    made = read_report(made_at, timeout=PATIENCE)
    assert eventually(lambda: not pid_running(made["pid"]))
    _attach_read_unlink(made["name"], b"made by an orphan")
    _nothing_left(made["token"])


def test_a_block_a_child_made_and_unlinked_leaves_nothing(ctx: procframe.Context) -> None:
    queue = ctx.Queue()
    _run(ctx, shmkeeper.create_and_unlink, queue)
    token = queue.get(timeout=PATIENCE)
    assert kept_names() == set()  # at once: what was unlinked is not held
    _nothing_left(token)


def test_unlink_frees_a_block_whose_creator_still_runs(
    ctx: procframe.Context, tmp_path: Path, name: str | None
) -> None:
    """The creator and the keeper both hold a block a child made; unlink() in another
    process ends the name at once, and the memory once the creator lets go of it."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    p = ctx.Process(target=shmem.create_and_hold, args=(name, 16, "held", str(ready), str(go)))
    p.start()
    try:
        made = read_report(ready, timeout=PATIENCE)
        shm = SharedMemory(made["name"])
        shm.unlink()
        assert shmkeeper.unattachable(made["name"])
        assert kept_names() == set()
        report(go, True)
        p.join(PATIENCE)
    finally:
        reap(p)
    assert p.exitcode == 0
    assert shm.buf is not None and bytes(shm.buf[:4]) == b"held"
    shm.close()
    _nothing_left(made["token"])


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
        else:
            (tmp_path / "made.go").touch()  # attached: the program may end now
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

"""procframe's POSIX primitives themselves, below the API: limits and allocators of their own.

The conformance kit tests what every backend promises; these are promises of
the POSIX implementation (:mod:`procframe.posix`) that another backend need
not share: a Condition's fixed room for waiters, the memfd heap's allocator.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe._core import osutil
from procframe.posix import heap as heap_module
from procframe.posix import shm_handoff, shm_keeper, shm_names, shm_segment
from procframe.posix.sharedctypes import RawValue
from procframe.posix.synchronize import Condition, RLock
from procframe.posix.waitroom import CAPACITY
from procframe.shared_memory import SharedMemory
from procframe.testing.helpers import shmkeeper, sync
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.targets import read_report

PATIENCE = 60.0


def waiting_threads(cond: Any, count: int) -> tuple[list[threading.Thread], list[bool]]:
    """``count`` threads in ``cond.wait()``; returns once every one of them is waiting."""
    results: list[bool] = []
    ready = threading.Semaphore(0)

    def waiter() -> None:
        with cond:
            ready.release()
            results.append(cond.wait(PATIENCE))

    threads = [threading.Thread(target=waiter) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert ready.acquire(timeout=PATIENCE)
    return threads, results


def release(cond: Any, threads: list[threading.Thread]) -> None:
    with cond:
        cond.notify_all()
    for thread in threads:
        thread.join(PATIENCE)


def test_a_condition_full_of_waiters_refuses_one_more_by_name() -> None:
    cond = Condition(RLock())
    threads, results = waiting_threads(cond, CAPACITY)
    try:
        with cond, pytest.raises(RuntimeError, match=f"more than {CAPACITY} threads are waiting"):
            cond.wait(PATIENCE)
    finally:
        release(cond, threads)
    assert results == [True] * CAPACITY


@pytest.mark.requires("posix_signals", "passes_descriptors")
def test_the_place_of_a_killed_waiter_goes_to_a_new_one(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    cond = Condition(ctx=ctx)
    ready = str(tmp_path / "ready")
    p = ctx.Process(target=sync.wait_on, args=(cond, ready, str(tmp_path / "result"), PATIENCE))
    p.start()
    try:
        read_report(ready, timeout=PATIENCE)
        time.sleep(0.3)  # from reporting ready into the wait itself
        p.kill()
        p.join(PATIENCE)
    finally:
        reap(p)
    threads, results = waiting_threads(cond, CAPACITY - 1)
    try:
        with cond:
            assert cond.wait(0.01) is False  # the killed waiter's place was free
    finally:
        release(cond, threads)
    assert results == [True] * (CAPACITY - 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfds and /proc are Linux's")
def test_shared_ctypes_live_in_an_anonymous_memfd() -> None:
    value = RawValue("i", 1)
    target = os.readlink(f"/proc/self/fd/{value._pf_block.arena.fd}")
    assert target.startswith("/memfd:procframe")


def test_heap_blocks_never_overlap_and_coalesce_when_freed() -> None:
    heap = heap_module.Heap()
    rng = random.Random(7)
    live: list[heap_module.Block] = []
    for _ in range(3000):
        if live and rng.random() < 0.45:
            live.pop(rng.randrange(len(live)))  # collected: its span goes back
        else:
            size = rng.choice((1, 8, 24, 100, 4096, 70_000, heap_module.ARENA_SIZE))
            live.append(heap.malloc(size, rng.choice((1, 8, 16, 64))))
        spans = sorted((b.arena.fd, b.offset, b.offset + b.size) for b in live)
        for (fd1, _, end1), (fd2, start2, _) in itertools.pairwise(spans):
            assert fd1 != fd2 or end1 <= start2, "two live blocks overlap"
    assert all(b.offset % 16 == 0 for b in live)
    assert heap.stats()["used"] == sum(b.size for b in live)
    live.clear()
    stats = heap.stats()
    assert stats["used"] == 0
    assert stats["size"] == stats["arenas"] * heap_module.ARENA_SIZE  # big arenas let go
    for spans in heap._free.values():
        assert len(spans) == 1  # every arena is one free span again
    first = heap.malloc(64)
    assert not first.zeroed  # that memory was used before: the caller must clear it


# -- the keeper of shared-memory blocks whose creators exited ---------------------------

LINUX_MEMFD = pytest.mark.skipif(
    not shm_segment.USABLE, reason="the keeper serves memfd segments (Linux)"
)


class _RunningKeeper:
    """A :class:`~procframe.posix.shm_keeper.Keeper` serving in a thread of this process."""

    def __init__(self) -> None:
        self.address = f"\0procframe-test-keeper/{uuid.uuid4().hex}".encode()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(self.address)
        self.listener.listen(8)
        self.listener.setblocking(False)
        me = os.getpid()
        self.keeper = shm_keeper.Keeper(self.listener, me, None, osutil.process_start_time(me) or 0)
        self.thread = threading.Thread(target=self.keeper.serve, name="test-keeper")
        self.thread.start()

    def ask(self, message: bytes, fds: list[int] = []) -> bytes:  # noqa: B006
        """Send one request with ``fds`` (then closed here); the answer (empty if the keeper
        hung up)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
            client.settimeout(PATIENCE)
            client.connect(self.address)
            try:
                socket.send_fds(client, [message], fds)
            finally:
                for fd in fds:
                    os.close(fd)
            if message[:1] == shm_keeper.UNLINKED:
                return b""
            return client.recv(1 << 16)

    def names(self) -> list[str]:
        return self.ask(shm_keeper.LIST).decode().split("\n")

    def stop(self) -> None:
        """Wait for the keeper to find itself idle and return (it holds nothing by then)."""
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the keeper did not end once idle"
        self.listener.close()


@LINUX_MEMFD
def test_the_keeper_takes_only_segments_under_their_own_name() -> None:
    keeper = _RunningKeeper()
    shm = SharedMemory(create=True, size=64)
    other = SharedMemory(create=True, size=64)
    plain = os.memfd_create("not-a-segment")
    try:
        assert shm._owner is not None and other._owner is not None
        forged = shm.name.replace(shm._token, other._token)
        ok = shm_keeper.HAND_OFF + f"{shm.name}\n{forged}\n{shm.name}\npf_1_2_{'0' * 16}".encode()
        fds = [os.dup(shm._owner.fd), os.dup(shm._owner.fd), os.dup(shm._owner.fd), plain]
        assert keeper.ask(ok, fds) == shm_keeper.ACK
        assert keeper.names() == [shm.name]  # once; not under a forged or a foreign name
        where = shm_segment.keeper_address(shm._owner.fd, shm._owner.data_len)
        assert where == keeper.address  # what unlink() tells
        assert keeper.ask(shm_keeper.HAND_OFF + b"a\nb", [os.dup(other._owner.fd)]) == b""
        assert keeper.ask(b"nonsense") == b""
        assert keeper.names() == [shm.name]  # the keeper goes on serving
        kept = [p for p in os.listdir("/proc/self/fd") if _is_label(p, shm._token)]
        shm.close()
        shm.unlink()  # tells the keeper, which lets go (without waiting for its sweep)
        deadline = time.monotonic() + shm_keeper.SWEEP_EVERY / 2
        while keeper.names() != [""]:
            assert time.monotonic() < deadline, "the keeper did not let go of an unlinked block"
            time.sleep(0.01)
        assert [p for p in os.listdir("/proc/self/fd") if _is_label(p, shm._token)] == []
        assert len(kept) >= 2  # the creator's and the keeper's descriptors were there
    finally:
        shm.close()
        other.close()
        other.unlink()
    keeper.stop()


def _is_label(fd: str, token: str) -> bool:
    try:
        return token in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False


@LINUX_MEMFD
def test_the_keeper_without_a_pidfd_watches_the_main_process_start_time() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = osutil.process_start_time(sleeper.pid)
        assert started is not None
        keeper = shm_keeper.Keeper(socket.socket(socket.AF_UNIX), sleeper.pid, None, started)
        assert keeper.main_alive()
        impostor = shm_keeper.Keeper(keeper.listener, sleeper.pid, None, started - 1)
        assert not impostor.main_alive()  # another process under the same pid
        sleeper.kill()
        sleeper.wait(PATIENCE)
        assert not keeper.main_alive()
        keeper.listener.close()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def _as_a_child_of(monkeypatch: pytest.MonkeyPatch, main_pid: int) -> None:
    """Make this process create blocks as a child of the program whose main is ``main_pid``."""
    program = f"{main_pid}-{uuid.uuid4().hex}"  # a program with no keeper yet
    monkeypatch.setattr(shm_handoff, "program", lambda: (program, main_pid))
    monkeypatch.setattr(shm_handoff, "_needless_in", 0)
    monkeypatch.setattr(shm_handoff, "_warned_in", 0)


def _descriptors_of(token: str) -> set[str]:
    """This process's descriptors of the memfds whose label contains ``token``."""
    return {fd for fd in os.listdir("/proc/self/fd") if _is_label(fd, token)}


@LINUX_MEMFD
def test_a_child_whose_program_is_gone_cannot_create_a_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its "main process" started after it (a pid reused once the program ended): no keeper
    starts for it, and the create fails, clearly, leaving nothing."""
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _as_a_child_of(monkeypatch, later.pid)
        before, held = set(shm_names.owners), _descriptors_of(shm_segment.LABEL)
        with pytest.raises(ProcessLookupError, match="keeper cannot take the new block") as info:
            SharedMemory(create=True, size=8)
        assert f"main process {later.pid} has exited" in str(info.value)
        assert set(shm_names.owners) == before
        with pytest.raises(OSError, match="keeper cannot take"):
            SharedMemory(f"procframe-test-{uuid.uuid4().hex[:12]}", create=True, size=8)
        assert set(shm_names.owners) == before
        assert _descriptors_of(shm_segment.LABEL) <= held
    finally:
        later.kill()
        later.wait(PATIENCE)


@LINUX_MEMFD
def test_a_main_process_older_than_the_creator_gets_a_keeper_without_being_its_ancestor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As for a grandchild reparented when its parent ended: the start times decide."""
    _as_a_child_of(monkeypatch, os.getppid())  # older than this process; watched by the keeper
    shm = SharedMemory(create=True, size=8)
    try:
        assert shm_handoff.kept_names() == {shm.name}
    finally:
        shm.unlink()
        shm.close()
    assert shm_handoff.kept_names() == set()


@LINUX_MEMFD
def test_a_keeper_that_cannot_start_makes_a_childs_create_fail_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    false = shutil.which("false")
    if false is None:
        pytest.skip("no false(1) here")
    _as_a_child_of(monkeypatch, os.getppid())
    monkeypatch.setattr(sys, "executable", false)
    before, held = set(shm_names.owners), _descriptors_of(shm_segment.LABEL)
    with pytest.raises(ChildProcessError, match=r"keeper did not start .* exited with 1"):
        SharedMemory(create=True, size=8)
    assert set(shm_names.owners) == before
    assert _descriptors_of(shm_segment.LABEL) <= held


@LINUX_MEMFD
def test_without_an_interpreter_a_child_creates_blocks_that_end_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen program: no keeper can run; a child's create works and warns once."""
    _as_a_child_of(monkeypatch, os.getppid())
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    held = _descriptors_of(shm_segment.LABEL)
    with pytest.warns(RuntimeWarning, match=r"no Python interpreter .* a frozen program"):
        first = SharedMemory(create=True, size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = SharedMemory(create=True, size=8)  # warned once per process
    try:
        assert shm_handoff.kept_names() == set()
        with SharedMemory(first.name) as again:
            assert again.size == 8
    finally:
        for shm in (first, second):
            shm.unlink()
            shm.close()
    monkeypatch.setattr(shm_handoff, "_warned_in", 0)
    with warnings.catch_warnings():  # where the warning is an error, the create fails clean
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning):
            SharedMemory(create=True, size=8)
    assert _descriptors_of(shm_segment.LABEL) <= held


def _out_of_descriptors(*args: object) -> None:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


@LINUX_MEMFD
def test_the_keeper_holds_a_handed_block_only_if_its_creator_learns_it() -> None:
    me = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(f"\0procframe-test-keeper/{uuid.uuid4().hex}".encode())
    keeper = shm_keeper.Keeper(listener, me, None, osutil.process_start_time(me) or 0)
    shm = SharedMemory(create=True, size=64)
    try:
        assert shm._owner is not None
        for creator_waits in (False, True):
            creator, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            message = shm_keeper.HAND_OFF + shm.name.encode()
            socket.send_fds(creator, [message], [shm._owner.fd])
            if not creator_waits:
                creator.close()  # it died before the answer: its create never returned
            keeper.clients[served.fileno()] = served
            keeper.serve_client(served.fileno())
            if creator_waits:
                assert creator.recv(16) == shm_keeper.ACK
                creator.close()
            assert [k.key for k in keeper.blocks.values()] == ([shm.name] if creator_waits else [])
        # One it cannot hold (out of descriptors, say): the creator's create fails, saying why.
        keeper.let_go(list(keeper.blocks))
        creator, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keeper.clients[served.fileno()] = served
        serving = threading.Thread(target=keeper.serve_client, args=(served.fileno(),))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(shm_segment, "set_keeper_address", _out_of_descriptors)
            serving.start()
            with pytest.raises(OSError, match=r"cannot hold .* Too many open files"):
                shm_handoff._send_chunk(creator, [shm._owner])
            serving.join(PATIENCE)
        creator.close()
        assert keeper.blocks == {}
        # An unlink whose notice has not arrived yet: a listing leaves the block out.
        keeper.adopt(shm.name, os.dup(shm._owner.fd))
        shm_segment.set_flag(shm._owner.fd, shm._owner.data_len, shm_segment.UNLINKED_AT)
        asker, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        asker.send(shm_keeper.LIST)
        keeper.clients[served.fileno()] = served
        keeper.serve_client(served.fileno())
        assert asker.recv(1 << 16) == b""
        assert keeper.blocks == {}
        asker.close()
    finally:
        keeper.let_go(list(keeper.blocks))
        listener.close()
        shm.close()  # its creator sees the flag and lets go
    assert _descriptors_of(shm._token) == set()


@LINUX_MEMFD
def test_the_leak_check_counts_a_block_the_keeper_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    from procframe.testing import plugin

    monkeypatch.setattr(plugin, "LEAK_GRACE", 0.2)
    ctx = procframe.get_context("fork")
    before = plugin.Snapshot.take()
    queue = ctx.Queue()
    p = ctx.Process(target=shmkeeper.create_and_return, args=(queue, None, 64, b"x"))
    p.start()
    try:
        name, _ = queue.get(timeout=PATIENCE)
    finally:
        p.join(PATIENCE)
        reap(p)
    try:
        assert before.leaks() == [f"named semaphores/shared memory {[name]}"]
    finally:
        with SharedMemory(name) as shm:
            shm.unlink()
    assert eventually(lambda: not shmkeeper.keepers(os.getpid()))
    assert before.leaks() == []

"""``procframe.shared_memory``: SharedMemory and ShareableList.

In one process first (names, sizes, errors, close and unlink, the list's
types and rules), then across processes: children and unrelated interpreters
attach by name or receive the object, a name outlives a creator that exits
(test_shared_memory_keeper.py has the rest of that), and a killed creator
leaves no name and no memory behind.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.posix import shared_memory
from procframe.shared_memory import ShareableList, SharedMemory
from procframe.testing.helpers import shmem, shmkeeper
from procframe.testing.helpers.devshm import procframe_names
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.polling import eventually
from procframe.testing.helpers.scripts import script_env
from procframe.testing.helpers.targets import read_report, report

pytestmark = [pytest.mark.timeout(120), pytest.mark.requires("host_memory")]

"""Tests that hand a block to a child as a Process argument."""
MEMFD = pytest.mark.skipif(
    not shared_memory._USE_MEMFD, reason="blocks are named POSIX shared memory here"
)

PATIENCE = 60.0


@pytest.fixture
def chosen() -> str:
    """A name for a block that no other test (or test run) uses."""
    return f"procframe-test-{uuid.uuid4().hex[:12]}"


def _start(ctx: procframe.Context, target: Any, *args: Any) -> Any:
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def _join(*procs: Any) -> None:
    """Join ``procs`` (killing any still running after a minute); each must exit 0."""
    try:
        for p in procs:
            p.join(PATIENCE)
    finally:
        reap(*procs)
    assert [p.exitcode for p in procs] == [0] * len(procs)


# -- SharedMemory in one process -------------------------------------------------------


def test_create_write_and_attach_by_name() -> None:
    shm = SharedMemory(create=True, size=10)
    try:
        assert shm.size == 10 and shm.buf is not None and len(shm.buf) == 10
        assert bytes(shm.buf) == bytes(10)
        shm.buf[:5] = b"hello"
        other = SharedMemory(shm.name)
        assert other.name == shm.name and other.size == 10
        assert other.buf is not None and bytes(other.buf[:5]) == b"hello"
        other.buf[9] = 7
        assert shm.buf[9] == 7
        assert repr(shm) == f"SharedMemory({shm.name!r}, size=10)"
        other.close()
    finally:
        shm.close()
        shm.unlink()


@MEMFD
def test_a_generated_name_says_where_the_block_is() -> None:
    with SharedMemory(create=True, size=1) as shm:
        prefix, pid, fd, token = shm.name.split("_")
        assert (prefix, int(pid)) == ("pf", os.getpid())
        assert os.readlink(f"/proc/self/fd/{fd}").startswith(f"/memfd:procframe-shm:{token}")
        shm.unlink()


@MEMFD
def test_the_block_is_a_sealed_memfd_and_nothing_is_in_dev_shm() -> None:
    import fcntl

    before = procframe_names()
    shm = SharedMemory(create=True, size=100_000)
    try:
        owner = shm._owner
        assert owner is not None
        seals = fcntl.fcntl(owner.fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW
        other = SharedMemory(shm.name)
        with pytest.raises(PermissionError):  # no process can truncate it under a mapping
            os.ftruncate(other._fd, 10)
        other.close()
        assert procframe_names(shm.name) - before == set()
    finally:
        shm.close()
        shm.unlink()


def test_a_chosen_name(chosen: str) -> None:
    shm = SharedMemory(chosen, create=True, size=64)
    try:
        assert (shm.name, shm.size) == (chosen, 64)
        assert shm.buf is not None
        shm.buf[:3] = b"abc"
        for spelling in (chosen, "/" + chosen):  # a leading slash names the same block
            other = SharedMemory(spelling)
            assert other.name == spelling
            assert other.buf is not None and bytes(other.buf[:3]) == b"abc"
            other.close()
        with pytest.raises(FileExistsError):
            SharedMemory(chosen, create=True, size=64)
        with pytest.raises(FileExistsError):
            SharedMemory("/" + chosen, create=True, size=8)
    finally:
        shm.close()
        shm.unlink()
    assert shmkeeper.unattachable(chosen)
    again = SharedMemory(chosen, create=True, size=8)  # unlinked: the name is free again
    again.unlink()
    again.close()


@MEMFD
def test_a_name_of_the_generated_form_cannot_be_chosen() -> None:
    with pytest.raises(ValueError, match="generated name"):
        SharedMemory(f"pf_{os.getpid()}_999_0123456789abcdef", create=True, size=8)
    shm = SharedMemory(create=True, size=8)
    try:
        with pytest.raises(FileExistsError):
            SharedMemory(shm.name, create=True, size=8)
    finally:
        shm.close()
        shm.unlink()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ValueError),  # no name and create=False
        ({"name": "x", "size": -1}, ValueError),
        ({"create": True}, ValueError),  # size 0
        ({"create": True, "size": -5}, ValueError),
        ({"create": True, "size": 2.5}, TypeError),
        ({"create": True, "size": "3"}, TypeError),
        ({"name": 5, "create": True, "size": 1}, TypeError),
        ({"name": "", "create": True, "size": 1}, OSError),
        ({"name": "a/b", "create": True, "size": 1}, OSError),
        ({"name": "x" * 300, "create": True, "size": 1}, OSError),
        ({"name": "procframe-test-no-such-block"}, FileNotFoundError),
        ({"name": f"pf_{os.getpid()}_99999_0123456789abcdef"}, FileNotFoundError),
    ],
)
def test_bad_input(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        SharedMemory(**kwargs)


def test_close_unmaps_this_object_only() -> None:
    shm = SharedMemory(create=True, size=16)
    try:
        other = SharedMemory(shm.name)
        view = other.buf[:4]  # type: ignore[index]
        with pytest.raises(BufferError):  # as in the standard library
            other.close()
        view.release()
        other.close()
        other.close()  # twice is fine
        assert other.buf is None
        shm.close()
        assert shm.buf is None
        again = SharedMemory(shm.name)  # the creator's close leaves the name attachable
        assert again.size == 16
        again.close()
    finally:
        shm.unlink()


def test_the_context_manager_closes_and_does_not_unlink() -> None:
    with SharedMemory(create=True, size=8) as shm:
        assert shm.buf is not None
        shm.buf[0] = 1
    assert shm.buf is None
    with SharedMemory(shm.name) as other:
        assert other.buf is not None and other.buf[0] == 1
        other.unlink()
    assert shmkeeper.unattachable(shm.name)


def test_unlink_ends_the_name_but_not_the_mappings() -> None:
    shm = SharedMemory(create=True, size=8)
    other = SharedMemory(shm.name)
    shm.unlink()
    assert shmkeeper.unattachable(shm.name)
    assert other.buf is not None and shm.buf is not None
    other.buf[0] = 42  # both mappings still work and still share the memory
    assert shm.buf[0] == 42
    with pytest.raises(FileNotFoundError):  # as in the standard library: once only
        other.unlink()
    other.close()
    shm.close()


@MEMFD
def test_unlink_by_a_non_creator_lets_the_creator_drop_the_block(chosen: str) -> None:
    shm = SharedMemory(chosen, create=True, size=8)
    token = shm._token
    assert token in shared_memory._owners
    other = SharedMemory(chosen)
    other.unlink()
    assert token not in shared_memory._owners  # unlinked in the creator: dropped at once
    other.close()
    assert shmkeeper.unattachable(chosen)
    replacement = SharedMemory(chosen, create=True, size=4)  # the name is free again
    assert replacement.size == 4 and shm.size == 8
    shm.close()
    with pytest.raises(FileNotFoundError):
        shm.unlink()
    assert SharedMemory(chosen).size == 4  # the old object's unlink spared the new block
    replacement.close()
    replacement.unlink()


@MEMFD
def test_a_reused_descriptor_never_attaches_another_block() -> None:
    shm = SharedMemory(create=True, size=8)
    name = shm.name
    fd = int(name.split("_")[2])
    shm.close()
    shm.unlink()  # the creator closes the descriptor the name points at
    impostor = os.memfd_create("procframe-shm:" + name.split("_")[3])  # the same label!
    try:
        if impostor != fd:
            os.dup2(impostor, fd)
        with pytest.raises(FileNotFoundError):  # no metadata page of ours
            SharedMemory(name)
        forged = "_".join([*name.split("_")[:3], "f" * 16])
        with pytest.raises(FileNotFoundError):
            SharedMemory(forged)
    finally:
        os.close(impostor)
        if impostor != fd:
            os.close(fd)


def test_pickling_outside_a_process_start_goes_by_name() -> None:
    shm = SharedMemory(create=True, size=8)
    try:
        copy = pickle.loads(pickle.dumps(shm))
        assert (copy.name, copy.size) == (shm.name, shm.size)
        assert copy.buf is not None and shm.buf is not None
        copy.buf[0] = 9
        assert shm.buf[0] == 9
        copy.close()
    finally:
        shm.close()
        shm.unlink()


def test_fallback_to_named_posix_shared_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("_posixshmem")
    monkeypatch.setattr(shared_memory, "_USE_MEMFD", False)
    before = procframe_names()
    shm = SharedMemory(create=True, size=4096)
    try:
        assert shm.name.startswith("pf-") and shm.size == 4096
        other = SharedMemory(shm.name)
        assert other.buf is not None and shm.buf is not None
        other.buf[0] = 5
        assert shm.buf[0] == 5
        other.close()
        with pytest.raises(FileExistsError):
            SharedMemory(shm.name, create=True, size=8)
    finally:
        shm.close()
        shm.unlink()
    with pytest.raises(FileNotFoundError):
        SharedMemory(shm.name)
    assert procframe_names() - before == set()


# -- ShareableList in one process -------------------------------------------------------

EVERY_TYPE = [-(2**63), 2**63 - 1, 0.5, True, False, None, "", "h\u00e9 \u4e2d", b"", b"by\x00\x00"]


def test_a_list_of_every_supported_type() -> None:
    sl = ShareableList(EVERY_TYPE)
    try:
        assert list(sl) == EVERY_TYPE
        assert [type(x) for x in sl] == [type(x) for x in EVERY_TYPE]
        assert len(sl) == len(EVERY_TYPE)
        assert sl[-1] == b"by\x00\x00" and sl[-len(EVERY_TYPE)] == -(2**63)
        assert sl.format == "qqdxxxxxxx?xxxxxxx?xxxxxx?x8s8s8s8s"
        assert repr(sl) == f"ShareableList({EVERY_TYPE!r}, name={sl.shm.name!r})"
        other = ShareableList(name=sl.shm.name)
        assert list(other) == EVERY_TYPE
        other[0] = 3
        assert sl[0] == 3
        other.shm.close()
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_a_list_item_keeps_the_room_it_was_made_with() -> None:
    sl = ShareableList(["abc", b"xy", 1, "\u00e9" * 4])
    try:
        sl[0] = "12345678"  # "abc" got a slot of 8 bytes
        assert sl[0] == "12345678"
        with pytest.raises(ValueError, match="exceeds available storage"):
            sl[0] = "123456789"
        with pytest.raises(ValueError, match="exceeds available storage"):
            sl[1] = b"123456789"
        with pytest.raises(ValueError, match="exceeds available storage"):
            sl[0] = "\u00e9" * 5  # 10 bytes of UTF-8
        assert sl[3] == "\u00e9" * 4  # 8 bytes of UTF-8: a 16-byte slot
        sl[3] = "\u00e9" * 8
        assert sl[3] == "\u00e9" * 8
        sl[2] = "8 bytes!"  # a number's slot holds 8 bytes of text
        assert sl[2] == "8 bytes!"
        sl[0] = 2.5  # and any slot holds a number, a bool or None
        sl[1] = None
        assert list(sl) == [2.5, None, "8 bytes!", "\u00e9" * 8]
        assert sl.format == "dxxxxxx?x8s16s"
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_list_indexing_count_and_index() -> None:
    sl = ShareableList([1, "a", 1, None, 2.0])
    try:
        assert sl.count(1) == 2 and sl.count("a") == 1 and sl.count("z") == 0
        assert sl.index(None) == 3 and sl.index(2) == 4
        with pytest.raises(ValueError, match="not in this container"):
            sl.index("z")
        assert sl[-1] == 2.0 and sl[-5] == 1
        sl[-2] = "b"
        assert sl[3] == "b"
        with pytest.raises(IndexError, match="index out of range"):
            sl[5]
        with pytest.raises(IndexError, match="index out of range"):
            sl[-6]
        with pytest.raises(IndexError, match="assignment index out of range"):
            sl[5] = 1
        with pytest.raises(TypeError):
            sl["0"]  # type: ignore[index]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_list_rejects_what_it_cannot_hold() -> None:
    before = procframe_names()
    for bad in ([[1]], [1 + 2j], [object()]):
        with pytest.raises(TypeError, match="holds int, float"):
            ShareableList(bad)
        with pytest.raises(KeyError):  # what the standard library raises
            ShareableList(bad)
    with pytest.raises(struct.error):
        ShareableList([2**63])
    sl = ShareableList([0])
    try:
        with pytest.raises(TypeError):
            sl[0] = [1]
        with pytest.raises(struct.error):
            sl[0] = -(2**63) - 1
        assert sl[0] == 0
    finally:
        sl.shm.close()
        sl.shm.unlink()
    assert procframe_names() - before == set()


def test_an_empty_list_a_chosen_name_and_pickling(chosen: str) -> None:
    empty = ShareableList()
    named = ShareableList(["x", 1], name=chosen)
    try:
        assert (len(empty), list(empty), empty.format) == (0, [], "")
        assert named.shm.name == chosen
        copy = pickle.loads(pickle.dumps(named))  # by name, outside a process start
        assert list(copy) == ["x", 1]
        copy[1] = 2
        assert named[1] == 2
        copy.shm.close()
        assert ShareableList[int] is not None
        assert str(ShareableList[int]).endswith("ShareableList[int]")
    finally:
        for sl in (empty, named):
            sl.shm.close()
            sl.shm.unlink()


def test_a_block_that_is_not_a_list() -> None:
    shm = SharedMemory(create=True, size=64)
    try:
        with pytest.raises(ValueError, match="does not hold a ShareableList"):
            ShareableList(name=shm.name)
    finally:
        shm.close()
        shm.unlink()


# -- across processes ---------------------------------------------------------------------


def test_a_child_attaches_by_name(ctx: procframe.Context, tmp_path: Path, chosen: str) -> None:
    out = tmp_path / "seen"
    for shm in (SharedMemory(create=True, size=6), SharedMemory(chosen, create=True, size=6)):
        assert shm.buf is not None
        shm.buf[:] = b"parent"
        try:
            _join(_start(ctx, shmem.attach_and_write, shm.name, "child", str(out)))
            assert read_report(out) == {"name": shm.name, "size": 6, "data": "parent"}
            assert bytes(shm.buf) == b"childt"
        finally:
            out.unlink(missing_ok=True)
            shm.close()
            shm.unlink()


@pytest.mark.core
def test_a_child_gets_the_block_as_an_argument(ctx: procframe.Context, tmp_path: Path) -> None:
    shm = SharedMemory(create=True, size=5)
    assert shm.buf is not None
    shm.buf[:] = b"12345"
    out = tmp_path / "seen"
    try:
        _join(_start(ctx, shmem.write_through, shm, "ab", str(out)))
        assert read_report(out) == {"name": shm.name, "size": 5, "data": "12345"}
        assert bytes(shm.buf) == b"ab345"
    finally:
        shm.close()
        shm.unlink()


def test_a_block_passed_to_a_child_outlives_its_name(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    shm = SharedMemory(create=True, size=4)
    assert shm.buf is not None
    shm.buf[:] = b"keep"
    out = tmp_path / "seen"
    p = _start(ctx, shmem.write_through, shm, "K", str(out))
    shm.unlink()  # the child has it by descriptor (or by inheritance), not by name
    _join(p)
    assert read_report(out)["data"] == "keep"
    assert bytes(shm.buf) == b"Keep"
    shm.close()


def test_a_child_changes_a_list_passed_as_an_argument(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    sl = ShareableList([7, b"b\x00", 1.5, "a string of 19 char"])
    out = tmp_path / "seen"
    try:
        _join(_start(ctx, shmem.change_list, sl, str(out)))
        assert read_report(out) == {
            "items": [7, "b\x00", 1.5, "a string of 19 char"],
            "name": sl.shm.name,
            "len": 4,
        }
        assert list(sl) == [-7, b"b\x00", None, "from child"]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_a_child_attaches_a_list_by_name(ctx: procframe.Context, tmp_path: Path) -> None:
    sl = ShareableList([1, True, 2.5, "0123456789"])
    out = tmp_path / "seen"
    try:
        _join(_start(ctx, shmem.attach_list_and_change, sl.shm.name, str(out)))
        assert read_report(out)["items"] == [1, True, 2.5, "0123456789"]
        assert list(sl) == [-1, True, None, "from child"]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_unlink_by_a_child_ends_the_name_everywhere(
    ctx: procframe.Context, tmp_path: Path, chosen: str
) -> None:
    out = tmp_path / "seen"
    for shm in (SharedMemory(create=True, size=8), SharedMemory(chosen, create=True, size=8)):
        assert shm.buf is not None
        shm.buf[:4] = b"data"
        try:
            _join(_start(ctx, shmem.attach_and_unlink, shm.name, str(out)))
            assert read_report(out) == {"attachable": False, "data": "data"}
            assert shmkeeper.unattachable(shm.name)
            shm.close()  # the creator sees the mark and lets go of the block
            if shared_memory._USE_MEMFD:
                assert shm._token not in shared_memory._owners
        finally:
            out.unlink(missing_ok=True)
            shm.close()


def test_an_unrelated_interpreter_attaches_by_name(
    procframe_backend: str, tmp_path: Path, chosen: str
) -> None:
    shm = SharedMemory(create=True, size=4)
    sl = ShareableList(["shared", 3], name=chosen)
    assert shm.buf is not None
    shm.buf[:] = b"1234"
    code = (
        "import sys\n"
        "from procframe.shared_memory import SharedMemory, ShareableList\n"
        "shm = SharedMemory(sys.argv[1])\n"
        "print(bytes(shm.buf).decode(), shm.size)\n"
        "shm.buf[0] = ord('X')\n"
        "shm.close()\n"
        "sl = ShareableList(name=sys.argv[2])\n"
        "print(list(sl))\n"
        "sl[1] += 1\n"
        "sl.shm.close()\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, shm.name, chosen],
            cwd=tmp_path,
            env=script_env(procframe_backend),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "1234 4\n['shared', 3]\n"
        assert bytes(shm.buf) == b"X234" and sl[1] == 4
    finally:
        shm.close()
        shm.unlink()
        sl.shm.close()
        sl.shm.unlink()


def test_a_block_created_by_an_unrelated_interpreter(
    procframe_backend: str, tmp_path: Path, chosen: str
) -> None:
    code = (
        "import sys\n"
        "from procframe.shared_memory import SharedMemory\n"
        "shm = SharedMemory(sys.argv[1], create=True, size=3)\n"
        "shm.buf[:] = b'abc'\n"
        "print(shm.name, flush=True)\n"
        "sys.stdin.read()\n"
    )
    creator = subprocess.Popen(
        [sys.executable, "-c", code, chosen],
        cwd=tmp_path,
        env=script_env(procframe_backend),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert creator.stdout is not None and creator.stdin is not None
        assert creator.stdout.readline().strip() == chosen
        shm = SharedMemory(chosen)
        creator.stdin.close()  # the creator exits without unlink: its name ends with it
        assert creator.wait(PATIENCE) == 0
        assert shmkeeper.unattachable(chosen)
        assert shm.buf is not None and bytes(shm.buf) == b"abc"  # our mapping lives on
        shm.close()
    finally:
        if creator.poll() is None:
            creator.kill()
        creator.wait(PATIENCE)
        for pipe in (creator.stdin, creator.stdout, creator.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.requires("posix_signals")
def test_a_killed_creator_leaves_its_block_until_unlinked(
    ctx: procframe.Context, tmp_path: Path, chosen: str
) -> None:
    """A child killed after creating a block leaves it attachable (the program's keeper has
    it); once unlinked, nothing is left, its memory included."""
    before = procframe_names()
    for name in (None, chosen):
        ready = tmp_path / f"ready-{name}"
        p = _start(ctx, shmem.create_and_wait, name, 1 << 20, "x", str(ready))
        try:
            made = read_report(ready, timeout=PATIENCE)
            assert made["pid"] == p.pid
            if name is None:
                assert made["name"].startswith(f"pf_{p.pid}_")
            p.kill()
            p.join(PATIENCE)
            assert p.exitcode == -signal.SIGKILL
        finally:
            reap(p)
        with SharedMemory(made["name"]) as shm:
            assert shm.buf is not None and bytes(shm.buf[:1]) == b"x"
            shm.unlink()
        assert shmkeeper.unattachable(made["name"])
        if shared_memory._USE_MEMFD:  # its memory is freed, not just unnamed
            assert eventually(lambda t=made["token"]: shmkeeper.holders(t) == [])
        # Its own name only: a test of another xdist worker may hold a block meanwhile.
        assert made["name"] not in procframe_names(made["name"]) - before


@pytest.mark.requires("posix_signals")
def test_a_survivor_keeps_the_memory_of_a_killed_creator(
    ctx: procframe.Context, tmp_path: Path, chosen: str
) -> None:
    before = procframe_names()
    for name in (None, chosen):
        ready = tmp_path / f"ready-{name}"
        p = _start(ctx, shmem.create_and_wait, name, 10_000, "survives", str(ready))
        try:
            made = read_report(ready, timeout=PATIENCE)
            shm = SharedMemory(made["name"])
            p.kill()
            p.join(PATIENCE)
            assert p.exitcode == -signal.SIGKILL
        finally:
            reap(p)
        assert shm.buf is not None and bytes(shm.buf[:8]) == b"survives"
        shm.buf[-1] = 1  # still writable
        SharedMemory(made["name"]).unlink()  # through another object
        assert shmkeeper.unattachable(made["name"])
        with pytest.raises(FileNotFoundError):  # nothing left to unlink
            shm.unlink()
        assert bytes(shm.buf[:8]) == b"survives"
        shm.close()
        if shared_memory._USE_MEMFD:  # the last mapping gone, so is the memory
            assert eventually(lambda t=made["token"]: shmkeeper.holders(t) == [])
        # Its own name only: a test of another xdist worker may hold a block meanwhile.
        assert made["name"] not in procframe_names(made["name"]) - before


def test_a_name_outlives_its_creator_until_unlinked(
    ctx: procframe.Context, tmp_path: Path, chosen: str
) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    p = _start(ctx, shmem.create_and_hold, chosen, 16, "held", str(ready), str(go))
    try:
        made = read_report(ready, timeout=PATIENCE)
        shm = SharedMemory(chosen)  # attachable while the creator lives
        assert shm.buf is not None and bytes(shm.buf[:4]) == b"held"
        report(go, True)
    finally:
        _join(p)
    assert made["name"] == chosen
    with SharedMemory(chosen) as again:  # and after it exited, until unlink()
        assert again.buf is not None and bytes(again.buf[:4]) == b"held"
    with pytest.raises(FileExistsError):
        SharedMemory(chosen, create=True, size=16)
    shm.unlink()
    assert shmkeeper.unattachable(chosen)
    assert bytes(shm.buf[:4]) == b"held"
    shm.close()


def test_one_of_many_racing_creators_gets_a_chosen_name(
    ctx: procframe.Context, tmp_path: Path, chosen: str
) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    outs = [tmp_path / f"out{i}" for i in range(4)]
    procs = [_start(ctx, shmem.race_to_create, chosen, str(go), str(o), str(done)) for o in outs]
    try:
        time.sleep(0.2)
        report(go, True)
        results = sorted(read_report(o, timeout=PATIENCE) for o in outs)
        assert results == ["lost", "lost", "lost", "won"]
    finally:
        report(done, True)
        _join(*procs)
    assert shmkeeper.unattachable(chosen)

"""Value, Array, RawValue, RawArray and ``procframe.sharedctypes``.

In one process first (typecodes, ctypes types, locks, wrappers, errors),
then across processes: children see and change the same memory, increments
under the lock lose nothing, and nothing is left behind by name.
"""

from __future__ import annotations

import array
import ctypes
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe import sharedctypes
from procframe.testing.helpers import shared
from procframe.testing.helpers.devshm import procframe_names
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.scripts import run_script
from procframe.testing.helpers.targets import read_report, report

"""Tests that hand a shared object to a child as a Process argument."""

PATIENCE = 60.0

DOCUMENTED_EXAMPLE = """\
from procframe import Process, Value, Array

def f(n, a):
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]

if __name__ == '__main__':
    num = Value('d', 0.0)
    arr = Array('i', range(10))

    p = Process(target=f, args=(num, arr))
    p.start()
    p.join()

    print(num.value)
    print(arr[:])
"""
"""The shared-memory example of ``processing``'s documentation, with ``procframe`` for it."""

SAMPLES: dict[str, Any] = {
    "c": b"x",
    "u": "\u00e9",
    "b": -128,
    "B": 255,
    "h": -32768,
    "H": 65535,
    "i": -(2**31),
    "I": 2**32 - 1,
    "l": -(2**31),
    "L": 2**32 - 1,
    "q": -(2**63),
    "Q": 2**64 - 1,
    "f": 0.5,
    "d": 3.1415927,
}
"""A value at an edge of each ``array`` typecode's range."""
ZERO: dict[str, Any] = {"c": b"\x00", "u": "\x00", "f": 0.0, "d": 0.0}


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


# -- in one process: values --------------------------------------------------------


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
@pytest.mark.parametrize("code", list(SAMPLES))
def test_raw_value_of_every_typecode(ctx: procframe.Context, code: str) -> None:
    zero = ctx.RawValue(code)
    assert zero.value == ZERO.get(code, 0)
    v = ctx.RawValue(code, SAMPLES[code])
    assert v.value == SAMPLES[code]
    assert isinstance(v, sharedctypes.typecode_to_type[code])
    if code not in "cu":  # not typecodes of array.array (any more)
        assert ctypes.sizeof(v) == array.array(code).itemsize


@pytest.mark.core
@pytest.mark.in_one_process
@pytest.mark.parametrize("code", list(SAMPLES))
def test_value_of_every_typecode(ctx: procframe.Context, code: str) -> None:
    v = ctx.Value(code, SAMPLES[code])
    assert v.value == SAMPLES[code]
    v.value = ZERO.get(code, 0)
    assert v.value == ZERO.get(code, 0)
    assert v.get_obj().value == ZERO.get(code, 0)


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_ctypes_types_work_like_their_typecodes(ctx: procframe.Context) -> None:
    v = ctx.Value(ctypes.c_int, 5)
    assert v.value == 5
    assert isinstance(v.get_obj(), ctypes.c_int)
    raw = ctx.RawValue(ctypes.c_double, 2.5)
    assert raw.value == 2.5
    assert isinstance(raw, ctypes.c_double)
    assert repr(raw) == "c_double(2.5)"
    flag = ctx.RawValue(ctypes.c_bool, True)
    assert flag.value is True
    assert ctx.RawValue(ctypes.c_int16).value == 0


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_a_structure(ctx: procframe.Context) -> None:
    raw = ctx.RawValue(shared.Point, 3, 4.5)
    assert (raw.x, raw.y) == (3, 4.5)
    assert isinstance(raw, shared.Point)
    assert ctx.RawValue(shared.Point).x == 0
    v = ctx.Value(shared.Point, 1, 2.0)
    assert (v.x, v.y) == (1, 2.0)
    v.x = 7
    v.y = -1.25
    assert (v.get_obj().x, v.get_obj().y) == (7, -1.25)
    assert type(v).__name__ == "SynchronizedPoint"
    derived = ctx.Value(shared.Point3, 1, 2.0, 3.0)
    assert (derived.x, derived.y, derived.z) == (1, 2.0, 3.0)  # inherited fields wrapped too
    derived.z = 4.0
    assert derived.get_obj().z == 4.0


@pytest.mark.in_one_process
def test_a_union(ctx: procframe.Context) -> None:
    class Word(ctypes.Union):
        _fields_ = [("u", ctypes.c_uint32), ("b", ctypes.c_uint8 * 4)]

    w = ctx.Value(Word)
    w.u = 0x01020304
    assert sorted(w.get_obj().b) == [1, 2, 3, 4]


# -- in one process: arrays --------------------------------------------------------


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_raw_array_from_a_size_and_from_an_initializer(ctx: procframe.Context) -> None:
    zeros = ctx.RawArray("i", 10)
    assert list(zeros) == [0] * 10
    assert len(zeros) == 10
    assert isinstance(zeros, ctypes.Array)
    assert zeros._type_ is ctypes.c_int
    filled = ctx.RawArray("d", [0.5, 1.5, 2.5])
    assert filled[:] == [0.5, 1.5, 2.5]
    from_range = ctx.RawArray(ctypes.c_long, range(4))
    assert list(from_range) == [0, 1, 2, 3]
    assert list(ctx.RawArray("i", iter([4, 5]))) == [4, 5]
    assert len(ctx.RawArray("i", 0)) == 0
    assert len(ctx.RawArray("b", [])) == 0


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_an_array_of_structures(ctx: procframe.Context) -> None:
    points = ctx.RawArray(shared.Point, [(1, 1.5), (2, 2.5)])
    assert [(p.x, p.y) for p in points] == [(1, 1.5), (2, 2.5)]
    points[0].x = 10
    assert points[0].x == 10
    wrapped = ctx.Array(shared.Point, 3)
    assert [p.x for p in wrapped[:]] == [0, 0, 0]


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", [True, False])
def test_indexing_and_slicing(ctx: procframe.Context, lock: bool) -> None:
    a = ctx.Array("i", range(10), lock=lock)
    assert len(a) == 10
    assert a[0] == 0 and a[9] == 9 and a[-1] == 9
    assert a[:] == list(range(10))
    assert a[2:5] == [2, 3, 4]
    assert a[::3] == [0, 3, 6, 9]
    assert a[::-1] == list(range(9, -1, -1))
    assert a[8:100] == [8, 9]
    a[0] = 100
    a[-1] = -100
    assert (a[0], a[9]) == (100, -100)
    a[1:4] = [-1, -2, -3]
    assert a[:5] == [100, -1, -2, -3, 4]
    a[::2] = [0] * 5
    assert a[:] == [0, -1, 0, -3, 0, 5, 0, 7, 0, -100]
    with pytest.raises(IndexError):
        a[10]
    with pytest.raises(IndexError):
        a[10] = 1
    with pytest.raises(ValueError):
        a[0:3] = [1, 2]  # a slice keeps its length
    with pytest.raises(TypeError):
        a[0] = "not a number"


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", [True, False])
def test_char_arrays_have_value_and_raw(ctx: procframe.Context, lock: bool) -> None:
    s = ctx.Array("c", b"hello", lock=lock)
    assert s.value == b"hello"
    assert s.raw == b"hello"
    assert s[:] == b"hello"
    assert s[1] == b"e"
    s.value = b"hi"
    assert s.value == b"hi"
    assert s.raw == b"hi\x00lo"
    s.raw = b"abcde"
    assert s.value == b"abcde"
    s[0:2] = b"AB"
    assert s.value == b"ABcde"
    with pytest.raises(ValueError):
        s.value = b"too long"
    sized = ctx.Array("c", 8, lock=lock)
    assert sized.raw == b"\x00" * 8
    assert sized.value == b""
    raw = ctx.RawArray("c", b"xyz")
    assert (raw.value, raw.raw) == (b"xyz", b"xyz")


@pytest.mark.in_one_process
@pytest.mark.parametrize("lock", [True, False])
def test_wide_char_arrays_have_value(ctx: procframe.Context, lock: bool) -> None:
    w = ctx.Array("u", "h\u00e9llo", lock=lock)
    assert w.value == "h\u00e9llo"
    assert w[:] == "h\u00e9llo"
    w.value = "\u4e2d"
    assert w.value == "\u4e2d"
    assert w[:] == "\u4e2d\x00llo"


@pytest.mark.in_one_process
def test_fresh_and_reused_memory_start_at_zero(ctx: procframe.Context) -> None:
    import gc

    for _ in range(3):
        dirty = [ctx.RawArray("B", [255] * 100) for _ in range(20)]
        del dirty
        gc.collect()
        clean = [ctx.RawArray("B", 100) for _ in range(20)]
        assert all(not any(a) for a in clean)
        assert all(ctx.RawValue("q").value == 0 for _ in range(20))


@pytest.mark.in_one_process
def test_a_big_array(ctx: procframe.Context) -> None:
    n = 3 * 1024 * 1024 // 8 + 5  # bigger than a heap arena
    a = ctx.RawArray("d", n)
    a[n - 1] = 1.5
    assert (a[0], a[n - 1], len(a)) == (0.0, 1.5, n)


# -- locks, wrappers, copy ---------------------------------------------------------


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_lock_true_wraps_with_a_new_rlock(ctx: procframe.Context) -> None:
    v = ctx.Value("i", 1)
    a = ctx.Array("i", 3)
    for wrapped in (v, a, ctx.Value("i", lock=None)):
        assert isinstance(wrapped, sharedctypes.SynchronizedBase)
        assert isinstance(wrapped.get_lock(), type(ctx.RLock()))
    assert v.get_lock() is not a.get_lock()
    assert isinstance(v, sharedctypes.Synchronized)
    assert isinstance(a, sharedctypes.SynchronizedArray)
    assert isinstance(ctx.Array("c", 3), sharedctypes.SynchronizedString)
    with v.get_lock(), v.get_lock():  # recursive: the value can be read while held
        v.value += 1
        assert v.value == 2
    with v:  # the wrapper is its own context manager
        assert v.get_lock()._is_owned()
    assert not v.get_lock()._is_owned()


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_lock_false_gives_the_raw_object(ctx: procframe.Context) -> None:
    v = ctx.Value("i", 5, lock=False)
    assert isinstance(v, ctypes.c_int)
    assert not isinstance(v, sharedctypes.SynchronizedBase)
    a = ctx.Array("d", [1.0, 2.0], lock=False)
    assert isinstance(a, ctypes.Array)
    assert a[:] == [1.0, 2.0]


@pytest.mark.in_one_process
def test_a_given_lock_is_used(ctx: procframe.Context) -> None:
    lock = ctx.Lock()
    v = ctx.Value("i", 1, lock=lock)
    a = ctx.Array("i", 4, lock=lock)
    assert v.get_lock() is lock
    assert a.get_lock() is lock
    with v.get_lock():
        assert lock.locked()
        assert not lock.acquire(False)
    assert not lock.locked()
    v.value = 3  # takes and releases the lock
    assert v.value == 3
    assert not lock.locked()
    rlock = ctx.RLock()
    assert ctx.Value("d", lock=rlock).get_lock() is rlock


@pytest.mark.in_one_process
def test_get_obj_shares_the_memory(ctx: procframe.Context) -> None:
    v = ctx.Value("i", 1)
    raw = v.get_obj()
    raw.value = 41
    assert v.value == 41
    a = ctx.Array("i", 3)
    a.get_obj()[1] = 9
    assert a[:] == [0, 9, 0]


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_wrappers_repr(ctx: procframe.Context) -> None:
    assert repr(ctx.Value("i", 5)) == "<Synchronized wrapper for c_int(5)>"
    assert repr(ctx.RawValue("d", 0.5)) == "c_double(0.5)"
    assert "SynchronizedArray wrapper for" in repr(ctx.Array("i", 2))


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_copy(ctx: procframe.Context) -> None:
    a = ctx.RawArray("i", [1, 2, 3])
    b = sharedctypes.copy(a)
    assert b[:] == [1, 2, 3]
    b[0] = 100
    assert a[0] == 1
    p = sharedctypes.copy(ctx.RawValue(shared.Point, 5, 6.5))
    assert (p.x, p.y) == (5, 6.5)
    v = sharedctypes.copy(ctx.Value("d", 2.5))  # the wrapped object's contents, raw
    assert isinstance(v, ctypes.c_double) and v.value == 2.5
    plain = sharedctypes.copy(ctypes.c_int(8))  # any ctypes object: into shared memory
    assert plain.value == 8
    with pytest.raises(TypeError, match="ctypes object"):
        sharedctypes.copy([1, 2])


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_synchronized(ctx: procframe.Context) -> None:
    raw = ctx.RawValue("i", 3)
    wrapped = sharedctypes.synchronized(raw)  # a new RLock of the default context
    assert isinstance(wrapped, sharedctypes.Synchronized)
    assert isinstance(wrapped.get_lock(), type(procframe.get_context().RLock()))
    assert wrapped.get_obj() is raw
    wrapped.value = 4
    assert raw.value == 4
    lock = ctx.Lock()
    assert sharedctypes.synchronized(ctx.RawArray("i", 2), lock).get_lock() is lock
    assert isinstance(
        sharedctypes.synchronized(ctx.RawArray("c", 2), ctx=ctx), sharedctypes.SynchronizedString
    )
    point = sharedctypes.synchronized(ctx.RawValue(shared.Point, 1, 2.0))
    assert (point.x, point.y) == (1, 2.0)
    with pytest.raises(TypeError, match="already synchronized"):
        sharedctypes.synchronized(wrapped)


@pytest.mark.requires("host_memory")
@pytest.mark.in_one_process
def test_the_sharedctypes_module(ctx: procframe.Context) -> None:
    assert set(sharedctypes.__all__) == {
        "RawValue",
        "RawArray",
        "Value",
        "Array",
        "copy",
        "synchronized",
    }
    assert sharedctypes.RawValue("i", 2).value == 2
    assert sharedctypes.RawArray("i", 2)[:] == [0, 0]
    v = sharedctypes.Value("i", 2, ctx=ctx)
    assert v.value == 2 and isinstance(v.get_lock(), type(ctx.RLock()))
    assert sharedctypes.Array("i", [1], lock=False)[:] == [1]


@pytest.mark.in_one_process
def test_module_level_factories(ctx: procframe.Context) -> None:
    assert {"Value", "Array", "RawValue", "RawArray"} <= set(procframe.__all__)
    v = procframe.Value("d", 0.5)  # the default context's
    assert v.value == 0.5 and isinstance(v.get_lock(), type(procframe.get_context().RLock()))
    assert procframe.Value("i", 1, lock=False).value == 1
    assert procframe.Array("i", range(3))[:] == [0, 1, 2]
    assert procframe.Array("i", 2, lock=False)[:] == [0, 0]
    assert procframe.RawValue("h", 7).value == 7
    assert procframe.RawArray("c", b"ab").value == b"ab"


# -- bad input -----------------------------------------------------------------------


@pytest.mark.in_one_process
def test_an_unknown_typecode_is_a_clear_typeerror(ctx: procframe.Context) -> None:
    for make in (ctx.Value, ctx.RawValue):
        with pytest.raises(TypeError, match=r"unknown typecode 'x'.*'i'.*'d'.*ctypes type"):
            make("x")
    for make in (ctx.Array, ctx.RawArray):
        with pytest.raises(TypeError, match="unknown typecode 'int'"):
            make("int", 3)
    with pytest.raises(TypeError, match=r"expected an array typecode .* got 5"):
        ctx.Value(5)
    with pytest.raises(TypeError, match="got <class 'int'>"):
        ctx.RawArray(int, 3)


@pytest.mark.in_one_process
def test_a_wrong_lock_argument_is_a_clear_error(ctx: procframe.Context) -> None:
    for bad in ("yes", 0, object()):
        # AttributeError as in multiprocessing, and a TypeError as it should be.
        with pytest.raises(AttributeError, match=r"lock must be True .* acquire"):
            ctx.Value("i", lock=bad)
        with pytest.raises(TypeError, match="lock must be True"):
            ctx.Array("i", 3, lock=bad)
    with pytest.raises(TypeError):
        ctx.Value("i", 1, 2)  # Value takes lock by keyword only after the initial values


@pytest.mark.in_one_process
def test_bad_sizes_and_initializers(ctx: procframe.Context) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        ctx.RawArray("i", -1)
    with pytest.raises(TypeError, match="size_or_initializer"):
        ctx.Array("i", 2.5)
    with pytest.raises(TypeError):
        ctx.RawArray("i", ["a", "b"])
    with pytest.raises(TypeError):
        ctx.RawValue("i", "not an int")
    with pytest.raises(TypeError):
        ctx.Value("c", "a str, not bytes")


@pytest.mark.requires("passes_descriptors")
@pytest.mark.in_one_process
def test_shared_objects_do_not_pickle_outside_a_process_start(ctx: procframe.Context) -> None:
    for obj in (ctx.RawValue("i"), ctx.Value("i"), ctx.RawArray("d", 2), ctx.Array("c", 2)):
        with pytest.raises(TypeError, match="can only be passed to a child process"):
            pickle.dumps(obj)
    q = ctx.SimpleQueue()
    try:
        with pytest.raises(TypeError, match="can only be passed to a child process"):
            q.put(ctx.RawArray("i", 3))
    finally:
        q.close()


# -- across processes ------------------------------------------------------------------


def test_the_documented_shared_memory_example_prints_what_the_children_wrote(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(tmp_path, DOCUMENTED_EXAMPLE, procframe_backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n"


@pytest.mark.requires("host_memory")
@pytest.mark.core
def test_a_child_sees_and_changes_every_kind(ctx: procframe.Context, tmp_path: Path) -> None:
    objs = shared.every_kind(ctx)
    out = tmp_path / "seen"
    _join(_start(ctx, shared.see_and_change, objs, str(out)))
    assert read_report(out) == {
        "raw_value": 7,
        "value": 1.5,
        "raw_array": [1, 2, 3],
        "array": [0, 1, 2, 3, 4],
        "chars": "hello",
        "raw_chars": "abcd",
        "point": [1, 2.5],
        "raw_point": [3, 4.5, 5.5],
        "points": [[1, 1.5], [2, 2.5]],
        "wide": "hi\u00e9\u4e2d",
    }
    assert objs["raw_value"].value == -1
    assert objs["value"].value == 2.25
    assert list(objs["raw_array"]) == [9, 8, 7]
    assert objs["array"][:] == [0, -5, -6, 3, 4]
    assert objs["chars"].value == b"child"
    assert objs["raw_chars"].raw == b"XYZW"
    assert objs["point"].x == 42
    assert objs["raw_point"].z == -0.5
    assert objs["points"][1].y == 9.5
    assert objs["wide"].value == "wide"


@pytest.mark.core
def test_increments_under_the_lock_lose_nothing(ctx: procframe.Context) -> None:
    counter = ctx.Value("i", 0)
    procs = [_start(ctx, shared.increment, counter, 2000) for _ in range(3)]
    shared.increment(counter, 2000)
    _join(*procs)
    assert counter.value == 8000


@pytest.mark.core
def test_a_raw_value_and_a_separate_lock(ctx: procframe.Context) -> None:
    counter = ctx.RawValue("q", 0)
    lock = ctx.Lock()
    procs = [_start(ctx, shared.increment_raw, counter, lock, 400) for _ in range(2)]
    shared.increment_raw(counter, lock, 400)
    _join(*procs)
    assert counter.value == 1200


def test_a_value_made_with_a_given_lock_shares_it_with_children(ctx: procframe.Context) -> None:
    lock = ctx.RLock()
    counter = ctx.Value("i", 0, lock=lock)
    procs = [_start(ctx, shared.increment, counter, 300) for _ in range(2)]
    _join(*procs)
    assert counter.value == 600
    assert counter.get_lock() is lock


def test_many_objects_cross_in_a_few_descriptors(ctx: procframe.Context, tmp_path: Path) -> None:
    values = [ctx.RawValue("i", i) for i in range(300)]  # more than a child's descriptor budget
    out = tmp_path / "sum"
    _join(_start(ctx, shared.sum_values, values, str(out)))
    assert read_report(out) == sum(range(300))


def test_a_big_array_crosses_to_a_child(ctx: procframe.Context, tmp_path: Path) -> None:
    n = 1_000_003
    arr = ctx.RawArray("i", n)
    arr[0], arr[n // 2], arr[n - 1] = 1, 2, 3
    out = tmp_path / "sum"
    _join(_start(ctx, shared.sum_array, arr, str(out)))
    assert read_report(out) == [n, 6]


def test_a_child_passes_the_memory_on_to_a_grandchild(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    value = ctx.Value("i", 100)
    out = tmp_path / "out"
    _join(_start(ctx, shared.pass_on, value, str(out)))
    assert read_report(out) == {"exitcode": 0, "value": 111}
    assert value.value == 111


def test_a_child_allocates_memory_of_its_own(ctx: procframe.Context, tmp_path: Path) -> None:
    ready, go, out = (str(tmp_path / name) for name in ("ready", "go", "out"))
    before = ctx.RawArray("i", [5] * 64)
    p = _start(ctx, shared.allocate_after_start, ready, go, out)
    try:
        read_report(ready, timeout=PATIENCE)
        mine = [ctx.RawArray("i", [2] * 64) for _ in range(8)]
        values = [ctx.Value("i", 2) for _ in range(8)]
        report(go, True)
        assert read_report(out, timeout=PATIENCE) == [64, 1]
    finally:
        _join(p)
    assert sum(before) == 5 * 64
    assert all(sum(a) == 2 * 64 for a in mine)
    assert all(v.value == 2 for v in values)


@pytest.mark.requires("posix_signals")
def test_a_killed_child_leaves_nothing_behind(ctx: procframe.Context, tmp_path: Path) -> None:
    names_before = procframe_names()
    value = ctx.Value("i", 0)
    arr = ctx.RawArray("d", 1000)
    ready = str(tmp_path / "ready")
    p = _start(ctx, shared.hold_and_wait, value, ready)
    try:
        read_report(ready, timeout=PATIENCE)
        assert value.value == 99
        p.kill()
        p.join(PATIENCE)
        assert p.exitcode == -signal.SIGKILL
    finally:
        reap(p)
    assert (value.value, len(arr)) == (99, 1000)  # the memory outlives the child
    del value, arr
    assert procframe_names() <= names_before  # no name anywhere: memory is reached by descriptor

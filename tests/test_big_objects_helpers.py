"""The big-objects suite's own helpers see what they claim to see.

``backed_by_slab`` and ``slabs_held`` must recognise a memfd named like a slab
(in this process and in a child), or the suite's slab checks would pass for
nothing; ``describe`` must tell apart what differs and nothing else.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from procframe.testing.helpers import big_objects as bo

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.skipif(
    not (hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")),
    reason="needs memfd and /proc",
)


@contextmanager
def _memfd(name: str, size: int = 1 << 20) -> Iterator[tuple[int, mmap.mmap]]:
    """A memfd called ``name`` of ``size`` bytes, mapped; closed and unmapped afterwards."""
    fd = os.memfd_create(name)
    try:
        os.ftruncate(fd, size)
        mapping = mmap.mmap(fd, size)
        try:
            yield fd, mapping
        finally:
            mapping.close()
    finally:
        os.close(fd)


def test_an_array_over_a_slab_is_seen_as_backed_by_it() -> None:
    baseline = bo.slabs_held()
    with _memfd("procframe-slab") as (_, mapping):
        array = np.frombuffer(mapping, dtype=np.float64)
        view = memoryview(mapping)
        try:
            assert bo.backed_by_slab(array)
            assert bo.backed_by_slab(array[1000:])
            assert bo.backed_by_slab(view)
            assert bo.slab_backing(array) is True
            assert bo.slab_backing(array[:10]) is None  # small: nothing promised
            assert bo.slabs_held() == baseline + 3  # its descriptor, mmap's duplicate, the mapping
        finally:
            del array
            view.release()
    assert bo.slabs_held() == baseline


def test_other_memory_is_not_a_slab() -> None:
    assert not bo.backed_by_slab(np.zeros(1 << 18))
    assert not bo.backed_by_slab(bytearray(1 << 20))
    assert not bo.backed_by_slab(np.zeros((0, 8)))
    with _memfd("procframe-other") as (_, mapping):
        array = np.frombuffer(mapping, dtype=np.uint8)
        assert not bo.backed_by_slab(array)
        del array


def test_slabs_held_counts_a_childs_descriptor() -> None:
    with _memfd("procframe-slab") as (fd, _):
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            pass_fds=[fd],
        )
        try:
            assert bo.slabs_held([child.pid]) == 1
            assert child.pid in bo.descendants(os.getpid())
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(60)
        assert bo.slabs_held([child.pid]) == 0  # an exited process holds nothing


def test_describe_ignores_the_layout_and_sees_everything_else() -> None:
    a = np.arange(24, dtype=np.int32).reshape(4, 6)
    assert bo.describe(np.asfortranarray(a)) == bo.describe(a)
    assert bo.describe(a[::2]) == bo.describe(a[::2].copy())
    different = [a.astype(np.int64), a.reshape(6, 4), a + 1, a.T]
    readonly = a.copy()
    readonly.flags.writeable = False
    different.append(readonly)
    assert all(bo.describe(b) != bo.describe(a) for b in different)
    assert bo.describe(memoryview(b"abcd").cast("i")) != bo.describe(memoryview(b"abcd"))
    assert bo.describe(b"abcd") != bo.describe(bytearray(b"abcd"))


def test_a_patterned_array_is_recognised_whole_only() -> None:
    arr = bo.patterned(3, 1 << 16)
    assert bo.pattern_of(arr) == 3
    arr[100] = 0
    assert bo.pattern_of(arr) is None
    assert bo.pattern_of(arr[:0]) is None

"""Big objects through every path (issue 14): bytes, memoryviews and numpy arrays.

Every path a user's object takes between processes - Queue, SimpleQueue,
JoinableQueue, Pipe, Pool, ProcessPoolExecutor and Process arguments - must
hand over big buffers whole, in every dtype and memory layout.  Where items are
pickled (``separate_memory``), a big received array lies in shared memory (a
``procframe-slab`` memfd) without a copy, yet behaves as a private copy: it is
writable, writing to it reaches nobody else, and it outlives its sender and
the queue it came through.  A process killed with a big object in flight
leaves no slab behind once the survivors let go.

The child targets are in :mod:`procframe.testing.helpers.big_objects`.  Numpy
is optional: without it only bytes and memoryviews cross, and the tests that
need arrays are skipped.  Arrays compare by dtype, shape, writability and
content in logical order (:func:`~procframe.testing.helpers.big_objects.describe`),
whatever the layout they arrive in.
"""

from __future__ import annotations

import gc
import queue
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.futures import ProcessPoolExecutor
from procframe.testing.helpers import big_objects as bo
from procframe.testing.helpers import exchange, stress
from procframe.testing.helpers.pool import identity
from procframe.testing.helpers.targets import read_report

PATIENCE = 60.0
"""Seconds any single wait may take on a loaded machine."""
KIB, MIB = 1 << 10, 1 << 20
SIZES = {"1KiB": KIB, "256KiB": 256 * KIB, "8MiB": 8 * MIB}
"""Below and above the size where buffers leave the pickle stream."""
IN_FLIGHT = 64 * MIB
"""The size of an object in flight when its sender or receiver is killed."""

PATHS = ["Queue", "SimpleQueue", "JoinableQueue", "Pipe", "Pool", "ProcessPoolExecutor", "Process"]
"""Every way an object crosses to another process."""

try:
    import numpy as np
except ImportError:  # the arrays' tests are skipped, the buffers' still run
    np = None


# -- what crosses ------------------------------------------------------------------------

DTYPES: dict[str, Any] = {
    "float64": "<f8",
    "int32": "<i4",
    "uint8": "u1",
    "complex128": "<c16",
    "bool": "?",
    "record": [("x", "<i4"), ("y", "<f8"), ("tag", "S3")],  # packed: 15-byte items
}
LAYOUTS: dict[str, Callable[[Any], Any]] = {
    "C": lambda a: a,
    "F": lambda a: np.asfortranarray(a),
    "every-other-row": lambda a: a[::2],
    "transposed": lambda a: a.T,
    "column": lambda a: a[:, 1],
    "0-d": lambda a: np.array(a[0, 0]),
    "zero-size": lambda a: a[:0],
}
"""Views of a C-ordered 2-D array (8 columns)."""


def _array(dtype: str, layout: str, size: str) -> Any:
    """A random ``(rows, 8)`` array of about ``size`` bytes, seen in ``layout``."""
    dt = np.dtype(DTYPES[dtype])
    rows = max(2, SIZES[size] // (dt.itemsize * 8))
    seed = zlib.crc32(f"{dtype} {layout} {size}".encode())
    raw = np.random.default_rng(seed).integers(0, 256, rows * 8 * dt.itemsize, dtype=np.uint8)
    if dt == np.bool_:
        raw &= 1
    return LAYOUTS[layout](raw.view(dt).reshape(rows, 8))


def _arrays(cases: list[tuple[str, str, str]]) -> dict[str, Any]:
    if np is None:
        return {}
    return {"-".join(case): _array(*case) for case in cases}


MATRIX = [(dtype, layout, "256KiB") for dtype in DTYPES for layout in LAYOUTS] + [
    (dtype, layout, size)
    for size in ("1KiB", "8MiB")
    for dtype, layout in [
        ("float64", "C"),
        ("uint8", "F"),
        ("int32", "every-other-row"),
        ("complex128", "transposed"),
        ("record", "column"),
        ("bool", "C"),
    ]
]
"""Every dtype in every layout, and every size: what one path (Queue) carries."""
REPRESENTATIVE = [
    ("float64", "C", "8MiB"),
    ("float64", "C", "1KiB"),
    ("uint8", "F", "8MiB"),
    ("int32", "every-other-row", "256KiB"),
    ("complex128", "transposed", "256KiB"),
    ("record", "column", "8MiB"),
    ("bool", "0-d", "1KiB"),
    ("float64", "zero-size", "1KiB"),
]
"""A few of each: what the other paths carry."""
BACKED = [
    ("float64", "C", "8MiB"),
    ("uint8", "F", "8MiB"),
    ("int32", "every-other-row", "8MiB"),
    ("complex128", "transposed", "8MiB"),
    ("record", "C", "8MiB"),
    ("bool", "column", "8MiB"),
]
"""Big arrays (1 MiB and more) of several dtypes and layouts: received backed by a slab."""


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _buffers() -> dict[str, Any]:
    """Bytes and bytearrays, small and big."""
    items: dict[str, Any] = {f"bytes-{name}": _random(n, n) for name, n in SIZES.items()}
    items["bytearray-8MiB"] = bytearray(_random(8 * MIB, 1))
    return items


def _memoryviews() -> dict[str, Any]:
    """Memoryviews of several formats and shapes, C-contiguous, small and big."""
    views = {
        "memoryview-B-1KiB": memoryview(bytearray(_random(KIB, 2))),
        "memoryview-readonly-256KiB": memoryview(_random(256 * KIB, 3)),
        "memoryview-d-8MiB": memoryview(bytearray(_random(8 * MIB, 4))).cast("d"),
        "memoryview-i-2d-256KiB": memoryview(bytearray(_random(256 * KIB, 5))).cast(
            "i", (1024, 64)
        ),
    }
    if np is not None:
        views["memoryview-of-an-array-8MiB"] = memoryview(_array("float64", "C", "8MiB"))
    return views


# -- the paths ---------------------------------------------------------------------------

NOTHING = object()
"""What came back on a path that sends nothing back (Process arguments)."""
Outcome = tuple[str, Any, Any, Any]
"""(what crossed and how, the far side's description of it, its slab backing there, what
came back or NOTHING)."""


@contextmanager
def _closing(*queues: Any) -> Iterator[None]:
    """Close ``queues`` after the block (and wait for their feeders, unless it failed)."""
    try:
        yield
    except BaseException:
        for q in queues:
            if hasattr(q, "cancel_join_thread"):
                q.cancel_join_thread()
            q.close()
        raise
    for q in queues:
        q.close()
        if hasattr(q, "join_thread"):
            q.join_thread()


def _get(q: Any) -> Any:
    """One item, waiting at most PATIENCE where the queue takes a timeout."""
    return q.get(timeout=PATIENCE) if hasattr(q, "qsize") else q.get()


def _through_queue(ctx: procframe.Context, kind: str, items: dict[str, Any]) -> list[Outcome]:
    """Each item to an echoing child and back, one at a time (a SimpleQueue's put may wait)."""
    q_in, q_out = getattr(ctx, kind)(), getattr(ctx, kind)()
    outcomes = []
    with _closing(q_in, q_out):
        p = ctx.Process(target=bo.echo_crossed, args=(q_in, q_out))
        p.start()
        try:
            for name, obj in items.items():
                q_in.put(obj)
                outcomes.append((name, *_get(q_out)))
            q_in.put(None)
            p.join(PATIENCE)
        finally:
            exchange.reap(p)
    assert p.exitcode == 0
    return outcomes


def _through_pipe(ctx: procframe.Context, items: dict[str, Any]) -> list[Outcome]:
    a, b = ctx.Pipe()
    outcomes = []
    with a, b:
        p = ctx.Process(target=bo.echo_crossed_on_pipe, args=(b,))
        p.start()
        try:
            for name, obj in items.items():
                a.send(obj)
                assert a.poll(PATIENCE), f"no answer for {name}"
                outcomes.append((name, *a.recv()))
            a.send(None)
            p.join(PATIENCE)
        finally:
            exchange.reap(p)
    assert p.exitcode == 0
    return outcomes


def _through_pool(ctx: procframe.Context, items: dict[str, Any]) -> list[Outcome]:
    """``apply`` of two items, ``map`` of an identity function, ``imap``."""
    names, objs = list(items), list(items.values())
    outcomes: list[Outcome] = []
    with ctx.Pool(2) as pool:
        for name in names[:2]:
            crossed = pool.apply_async(bo.crossed, (items[name],)).get(timeout=PATIENCE)
            outcomes.append((f"apply {name}", *crossed))
        mapped = pool.map_async(identity, objs).get(timeout=PATIENCE)
        outcomes += [
            (f"map {name}", None, None, back) for name, back in zip(names, mapped, strict=True)
        ]
        results = pool.imap(bo.crossed, objs)
        outcomes += [(f"imap {name}", *results.next(timeout=PATIENCE)) for name in names]
        pool.close()
        pool.join()
    return outcomes


def _through_executor(ctx: procframe.Context, items: dict[str, Any]) -> list[Outcome]:
    """``submit`` of two items, ``map``."""
    names, objs = list(items), list(items.values())
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        for name in names[:2]:
            crossed = executor.submit(bo.crossed, items[name]).result(timeout=PATIENCE)
            outcomes.append((f"submit {name}", *crossed))
        results = executor.map(bo.crossed, objs, timeout=PATIENCE)
        outcomes += [
            (f"map {name}", *crossed) for name, crossed in zip(names, results, strict=True)
        ]
    return outcomes


def _as_arguments(ctx: procframe.Context, items: dict[str, Any]) -> list[Outcome]:
    """All items as one child's arguments; it describes what it received."""
    q = ctx.Queue()
    with _closing(q):
        p = ctx.Process(target=bo.describe_arguments, args=(q, *items.values()))
        p.start()
        try:
            seen = q.get(timeout=PATIENCE)
            p.join(PATIENCE)
        finally:
            exchange.reap(p)
    assert p.exitcode == 0
    return [(name, *view, NOTHING) for name, view in zip(items, seen, strict=True)]


def _cross(ctx: procframe.Context, path: str, items: dict[str, Any]) -> list[Outcome]:
    """Send ``items`` through ``path`` to another process (and back, where it sends back)."""
    if path in ("Queue", "SimpleQueue", "JoinableQueue"):
        return _through_queue(ctx, path, items)
    if path == "Pipe":
        return _through_pipe(ctx, items)
    if path == "Pool":
        return _through_pool(ctx, items)
    if path == "ProcessPoolExecutor":
        return _through_executor(ctx, items)
    return _as_arguments(ctx, items)


def _damage(items: dict[str, Any], outcomes: list[Outcome]) -> list[str]:
    """What arrived other than it was sent, on either side."""
    problems = []
    for label, far, _, back in outcomes:
        expected = bo.describe(items[label.split()[-1]])
        if far is not None and tuple(far) != expected:
            problems.append(f"{label}: the receiver got {far}, not {expected}")
        if back is not NOTHING and bo.describe(back) != expected:
            problems.append(f"{label}: came back as {bo.describe(back)}, not {expected}")
    return problems


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_big_and_small_buffers_and_arrays_cross_whole(ctx: procframe.Context, path: str) -> None:
    """Bytes, bytearrays, memoryviews (received as memoryviews of the same format and shape)
    and arrays: the full dtype x layout matrix through a Queue, a few of each through the
    other paths, small and big, both ways."""
    items = {
        **_arrays(MATRIX if path == "Queue" else REPRESENTATIVE),
        **_buffers(),
        **_memoryviews(),
    }
    assert _damage(items, _cross(ctx, path, items)) == []


def test_send_bytes_and_recv_bytes_into_carry_big_buffers(ctx: procframe.Context) -> None:
    """Big and small buffers sent with ``send_bytes`` (offsets and sizes in bytes) and echoed
    by a child, received with ``recv_bytes`` and ``recv_bytes_into`` (an offset, an array)."""
    big = _random(8 * MIB, 7)
    a, b = ctx.Pipe()
    with a, b:
        p = ctx.Process(target=bo.echo_bytes_on_pipe, args=(b, 5))
        p.start()
        try:

            def echoed() -> bytes:
                assert a.poll(PATIENCE), "no echo"
                return bytes(a.recv_bytes())

            a.send_bytes(big)
            assert echoed() == big
            a.send_bytes(b"x" * 1000)
            assert echoed() == b"x" * 1000
            a.send_bytes(memoryview(big)[MIB:])
            assert echoed() == big[MIB:]
            a.send_bytes(bytearray(big), 3, 5 * MIB)
            target = bytearray(6 * MIB)
            assert a.poll(PATIENCE), "no echo"
            assert a.recv_bytes_into(target, 100) == 5 * MIB
            assert target[100 : 100 + 5 * MIB] == big[3 : 3 + 5 * MIB]
            assert target[:100] == bytes(100)
            if np is None:
                a.send_bytes(big)
                assert echoed() == big
            else:
                sent = np.arange(MIB, dtype=np.float64)  # 8 MiB
                a.send_bytes(sent)
                received = np.zeros_like(sent)
                assert a.poll(PATIENCE), "no echo"
                assert a.recv_bytes_into(received) == sent.nbytes
                assert np.array_equal(received, sent)
            p.join(PATIENCE)
        finally:
            exchange.reap(p)
    assert p.exitcode == 0


@pytest.mark.requires("separate_memory")
@pytest.mark.in_one_process
@pytest.mark.parametrize("path", ["Queue", "Pipe"])
def test_a_received_array_is_a_private_writable_copy(ctx: procframe.Context, path: str) -> None:
    """Writing to a received array reaches neither its sender nor another receiver; the
    sender changing its array after the send changes nothing received; and so for a
    received array sent on."""
    pytest.importorskip("numpy")
    sent = bo.patterned(0, 8 * MIB)
    with _loopback(ctx, path) as (send, receive):
        send(sent)
        send(sent)
        sent[...] = -1
        first, second = receive(), receive()
        assert first.flags.writeable and second.flags.writeable
        assert bo.pattern_of(first) == 0 and bo.pattern_of(second) == 0
        first[...] = 1
        assert bo.pattern_of(second) == 0, "writing one received array changed another"
        assert (sent == -1).all(), "writing a received array changed the sender's"
        send(first)  # a received array, sent on
        first[...] = 2
        third = receive()
        assert (third == 1).all(), "changing a received array after sending it on reached"
        third[...] = 3
        assert (first == 2).all() and bo.pattern_of(second) == 0


@contextmanager
def _loopback(ctx: procframe.Context, path: str) -> Iterator[tuple[Any, Any]]:
    """``(send, receive)`` of one Queue, or of a one-way Pipe read by a thread."""
    if path == "Queue":
        q = ctx.Queue()
        with _closing(q):
            yield q.put, lambda: q.get(timeout=PATIENCE)
        return
    reader, writer = ctx.Pipe(duplex=False)
    got: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        try:
            while (obj := reader.recv()) is not None:
                got.put(obj)
        except (EOFError, OSError):
            pass

    thread = threading.Thread(target=pump, daemon=True)
    with reader, writer:
        thread.start()
        try:
            yield writer.send, lambda: got.get(timeout=PATIENCE)
        finally:
            writer.send(None)
            thread.join(PATIENCE)


@pytest.mark.requires("separate_memory")
def test_a_forwarded_array_stays_private_to_each_process(ctx: procframe.Context) -> None:
    """A child forwards the array it received, then overwrites it: what the parent got is
    untouched; the parent overwrites its copy: the child's is untouched."""
    pytest.importorskip("numpy")
    sent = bo.patterned(5, 8 * MIB)
    q_in, q_out = ctx.Queue(), ctx.Queue()
    with _closing(q_in, q_out):
        p = ctx.Process(target=bo.forward_then_scribble, args=(q_in, q_out))
        p.start()
        try:
            q_in.put(sent)
            sent[...] = -1  # after the put: reaches nobody
            back = q_out.get(timeout=PATIENCE)
            scribbled = q_out.get(timeout=PATIENCE)
            assert scribbled[0] == "scribbled"
            assert bo.pattern_of(back) == 5, "the child's write after forwarding reached us"
            back[...] = 0
            q_in.put("go")
            assert q_out.get(timeout=PATIENCE) == ("kept", True), "our write reached the child"
            p.join(PATIENCE)
        finally:
            exchange.reap(p)
    assert p.exitcode == 0


@pytest.mark.parametrize("path", ["Queue", "Pipe"])
def test_received_arrays_outlive_their_sender_and_the_channel(
    ctx: procframe.Context, path: str
) -> None:
    """More arrays than any cache of reusable shared memory holds, all kept: each stays
    intact while the next arrive, after the sender exited, after the channel is closed
    and collected, and takes writes."""
    pytest.importorskip("numpy")
    count, nbytes = 8, 2 * MIB
    if path == "Queue":
        q = ctx.Queue()
        p = ctx.Process(target=bo.put_patterned, args=(q, count, nbytes))
        with _closing(q):
            p.start()
            try:
                got = [q.get(timeout=PATIENCE) for _ in range(count)]
                p.join(PATIENCE)
            finally:
                exchange.reap(p)
        del q
    else:
        reader, writer = ctx.Pipe(duplex=False)
        p = ctx.Process(target=bo.send_patterned, args=(writer, count, nbytes))
        with reader, writer:
            p.start()
            try:
                got = []
                for _ in range(count):
                    assert reader.poll(PATIENCE)
                    got.append(reader.recv())
                p.join(PATIENCE)
            finally:
                exchange.reap(p)
        del reader, writer
    assert p.exitcode == 0
    p.close()
    del p
    gc.collect()
    assert [bo.pattern_of(arr) for arr in got] == list(range(count))
    for arr in got:
        arr[...] = 0
    assert all((arr == 0).all() for arr in got)


# -- backed by shared memory (where items are pickled) --------------------------------------


@pytest.mark.requires("host_memory", "separate_memory")
@pytest.mark.parametrize(
    "path",
    [
        "Queue",
        "Pipe",
        "Pool",
        pytest.param("Process", marks=pytest.mark.requires("pickles_process")),
    ],
)
def test_a_big_received_array_lies_in_shared_memory_freed_with_its_last_reference(
    ctx: procframe.Context, path: str
) -> None:
    """Each way, every big array is received in a slab's mapping (no copy); once every
    reference is gone and the channel closed, no process holds a slab."""
    pytest.importorskip("numpy")
    items = _arrays(BACKED)
    outcomes = _cross(ctx, path, items)
    assert _damage(items, outcomes) == []
    copied = [label for label, far, backed, _ in outcomes if far is not None and backed is not True]
    copied += [
        f"{label} (back)"
        for label, _, _, back in outcomes
        if back is not NOTHING and not bo.backed_by_slab(back)
    ]
    assert copied == [], "received outside a slab"
    del outcomes
    assert bo.slabs_left() == 0, bo.slab_holders()


# -- killed in flight ------------------------------------------------------------------------


@pytest.mark.requires("host_memory")
@pytest.mark.stress
@pytest.mark.requires("posix_signals", "separate_memory", "passes_descriptors")
@pytest.mark.parametrize("path", ["Queue", "Pipe"])
def test_a_sender_killed_mid_transfer_leaves_no_slab(ctx: procframe.Context, path: str) -> None:
    """A child sending 64 MiB arrays is SIGKILLed as it starts a send, or a little later:
    the receiver gets whole items only, never hangs, and once it closes the channel no
    process holds a slab."""
    pytest.importorskip("numpy")
    rng = random.Random(14)
    for attempt in range(stress.size(2, 100)):
        _kill_a_sender(ctx, path, 0.0 if attempt == 0 else rng.uniform(0.0, 0.08))
    assert bo.slabs_left() == 0, bo.slab_holders()


def _kill_a_sender(ctx: procframe.Context, path: str, delay: float) -> None:
    go, sending = ctx.Event(), ctx.Event()
    if path == "Queue":
        q = ctx.Queue()
        p = ctx.Process(target=bo.put_until_killed, args=(q, go, sending, IN_FLIGHT))

        def receive(timeout: float) -> Any:
            return q.get(timeout=timeout)

        def close() -> None:
            q.cancel_join_thread()
            q.close()

    else:
        reader, writer = ctx.Pipe(duplex=False)
        p = ctx.Process(target=bo.send_until_killed, args=(writer, go, sending, IN_FLIGHT))

        def receive(timeout: float) -> Any:
            if not reader.poll(timeout):
                raise queue.Empty
            return reader.recv()

        def close() -> None:
            reader.close()
            writer.close()

    try:
        p.start()
        if path == "Pipe":
            writer.close()  # the child's death must read as EOF here
        first = receive(PATIENCE)
        assert bo.pattern_of(first) == 0, "the first item arrived damaged"
        assert bo.backed_by_slab(first), "the transport under test is not in use"
        del first
        sending.clear()
        go.set()
        assert sending.wait(PATIENCE), "the sender never began its second send"
        time.sleep(delay)
        p.kill()
        p.join(PATIENCE)
        after = []
        while True:
            try:
                item = receive(0.5)
            except (queue.Empty, EOFError, OSError):  # ItemLostError is an OSError
                break
            after.append(bo.pattern_of(item))
            del item
        assert after in ([], [1]), f"after the kill {delay:.3f} s into a send: {after}"
    finally:
        exchange.reap(p)
        close()
        p.close()


@pytest.mark.requires("host_memory", "posix_signals", "separate_memory")
def test_a_receiver_killed_before_taking_an_item_leaves_no_slab(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    """Of three 64 MiB arrays, a child takes the first and is SIGKILLed holding it, the
    parent takes the second, nobody takes the third: once the queue is closed, no
    process holds a slab."""
    pytest.importorskip("numpy")
    ready = tmp_path / "ready"
    q = ctx.Queue()
    p = ctx.Process(target=bo.take_one_and_hold, args=(q, str(ready)))
    try:
        p.start()
        for seq in range(3):
            q.put(bo.patterned(seq, IN_FLIGHT))
        assert read_report(ready, timeout=PATIENCE) == [0, True]
        p.kill()
        p.join(PATIENCE)
        second = q.get(timeout=PATIENCE)
        assert bo.pattern_of(second) == 1
        del second
    finally:
        exchange.reap(p)
        q.cancel_join_thread()
        q.close()
    del q
    assert bo.slabs_left() == 0, bo.slab_holders()

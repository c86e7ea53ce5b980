"""Helpers of the big-objects suite: describing what crossed, slabs, child targets.

Big buffers (bytes, bytearray, memoryview, numpy arrays) cross out of band in
shared memory: memfds named ``procframe-slab`` that the receiver maps.  The
parent-side helpers tell whether a received array lies in such a mapping
(:func:`backed_by_slab`) and count the slabs processes still hold
(:func:`slabs_held`).  Children import this module (never a test module, which
imports pytest); numpy is imported only where an array is made or located.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
from typing import Any

from procframe.testing.helpers.targets import report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

SLAB_MARK = "memfd:procframe-slab"
"""What ``/proc/<pid>/fd`` links and ``/proc/<pid>/maps`` lines of a slab name."""
BIG = 1 << 20
"""Arrays of at least this many bytes are received backed by a slab (where items are pickled)."""
PATIENCE = 60.0
"""Seconds a child waits for anything that should happen at once."""


def _numpy() -> Any:
    import numpy  # type: ignore[import-not-found, unused-ignore]

    return numpy


# -- what crossed ------------------------------------------------------------------------


def describe(obj: Any) -> tuple[Any, ...]:
    """What must survive a crossing: type, layout-free shape and format, and the content.

    Arrays: dtype (fields included), shape, writability and their bytes in logical
    (C) order, so an array received in another memory layout still compares equal.
    Memoryviews: format, shape and bytes.  Bytes and bytearrays: length and bytes.
    """
    kind = type(obj).__name__
    if hasattr(obj, "__array_interface__") and hasattr(obj, "dtype"):
        return (
            kind,
            str(obj.dtype.descr),
            tuple(obj.shape),
            bool(obj.flags.writeable),
            _digest(obj.tobytes()),
        )
    if isinstance(obj, memoryview):
        return kind, obj.format, obj.shape, _digest(obj.tobytes())
    if isinstance(obj, (bytes, bytearray)):
        return kind, len(obj), _digest(obj)
    return kind, repr(obj)[:200]


def _digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def data_address(obj: Any) -> int:
    """The address of the first byte of ``obj``'s buffer (numpy locates a plain buffer)."""
    interface = getattr(obj, "__array_interface__", None)
    if interface is None:
        interface = _numpy().asarray(memoryview(obj)).__array_interface__
    return int(interface["data"][0])


def _mapping_of(address: int) -> str | None:
    """The line of ``/proc/self/maps`` whose range holds ``address`` (None: none, or no /proc)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                start, _, end = line.partition(" ")[0].partition("-")
                if int(start, 16) <= address < int(end, 16):
                    return line
    except OSError:
        return None
    return None


def backed_by_slab(obj: Any) -> bool:
    """True if ``obj``'s data lies in a mapping of a procframe slab (shared memory, no copy)."""
    nbytes = getattr(obj, "nbytes", None)
    if (memoryview(obj).nbytes if nbytes is None else nbytes) == 0:
        return False  # no data: its address means nothing
    line = _mapping_of(data_address(obj))
    return line is not None and SLAB_MARK in line


def slab_backing(obj: Any) -> bool | None:
    """:func:`backed_by_slab` for an array of at least :data:`BIG` bytes, else None."""
    if not hasattr(obj, "__array_interface__") or obj.nbytes < BIG:
        return None
    return backed_by_slab(obj)


def crossed(obj: Any) -> tuple[tuple[Any, ...], bool | None, Any]:
    """``(describe(obj), slab_backing(obj), obj)``: what a receiver saw, and the object back."""
    return describe(obj), slab_backing(obj), obj


# -- slabs held ----------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The living descendants of ``pid`` (a fork server's children included)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as f:
                    children = [int(child) for child in f.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def slabs_held(pids: Iterable[int] | None = None) -> int:
    """Descriptors and mappings of slabs held by ``pids`` (default: this process and its
    living descendants).  A process that has exited holds nothing."""
    if pids is None:
        pids = [os.getpid(), *descendants(os.getpid())]
    held = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone
            continue
        for fd in fds:
            try:
                held += SLAB_MARK in os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                held += sum(SLAB_MARK in line for line in maps)
        except OSError:
            continue
    return held


def slab_holders() -> list[str]:
    """Who holds slabs among this process and its living descendants: one line each, with
    the process's command line (for assertion messages)."""
    lines = []
    for pid in [os.getpid(), *descendants(os.getpid())]:
        held = slabs_held([pid])
        if held:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                command = "?"
            me = " (this process)" if pid == os.getpid() else ""
            lines.append(f"pid {pid}{me}: {held} slab descriptors/mappings: {command[:200]}")
    return lines


def slabs_left(timeout: float = 30.0) -> int:
    """Empty this process's slab cache, collect garbage, and wait up to ``timeout`` seconds
    for :func:`slabs_held` to reach 0 (children that are exiting close theirs); return it."""
    from procframe._core.slabs import drop_cache

    drop_cache()
    gc.collect()
    deadline = time.monotonic() + timeout
    while (held := slabs_held()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


# -- patterned arrays ----------------------------------------------------------------------


def patterned(seq: int, nbytes: int) -> Any:
    """A float64 array of ``nbytes`` bytes whose element ``i`` is ``i + seq``."""
    np = _numpy()
    return np.arange(nbytes // 8, dtype=np.float64) + seq


def pattern_of(arr: Any) -> int | None:
    """The ``seq`` of a whole :func:`patterned` array, or None if it is not one."""
    np = _numpy()
    if getattr(arr, "dtype", None) != np.float64 or arr.ndim != 1 or arr.size == 0:
        return None
    seq = float(arr[0])
    if not seq.is_integer() or not np.array_equal(arr - seq, np.arange(arr.size)):
        return None
    return int(seq)


# -- child targets: round trips ----------------------------------------------------------------


def echo_crossed(q_in: Any, q_out: Any) -> None:
    """Get items until ``None``; put back :func:`crossed` of each."""
    while True:
        item = q_in.get()
        if item is None:
            return
        q_out.put(crossed(item))


def echo_crossed_on_pipe(conn: Any) -> None:
    """Receive objects until ``None``; send back :func:`crossed` of each; close."""
    try:
        while conn.poll(PATIENCE):
            obj = conn.recv()
            if obj is None:
                break
            conn.send(crossed(obj))
    finally:
        conn.close()


def echo_bytes_on_pipe(conn: Any, count: int) -> None:
    """Receive ``count`` messages with ``recv_bytes`` and send each back with ``send_bytes``."""
    try:
        for _ in range(count):
            if not conn.poll(PATIENCE):
                return
            conn.send_bytes(conn.recv_bytes())
    finally:
        conn.close()


def describe_arguments(q: Any, *objs: Any) -> None:
    """Put ``[(describe(obj), slab_backing(obj)) for obj in objs]`` on ``q``."""
    q.put([(describe(obj), slab_backing(obj)) for obj in objs])


# -- child targets: copies and lifetimes -------------------------------------------------------


def forward_then_scribble(q_in: Any, q_out: Any) -> None:
    """Forward a received array, then overwrite it; report; on the go, check it kept ours.

    Puts the array back as received, fills it with 9 (after the put: what was put must
    not change), puts ``("scribbled", describe(array))``, waits for an item (the
    parent has overwritten its copy) and puts ``("kept", array_is_all_nines)``.
    """
    received = q_in.get(timeout=PATIENCE)
    q_out.put(received)
    received[...] = 9
    q_out.put(("scribbled", describe(received)))
    q_in.get(timeout=PATIENCE)
    q_out.put(("kept", bool((received == 9).all())))


def put_patterned(q: Any, count: int, nbytes: int) -> None:
    """Put :func:`patterned` arrays ``0 .. count - 1`` of ``nbytes`` bytes on ``q``; return."""
    for seq in range(count):
        q.put(patterned(seq, nbytes))


def send_patterned(conn: Any, count: int, nbytes: int) -> None:
    """Send :func:`patterned` arrays ``0 .. count - 1`` of ``nbytes`` bytes; close."""
    try:
        for seq in range(count):
            conn.send(patterned(seq, nbytes))
    finally:
        conn.close()


# -- child targets: killed in flight ------------------------------------------------------------


def put_until_killed(q: Any, go: Any, sending: Any, nbytes: int) -> None:
    """Put patterned arrays 0, 1, ... on ``q``: the first at once, each next one when ``go``
    is set (clearing it).  ``sending`` is set just before each put: the test kills us in it."""
    _send_until_killed(q.put, go, sending, nbytes)


def send_until_killed(conn: Any, go: Any, sending: Any, nbytes: int) -> None:
    """:func:`put_until_killed` through a Connection's ``send``."""
    _send_until_killed(conn.send, go, sending, nbytes)


def _send_until_killed(send: Any, go: Any, sending: Any, nbytes: int) -> None:
    arr = patterned(0, nbytes)
    while True:
        sending.set()
        send(arr)
        arr += 1
        if not go.wait(PATIENCE):
            return
        go.clear()


def take_one_and_hold(q: Any, ready_path: str) -> None:
    """Get one item, report ``[pattern_of(item), slab_backing(item)]``, then hold it until
    killed."""
    item = q.get(timeout=PATIENCE)
    report(ready_path, [pattern_of(item), slab_backing(item)])
    while True:
        time.sleep(60)

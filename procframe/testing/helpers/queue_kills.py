"""Child-side helpers of the queue kill tests and of the queue kill-storm probe.

Children import this module (never a test module, which imports pytest).  Two
helpers freeze a consumer at a chosen step of a big item's ``get`` by calling
the POSIX queue's channel directly: a consumer that has just taken a look
packet, and one that holds a side record.  The storm's producers and consumers
are ordinary users of the public API.
"""

from __future__ import annotations

import os
import random
import threading
import time
import zlib
from typing import Any

from procframe.posix import channel
from procframe.posix.channel import ItemLostError
from procframe.testing.helpers.targets import report

BIG = 8 << 10
"""Items of at least this many bytes travel as a look packet and a side record."""


def has_side_records(q: Any) -> bool:
    """True if ``q`` sends big items as look packets and side records (the POSIX queues)."""
    channel = getattr(q, "_channel", None)
    return channel is not None and getattr(channel, "packets", False)


def _take_packet(channel: Any) -> bytes:
    """One pipe packet, taken exactly as a reader's ``get`` takes it."""
    board = getattr(channel, "board", None)
    slot = board.reader_slot() if board is not None else None
    while True:
        try:
            if slot is None:
                return bytes(os.read(channel.read_fd, 4096))
            return bytes(slot.read(channel.read_fd))
        except BlockingIOError:
            time.sleep(0.001)


def take_looks_then_wait(q: Any, count: int, ready_path: str) -> None:
    """In ``count`` threads, take one look packet each, as ``get`` does, and stop there.

    Reports how many packets were looks, then sleeps: the test kills us while each
    thread holds a look packet whose record is still in the side socket.
    """
    channel = q._channel
    looks: list[bool] = []
    taken = threading.Semaphore(0)

    def take() -> None:
        looks.append(_take_packet(channel)[:1] == b"\x00")
        taken.release()
        time.sleep(600)  # a consumer stopped inside get(): its thread lives on

    for _ in range(count):
        threading.Thread(target=take, daemon=True).start()
    for _ in range(count):
        taken.acquire()
    report(ready_path, sum(looks))
    time.sleep(600)


def take_record_then_wait(q: Any, ready_path: str) -> None:
    """Take the first side record, as a reader looking for its own does, and hold it.

    The test kills us: the record, and the item it carries, die with us.
    """
    record = q._channel._take_record(60.0)
    report(ready_path, record is not None)
    time.sleep(600)


def get_measured(q: Any, timeout: float | None) -> dict[str, Any]:
    """``q.get()`` in the calling thread: its result or error, wall and CPU seconds."""
    wall, cpu = time.monotonic(), time.thread_time()
    try:
        got: Any = q.get() if timeout is None else q.get(timeout=timeout)
        error = None
    except Exception as exc:
        got, error = None, exc
    return {
        "got": got,
        "error": error,
        "wall": time.monotonic() - wall,
        "cpu": time.thread_time() - cpu,
    }


# -- the kill storm -------------------------------------------------------------------


def storm_item(source: int, seq: int) -> tuple[int, int, int, bytes]:
    """Item ``seq`` of producer incarnation ``source``: ``(source, seq, crc, payload)``.

    Most payloads are small; one in four is big (8 KiB to 64 KiB), one in forty
    up to 1 MiB.  The size and bytes follow from ``(source, seq)``.
    """
    rng = random.Random(source * 1_000_003 + seq)
    roll = rng.random()
    if roll < 0.025:
        size = rng.randrange(64 << 10, 1 << 20)
    elif roll < 0.25:
        size = rng.randrange(BIG, 64 << 10)
    else:
        size = rng.randrange(16, 3000)
    payload = rng.randbytes(size)
    return source, seq, zlib.crc32(payload, source * 65_537 + seq), payload


def storm_item_ok(item: Any) -> bool:
    """True if ``item`` is a whole :func:`storm_item`."""
    try:
        source, seq, crc, payload = item
        return bool(zlib.crc32(payload, source * 65_537 + seq) == crc)
    except (TypeError, ValueError):
        return False


def storm_produce(q: Any, source: int, done: Any, stop: Any) -> None:
    """Put :func:`storm_item` ``(source, 0)``, ``(source, 1)``, ... until ``stop`` is set.

    ``done[source]`` counts the puts that returned.
    """
    seq = 0
    while not stop.is_set():
        q.put(storm_item(source, seq))
        seq += 1
        done[source] = seq


def storm_consume(q: Any, log_path: str, lost_bound: float | None = None) -> None:
    """Get items until ``None``, appending a line per item (or lost item) to ``log_path``.

    ``lost_bound`` replaces ``LOST_ITEM_TIMEOUT`` in this process (a short storm).

    Lines: ``"SOURCE SEQ"`` for a whole item, ``"bad SOURCE SEQ"`` for a damaged one,
    ``"lost SECONDS"`` for an ``ItemLostError`` (raised after SECONDS in ``get``).  Each
    line is one ``write``: a kill costs at most the item being handled.
    """
    if lost_bound is not None:
        channel.LOST_ITEM_TIMEOUT = lost_bound
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            began = time.monotonic()
            try:
                item = q.get()
            except ItemLostError:
                os.write(fd, f"lost {time.monotonic() - began:.3f}\n".encode())
                continue
            if item is None:
                break
            ok = storm_item_ok(item)
            source, seq = (item[0], item[1]) if isinstance(item, tuple) and item else (-1, -1)
            os.write(fd, f"{'' if ok else 'bad '}{source} {seq}\n".encode())
    finally:
        os.close(fd)

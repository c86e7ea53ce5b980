"""Child-side helpers of the "exchanging objects" suite: Pipe, Listener/Client, queues.

Children import this module (never a test module, which imports pytest).
A few parent-side helpers (``item_is_intact``, ``numbered_ok``, ``reap``)
live here too because they pair with the child-side ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from typing import Any

from procframe.testing.helpers.targets import read_report, report

# -- Pipe / Connection --------------------------------------------------------


def recv_n(conn: Any, count: int, report_path: str) -> None:
    """Receive ``count`` objects and report them (or the error)."""
    got = []
    try:
        for _ in range(count):
            got.append(conn.recv())
    except Exception as exc:
        report(report_path, {"error": type(exc).__name__, "got": got})
        return
    report(report_path, {"error": None, "got": got})


def echo_once(conn: Any) -> None:
    """Receive one object and send it back unchanged."""
    conn.send(conn.recv())
    conn.close()


def forward_until_none(reader: Any, writer: Any) -> None:
    """Copy objects from ``reader`` to ``writer`` until ``None`` (or EOF); close both.

    (Under fork the child also inherits the parent's copy of the write end, so
    the parent closing its end would not make ``reader`` see EOF.)
    """
    try:
        while True:
            try:
                obj = reader.recv()
            except EOFError:
                break
            if obj is None:
                break
            writer.send(obj)
    finally:
        reader.close()
        writer.close()


def sleep_then_send(conn: Any, seconds: float, obj: Any) -> None:
    """Sleep ``seconds``, send ``obj``, close."""
    time.sleep(seconds)
    conn.send(obj)
    conn.close()


def send_big_bytes(conn: Any, size: int) -> None:
    """Send the SHA-256 hex digest of ``size`` random bytes, then the bytes with send_bytes."""
    data = os.urandom(size)
    conn.send(hashlib.sha256(data).hexdigest())
    conn.send_bytes(data)
    del data
    conn.close()


def write_raw_and_die(conn: Any, raw: bytes) -> None:
    """Write ``raw`` straight on the connection's descriptor, then exit without cleanup.

    With a length prefix that announces more than follows, this is a peer that
    died in the middle of a message.
    """
    fd = conn.fileno()  # a one-way writer's: a duplex end's descriptor may be for reading only
    view = memoryview(raw)
    while view:
        view = view[os.write(fd, view) :]
    os._exit(0)


BURST_SIZES = (
    *(0, 1, 3, 4, 5, 11, 12, 13, 65531, 65532, 131072, 200_003),
    *(base + delta for base in (4096, 16384, 65536) for delta in (-1, 0, 1)),
)
"""Message sizes around the boundaries a framed stream's reader and writer care about:
the 4- and 12-byte headers, pages, and common read and write chunk sizes."""


def burst_message(i: int) -> bytes:
    """The ``i``-th message of :func:`send_burst` (its size cycles through BURST_SIZES)."""
    return bytes([i % 251]) * BURST_SIZES[i % len(BURST_SIZES)]


def send_burst(conn: Any, count: int) -> None:
    """Send ``count`` messages of :func:`burst_message` back to back, then close."""
    for i in range(count):
        conn.send_bytes(burst_message(i))
    conn.close()


def send_then_sleep(conn: Any, objs: list[Any], ready_path: str) -> None:
    """Send ``objs``, report readiness, then sleep until killed (the connection stays open)."""
    for obj in objs:
        conn.send(obj)
    report(ready_path, os.getpid())
    while True:
        time.sleep(60)


# -- Listener / Client --------------------------------------------------------


def client_roundtrip(
    address: Any, family: str | None, authkey: bytes | None, payload: Any, report_path: str
) -> None:
    """Connect with ``Client``, send ``payload``, receive the reply; report it or the error."""
    from procframe.connection import Client

    try:
        with Client(address, family=family, authkey=authkey) as conn:
            conn.send(payload)
            reply = conn.recv()
    except Exception as exc:
        report(report_path, {"error": type(exc).__name__, "message": str(exc)})
        return
    report(report_path, {"error": None, "reply": reply})


# -- Queues -------------------------------------------------------------------


def put_all(q: Any, items: list[Any]) -> None:
    """Put each of ``items`` on ``q``, in order."""
    for item in items:
        q.put(item)


def echo_queue(q_in: Any, q_out: Any) -> None:
    """Move items from ``q_in`` to ``q_out`` until ``None`` arrives."""
    while True:
        item = q_in.get()
        if item is None:
            return
        q_out.put(item)


def numbered_item(producer: int, i: int, big_every: int = 0) -> tuple[Any, ...]:
    """``(producer, i)``, or with ``big_every``, every so often ``(producer, i, payload)``.

    Payloads are 6 000 bytes (past a pipe's atomic write size), one in ten of
    them 150 000 (past a pipe buffer); :func:`numbered_ok` checks them.
    """
    if not big_every or i % big_every:
        return producer, i
    size = 150_000 if (i // big_every) % 10 == 0 else 6_000
    return producer, i, bytes([(producer * 31 + i) % 256]) * size


def numbered_ok(item: Any) -> bool:
    """True if ``item`` is a whole :func:`numbered_item`."""
    if len(item) == 2:
        return True
    producer, i, payload = item
    return bool(payload) and payload == bytes([(producer * 31 + i) % 256]) * len(payload)


def produce_numbered(q: Any, producer: int, count: int, big_every: int = 0) -> None:
    """Put ``numbered_item(producer, i, big_every)`` for i in ``range(count)`` on ``q``."""
    for i in range(count):
        q.put(numbered_item(producer, i, big_every))


def consume_until_none(q: Any, report_path: str) -> None:
    """Get items until ``None``; report ``[producer, i, intact]`` for each, in order."""
    got = []
    while True:
        item = q.get()
        if item is None:
            break
        got.append([item[0], item[1], numbered_ok(item)])
    report(report_path, got)


def checksummed_item(seq: int, size: int) -> tuple[int, bytes, bytes]:
    """``(seq, sha256(seq, data), data)`` with ``size`` random bytes of data."""
    data = random.Random(seq).randbytes(size)
    return seq, _digest(seq, data), data


def item_is_intact(item: Any) -> bool:
    """True if ``item`` is a whole :func:`checksummed_item`."""
    if not (isinstance(item, tuple) and len(item) == 3):
        return False
    seq, digest, data = item
    return isinstance(data, bytes) and digest == _digest(seq, data)


def _digest(seq: int, data: bytes) -> bytes:
    return hashlib.sha256(seq.to_bytes(8, "big") + data).digest()


CHECKSUMMED_SIZES = (100, 200_000, 7, 200_001, 5_000)
"""Small and large (bigger than a pipe buffer) items, mixed."""


def produce_checksummed(q: Any, first: int, count: int, ready_path: str | None = None) -> None:
    """Put ``count`` checksummed items numbered from ``first``, of mixed sizes.

    Reports readiness (our pid) after the first few puts if ``ready_path`` is given.
    """
    for seq in range(first, first + count):
        q.put(checksummed_item(seq, CHECKSUMMED_SIZES[seq % len(CHECKSUMMED_SIZES)]))
        if ready_path and seq == first + 4:
            report(ready_path, os.getpid())


def get_once(q: Any, ready_path: str, report_path: str) -> None:
    """Report readiness, then block in ``q.get()`` (the test kills us there)."""
    report(ready_path, os.getpid())
    item = q.get()
    report(report_path, {"got": item})


def get_n(q: Any, count: int, report_path: str, timeout: float | None = 60.0) -> None:
    """Get ``count`` items (with ``timeout`` each, if the queue takes one) and report them."""
    got = []
    try:
        for _ in range(count):
            got.append(q.get() if timeout is None else q.get(timeout=timeout))
    except Exception as exc:
        report(report_path, {"error": type(exc).__name__, "got": got})
        return
    report(report_path, {"error": None, "got": got})


def put_big_then_cancel(q: Any, count: int, size: int) -> None:
    """Put more than any pipe holds, give up flushing it (``cancel_join_thread``), return."""
    for seq in range(count):
        q.put(checksummed_item(seq, size))
    q.cancel_join_thread()


def cancel_then_put(q: Any, count: int, size: int, done_path: str, stop_path: str) -> None:
    """``cancel_join_thread()``, put ``count`` items of ``size`` bytes, report, wait for stop.

    The process lives on after its puts: the items must still reach readers.
    """
    q.cancel_join_thread()
    for seq in range(count):
        q.put(checksummed_item(seq, size))
    report(done_path, os.getpid())
    read_report(stop_path, timeout=120)


# -- parent side ----------------------------------------------------------------


def reap(*procs: Any, timeout: float = 60.0) -> None:
    """Kill whichever of ``procs`` still runs, and join them all (test clean-up)."""
    for p in procs:
        try:
            if p.is_alive():
                p.kill()
        except (ValueError, AssertionError):  # closed, or never started
            continue
    for p in procs:
        try:
            p.join(timeout)
        except (ValueError, AssertionError):
            continue

"""Child-side helpers of the "exchanging objects" suite: Pipe, Listener/Client, queues.

Children import this module (never a test module, which imports pytest).
procframe's connection and queue modules are imported inside the functions
that need them.  A few parent-side helpers (``item_is_intact``, ``reap``)
live here too because they pair with the child-side ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from typing import Any

from procframe._testkit.targets import report

# -- Pipe / Connection --------------------------------------------------------


def send_then_close(conn: Any, *objs: Any) -> None:
    """Send each of ``objs`` on ``conn``, then close it."""
    for obj in objs:
        conn.send(obj)
    conn.close()


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
    fd = conn.fileno()
    view = memoryview(raw)
    while view:
        view = view[os.write(fd, view) :]
    os._exit(0)


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

    if isinstance(address, list):  # JSON-free, but be lenient with (host, port) lists
        address = tuple(address)
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

    The payloads alternate between 6 000 and 150 000 bytes (past a pipe's atomic
    write size, and past a pipe buffer) and can be checked by :func:`numbered_ok`.
    """
    if not big_every or i % big_every:
        return producer, i
    size = 6_000 if (i // big_every) % 2 else 150_000
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


def work_through(q: Any, log_path: str) -> None:
    """JoinableQueue consumer: log each item (a line), then ``task_done``; stop at ``None``."""
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        time.sleep(0.02)  # a join() that returns early sees a short log
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{item}\n")
        q.task_done()


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

"""Pipe and Connection: framing, errors, EOF, poll and ``procframe.connection.wait``."""

from __future__ import annotations

import array
import hashlib
import os
import pickle
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.connection import Client, Listener, wait
from procframe.testing.helpers import exchange, refusals, targets
from procframe.testing.helpers.scripts import run_script
from procframe.testing.helpers.targets import read_report

PASSES_DESCRIPTORS = pytest.mark.requires("passes_descriptors")
"""Tests that hand a connection or a queue to a child as a Process argument."""

MIB = 1 << 20
BIG_HEADER = struct.pack("!IQ", 0xFFFFFFFF, 2**62)
"""A length prefix announcing 4 EiB: to be refused before anything is allocated."""


CONNECTIONS = ["pipe", "socket"]
"""A Pipe, and a Listener/Client pair over an AF_UNIX socket: connections of two kinds
(one may buffer what it reads ahead, the other not) that must behave the same."""


@contextmanager
def _duplex(ctx: procframe.Context, kind: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two connected ends, each readable and writable; both closed afterwards."""
    if kind == "pipe":
        a, b = ctx.Pipe()
    else:
        with Listener(str(tmp_path / "sock"), family="AF_UNIX") as listener:
            b = Client(listener.address, family="AF_UNIX")
            a = listener.accept()
    with a, b:
        yield a, b


@contextmanager
def _one_way(ctx: procframe.Context, kind: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A reading end and a writing end whose ``fileno()`` takes raw writes."""
    if kind == "pipe":
        reader, writer = ctx.Pipe(duplex=False)
        with reader, writer:
            yield reader, writer
    else:
        with _duplex(ctx, kind, tmp_path) as (reader, writer):
            yield reader, writer


def _which(ready: list[object], named: dict[str, object]) -> list[str]:
    """The names of the objects in ``ready`` (an int matches an equal int); no strays allowed."""
    found = sorted(
        name
        for name, obj in named.items()
        if any(x is obj or (type(x) is int and type(obj) is int and x == obj) for x in ready)
    )
    assert len(found) == len(ready), f"wait() returned objects it was not given: {ready!r}"
    return found


# -- in one process -------------------------------------------------------------


@pytest.mark.core
@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_a_duplex_connection_carries_objects_both_ways(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _duplex(ctx, kind, tmp_path) as (a, b):
        assert (a.readable, a.writable, b.readable, b.writable) == (True, True, True, True)
        assert not a.closed and not b.closed
        obj = {"n": [1, 2.5, None], "s": "héllo", "b": b"\x00\xff", "t": (1,)}
        a.send(obj)
        assert b.recv() == obj
        b.send("reply")
        assert a.recv() == "reply"
        b.send_bytes(b"raw")
        assert a.recv_bytes() == b"raw"
        a.send_bytes(b"")
        assert b.recv_bytes() == b""
        assert isinstance(a.fileno(), int) and isinstance(b.fileno(), int)
    assert a.closed and b.closed


@pytest.mark.requires("separate_memory")
@pytest.mark.in_one_process
def test_one_way_pipe_has_a_reader_and_a_writer(ctx: procframe.Context) -> None:
    reader, writer = ctx.Pipe(duplex=False)
    with reader, writer:
        assert (reader.readable, reader.writable) == (True, False)
        assert (writer.readable, writer.writable) == (False, True)
        writer.send([1, 2])
        assert reader.recv() == [1, 2]
        with pytest.raises(OSError):
            reader.send("wrong way")
        with pytest.raises(OSError):
            reader.send_bytes(b"wrong way")
        with pytest.raises(OSError):
            writer.recv()
        with pytest.raises(OSError):
            writer.recv_bytes()
        with pytest.raises(OSError):
            writer.poll()
        with pytest.raises((TypeError, pickle.PicklingError)):
            writer.send(refusals.a_generator())  # fails in the caller, writes nothing
        writer.send("still works")
        assert reader.recv() == "still works"
        assert reader.poll(0) is False


@pytest.mark.in_one_process
@pytest.mark.parametrize(
    "use",
    [
        "send",
        "recv",
        "send_bytes",
        "recv_bytes",
        "recv_bytes_into",
        "poll",
        "fileno",
    ],
)
def test_a_closed_connection_raises_oserror(ctx: procframe.Context, use: str) -> None:
    a, b = ctx.Pipe()
    with b:
        b.send("pending")  # data waiting must not make a closed end usable
        a.close()
        assert a.closed
        calls = {
            "send": lambda: a.send(1),
            "recv": a.recv,
            "send_bytes": lambda: a.send_bytes(b"x"),
            "recv_bytes": a.recv_bytes,
            "recv_bytes_into": lambda: a.recv_bytes_into(bytearray(16)),
            "poll": a.poll,
            "fileno": a.fileno,
        }
        with pytest.raises(OSError):
            calls[use]()
        a.close()  # closing twice is harmless
        assert a.closed


@pytest.mark.in_one_process
def test_connection_is_a_context_manager(ctx: procframe.Context) -> None:
    a, b = ctx.Pipe()
    with a as entered:
        assert entered is a
        assert not a.closed
    assert a.closed
    with b, pytest.raises(EOFError):
        b.recv()  # the peer closed on leaving the block
    assert b.closed


@pytest.mark.in_one_process
def test_send_bytes_takes_any_buffer_with_offset_and_size(ctx: procframe.Context) -> None:
    reader, writer = ctx.Pipe(duplex=False)
    with reader, writer:
        writer.send_bytes(b"abcdefgh", 2)
        assert reader.recv_bytes() == b"cdefgh"
        writer.send_bytes(b"abcdefgh", 2, 3)
        assert reader.recv_bytes() == b"cde"
        writer.send_bytes(bytearray(b"xyz"), size=2)
        assert reader.recv_bytes() == b"xy"
        writer.send_bytes(memoryview(b"0123456789")[5:])
        assert reader.recv_bytes() == b"56789"
        ints = array.array("i", [1, 2, 3, 4])
        writer.send_bytes(ints, 4, 8)  # offset and size count bytes, whatever the item size
        assert reader.recv_bytes() == ints.tobytes()[4:12]
        writer.send_bytes(b"abc", 3)
        assert reader.recv_bytes() == b""
        for offset, size in [(-1, None), (4, None), (0, -1), (1, 3)]:
            with pytest.raises(ValueError):
                writer.send_bytes(b"abc", offset, size)
        assert not reader.poll(0)  # a refused send wrote nothing


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_recv_bytes_into_fills_the_buffer_and_reports_too_short(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _one_way(ctx, kind, tmp_path) as (reader, writer):
        buf = bytearray(10)
        writer.send_bytes(b"hello")
        assert reader.recv_bytes_into(buf) == 5
        assert buf == b"hello\x00\x00\x00\x00\x00"
        writer.send_bytes(b"abc")
        assert reader.recv_bytes_into(buf, 6) == 3
        assert buf == b"hello\x00abc\x00"
        ints = array.array("i", [0, 0, 0])
        writer.send_bytes(array.array("i", [7, 8]))
        assert reader.recv_bytes_into(ints, ints.itemsize) == 2 * ints.itemsize  # offset: bytes
        assert ints.tolist() == [0, 7, 8]
        writer.send_bytes(b"far too long for it")
        with pytest.raises(procframe.BufferTooShort) as info:
            reader.recv_bytes_into(bytearray(4))
        assert info.value.args[0] == b"far too long for it"
        writer.send_bytes(b"abc")
        with pytest.raises(procframe.BufferTooShort) as info:
            reader.recv_bytes_into(bytearray(4), 2)
        assert info.value.args[0] == b"abc"
        writer.send_bytes(b"next")  # the stream is still in step
        assert reader.recv_bytes() == b"next"


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_recv_bytes_with_maxlength_refuses_a_longer_message(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _one_way(ctx, kind, tmp_path) as (reader, writer):
        writer.send_bytes(b"x" * 100)
        assert reader.recv_bytes(100) == b"x" * 100
        writer.send_bytes(b"y" * 101)
        with pytest.raises(OSError):
            reader.recv_bytes(100)


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_poll(ctx: procframe.Context, kind: str, tmp_path: Path) -> None:
    with _duplex(ctx, kind, tmp_path) as (a, b):
        assert a.poll() is False
        assert a.poll(0) is False
        start = time.monotonic()
        assert a.poll(0.2) is False
        assert time.monotonic() - start >= 0.18
        b.send("x")
        assert a.poll() is True
        assert a.poll(None) is True
        assert a.poll(0.2) is True
        assert a.poll() is True  # polling consumes nothing
        assert a.recv() == "x"
        assert a.poll() is False


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_poll_and_wait_see_messages_already_read_into_user_space(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _duplex(ctx, kind, tmp_path) as (a, b):
        for i in range(3):
            b.send(i)
        assert a.recv() == 0
        # The other two may already sit in a's buffer, not in the kernel's.
        assert a.poll(0) is True
        assert wait([a], 0) == [a]
        assert a.recv() == 1
        assert a.poll(0) is True
        assert wait([a], 0) == [a]
        assert a.recv() == 2
        assert a.poll(0) is False
        assert wait([a], 0) == []


@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_eof_once_the_peer_closed_and_the_data_is_consumed(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _duplex(ctx, kind, tmp_path) as (a, b):
        b.send(1)
        b.send_bytes(b"two")
        b.close()
        assert a.poll(0) is True
        assert a.recv() == 1
        assert a.recv_bytes() == b"two"
        assert a.poll(0) is True  # end of file is "ready"
        with pytest.raises(EOFError):
            a.recv()
        with pytest.raises(EOFError):
            a.recv_bytes()
        with pytest.raises(EOFError):
            a.recv_bytes_into(bytearray(8))


@pytest.mark.requires("passes_descriptors")
@pytest.mark.in_one_process
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_wire_format_is_a_big_endian_length_prefix(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _one_way(ctx, kind, tmp_path) as (reader, writer):
        writer.send_bytes(b"hello")
        assert os.read(reader.fileno(), 100) == struct.pack("!I", 5) + b"hello"
        writer.send("obj")
        raw = os.read(reader.fileno(), 1000)
        (size,) = struct.unpack("!I", raw[:4])
        assert size == len(raw) - 4
        assert pickle.loads(raw[4:]) == "obj"
        # The 8-byte form must be understood whatever the size.
        os.write(writer.fileno(), struct.pack("!IQ", 0xFFFFFFFF, 5) + b"world")
        assert reader.recv_bytes() == b"world"
        os.write(writer.fileno(), struct.pack("!I", 3) + b"abc")
        assert reader.recv_bytes() == b"abc"


@pytest.mark.requires("passes_descriptors")
@pytest.mark.in_one_process
@pytest.mark.parametrize("how", ["recv", "recv_bytes", "recv_bytes_maxlength", "recv_bytes_into"])
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_an_absurd_length_prefix_is_refused_before_allocating(
    ctx: procframe.Context, how: str, kind: str, tmp_path: Path
) -> None:
    with _one_way(ctx, kind, tmp_path) as (reader, writer):
        os.write(writer.fileno(), BIG_HEADER + b"some bytes")
        writer.close()  # an implementation that tries to read it all meets EOF, not a hang
        receive = {
            "recv": reader.recv,
            "recv_bytes": reader.recv_bytes,
            "recv_bytes_maxlength": lambda: reader.recv_bytes(100),
            "recv_bytes_into": lambda: reader.recv_bytes_into(bytearray(100)),
        }[how]
        with pytest.raises(OSError):
            receive()


# -- across processes -------------------------------------------------------------


def test_the_documented_pipe_example_prints_what_the_child_sent(
    procframe_backend: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        from procframe import Process, Pipe

        def f(conn):
            conn.send([42, None, 'hello'])
            conn.close()

        if __name__ == '__main__':
            parent_conn, child_conn = Pipe()
            p = Process(target=f, args=(child_conn,))
            p.start()
            print(parent_conn.recv())   # prints "[42, None, 'hello']"
            p.join()
        """,
        procframe_backend,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "[42, None, 'hello']\n", "")


@pytest.mark.core
@PASSES_DESCRIPTORS
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_objects_bigger_than_the_pipe_buffer_cross_both_ways(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    with _duplex(ctx, kind, tmp_path) as (mine, theirs):
        p = ctx.Process(target=exchange.echo_once, args=(theirs,))
        p.start()
        theirs.close()
        try:
            obj = {"data": os.urandom(MIB), "list": list(range(50_000)), "text": "é" * 1000}
            mine.send(obj)
            assert mine.poll(60)
            assert mine.recv() == obj
            with pytest.raises(EOFError):
                mine.recv()  # the child closed its end
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


@PASSES_DESCRIPTORS
def test_one_way_ends_cross_to_a_child_and_eof_propagates(ctx: procframe.Context) -> None:
    r1, w1 = ctx.Pipe(duplex=False)
    r2, w2 = ctx.Pipe(duplex=False)
    with w1, r2:
        p = ctx.Process(target=exchange.forward_until_none, args=(r1, w2))
        p.start()
        r1.close()
        w2.close()
        try:
            items = ["a", 2, {"three": 3}, b"x" * 100_000]
            for item in items:
                w1.send(item)
            w1.send(None)  # the child stops, closes w2 and exits: r2 sees EOF
            assert [r2.recv() for _ in items] == items
            assert r2.poll(60)
            with pytest.raises(EOFError):
                r2.recv()
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


@PASSES_DESCRIPTORS
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_a_burst_of_messages_of_awkward_sizes(
    ctx: procframe.Context, kind: str, tmp_path: Path
) -> None:
    count = 3 * len(exchange.BURST_SIZES)
    with _duplex(ctx, kind, tmp_path) as (mine, theirs):
        p = ctx.Process(target=exchange.send_burst, args=(theirs, count))
        p.start()
        theirs.close()
        try:
            assert mine.poll(60)
            for i in range(count):
                expected = exchange.burst_message(i)
                if i % 3 == 0:
                    assert mine.recv_bytes() == expected, i
                elif i % 3 == 1:
                    buf = bytearray(len(expected) + 7)
                    assert mine.recv_bytes_into(buf, 7) == len(expected), i
                    assert buf[7:] == expected, i
                else:
                    assert mine.recv_bytes(len(expected)) == expected, i
            with pytest.raises(EOFError):
                mine.recv_bytes()
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


@pytest.mark.parametrize(
    "kind",
    # a Listener's connection reaches a child as a descriptor of this machine
    ["pipe", pytest.param("socket", marks=pytest.mark.requires("passes_descriptors"))],
)
def test_a_connection_handed_to_a_child_after_a_partial_read(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    # multiprocessing reads exactly one message per recv(); messages not yet received
    # stay available to whichever process receives next, read-ahead or not.
    out = tmp_path / "out"
    with _duplex(ctx, kind, tmp_path) as (a, b):
        for i in range(4):
            b.send(i)
        assert a.recv() == 0
        p = ctx.Process(target=exchange.recv_n, args=(a, 3, str(out)))
        p.start()
        try:
            p.join(60)
            assert p.exitcode == 0, "the child never received the messages the parent left"
        finally:
            exchange.reap(p)
    assert read_report(out) == {"error": None, "got": [1, 2, 3]}


@pytest.mark.timeout(120)
@PASSES_DESCRIPTORS
def test_a_256_mib_message(ctx: procframe.Context) -> None:
    size = 256 * MIB
    mine, theirs = ctx.Pipe()
    with mine:
        p = ctx.Process(target=exchange.send_big_bytes, args=(theirs, size))
        p.start()
        theirs.close()
        try:
            assert mine.poll(60)
            digest = mine.recv()
            data = mine.recv_bytes()
            assert len(data) == size
            assert hashlib.sha256(data).hexdigest() == digest
            del data
            p.join(60)
        finally:
            exchange.reap(p)
        assert p.exitcode == 0


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(struct.pack("!I", 1000)[:2], id="in-header"),
        pytest.param(struct.pack("!I", 1000) + b"x" * 10, id="in-body"),
        pytest.param(struct.pack("!IQ", 0xFFFFFFFF, 1000) + b"x" * 10, id="in-body-8-byte-header"),
        pytest.param(struct.pack("!I", 1000) + pickle.dumps(list(range(500)))[:500], id="pickle"),
    ],
)
@pytest.mark.parametrize("how", ["recv", "recv_bytes"])
@PASSES_DESCRIPTORS
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_a_message_cut_short_by_a_dying_peer_raises_eoferror(
    ctx: procframe.Context, raw: bytes, how: str, kind: str, tmp_path: Path
) -> None:
    with _one_way(ctx, kind, tmp_path) as (reader, writer):
        p = ctx.Process(target=exchange.write_raw_and_die, args=(writer, raw))
        p.start()
        writer.close()
        try:
            p.join(60)
            assert p.exitcode == 0
            assert reader.poll(60)
            with pytest.raises(EOFError):
                getattr(reader, how)()
        finally:
            exchange.reap(p)


@pytest.mark.requires("posix_signals", "passes_descriptors")
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_a_killed_peer_gives_eof_after_its_buffered_messages(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    ready = tmp_path / "ready"
    with _duplex(ctx, kind, tmp_path) as (mine, theirs):
        p = ctx.Process(target=exchange.send_then_sleep, args=(theirs, [1, "two", 3.0], str(ready)))
        p.start()
        theirs.close()
        try:
            read_report(ready, timeout=60)
            p.kill()
            p.join(60)
            assert [mine.recv(), mine.recv(), mine.recv()] == [1, "two", 3.0]
            assert mine.poll(60)
            with pytest.raises(EOFError):
                mine.recv()
        finally:
            exchange.reap(p)


# -- procframe.connection.wait ---------------------------------------------------------


@pytest.mark.in_one_process
def test_wait_returns_the_ready_connections(ctx: procframe.Context) -> None:
    a, b = ctx.Pipe()
    c, d = ctx.Pipe()
    with a, b, c, d:
        start = time.monotonic()
        assert wait([a, c], 0.2) == []
        assert time.monotonic() - start >= 0.18
        assert wait([a, c], 0) == []
        d.send("to c")
        assert wait([a, c], 0) == [c]
        assert wait([a, c], None) == [c]
        b.send("to a")
        assert _which(wait([a, c], 10), {"a": a, "c": c}) == ["a", "c"]
        assert c.recv() == "to c"
        assert wait([a, c]) == [a]
        assert a.recv() == "to a"
        assert wait([a, c], 0) == []
        assert wait([], 0) == []


@pytest.mark.in_one_process
def test_wait_counts_a_closed_peer_as_ready(ctx: procframe.Context) -> None:
    a, b = ctx.Pipe()
    with a:
        assert wait([a], 0) == []
        b.close()
        assert wait([a], 10) == [a]
        with pytest.raises(EOFError):
            a.recv()


@PASSES_DESCRIPTORS
def test_wait_blocks_until_a_child_sends(ctx: procframe.Context) -> None:
    mine, theirs = ctx.Pipe()
    with mine:
        p = ctx.Process(target=exchange.sleep_then_send, args=(theirs, 0.2, "late"))
        p.start()
        theirs.close()
        try:
            assert wait([mine], 60) == [mine]
            assert mine.recv() == "late"
            p.join(60)
        finally:
            exchange.reap(p)


@pytest.mark.requires("posix_signals")
def test_wait_takes_sockets_descriptors_and_sentinels(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ready_path = tmp_path / "ready"
    s1, s2 = socket.socketpair()
    r, w = os.pipe()
    a, b = ctx.Pipe()
    p = ctx.Process(target=targets.sleep_forever, args=(str(ready_path),))
    try:
        p.start()
        read_report(ready_path, timeout=60)
        named = {"socket": s2, "fd": r, "conn": a, "sentinel": p.sentinel}
        objects = list(named.values())
        assert wait(objects, 0) == []
        s1.send(b"x")
        assert _which(wait(objects, 10), named) == ["socket"]
        os.write(w, b"x")
        assert _which(wait(objects, 10), named) == ["fd", "socket"]
        assert s2.recv(1) == b"x" and os.read(r, 1) == b"x"
        p.kill()
        assert _which(wait(objects, 60), named) == ["sentinel"]
        b.send(None)
        assert _which(wait(objects, 10), named) == ["conn", "sentinel"]
    finally:
        exchange.reap(p)
        for closeable in (s1, s2, a, b):
            closeable.close()
        os.close(r)
        os.close(w)

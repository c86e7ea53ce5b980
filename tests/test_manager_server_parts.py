"""The parts of a manager's server: the framer of its connections, its pool of threads, and
what owns its locks (the behaviour through proxies is in the suite's test_managers_load)."""

from __future__ import annotations

import os
import pickle
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from procframe.managers import _framing, _ownership, _workers
from procframe.posix.connection import MAX_MESSAGE_SIZE, message_header
from procframe.testing.helpers.polling import eventually

PATIENCE = 30.0


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def frame(payload: bytes) -> bytes:
    return message_header(len(payload)) + payload


# -- the framer -------------------------------------------------------------------------


def drain(framer: _framing.Framer, fd: int) -> None:
    """Read all there is now from the non-blocking ``fd``."""
    try:
        while framer.read_from(fd):
            pass
    except BlockingIOError:
        pass


def test_messages_cut_anywhere_arrive_whole_and_in_order(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.set_blocking(read_end, False)
    payloads = [b"", b"x", pickle.dumps(list(range(50))), os.urandom(_framing.CHUNK * 2 + 7)]
    stream = b"".join(frame(p) for p in payloads)
    for step in (1, 3, 4096, 65536):
        framer = _framing.Framer()
        got = []
        for start in range(0, len(stream), step):
            os.write(write_end, stream[start : start + step])
            drain(framer, read_end)
            while framer.messages:
                got.append(bytes(framer.messages.popleft()))
        assert got == payloads
        assert not framer.mid_message


def test_an_absurd_length_prefix_is_refused(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, struct.pack("!IQ", 0xFFFFFFFF, MAX_MESSAGE_SIZE + 1))
    with pytest.raises(_framing.CorruptStream, match="length prefix is corrupt"):
        _framing.Framer().read_from(read_end)


def test_a_big_message_grows_with_its_bytes_not_its_prefix(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.set_blocking(read_end, False)
    framer = _framing.Framer()
    os.write(write_end, struct.pack("!IQ", 0xFFFFFFFF, 8 << 30))
    sent = 0
    while sent < 3 * _framing.GROWTH_FLOOR:
        os.write(write_end, bytes(60_000))
        sent += 60_000
        drain(framer, read_end)
        # At most twice what arrived, plus a floor: never the 8 GiB announced.
        assert framer.buffered() <= 2 * sent + _framing.GROWTH_FLOOR
    assert framer.mid_message and not framer.messages
    os.close(write_end)
    assert framer.read_from(read_end) == 0
    assert "middle of a message" in str(framer.eof_error())


# -- the pool ---------------------------------------------------------------------------


def test_the_pool_runs_at_most_its_limit_until_jobs_step_aside() -> None:
    pool = _workers.WorkerPool(limit=2, name="test-worker")
    release = threading.Event()
    running = []
    done = []

    def block(step_aside: bool) -> None:
        running.append(1)
        if step_aside:
            _workers.step_aside()
        release.wait(PATIENCE)
        done.append(1)

    try:
        for _ in range(2):
            assert pool.submit(lambda: block(False))
        assert eventually(lambda: len(running) == 2)
        assert pool.submit(lambda: done.append("quick"))
        time.sleep(0.1)
        assert "quick" not in done and pool.backlogged()  # two counted threads, both busy
        time.sleep(_workers.STALLED_AFTER)
        pool.relieve()  # they ran too long while a job waits: counted out
        assert eventually(lambda: "quick" in done)
        for _ in range(4):  # jobs that step aside do not count against the limit
            assert pool.submit(lambda: block(True))
        assert eventually(lambda: len(running) == 6)
    finally:
        release.set()
        pool.stop()
    assert eventually(lambda: pool.thread_count() == 0)
    assert not pool.submit(lambda: None)


def test_a_threading_rlock_registered_by_a_user_is_owned_by_callers() -> None:
    assert _ownership.owned_by_callers(threading.RLock) is _ownership.CallerRLock
    assert _ownership.owned_by_callers(threading.Condition) is _ownership.caller_condition
    assert _ownership.owned_by_callers(dict) is dict
    lock = _ownership.CallerRLock()
    link = object()
    _ownership.serving.link = link
    try:
        assert lock.acquire() and lock.acquire()
    finally:
        _ownership.serving.link = None
    assert not lock.acquire(False)  # another caller (this thread on its own behalf)
    with pytest.raises(RuntimeError):
        lock.release()
    _ownership.serving.link = link
    try:
        lock.release()
        lock.release()
    finally:
        _ownership.serving.link = None
    assert lock.acquire(False)
    lock.release()

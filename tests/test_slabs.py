"""Slabs and big messages: when a slab is reused, what a message becomes, what is refused."""

from __future__ import annotations

import gc
import os
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from procframe._core import messages, osutil, slabs
from procframe.posix.connection import Pipe

PATIENCE = 10.0
BIG = messages.OUT_OF_BAND_MIN


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    slabs.drop_cache()
    yield
    slabs.drop_cache()  # the suite's leak checks count this process's slabs


def _round_trip(obj: object, inline_max: int = 4096) -> object:
    message = messages.dumps(obj, inline_max)
    if isinstance(message, bytes):
        return pickle.loads(message)
    return messages.loads(message.detach())


def test_a_slab_is_reused_once_no_hand_over_of_it_is_alive() -> None:
    slab = slabs.take(BIG)
    handed = slab.hand_over()
    slabs.give_back(slab, BIG)
    other = slabs.take(BIG)
    assert other is not slab  # a hand-over is alive: a message in flight, or a mapping
    slabs.give_back(other, BIG)
    os.close(handed)
    again = slabs.take(BIG)
    slabs.give_back(again, BIG)
    assert again is slab


def test_a_received_buffer_holds_its_slab_until_it_is_collected() -> None:
    data = memoryview(bytearray(b"x" * (2 * messages.MAP_MIN)))
    received = _round_trip(data)
    assert isinstance(received, memoryview) and received == data
    size = 2 * messages.MAP_MIN + 4096  # the same capacity as the message's slab
    fresh = slabs.take(size)  # the slab that carried it is still held
    slabs.give_back(fresh, 0)
    del received
    gc.collect()
    again = slabs.take(size)
    assert again is not fresh  # the older one, free now, comes first
    slabs.give_back(again, 0)


def test_small_messages_stay_pickles_and_big_ones_become_slabs() -> None:
    assert isinstance(messages.dumps(b"x" * 100, 4096), bytes)
    assert isinstance(messages.dumps(b"x" * BIG, 10 * BIG), messages.Outbound)
    assert isinstance(messages.dumps(["y" * 5000], 4096), messages.Outbound)
    assert isinstance(messages.dumps(["y" * 5000], 10_000), bytes)


@pytest.mark.parametrize(
    "obj",
    [
        b"b" * BIG,
        bytearray(b"a" * BIG),
        [b"n" * BIG, (b"m" * BIG, 3), "text"],
        {"key": b"d" * (3 * BIG)},
        "s" * (5 * BIG),
    ],
    ids=["bytes", "bytearray", "nested", "in-a-dict", "str"],
)
def test_big_messages_round_trip_with_their_types(obj: object) -> None:
    back = _round_trip(obj)
    assert back == obj
    assert type(back) is type(obj)


def test_memoryviews_keep_format_shape_and_read_only() -> None:
    words = memoryview(bytearray(range(256)) * 1024).cast("I", (256, 256))
    back = _round_trip(words)
    assert isinstance(back, memoryview)
    assert (back.format, back.shape, back.readonly) == ("I", (256, 256), False)
    assert back.tobytes() == words.tobytes()
    frozen = _round_trip(memoryview(b"r" * BIG))
    assert isinstance(frozen, memoryview) and frozen.readonly and frozen == b"r" * BIG
    strided = memoryview(bytearray(range(256)) * 1024)[::2]
    assert _round_trip(strided) == strided  # not contiguous: its bytes, in order


def test_numpy_arrays_cross_out_of_band_whatever_their_layout() -> None:
    np = pytest.importorskip("numpy")
    c_order = np.arange(512 * 1024, dtype=np.float64).reshape(512, 1024)
    for array in (c_order, np.asfortranarray(c_order), c_order[:, ::3], c_order.T[::2]):
        back = _round_trip(array)
        assert isinstance(back, np.ndarray)
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
        back[...] = 0  # the receiver's own copy
    assert c_order[1, 1] == 1025.0


def test_a_slab_that_is_not_a_message_is_refused_clearly() -> None:
    fd = osutil.anonymous_memory("not-a-slab", 4096)
    with pytest.raises(OSError, match="big message cannot be read"):
        messages.loads(fd)
    with pytest.raises(OSError):
        os.fstat(fd)  # closed, whatever happened


def test_a_forked_child_starts_without_its_parents_slabs() -> None:
    slabs.give_back(slabs.take(BIG), BIG)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 2
        try:
            code = 0 if slabs._cache._count == 0 else 1
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_slabs_idle_too_long_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slabs, "IDLE_SECONDS", 0.0)
    slab = slabs.take(BIG)
    slabs.give_back(slab, BIG)
    other = slabs.take(BIG)
    slabs.give_back(other, BIG)
    assert other is not slab
    assert slab.mapping.closed


def test_the_cache_keeps_at_most_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slabs, "CACHE_BYTES", 3 * BIG)
    taken = [slabs.take(BIG) for _ in range(5)]
    for slab in taken:
        slabs.give_back(slab, BIG)
    assert [slab.mapping.closed for slab in taken] == [True, True, False, False, False]


def test_recv_bytes_refuses_a_big_message_longer_than_maxlength() -> None:
    reader, writer = Pipe(duplex=False)
    with reader, writer:
        writer.send_bytes(b"z" * (2 * BIG))
        with pytest.raises(OSError, match="maxlength"):
            reader.recv_bytes(BIG)


def test_a_pipe_holds_only_a_few_unread_big_messages() -> None:
    reader, writer = Pipe(duplex=False)
    sent: list[int] = []

    def send_many() -> None:
        for i in range(20):
            writer.send(b"%d" % i + b"." * BIG)
            sent.append(i)

    sender = threading.Thread(target=send_many)
    with reader, writer:
        sender.start()
        sender.join(0.5)
        assert sender.is_alive()  # blocked: a fast sender does not pile slabs up
        assert 0 < len(sent) < 20
        received = [reader.recv() for _ in range(20)]
        sender.join(PATIENCE)
    assert not sender.is_alive()
    assert [r[:3].rstrip(b".") for r in received] == [b"%d" % i for i in range(20)]


def _inode(message: messages.Outbound) -> int:
    return os.fstat(message.fd).st_ino


def _received_array() -> tuple[Any, Any, int]:
    """An array, the same array received through a slab, and the slab's inode."""
    np = pytest.importorskip("numpy")
    original = np.arange(4 * messages.MAP_MIN // 8, dtype=np.float64)
    first = messages.dumps(original, 4096)
    assert isinstance(first, messages.Outbound)
    slab = _inode(first)
    return original, messages.loads(first.detach()), slab


def test_a_received_array_sent_on_unchanged_crosses_in_the_same_slab() -> None:
    np = pytest.importorskip("numpy")
    original, received, slab = _received_array()
    assert float(received[::512].sum()) == float(original[::512].sum())  # pages read
    again = messages.dumps(received, 4096)
    assert isinstance(again, messages.Outbound) and _inode(again) == slab  # no copy
    np.testing.assert_array_equal(messages.loads(again.detach()), original)


@pytest.mark.parametrize("change", ["a value", "the shape"])
def test_a_received_array_changed_since_is_copied_as_it_is_now(change: str) -> None:
    np = pytest.importorskip("numpy")
    _, received, slab = _received_array()
    if change == "a value":
        received[12345] = -1.0
    else:
        received = received.reshape(2, -1)  # a view of the same mapping, another shape
    again = messages.dumps(received, 4096)
    assert isinstance(again, messages.Outbound) and _inode(again) != slab
    np.testing.assert_array_equal(messages.loads(again.detach()), received)


def test_big_messages_sent_by_threads_at_once_all_arrive() -> None:
    """Records and marks of two sending threads may interleave: none is lost or waited for."""
    reader, writer = Pipe(duplex=False)

    def send(tag: bytes) -> None:
        for i in range(15):
            writer.send(tag + b"%02d" % i + b"." * BIG)

    senders = [threading.Thread(target=send, args=(tag,)) for tag in (b"a", b"b")]
    with reader, writer:
        for sender in senders:
            sender.start()
        received = []
        for _ in range(30):
            assert reader.poll(PATIENCE), f"only {len(received)} of 30 arrived"
            received.append(reader.recv()[:3])
        for sender in senders:
            sender.join(PATIENCE)
    assert sorted(received) == sorted(tag + b"%02d" % i for tag in (b"a", b"b") for i in range(15))

"""Queues whose consumers and producers are killed while big items move (issue 13, item 1).

A big item travels as a look packet in the queue's pipe and a record in a side
socket.  A consumer killed after it took a look packet must not strand the
record (orphans would fill the side socket until puts block), and a reader
whose record died with another consumer must get ``ItemLostError`` within the
bound, without spinning while it waits.  The kill storm at the end is the
probe that found both: producers and consumers of small and big items are
SIGKILLed at random while items move.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe.posix import channel
from procframe.posix.channel import ItemLostError
from procframe.testing.helpers import exchange, queue_kills, stress
from procframe.testing.helpers.targets import noop, read_report

KINDS = ["Queue", "SimpleQueue"]
PATIENCE = 60.0
"""Seconds any single wait of these tests may take on a loaded machine."""


def _queue(ctx: procframe.Context, kind: str) -> Any:
    q = getattr(ctx, kind)()
    if not queue_kills.has_side_records(q):
        q.close()
        pytest.skip("this backend's queues carry no look packets and side records")
    return q


def _within(seconds: float, function: Any, *args: Any) -> Any:
    """``function(*args)`` in a thread; its result, or AssertionError if it is still
    running (blocked) after ``seconds``."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(function(*args)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(function, '__name__', function)} blocked"
    assert outcome, "the call raised (see the thread's traceback above)"
    return outcome[0]


def _put_all(q: Any, items: list[Any]) -> bool:
    for item in items:
        q.put(item)
    return True


def _get_all(q: Any, count: int) -> list[Any]:
    timed = hasattr(q, "qsize")
    return [q.get(timeout=PATIENCE) if timed else q.get() for _ in range(count)]


def _big(n: int) -> tuple[int, bytes]:
    return n, bytes([n % 251]) * (queue_kills.BIG + n % 1000)


def _close(q: Any) -> None:
    if hasattr(q, "cancel_join_thread"):
        q.cancel_join_thread()
    q.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


# -- consumers killed at a chosen step --------------------------------------------------


@pytest.mark.requires("posix_signals", "separate_memory")
@pytest.mark.parametrize("kind", KINDS)
def test_puts_of_big_items_go_on_after_many_consumers_died_holding_a_look_packet(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    """180 consumers killed right after taking a look packet: more than the ~140
    stranded records that filled the side socket for good before the fix."""
    rounds, per_round = 6, 30
    q = _queue(ctx, kind)
    try:
        for r in range(rounds):
            batch = [_big(r * per_round + i) for i in range(per_round)]
            assert _within(PATIENCE, _put_all, q, batch), "a put of a big item blocked"
            ready = tmp_path / f"ready{r}"
            taker = ctx.Process(
                target=queue_kills.take_looks_then_wait, args=(q, per_round, str(ready))
            )
            try:
                taker.start()
                assert read_report(ready, timeout=PATIENCE) == per_round
                taker.kill()
                taker.join(PATIENCE)
            finally:
                exchange.reap(taker)
        later = [_big(10_000 + i) for i in range(per_round)] + [("small", i) for i in range(5)]
        assert _within(PATIENCE, _put_all, q, later), "a put of a big item blocked"
        got = _within(2 * PATIENCE, _get_all, q, len(later))
        assert got == later, "the items of killed consumers came out, or later ones did not"
    finally:
        _close(q)


@pytest.mark.requires("posix_signals", "separate_memory")
@pytest.mark.parametrize("kind", KINDS)
def test_a_reader_whose_record_died_with_a_consumer_gets_item_lost_error_without_spinning(
    ctx: procframe.Context, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other records wait in the side socket all along: before the fix the reader took
    and handed them back for ever, at 100% CPU, and never raised."""
    bound = 1.5
    monkeypatch.setattr(channel, "LOST_ITEM_TIMEOUT", bound)
    q = _queue(ctx, kind)
    try:
        first, second, third = _big(1), _big(2), _big(3)
        _put_all(q, [first, second, third])
        ready = tmp_path / "ready"
        holder = ctx.Process(target=queue_kills.take_record_then_wait, args=(q, str(ready)))
        try:
            holder.start()
            assert read_report(ready, timeout=PATIENCE) is True
            holder.kill()
            holder.join(PATIENCE)
        finally:
            exchange.reap(holder)
        timeout = None if kind == "SimpleQueue" else PATIENCE
        outcome = _within(bound + PATIENCE / 2, queue_kills.get_measured, q, timeout)
        assert isinstance(outcome["error"], ItemLostError), outcome["error"] or outcome["got"]
        assert isinstance(outcome["error"], OSError)
        assert bound * 0.9 <= outcome["wall"] <= bound + 10, outcome
        assert outcome["cpu"] < 0.25 * outcome["wall"], f"the reader spun: {outcome}"
        assert _within(PATIENCE, _get_all, q, 2) == [second, third]
    finally:
        _close(q)


# -- the kill storm ---------------------------------------------------------------------


@pytest.mark.stress
@pytest.mark.requires("posix_signals", "separate_memory")
@pytest.mark.parametrize("kind", KINDS)
def test_a_kill_storm_loses_only_what_killed_consumers_took(
    ctx: procframe.Context, tmp_path: Path, kind: str
) -> None:
    """Producers and consumers of small and big (8 KiB to 1 MiB) items, SIGKILLed at
    random while items move: nothing duplicated or damaged, every loss explained by a
    consumer kill, no hang, descriptors flat."""
    # What a first use keeps for the process's life (shared arenas, an open /dev/null for
    # children's stdin) is no leak.
    _queue(ctx, kind).close()
    ctx.Event(), ctx.RawArray("q", 8)
    first = ctx.Process(target=noop)
    first.start()
    first.join(PATIENCE)
    first.close()
    gc.collect()
    fds_before = _open_fds()
    started = time.monotonic()
    bound = channel.LOST_ITEM_TIMEOUT if stress.full_size() else 2.0
    kills, logs, confirmed = _storm(ctx, kind, tmp_path, stress.seconds(1.0, 240.0), bound)
    gc.collect()
    fds_after = _open_fds()
    received: Counter[tuple[int, int]] = Counter()
    damaged = lost_errors = 0
    longest_lost_wait = 0.0
    for log in map(Path, logs):
        lines = log.read_text().splitlines() if log.exists() else []  # killed before a get
        for line in lines:
            if line.startswith("lost "):
                lost_errors += 1
                longest_lost_wait = max(longest_lost_wait, float(line.split()[1]))
            elif line.startswith("bad "):
                damaged += 1
            else:
                source, seq = map(int, line.split())
                received[source, seq] += 1
    duplicated = sum(n - 1 for n in received.values() if n > 1)
    # An item is surely in the queue once its put returned (SimpleQueue), or once a later
    # item of its producer came out (a Queue may hold its last ones in the producer).
    surely_sent = dict(enumerate(confirmed))
    for source, seq in received:
        surely_sent[source] = max(surely_sent.get(source, 0), seq + 1)
    missing = sum(
        1
        for source, sent in surely_sent.items()
        for seq in range(sent)
        if (source, seq) not in received
    )
    summary = (
        f"{kind}: {sum(received.values())} items moved in {time.monotonic() - started:.0f} s, "
        f"kills {dict(kills)}, lost {missing} (ItemLostError {lost_errors}, "
        f"the longest after {longest_lost_wait:.1f} s), "
        f"duplicated {duplicated}, damaged {damaged}, descriptors {fds_before} -> {fds_after}"
    )
    print(summary)
    assert duplicated == 0 and damaged == 0, summary
    # A killed consumer takes at most the item it was handling and one record it held
    # while looking for its own (which another reader then reports as lost).
    assert missing <= 2 * kills["consumer"], summary
    assert lost_errors <= kills["consumer"] + kills["producer"], summary
    assert longest_lost_wait < bound + 10.0, summary  # a get that found the queue empty
    assert received, summary
    assert fds_after <= fds_before, summary


def _storm(
    ctx: procframe.Context, kind: str, tmp_path: Path, duration: float, lost_bound: float
) -> tuple[Counter[str], list[str], list[int]]:
    """Run the storm for ``duration`` seconds (consumers declare an item lost after
    ``lost_bound``), then end it cleanly: return the kills per role, the consumers'
    logs, and per producer run the puts that returned (SimpleQueue)."""
    rng = random.Random(13)
    q = _queue(ctx, kind)
    done = ctx.RawArray("q", stress.size(200, 20_000))  # puts returned, per producer run
    stop = ctx.Event()
    logs: list[str] = []
    sources = iter(range(len(done)))
    kills: Counter[str] = Counter()
    running: dict[str, list[Any]] = {"producer": [], "consumer": []}
    everyone: list[Any] = []

    def start(role: str) -> None:
        if role == "producer":
            args: tuple[Any, ...] = (q, next(sources), done, stop)
            target = queue_kills.storm_produce
        else:
            logs.append(str(tmp_path / f"consumer{len(logs)}.log"))
            args, target = (q, logs[-1], lost_bound), queue_kills.storm_consume
        p = ctx.Process(target=target, args=args, daemon=True)
        everyone.append(p)
        p.start()
        running[role].append(p)

    try:
        for role in ["producer"] * 2 + ["consumer"] * 3:
            start(role)
        deadline = time.monotonic() + PATIENCE
        while not any(os.path.exists(log) and os.path.getsize(log) for log in logs):
            assert time.monotonic() < deadline, "no item moved before the first kill"
            time.sleep(0.01)
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(rng.uniform(0.02, 0.15))
            role = rng.choice(["producer", "consumer", "consumer"])
            victim = running[role].pop(rng.randrange(len(running[role])))
            victim.kill()
            victim.join(PATIENCE)
            kills[role] += 1
            start(role)
        stop.set()
        for p in running["producer"]:
            p.join(PATIENCE)
            assert p.exitcode == 0, f"a producer hung or failed: exit code {p.exitcode}"
        assert _within(PATIENCE, _put_all, q, [None] * len(running["consumer"]))
        for p in running["consumer"]:
            p.join(PATIENCE)
            assert p.exitcode == 0, f"a consumer hung or failed: exit code {p.exitcode}"
    finally:
        stop.set()
        exchange.reap(*everyone)
        for p in everyone:
            p.close()
        _close(q)
    confirmed = list(done) if kind == "SimpleQueue" else []
    return kills, logs, confirmed

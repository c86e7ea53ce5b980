"""Managers under load: start/stop loops, many idle clients, hostile lengths, blocked callers.

* Starting and shutting down a manager leaves nothing behind: no descriptor,
  no child, no entry in procframe's registries, not the server's Process
  object, even when its server was killed and a proxy failed.
* An idle authenticated connection costs the server no thread: thousands
  of them are served by a bounded number of threads, in bounded memory, while
  a legitimate round trip stays fast.
* A length prefix above the limit of every connection is refused and its
  connection closed; an announced size below it costs only the bytes that came.
* More callers blocked in the server than its pool has threads do not keep
  anyone else from being served.

The probes (marked ``stress``) run small in every run and at the issue's
sizes with ``--procframe-stress``; each prints one ``PROBE`` line of numbers.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

import procframe
from procframe.managers._workers import RUNNING_LIMIT
from procframe.testing.helpers import managers_load as load
from procframe.testing.helpers import stress
from procframe.testing.helpers.polling import eventually

pytestmark = [
    pytest.mark.requires("manager_server"),
    pytest.mark.timeout(stress.seconds(120, stress.FULL_TIMEOUT)),
]

PATIENCE = 60.0
MAX_SERVER_THREADS = 64
MAX_SERVER_MEMORY = 200 << 20
SLACK = 0.02
"""Seconds a loaded machine may add to a round trip's median, on top of twice the idle one."""


def _probe(name: str, backend: str, **numbers: Any) -> None:
    shown = " ".join(f"{key}={value}" for key, value in numbers.items())
    print(f"PROBE {name} [{backend}] {shown}")


# -- start and stop ----------------------------------------------------------------------


@pytest.mark.stress
def test_starting_and_shutting_down_managers_leaves_nothing(ctx: procframe.Context) -> None:
    rounds = stress.size(6, 200)
    servers: list[Any] = []
    load.use_a_manager(ctx, servers)  # what the first one loads once (the fork server, say)
    before, registered = load.descriptors(), load.registries()
    for _ in range(rounds):
        load.use_a_manager(ctx, servers)
    alive = load.survivors(servers)
    after, left = load.descriptors(), load.registries()
    _probe("start-stop", ctx.name, rounds=rounds, fds_before=before, fds_after=after, **left)
    assert alive == [], f"{len(alive)} server Process objects outlive their shutdown"
    assert after <= before, f"{after - before} descriptors leaked in {rounds} rounds"
    assert _no_more(left, registered), (left, registered)


def test_a_manager_whose_server_died_leaves_nothing(ctx: procframe.Context) -> None:
    refs: list[Any] = []
    load.lose_a_manager(ctx, refs)  # the first: what it loads once
    before, registered = load.descriptors(), load.registries()
    refs.clear()
    failure = load.lose_a_manager(ctx, refs)
    assert "manager" in failure
    alive = load.survivors(refs)
    assert alive == [], f"kept alive after the shutdown: {[type(obj).__name__ for obj in alive]}"
    assert load.descriptors() <= before
    assert _no_more(load.registries(), registered), (load.registries(), registered)


# -- idle clients -----------------------------------------------------------------------


@pytest.mark.stress
def test_idle_clients_cost_the_server_no_thread(ctx: procframe.Context) -> None:
    count, announcing = stress.size(80, 2000), stress.size(2, 10)
    load.ensure_descriptors(2 * (count + announcing) + 256)
    with ctx.Manager() as manager:
        server = manager._process.pid
        items = manager.list([1])
        calls = stress.size(50, 500)
        idle = load.median(load.round_trips(lambda: len(items), calls))
        authkey = bytes(procframe.current_process().authkey)
        clients = load.idle_clients(manager.address, authkey, count)
        hostile = load.idle_clients(manager.address, authkey, announcing)
        try:
            for conn in hostile:  # 8 GiB announced, 1 MiB sent: they wait amid a message
                load.announce(conn, 8 << 30, body=1 << 20)
            loaded = load.round_trips(lambda: len(items), calls)
            threads = load.threads_of(server)
            memory = load.resident_bytes(server)
            assert len(items) == 1
        finally:
            load.close_all(clients)
            load.close_all(hostile)
        _probe(
            "idle-clients", ctx.name, clients=count, announcing_8GiB=announcing,
            server_threads=threads, server_rss_mb=round(memory / 2**20, 1),
            idle_rtt_median_ms=round(idle * 1e3, 3),
            loaded_rtt_median_ms=round(load.median(loaded) * 1e3, 3),
            loaded_rtt_max_ms=round(max(loaded) * 1e3, 3),
        )  # fmt: skip
        assert threads <= MAX_SERVER_THREADS, f"{threads} server threads for {count} idle clients"
        assert memory < MAX_SERVER_MEMORY
        assert load.median(loaded) < 2 * idle + SLACK


@pytest.mark.stress
def test_huge_length_prefixes_after_authentication(ctx: procframe.Context) -> None:
    count = stress.size(3, 10)
    with ctx.Manager() as manager:
        server = manager._process.pid
        items = manager.list([1])
        authkey = bytes(procframe.current_process().authkey)
        absurd = load.idle_clients(manager.address, authkey, count)
        announced = load.idle_clients(manager.address, authkey, count)
        try:
            memory = load.resident_bytes(server)
            for conn in absurd:
                load.announce(conn, 1 << 62)  # above MAX_MESSAGE_SIZE: a corrupt prefix
            for conn in announced:
                load.announce(conn, 8 << 30, body=1 << 20)  # 8 GiB announced, 1 MiB sent
            deadline = time.monotonic() + PATIENCE / 2
            refused = [load.closed_by_peer(conn, deadline - time.monotonic()) for conn in absurd]
            assert len(items) == 1  # the server reads all it was sent, and serves others
            growth = load.resident_bytes(server) - memory
            waiting = [conn.poll(0) for conn in announced]
        finally:
            load.close_all(absurd)
            load.close_all(announced)
        _probe(
            "huge-lengths", ctx.name, connections=2 * count, refused=sum(refused),
            server_rss_growth_mb=round(growth / 2**20, 1),
        )  # fmt: skip
        assert all(refused), "a connection that announced 2**62 bytes stayed open"
        assert not any(waiting), "a connection amid a message was answered or closed"
        # 1 MiB arrived on each: its buffer is at most twice that, not the 64 MiB of old.
        assert growth < count * (16 << 20), f"the server grew by {growth >> 20} MiB"


# -- blocked callers --------------------------------------------------------------------


def test_more_blocked_callers_than_pool_threads_starve_no_one(ctx: procframe.Context) -> None:
    waiting = RUNNING_LIMIT + 8
    with ctx.Manager() as manager:
        shared = manager.Queue()
        gate = manager.Event()
        got: queue.Queue[Any] = queue.Queue()

        def get() -> None:
            got.put(("get", shared.get(timeout=PATIENCE)))

        def wait() -> None:
            got.put(("wait", gate.wait(PATIENCE)))

        threads = [threading.Thread(target=get) for _ in range(waiting)]
        threads += [threading.Thread(target=wait) for _ in range(waiting)]
        for thread in threads:
            thread.start()
        try:
            # Every caller blocked in the server, each on a thread of its own:
            server = manager._process.pid
            assert eventually(lambda: load.threads_of(server) >= 2 * waiting)
            for i in range(waiting):
                shared.put(i)
            gate.set()
            results = [got.get(timeout=PATIENCE) for _ in threads]
        finally:
            gate.set()
            for _ in range(waiting):
                shared.put(None)
            for thread in threads:
                thread.join(PATIENCE)
        assert sorted(value for what, value in results if what == "get") == list(range(waiting))
        assert results.count(("wait", True)) == waiting


def test_a_barrier_of_more_parties_than_pool_threads_passes(ctx: procframe.Context) -> None:
    parties = RUNNING_LIMIT + 4  # a Barrier's wait does not step aside: it is counted out
    with ctx.Manager() as manager:
        barrier = manager.Barrier(parties, timeout=PATIENCE)
        passed: queue.Queue[int] = queue.Queue()
        threads = [
            threading.Thread(target=lambda: passed.put(barrier.wait())) for _ in range(parties)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert sorted(passed.get(timeout=PATIENCE) for _ in range(parties)) == list(range(parties))


def test_an_rlock_belongs_to_the_client_thread_that_took_it(ctx: procframe.Context) -> None:
    with ctx.Manager() as manager:
        lock = manager.RLock()
        assert lock.acquire(timeout=PATIENCE)
        assert lock.acquire(timeout=PATIENCE)  # reentrant for its owner, whichever server thread
        other: queue.Queue[Any] = queue.Queue()

        def try_it() -> None:
            other.put(lock.acquire(timeout=0.2))
            try:
                lock.release()
            except RuntimeError as exc:
                other.put(exc)

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join(PATIENCE)
        assert other.get(timeout=PATIENCE) is False
        assert isinstance(other.get(timeout=PATIENCE), RuntimeError)
        lock.release()
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()


def test_a_registered_threading_rlock_belongs_to_its_client(ctx: procframe.Context) -> None:
    with load.OwnLockManager(ctx=ctx) as manager:
        lock = manager.RLock()
        assert lock.acquire(timeout=PATIENCE) and lock.acquire(timeout=PATIENCE)
        others: list[Any] = []

        def try_it() -> None:  # its requests run on whichever server threads are free
            others.extend(lock.acquire(False) for _ in range(20))

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join(PATIENCE)
        assert others == [False] * 20
        lock.release()
        lock.release()


def _no_more(left: dict[str, int], registered: dict[str, int]) -> bool:
    """No registry holds more than it did (one may hold less: what an earlier round left for
    the garbage collector, a backend's runtime objects among them, may be gone since)."""
    return all(left[name] <= count for name, count in registered.items())

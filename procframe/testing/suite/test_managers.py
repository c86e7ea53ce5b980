"""Managers: the ``multiprocessing.managers`` API on every backend.

``Manager()`` and its shared types (list, dict, Namespace, the locks, Event,
Condition, Barrier, queues, Value, Array, Pool) through their proxies, in the
test process, in its threads and in child processes; the documented example as a
script; custom types registered on a ``BaseManager`` subclass; reference
counting; errors raised by a referent's method; ``SharedMemoryManager``.

Most tests share one manager per backend (a module-scoped fixture started
before the first test that needs it, so the leak check of every test counts
its process as already there); tests about a manager's own life start their
own.  What children and servers import by name is in
:mod:`procframe.testing.helpers.managers`.  Security, hostile input, killed
processes and the network are in ``test_managers_faults.py``.
"""

from __future__ import annotations

import gc
import os
import pickle
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe import managers
from procframe.testing.helpers import managers as tkm
from procframe.testing.helpers import pool as tk_pool
from procframe.testing.helpers.exchange import reap
from procframe.testing.helpers.scripts import pid_running
from procframe.testing.helpers.targets import read_report
from procframe.testing.plugin import selected_backends

pytestmark = pytest.mark.timeout(120)

PATIENCE = tkm.PATIENCE
"""Seconds to wait for anything that should happen at once."""
SHORT = 0.1
"""A timeout that must elapse (nobody will release the lock, set the event, ...)."""


def is_proxy_repr(text: str) -> bool:
    """True if ``text`` reads like a proxy's repr: ``<ListProxy object, typeid 'list' ...>``."""
    return re.fullmatch(r"<.*proxy.*>", text, re.IGNORECASE | re.DOTALL) is not None


def objects_now(manager: Any) -> int:
    """How many objects the manager holds, once this process's garbage is collected."""
    gc.collect()  # proxies of earlier tests that only the collector frees
    return int(manager._number_of_objects())


def count_back_to(manager: Any, baseline: int) -> bool:
    """Collect garbage; True once the manager holds ``baseline`` objects again."""
    gc.collect()
    return tk_pool.eventually(lambda: manager._number_of_objects() == baseline)


# -- shared managers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def _sync_managers(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A started SyncManager per backend under test."""
    with tkm.managers_per_backend(selected_backends(request.config), _sync_manager) as started:
        yield started


def _sync_manager(ctx: procframe.Context) -> Any:
    return ctx.Manager()


@pytest.fixture
def manager(procframe_backend: str, _sync_managers: dict[str, Any]) -> Any:
    """A started SyncManager of the backend under test, shared by the module's tests."""
    return _sync_managers[procframe_backend]


@pytest.fixture(scope="module")
def _calc_managers(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A started CalcManager per backend under test that serves (its initializer ran)."""
    backends = tkm.serving(selected_backends(request.config))
    with tkm.managers_per_backend(backends, _calc_manager) as started:
        yield started


def _calc_manager(ctx: procframe.Context) -> Any:
    calc = tkm.CalcManager(authkey=tkm.KEY, ctx=ctx)
    calc.start(tkm.initialize, ("initialized",))
    return calc


@pytest.fixture
def calc_manager(procframe_backend: str, _calc_managers: dict[str, Any]) -> Any:
    """A started :class:`~procframe.testing.helpers.managers.CalcManager` (authkey ``tkm.KEY``)."""
    return _calc_managers[procframe_backend]


# -- the module ----------------------------------------------------------------------


def test_the_managers_module_exports_its_names() -> None:
    names = [
        "BaseManager",
        "SyncManager",
        "SharedMemoryManager",
        "BaseProxy",
        "AutoProxy",
        "Token",
        "RemoteError",
    ]
    assert [name for name in names if not hasattr(managers, name)] == []
    assert issubclass(managers.SyncManager, managers.BaseManager)
    assert issubclass(managers.SharedMemoryManager, managers.BaseManager)
    assert callable(procframe.Manager)


@pytest.mark.requires("manager_server")
def test_only_the_pickle_and_xmlrpclib_serializers_are_accepted(ctx: procframe.Context) -> None:
    for serializer in ("json", "marshal"):
        with pytest.raises(ValueError, match="'pickle' and 'xmlrpclib'"):
            manager = managers.BaseManager(serializer=serializer, ctx=ctx)
            manager.start()  # (a check at start() is as good as one at construction)
            manager.shutdown()
    manager = managers.BaseManager(serializer="pickle", ctx=ctx)
    manager.start()
    manager.shutdown()


# -- a manager's life --------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_manager_is_started_and_shuts_down(ctx: procframe.Context) -> None:
    manager = ctx.Manager()
    try:
        assert isinstance(manager, managers.SyncManager)
        assert manager.address
        pid = manager._process.pid
        assert pid != os.getpid() and pid_running(pid)
        assert str(manager.list([1, 2])) == "[1, 2]"
    finally:
        manager.shutdown()
    manager.join(PATIENCE)
    assert not pid_running(pid)
    manager.shutdown()  # a second shutdown is harmless

    with ctx.Manager() as manager:
        pid = manager._process.pid
        assert manager.dict(a=1)["a"] == 1
    assert tk_pool.eventually(lambda: not pid_running(pid)), "the with-block did not shut it down"


@pytest.mark.requires("manager_server")
def test_a_manager_starts_once(ctx: procframe.Context) -> None:
    manager = managers.BaseManager(ctx=ctx)
    with pytest.raises(TypeError):
        manager.start(initializer=42)
    manager.start()
    try:
        with pytest.raises(procframe.ProcessError):
            manager.start()
        with pytest.raises(procframe.ProcessError):
            manager.get_server()
    finally:
        manager.shutdown()
    with pytest.raises(procframe.ProcessError):
        manager.start()


@pytest.mark.requires("manager_server")
def test_the_manager_serves_from_the_backend_it_was_given(
    procframe_backend: str, calc_manager: Any
) -> None:
    where = calc_manager.Calculator().where()
    assert where["pid"] == calc_manager._process.pid != os.getpid()
    assert where["backend"] == procframe_backend


# -- the shared types --------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_list_proxy(manager: Any) -> None:
    items = manager.list(range(5))
    assert isinstance(items, managers.BaseProxy)
    assert str(items) == "[0, 1, 2, 3, 4]"
    assert repr(items) == "[0, 1, 2, 3, 4]"  # the issue: str and repr print the referent
    assert isinstance(items._token, managers.Token)
    assert items._token.typeid == "list" and items._token.address == manager.address
    assert len(items) == 5
    assert items[0] == 0 and items[-1] == 4
    assert items[1:3] == [1, 2]
    assert 3 in items and 7 not in items
    assert list(items) == [0, 1, 2, 3, 4]
    assert [x * 10 for x in items] == [0, 10, 20, 30, 40]

    items.append(5)
    items.extend([6, 7])
    items.insert(0, -1)
    assert items.pop() == 7
    assert items.pop(0) == -1
    items.remove(6)
    items[0] = "zero"
    del items[1]
    assert items.count(2) == 1
    assert items.index(3) == 2
    assert items[:] == ["zero", 2, 3, 4, 5]
    items[0] = 0
    items.reverse()
    assert items[:] == [5, 4, 3, 2, 0]
    items.sort()
    assert items[:] == [0, 2, 3, 4, 5]
    items.sort(reverse=True)
    assert items[:] == [5, 4, 3, 2, 0]
    assert items + [9] == [5, 4, 3, 2, 0, 9]  # noqa: RUF005 - the proxy's __add__

    same = items
    items += [1]
    assert items is same and isinstance(items, managers.BaseProxy)
    items *= 2
    assert items is same
    assert items[:] == [5, 4, 3, 2, 0, 1, 5, 4, 3, 2, 0, 1]

    value = items._getvalue()
    assert type(value) is list and value == items[:]
    value.append("local only")
    assert len(items) == 12
    assert manager.list()[:] == []
    assert str(manager.list(["a", None])) == "['a', None]"


@pytest.mark.requires("manager_server")
def test_dict_proxy(manager: Any) -> None:
    d = manager.dict({"a": 1}, b=2)
    assert isinstance(d, managers.BaseProxy)
    assert str(d) == "{'a': 1, 'b': 2}"
    assert repr(d) == "{'a': 1, 'b': 2}"
    assert manager.dict([(1, "one")])[1] == "one"
    assert len(d) == 2
    assert "a" in d and "z" not in d
    d["c"] = [3]
    assert d["c"] == [3]
    assert d.get("c") == [3] and d.get("z") is None and d.get("z", 0) == 0
    assert d.setdefault("d", 4) == 4 and d.setdefault("d", 5) == 4
    d.update({"e": 5}, f=6)
    assert sorted(d.keys()) == ["a", "b", "c", "d", "e", "f"]
    assert sorted(d.values(), key=str) == sorted([1, 2, [3], 4, 5, 6], key=str)
    assert sorted(d.items(), key=str) == sorted(
        [("a", 1), ("b", 2), ("c", [3]), ("d", 4), ("e", 5), ("f", 6)], key=str
    )
    assert sorted(d) == ["a", "b", "c", "d", "e", "f"]
    assert sorted(k for k in d) == ["a", "b", "c", "d", "e", "f"]
    assert dict(d) == {"a": 1, "b": 2, "c": [3], "d": 4, "e": 5, "f": 6}
    assert d.pop("f") == 6 and d.pop("f", "gone") == "gone"
    del d["e"]
    key, value = d.popitem()
    assert key == "d" and value == 4

    copied = d.copy()
    assert type(copied) is dict and copied == {"a": 1, "b": 2, "c": [3]}
    value = d._getvalue()
    assert type(value) is dict and value == copied
    value["local only"] = True
    assert "local only" not in d
    d.clear()
    assert len(d) == 0 and str(d) == "{}"


@pytest.mark.requires("manager_server")
def test_namespace_proxy(manager: Any) -> None:
    ns = manager.Namespace(x=1)
    assert ns.x == 1
    ns.y = "two"
    assert ns.y == "two"
    assert "x=1" in str(ns) and "y='two'" in str(ns)
    assert is_proxy_repr(repr(ns)), repr(ns)
    del ns.y
    with pytest.raises(AttributeError):
        ns.y  # noqa: B018
    ns.x += 1
    assert ns.x == 2


def test_value_and_array_proxies(manager: Any) -> None:
    v = manager.Value("i", 7)
    assert v.value == 7 and v.get() == 7
    v.value = 8
    assert v.get() == 8
    v.set(9)
    assert v.value == 9
    assert manager.Value("d", 1.5).value == 1.5

    a = manager.Array("i", range(5))
    assert len(a) == 5
    assert a[2] == 2
    a[2] = 20
    assert a[2] == 20
    assert list(a[1:3]) == [1, 20]
    assert list(a) == [0, 1, 20, 3, 4]
    with pytest.raises(IndexError):
        a[5]


def _in_thread(call: Callable[[], Any]) -> Any:
    """``call()`` in another thread (with its own connection); its result or exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(PATIENCE)
    assert not thread.is_alive(), "the call did not return"
    return outcome[0]


def test_locks_and_semaphores(manager: Any) -> None:
    lock = manager.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    began = time.monotonic()
    assert lock.acquire(timeout=SHORT) is False
    assert time.monotonic() - began >= SHORT - 0.05
    assert _in_thread(lambda: lock.acquire(timeout=SHORT)) is False
    lock.release()
    assert _in_thread(lambda: lock.acquire(timeout=PATIENCE)) is True  # taken by another...
    assert lock.acquire(timeout=SHORT) is False
    lock.release()  # ...and released here, as a threading.Lock allows
    with lock:
        assert lock.acquire(False) is False
    assert lock.acquire(False) is True
    lock.release()

    rlock = manager.RLock()
    assert rlock.acquire() and rlock.acquire()
    assert _in_thread(lambda: rlock.acquire(timeout=SHORT)) is False
    rlock.release()
    rlock.release()
    with pytest.raises(RuntimeError):
        rlock.release()
    with rlock, rlock:
        pass
    assert _in_thread(lambda: rlock.acquire(timeout=SHORT)) is True

    sem = manager.Semaphore(2)
    assert sem.acquire() and sem.acquire(timeout=SHORT)
    assert sem.acquire(False) is False
    sem.release()
    with sem:
        assert sem.acquire(timeout=SHORT) is False
    sem.release()
    sem.release()
    assert sem.acquire(False) and sem.acquire(False) and sem.acquire(False)  # three now

    bounded = manager.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        bounded.release()
    assert bounded.acquire() and not bounded.acquire(False)
    bounded.release()


def test_event_condition_and_barrier(manager: Any) -> None:
    event = manager.Event()
    assert event.is_set() is False
    assert event.wait(SHORT) is False
    event.set()
    assert event.is_set() and event.wait(PATIENCE) is True
    event.clear()
    assert not event.is_set()

    cond = manager.Condition()
    with cond:
        assert cond.wait(SHORT) is False
    ready = manager.Event()

    def waiter() -> Any:
        with cond:
            ready.set()  # still holding the lock: a notify needs it, so it comes after wait()
            return cond.wait(PATIENCE)

    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(waiter()))
    thread.start()
    try:
        assert ready.wait(PATIENCE)
        with cond:
            cond.notify()
    finally:
        thread.join(PATIENCE)
    assert outcome == [True]

    flags = manager.list()
    thread = threading.Thread(
        target=lambda: outcome.append(
            _wait_for(cond, lambda: len(flags) > 0, PATIENCE),
        )
    )
    thread.start()
    try:
        with cond:
            flags.append(1)
            cond.notify_all()
    finally:
        thread.join(PATIENCE)
    assert outcome == [True, True]
    with cond:
        assert cond.wait_for(lambda: False, SHORT) is False

    barrier = manager.Barrier(2, timeout=PATIENCE)
    assert barrier.parties == 2 and barrier.n_waiting == 0 and barrier.broken is False
    other = _start_thread(lambda: barrier.wait())
    mine = barrier.wait()
    indices = {mine, other.result()}
    assert indices == {0, 1}
    barrier.abort()
    assert barrier.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    barrier.reset()
    assert barrier.broken is False and barrier.n_waiting == 0


def _wait_for(cond: Any, predicate: Callable[[], bool], timeout: float) -> Any:
    with cond:
        return cond.wait_for(predicate, timeout)


class _Thread(threading.Thread):
    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__()
        self._call = call
        self._outcome: list[Any] = []

    def run(self) -> None:
        try:
            self._outcome.append((True, self._call()))
        except BaseException as exc:
            self._outcome.append((False, exc))

    def result(self) -> Any:
        self.join(PATIENCE)
        assert not self.is_alive(), "the thread's call did not return"
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return value


def _start_thread(call: Callable[[], Any]) -> _Thread:
    thread = _Thread(call)
    thread.start()
    return thread


def test_queue_proxies(manager: Any) -> None:
    q = manager.Queue(2)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put(1)
    q.put_nowait([2])
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=SHORT)
    assert q.get() == 1
    assert q.get_nowait() == [2]
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=SHORT)
    with pytest.raises(queue.Empty):
        q.get(False)
    getter = _start_thread(lambda: q.get(timeout=PATIENCE))
    q.put("to the thread")
    assert getter.result() == "to the thread"

    jq = manager.JoinableQueue()
    jq.put("a")
    jq.put("b")
    assert jq.get() == "a" and jq.get() == "b"
    jq.task_done()
    joiner = _start_thread(lambda: jq.join())
    jq.task_done()
    assert joiner.result() is None
    jq.join()
    with pytest.raises(ValueError):
        jq.task_done()


@pytest.mark.requires("manager_server")
def test_pool_proxy(manager: Any) -> None:
    baseline = objects_now(manager)
    pool = manager.Pool(2)
    try:
        assert pool.apply(tk_pool.square, (7,)) == 49
        assert pool.apply(tk_pool.power, (2,), {"exp": 10}) == 1024
        result = pool.apply_async(tk_pool.square, (8,))
        assert result.get(timeout=PATIENCE) == 64
        result.wait(PATIENCE)
        assert result.ready() and result.successful()
        assert pool.map(tk_pool.square, range(10)) == [x * x for x in range(10)]
        assert pool.map_async(tk_pool.square, range(5)).get(PATIENCE) == [0, 1, 4, 9, 16]
        assert list(pool.imap(tk_pool.square, range(6))) == [0, 1, 4, 9, 16, 25]
        assert sorted(pool.imap_unordered(tk_pool.square, range(6))) == [0, 1, 4, 9, 16, 25]
        assert pool.starmap(tk_pool.add, [(1, 2), (3, 4)]) == [3, 7]
        with pytest.raises(ValueError, match="in the pool"):
            pool.apply(tk_pool.raise_value_error, ("in the pool",))
        failing = pool.apply_async(tk_pool.raise_value_error, ("async",))
        failing.wait(PATIENCE)
        assert failing.ready() and not failing.successful()
        with pytest.raises(ValueError, match="async"):
            failing.get(timeout=PATIENCE)
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    other = manager.Pool(1)
    assert other.apply(tk_pool.square, (3,)) == 9
    other.terminate()
    other.join()
    del pool, other, result, failing
    assert count_back_to(manager, baseline), (
        f"{manager._number_of_objects()} objects, {baseline} before"
    )


# -- proxies everywhere ------------------------------------------------------------------


def test_proxies_in_threads(manager: Any) -> None:
    items = manager.list()
    counts = manager.dict()

    def work(n: int) -> None:
        for i in range(50):
            items.append((n, i))
        counts[n] = len([x for x in items[:] if x[0] == n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not any(t.is_alive() for t in threads)
    assert len(items) == 200
    assert dict(counts) == {n: 50 for n in range(4)}
    for n in range(4):
        assert [i for m, i in items[:] if m == n] == list(range(50))  # each thread's order


def _threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


@pytest.mark.requires("manager_server")
def test_threads_that_come_and_go_leave_no_connections(manager: Any) -> None:
    items = manager.list()
    server = manager._process.pid
    descriptors, threads = len(os.listdir("/proc/self/fd")), _threads_of(server)
    made: list[Any] = []
    for i in range(100):
        thread = threading.Thread(target=lambda i=i: made.append(manager.list([i])))
        thread.start()
        thread.join(PATIENCE)
    gc.collect()
    assert [m[0] for m in made] == list(range(100))  # objects made by threads that ended
    for i in range(100):
        thread = threading.Thread(target=items.append, args=(i,))
        thread.start()
        thread.join(PATIENCE)
    assert items[:] == list(range(100))
    gc.collect()
    assert tk_pool.eventually(lambda: len(os.listdir("/proc/self/fd")) < descriptors + 20), (
        f"{len(os.listdir('/proc/self/fd'))} descriptors open, {descriptors} before"
    )
    assert tk_pool.eventually(lambda: _threads_of(server) < threads + 20), (
        f"the server runs {_threads_of(server)} threads, {threads} before"
    )


@pytest.mark.requires("manager_server")
@pytest.mark.core
def test_proxies_passed_to_children(ctx: procframe.Context, manager: Any) -> None:
    d, items, ns = manager.dict(), manager.list(), manager.Namespace(last=None)
    value, lock, out = manager.Value("i", 0), manager.Lock(), manager.Queue()
    children = [
        ctx.Process(target=tkm.mutate, args=(d, items, ns, value, lock, out, 50)) for _ in range(2)
    ]
    try:
        for p in children:
            p.start()
        for p in children:
            p.join(PATIENCE)
    finally:
        reap(*children)
    assert [p.exitcode for p in children] == [0, 0]
    pids = {p.pid for p in children}
    assert d.copy() == dict.fromkeys(pids, "child")
    assert sorted(items) == sorted(pids)
    assert ns.last in pids
    assert value.value == 100  # 2 x 50 increments under the managed lock
    assert {out.get(timeout=PATIENCE), out.get(timeout=PATIENCE)} == pids
    assert out.empty()


@pytest.mark.requires("manager_server")
def test_proxies_sent_through_queues(ctx: procframe.Context, manager: Any) -> None:
    baseline = objects_now(manager)
    managed, plain, back = manager.Queue(), ctx.Queue(), manager.Queue()
    child = ctx.Process(target=tkm.use_proxies_from_queues, args=(managed, plain, back))
    child.start()
    try:
        # The temporary proxies go at once: only what is in the queues holds the objects.
        managed.put(manager.dict(via="managed"))
        plain.put(manager.list(["plain"]))
        gc.collect()
        got = back.get(timeout=PATIENCE)
        child.join(PATIENCE)
    finally:
        reap(child)
    assert child.exitcode == 0
    assert got == {"managed": {"via": "managed", "child": child.pid}, "plain": ["plain", "child"]}
    plain.close()
    del managed, plain, back
    assert count_back_to(manager, baseline), (
        f"{manager._number_of_objects()} objects, {baseline} before"
    )


DOCUMENTED_EXAMPLE = """\
from procframe import Process, Manager

def f(d, l):
    d[1] = '1'
    d['2'] = 2
    d[0.25] = None
    l.reverse()

if __name__ == '__main__':
    manager = Manager()
    d = manager.dict()
    l = manager.list(range(10))
    p = Process(target=f, args=(d, l))
    p.start()
    p.join()
    print(d)
    print(l)
"""
"""``processing``'s documented manager example: never shut down, yet the script must end."""


def test_the_documented_manager_example_exits_with_its_manager_running(
    procframe_backend: str, tmp_path: Path
) -> None:
    with tkm.marked_script(tmp_path, DOCUMENTED_EXAMPLE, procframe_backend) as (script, mark):
        try:
            out, err = script.communicate(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script did not end within {PATIENCE}s (its manager holds it?)")
        assert out == "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n", err
        assert script.returncode == 0, err
        assert "Traceback" not in err, err
        assert tk_pool.eventually(lambda: tk_pool.marked_processes(mark) == []), (
            f"left running after the script ended: {tk_pool.marked_processes(mark)}"
        )


@pytest.mark.requires("manager_server")
def test_nested_proxies(manager: Any) -> None:
    baseline = objects_now(manager)
    d = manager.dict()
    inner = manager.list([1])
    d["inner"] = inner
    got = d["inner"]
    assert isinstance(got, managers.BaseProxy)
    got.append(2)
    assert inner[:] == [1, 2]
    inner.append(3)
    assert got[:] == [1, 2, 3]
    del inner, got
    gc.collect()
    assert d["inner"][:] == [1, 2, 3]  # the dict's proxy keeps it alive
    d["inner"].append(4)
    assert d["inner"][:] == [1, 2, 3, 4]
    assert "[1, 2, 3, 4]" in str(d["inner"])

    # The creator's proxy dropped at once: only the outer list's proxy holds the dict.
    outer = manager.list([manager.dict(a=1), manager.Namespace(x="ns")])
    gc.collect()
    assert outer[0]["a"] == 1
    outer[0]["b"] = 2
    assert outer[0].copy() == {"a": 1, "b": 2}
    assert outer[1].x == "ns"

    del d, outer
    assert count_back_to(manager, baseline), (
        f"{manager._number_of_objects()} objects, {baseline} before"
    )


# -- reference counting ---------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_objects_are_freed_when_their_last_proxy_goes(manager: Any) -> None:
    baseline = objects_now(manager)
    for i in range(500):
        items = manager.list([i])
        d = manager.dict(k=i)
        if i % 100 == 0:
            assert items[0] == d["k"] == i
        del items, d
    assert count_back_to(manager, baseline), (
        f"{manager._number_of_objects()} objects after 500 cycles, {baseline} before"
    )

    kept = [manager.list([i]) for i in range(10)]
    assert manager._number_of_objects() == baseline + 10
    copies = [pickle.loads(pickle.dumps(p)) for p in kept]  # more proxies of the same objects
    del kept
    gc.collect()
    assert manager._number_of_objects() == baseline + 10
    assert [c[0] for c in copies] == list(range(10))
    del copies
    assert count_back_to(manager, baseline)


def _hand_over(ctx: procframe.Context, manager: Any, *paths: str) -> Any:
    """Start a child holding a proxy of a new list; the caller keeps no proxy of it."""
    held = manager.list(["handed over"])
    child = ctx.Process(target=tkm.hold_then_use, args=(held, *paths))
    child.start()
    return child


@pytest.mark.requires("manager_server")
def test_an_object_lives_while_only_a_child_holds_a_proxy(
    ctx: procframe.Context, manager: Any, tmp_path: Path
) -> None:
    baseline = objects_now(manager)
    ready, go, out = (str(tmp_path / name) for name in ("ready", "go", "out"))
    child = _hand_over(ctx, manager, ready, go, out)
    try:
        read_report(ready, PATIENCE)
        gc.collect()
        assert manager._number_of_objects() == baseline + 1, "freed though a child holds it"
        Path(go).touch()
        assert read_report(out, PATIENCE) == ["handed over", "child"]
        child.join(PATIENCE)
    finally:
        reap(child)
    assert child.exitcode == 0
    assert count_back_to(manager, baseline), "not freed once the child that held it ended"


# -- errors ----------------------------------------------------------------------------------


def test_a_method_s_exception_is_raised_with_its_own_type(manager: Any) -> None:
    d, items = manager.dict(a=1), manager.list([1])
    with pytest.raises(KeyError) as info:
        d["missing"]
    assert info.value.args == ("missing",)
    try:
        d["missing"]
        caught = False
    except KeyError:  # code written for a dict keeps working
        caught = True
    assert caught
    with pytest.raises(KeyError):
        d.pop("missing")
    with pytest.raises(KeyError):
        manager.dict().popitem()
    with pytest.raises(IndexError):
        items[99]
    with pytest.raises(IndexError):
        manager.list().pop()
    with pytest.raises(ValueError):
        items.index(404)
    with pytest.raises(ValueError):
        items.remove(404)
    items.append("text")
    with pytest.raises(TypeError):
        items.sort()
    # The server and the proxies carry on.
    assert d["a"] == 1 and d.get("missing", "default") == "default"
    assert items[:] == [1, "text"]
    assert _in_thread(lambda: d["a"]) == 1


@pytest.mark.requires("manager_server")
def test_a_method_s_exception_carries_the_server_traceback(manager: Any, calc_manager: Any) -> None:
    """procframe only: the re-raised exception's ``__cause__`` is a RemoteError with the text."""
    d = manager.dict()
    with pytest.raises(KeyError) as info:
        d["missing"]
    cause = info.value.__cause__
    assert isinstance(cause, managers.RemoteError), repr(cause)
    assert "Traceback" in str(cause) and "KeyError" in str(cause), str(cause)

    calc = calc_manager.Calculator()
    with pytest.raises(ValueError) as info:
        calc.fail("boom")
    assert info.value.args == ("boom",)
    cause = info.value.__cause__
    assert isinstance(cause, managers.RemoteError), repr(cause)
    text = str(cause)
    assert "Traceback" in text and "in fail" in text and "boom" in text, text
    assert calc.add(1) == 1  # the referent carries on


# -- custom types -----------------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_a_registered_class_through_autoproxy(calc_manager: Any) -> None:
    calc = calc_manager.Calculator(10)
    assert isinstance(calc, managers.BaseProxy)
    assert is_proxy_repr(repr(calc)), repr(calc)
    assert calc.add(5) == 15
    assert calc.add(2, times=3) == 21
    assert calc._callmethod("add", (1,), {"times": 4}) == 25
    assert calc.total() == 25
    history = calc.history()  # method_to_typeid: comes back as an Iterator proxy
    assert isinstance(history, tkm.IteratorProxy)
    assert list(history) == [5, 6, 4]
    calc.reset()
    assert calc.total() == 0

    other = calc_manager.Calculator()
    other.add(100)
    assert calc.total() == 0 and other.total() == 100  # two referents

    counter = calc_manager.Counter(3)  # proxytype=
    assert isinstance(counter, tkm.CounterProxy)
    assert counter.add(4) == 7 and counter.total() == 7

    shared = calc_manager.shared_dict()  # a module-level dict, with proxytype=DictProxy
    assert isinstance(shared, managers.DictProxy)
    shared["k"] = "v"
    assert calc_manager.shared_dict()["k"] == "v"  # the same dict
    assert list(shared) == ["k"] and len(shared) == 1
    del shared["k"]


@pytest.mark.requires("manager_server")
def test_exposed_restricts_the_methods(calc_manager: Any) -> None:
    restricted = calc_manager.RestrictedCalculator(1)
    assert restricted.add(1) == 2 and restricted.total() == 2
    with pytest.raises(AttributeError, match="reset"):
        restricted.reset()
    with pytest.raises(managers.RemoteError, match="reset"):
        restricted._callmethod("reset")
    counter = calc_manager.Counter()
    with pytest.raises(managers.RemoteError, match="fail"):
        counter._callmethod("fail", ("not exposed",))
    assert restricted.total() == 2 and counter.total() == 0


@pytest.mark.requires("manager_server")
def test_register_creates_methods_on_the_subclass_only(calc_manager: Any) -> None:
    assert callable(getattr(tkm.CalcManager, "Calculator", None))
    assert callable(getattr(tkm.CalcManager, "Counter", None))
    assert not hasattr(tkm.CalcManager, "Iterator")  # create_method=False
    assert not hasattr(managers.BaseManager, "Calculator")
    assert not hasattr(managers.SyncManager, "Calculator")
    assert not hasattr(tkm.RemoteManager, "Calculator")


@pytest.mark.requires("manager_server")
def test_failures_that_are_not_the_method_s_raise_remote_error(calc_manager: Any) -> None:
    calc = calc_manager.Calculator()
    with pytest.raises(managers.RemoteError, match=r"(?i)generator"):
        calc.unpicklable()
    assert calc.add(1) == 1  # the connection is still in step
    with pytest.raises(managers.RemoteError):
        calc.raise_unpicklable()
    assert calc.add(1) == 2
    with pytest.raises(managers.RemoteError, match="no_such_method"):
        calc._callmethod("no_such_method")
    assert calc.total() == 2


@pytest.mark.requires("manager_server")
def test_the_server_initializer_runs_in_the_server(calc_manager: Any) -> None:
    state = calc_manager.state().get()
    assert state == {"value": "initialized", "pid": calc_manager._process.pid}
    assert state["pid"] != os.getpid()


@pytest.mark.requires("manager_server")
def test_connect_to_a_running_manager(calc_manager: Any, manager: Any) -> None:
    client = tkm.CalcManager(address=calc_manager.address, authkey=tkm.KEY)
    client.connect()
    calc = client.Calculator(5)
    assert calc.add(1) == 6
    assert client.state().get()["value"] == "initialized"

    # A SyncManager's default key is the current process's authkey.
    sync = managers.SyncManager(
        address=manager.address, authkey=procframe.current_process().authkey
    )
    sync.connect()
    shared = manager.dict()
    shared["from owner"] = 1
    items = sync.list([1, 2])
    assert items[:] == [1, 2]
    shared["list"] = items  # a proxy made through the second connection, stored by the first
    assert shared["list"][:] == [1, 2]


# -- procframe's extras -------------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_copies(manager: Any) -> None:
    """procframe only: ``copy()`` of a list proxy (live iteration: test_managers_dropin.py)."""
    items = manager.list([1, [2]])
    copied = items.copy()
    assert type(copied) is list and copied == [1, [2]]
    copied.append(3)
    assert len(items) == 2


# -- SharedMemoryManager ------------------------------------------------------------------------


@pytest.mark.requires("manager_server")
def test_shared_memory_manager(ctx: procframe.Context) -> None:
    from procframe.shared_memory import ShareableList, SharedMemory

    with managers.SharedMemoryManager(ctx=ctx) as smm:
        block = smm.SharedMemory(64)
        assert block.size >= 64
        block.buf[:3] = b"abc"
        attached = SharedMemory(block.name)
        assert bytes(attached.buf[:3]) == b"abc"
        attached.close()

        sl = smm.ShareableList([1, "two", 3.0, None])
        assert list(sl) == [1, "two", 3.0, None]
        sl[0] = 10
        other = ShareableList(name=sl.shm.name)
        assert other[0] == 10 and other[1] == "two"
        other.shm.close()
        names = [block.name, sl.shm.name]
        block.close()
        sl.shm.close()
    for name in names:
        with pytest.raises(FileNotFoundError):
            SharedMemory(name)

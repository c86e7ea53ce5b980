"""What is particular to the ``threads`` backend (the kit runs on it as on every backend)."""

from __future__ import annotations

import array
import ctypes
import os
import pickle
import queue
import select
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
import procframe.connection
import procframe.plugins
from procframe import NotSupportedError, threads
from procframe._core import registry
from procframe._core.capabilities import HOST_MEMORY, INHERITS_PARENT_MEMORY, TASKS_RUN_ONCE
from procframe.futures import ProcessPoolExecutor
from procframe.managers import BaseManager, ManagerGoneError, Namespace
from procframe.testing.helpers.scripts import HELLO_BOB, run_script
from procframe.testing.plugin import Snapshot

PATIENCE = 60.0


@pytest.fixture
def ctx() -> Iterator[procframe.Context]:
    """The threads backend's context; the test must leave no thread or descriptor behind."""
    before, fds = Snapshot.take(), _open_fds()
    yield procframe.get_context("threads")
    problems = before.leaks()
    assert not problems, problems
    assert _open_fds() <= fds, f"descriptors left open: {sorted(_open_fds() - fds)}"


def _open_fds() -> set[int]:
    if not os.path.isdir("/proc/self/fd"):
        return set()
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _run(ctx: procframe.Context, target: Any, *args: Any, **kwargs: Any) -> Any:
    """Start a process on ``target``, join it, close it; its exit code."""
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join(PATIENCE)
    code = p.exitcode
    p.close()
    return code


# -- declaration -----------------------------------------------------------------------


def test_declared_as_a_builtin_with_honest_capabilities() -> None:
    info = registry.backends()["threads"]
    assert info.plugin is threads.plugin
    assert info.available
    assert info.capabilities == {INHERITS_PARENT_MEMORY, HOST_MEMORY, TASKS_RUN_ONCE}
    assert "threads" in procframe.get_all_start_methods()


def test_selected_by_the_environment_it_runs_the_hello_example(tmp_path: Path) -> None:
    result = run_script(tmp_path, HELLO_BOB, "threads")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello bob\n", "")


# -- processes ---------------------------------------------------------------------------


def test_a_process_sees_itself_its_parent_and_its_backend(ctx: procframe.Context) -> None:
    seen: dict[str, Any] = {}

    def describe() -> None:
        me = procframe.current_process()
        parent = procframe.parent_process()
        assert parent is not None
        seen.update(
            me=me, pid=me.pid, alive=me.is_alive(), thread=threading.get_native_id(),
            parent=(parent.name, parent.pid, parent.is_alive()),
            backend=procframe.get_start_method(), children=procframe.active_children(),
        )  # fmt: skip

    p = ctx.Process(target=describe, name="worker-3")
    p.start()
    p.join(PATIENCE)
    assert p.exitcode == 0
    assert seen["me"] is p
    assert seen["pid"] == seen["thread"] == p.pid != os.getpid()
    assert seen["alive"] is True
    assert seen["parent"] == ("MainProcess", os.getpid(), True)
    assert seen["backend"] == "threads"  # though the default is another backend
    assert seen["children"] == []
    assert procframe.current_process().name == "MainProcess"  # the main thread is unchanged
    p.close()


def test_a_grandchild_sees_its_parent_and_only_its_own_children(ctx: procframe.Context) -> None:
    seen: dict[str, Any] = {}
    counted = threading.Event()

    def grandchild() -> None:
        parent = procframe.parent_process()
        assert parent is not None
        seen["parent"] = (parent.name, parent.pid, parent.is_alive())
        counted.wait(PATIENCE)

    def child() -> None:
        kid = procframe.Process(target=grandchild)  # the default backend is threads here
        kid.start()
        seen["children"] = procframe.active_children()
        counted.set()
        kid.join(PATIENCE)
        seen["kid"] = (kid.name, kid.exitcode, type(kid).__name__)
        kid.close()

    p = ctx.Process(target=child)
    p.start()
    p.join(PATIENCE)
    assert p.exitcode == 0
    assert seen["parent"] == (p.name, p.pid, True)
    assert len(seen["children"]) == 1 and seen["children"][0].name == f"Process-{p._identity[0]}:1"
    assert seen["kid"][1] == 0
    assert procframe.active_children() == []
    p.close()


def test_exit_codes_and_the_traceback_of_a_failure(
    ctx: procframe.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise ValueError("boom 23")

    assert _run(ctx, lambda: None) == 0
    assert _run(ctx, sys.exit, 4) == 4
    assert _run(ctx, sys.exit, "bye") == 1
    p = ctx.Process(target=fail, name="failing")
    p.start()
    p.join(PATIENCE)
    assert p.exitcode == 1
    p.close()
    err = capsys.readouterr().err
    assert "bye" in err
    assert "Process failing:" in err and "ValueError: boom 23" in err


@pytest.mark.parametrize("method", ["terminate", "kill", "interrupt"])
def test_stopping_a_running_thread_is_refused_clearly(ctx: procframe.Context, method: str) -> None:
    release = threading.Event()
    p = ctx.Process(target=release.wait, args=(PATIENCE,))
    p.start()
    try:
        with pytest.raises(NotSupportedError, match=rf"cannot {method}.*'threads'.*thread"):
            getattr(p, method)()
        assert isinstance(NotSupportedError("x"), (procframe.ProcessError, NotImplementedError))
        assert p.is_alive()
    finally:
        release.set()
        p.join(PATIENCE)
    getattr(p, method)()  # an ended process: nothing to stop, as on every backend
    assert p.exitcode == 0
    p.close()


def test_the_sentinel_is_a_descriptor_readable_at_the_end(ctx: procframe.Context) -> None:
    release = threading.Event()
    p = ctx.Process(target=release.wait, args=(PATIENCE,))
    p.start()
    sentinel = p.sentinel
    assert procframe.connection.wait([sentinel], 0.1) == []
    p.join(0.1)  # a join that times out leaves it running
    assert p.is_alive() and p.exitcode is None
    release.set()
    assert procframe.connection.wait([sentinel], PATIENCE) == [sentinel]
    assert select.select([sentinel], [], [], 0)[0] == [sentinel]
    p.join(PATIENCE)
    p.close()
    with pytest.raises(OSError):
        os.fstat(sentinel)  # closed by close()


def test_observers_see_a_thread_start_bootstrap_and_exit(ctx: procframe.Context) -> None:
    events: list[tuple[str, Any, Any]] = []

    class Observer:
        @procframe.hookimpl
        def procframe_process_started(self, process: Any, backend: Any) -> None:
            events.append(("started", process, backend.name))

        @procframe.hookimpl
        def procframe_child_bootstrap(self, process: Any, backend: Any) -> None:
            events.append(("bootstrap", procframe.current_process(), threading.get_native_id()))

        @procframe.hookimpl
        def procframe_process_exited(self, process: Any, exitcode: int) -> None:
            events.append(("exited", process, exitcode))

    with procframe.plugins.registered(Observer()):
        p = ctx.Process(target=sys.exit, args=(5,))
        p.start()
        p.join(PATIENCE)
    # The thread may bootstrap before start() has returned to call the started observers.
    assert sorted(events[:2], key=str) == sorted(
        [("started", p, "threads"), ("bootstrap", p, p.pid)], key=str
    )
    assert events[2:] == [("exited", p, 5)]
    p.close()


DAEMON_AT_EXIT = r"""
import sys
import threading
import procframe

if __name__ == '__main__':
    forever = threading.Event()
    daemon = procframe.Process(target=forever.wait, daemon=True)
    daemon.start()
    worker = procframe.Process(target=sys.stdout.write, args=('worker done\n',))
    worker.start()
    sys.stdout.write('main done\n')
"""


def test_a_daemonic_thread_neither_holds_up_nor_breaks_the_exit(tmp_path: Path) -> None:
    result = run_script(tmp_path, DAEMON_AT_EXIT, "threads", timeout=PATIENCE)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")) == ["", "main done", "worker done"]
    assert result.stderr == ""


# -- pipes and queues ---------------------------------------------------------------------


def test_a_pipe_hands_over_the_object_itself(ctx: procframe.Context) -> None:
    a, b = ctx.Pipe()
    with a, b:
        item = {"shared": [1]}
        a.send(item)
        assert procframe.connection.wait([b], 0) == [b]
        assert b.recv() is item
        assert procframe.connection.wait([b], 0) == []
        a.send_bytes(b"raw")
        assert b.recv_bytes() == b"raw"
        a.send([7])
        assert pickle.loads(b.recv_bytes()) == [7]  # an object asked for as bytes comes pickled
        with pytest.raises(TypeError, match="shared"):
            pickle.dumps(a)


def test_a_pipe_end_says_when_the_peer_is_gone(ctx: procframe.Context) -> None:
    reader, writer = ctx.Pipe(duplex=False)
    with reader:
        assert (reader.readable, reader.writable, writer.readable, writer.writable) == (
            True, False, False, True,
        )  # fmt: skip
        with pytest.raises(OSError):
            reader.send(1)
        with pytest.raises(OSError):
            writer.recv()
        writer.send("last")
        writer.close()
        assert procframe.connection.wait([reader], PATIENCE) == [reader]
        assert reader.recv() == "last"
        assert reader.poll(0) is True  # the end is ready to read
        with pytest.raises(EOFError):
            reader.recv()
    a, b = ctx.Pipe()
    with a:
        b.close()
        with pytest.raises(BrokenPipeError):
            a.send("nobody reads")


def test_a_queue_shares_its_items_and_each_process_closes_it_for_itself(
    ctx: procframe.Context,
) -> None:
    q = ctx.Queue()
    item = ["mutable"]
    q.put(item)
    assert q.get(timeout=PATIENCE) is item
    q.put(threading.Lock())  # nothing is pickled
    assert q.get(timeout=PATIENCE) is not None

    def put_and_close(q: Any) -> None:
        q.put("from the child")
        q.close()
        q.join_thread()

    assert _run(ctx, put_and_close, q) == 0
    assert q.get(timeout=PATIENCE) == "from the child"  # still open here
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    with pytest.raises(TypeError, match="shared"):
        pickle.dumps(ctx.SimpleQueue())


def test_locks_refuse_pickling_and_report_their_state(ctx: procframe.Context) -> None:
    for made in (ctx.Lock(), ctx.RLock(), ctx.Semaphore(2), ctx.Condition(), ctx.Event()):
        with pytest.raises(TypeError, match="shared by the threads"):
            pickle.dumps(made)
    lock = ctx.Lock()
    with lock:
        assert repr(lock) == "<Lock(locked)>"
    assert repr(ctx.BoundedSemaphore(2)) == "<BoundedSemaphore(value=2, maxvalue=2)>"


def test_values_and_arrays_are_plain_ctypes_objects_behind_a_lock(ctx: procframe.Context) -> None:
    raw = ctx.RawValue("i", 5)
    assert type(raw) is ctypes.c_int and raw.value == 5
    numbers = ctx.RawArray("d", [1.0, 2.0])
    assert type(numbers) is ctypes.c_double * 2 and list(numbers) == [1.0, 2.0]
    value = ctx.Value("i", 7)
    assert type(value.get_obj()) is ctypes.c_int
    assert type(value.get_lock()).__module__ == "procframe.threads.synchronize"
    with value.get_lock():
        value.value += 1
    assert value.value == 8
    assert ctx.Value("i", lock=False).value == 0


# -- pool, executor, manager ----------------------------------------------------------------


def test_a_pool_refuses_task_timeouts_and_replaces_threads_after_maxtasks(
    ctx: procframe.Context,
) -> None:
    with pytest.raises(ValueError, match="task_timeout"):
        ctx.Pool(2, task_timeout=1)
    calls: list[int] = []

    def initializer() -> None:
        calls.append(threading.get_ident())

    def worker(_: int) -> tuple[int, str | None]:
        return threading.get_ident(), procframe.get_start_method()

    with ctx.Pool(1, initializer, (), 2) as pool:
        seen = pool.map(worker, range(6), chunksize=1)
        with pytest.raises(ValueError, match="timeout"):
            pool.apply_async(worker, (0,), timeout=1)
        pool.close()
        pool.join()
    idents = [ident for ident, _ in seen]
    assert idents[0] == idents[1] != idents[2] == idents[3] != idents[4] == idents[5]
    assert calls[:3] == idents[::2]  # each new thread ran the initializer once
    assert {backend for _, backend in seen} == {"threads"}


def test_the_executor_runs_calls_on_threads(ctx: procframe.Context) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as executor:
        assert executor.submit(lambda x: x * 3, 5).result(timeout=PATIENCE) == 15
        assert list(executor.map(abs, [-1, -2, 3], chunksize=2)) == [1, 2, 3]
        with pytest.raises(ZeroDivisionError):
            executor.submit(divmod, 1, 0).result(timeout=PATIENCE)


def test_the_manager_hands_out_plain_objects(ctx: procframe.Context) -> None:
    with ctx.Manager() as manager:
        assert type(manager.list([1])) is list and manager.dict(a=1) == {"a": 1}
        assert isinstance(manager.Namespace(x=1), Namespace)
        assert isinstance(manager.Queue(), queue.Queue)
        assert isinstance(manager.Event(), threading.Event)
        assert manager.Lock().acquire(blocking=False)  # threading's objects, as a server holds
        assert isinstance(manager.Array("i", [1, 2]), array.array)
        value = manager.Value("i", 3)
        value.value += 1
        assert value.get() == 4
        with manager.Pool(2) as pool:
            assert pool.map(abs, [-1, -2]) == [1, 2]
        for needs_a_server in (
            lambda: manager.address,
            manager.connect,
            manager.get_server,
            lambda: manager.register("Thing", dict),
        ):
            with pytest.raises(NotSupportedError, match="server"):
                needs_a_server()
    with pytest.raises(ManagerGoneError):
        manager.list()


def test_a_manager_server_is_refused_under_threads(ctx: procframe.Context) -> None:
    with pytest.raises(NotSupportedError, match="manager_server"):
        BaseManager(ctx=ctx).start()


def test_a_pool_of_worker_processes_is_refused_under_threads(ctx: procframe.Context) -> None:
    """procframe's process Pool signals its workers and hands each a descriptor."""
    from procframe.pool import Pool

    with pytest.raises(NotSupportedError, match=r"'posix_signals'.* or 'passes_descriptors'"):
        Pool(2, context=ctx)


def test_a_daemon_of_threads_is_not_signalled_at_exit(ctx: procframe.Context) -> None:
    from procframe._core import process

    release = threading.Event()
    p = ctx.Process(target=release.wait, args=(PATIENCE,), daemon=True)
    p.start()
    began = time.monotonic()
    try:
        process._stop_children()  # what the exit handler does: no signal, no wait
        assert time.monotonic() - began < process.DAEMON_STOP_GRACE
        assert p.is_alive()
    finally:
        release.set()
        p.join(PATIENCE)
    p.close()


def test_the_backend_answers_every_factory_hook_itself() -> None:
    """No POSIX primitive (which takes part in every backend's calls, last) answers for it."""
    from procframe import hookspecs
    from procframe.threads import plugin

    factories = [name for name in hookspecs.__all__ if name.startswith("procframe_make_")]
    assert len(factories) == 17
    missing = [
        name for name in factories if not hasattr(getattr(plugin, name, None), "procframe_impl")
    ]
    assert missing == []

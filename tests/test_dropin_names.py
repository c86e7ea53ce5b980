"""The public names of multiprocessing's modules that programs import, and procframe.dummy.

``procframe.dummy`` (``multiprocessing.dummy`` on the threads backend),
``procframe.context`` (``multiprocessing.context``'s names),
``procframe.process``, ``procframe.queues`` and ``procframe.synchronize``,
and ``set_start_method`` of the default context (once, as in multiprocessing).
What every backend must do with these names is in the conformance suite
(``procframe/testing/suite/test_dropin_names.py``).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import procframe
import procframe.context
import procframe.dummy
import procframe.dummy.connection
import procframe.pool
import procframe.process
import procframe.queues
import procframe.synchronize
from procframe._core import reduction, registry
from procframe.testing.helpers.scripts import run_script
from procframe.testing.plugin import Snapshot

PATIENCE = 60.0

# multiprocessing.dummy.__all__, and the names the module has besides.
DUMMY_ALL = [
    *("Process", "current_process", "active_children", "freeze_support"),
    *("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"),
    *("Queue", "Manager", "Pipe", "Pool", "JoinableQueue"),
]
DUMMY_MORE = ("Namespace", "Value", "Array", "connection")


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The test must leave no thread (or process) behind."""
    before = Snapshot.take()
    yield
    problems = before.leaks()
    assert not problems, problems


def loaded_after_import(module: str, tmp_path: Path) -> list[str]:
    """Which of pluggy and procframe's plugins a fresh interpreter loads importing ``module``."""
    watched = (
        "pluggy",
        "procframe.threads.backend",
        "procframe.posix.plugin",
        "procframe.managers",
    )
    code = f"import sys\nimport {module}\nprint([m for m in {watched!r} if m in sys.modules])\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.replace("'", '"'))
    return loaded


# -- procframe.dummy ---------------------------------------------------------------------


def test_dummy_has_every_name_of_multiprocessing_dummy() -> None:
    for name in (*DUMMY_ALL, *DUMMY_MORE):
        assert hasattr(procframe.dummy, name), name
    assert set(DUMMY_ALL) <= set(procframe.dummy.__all__)
    assert {"Client", "Listener", "Pipe"} <= set(procframe.dummy.connection.__all__)
    assert procframe.dummy.connection.families == [None]


@pytest.mark.parametrize("module", ["procframe.dummy", "procframe.queues", "procframe.synchronize"])
def test_importing_loads_no_plugin(module: str, tmp_path: Path) -> None:
    assert loaded_after_import(module, tmp_path) == []


def test_dummy_names_behave_as_multiprocessing_dummys() -> None:
    dummy = procframe.dummy
    assert dummy.current_process is threading.current_thread
    assert dummy.Queue is queue.Queue
    assert dummy.JoinableQueue is queue.Queue
    assert dummy.Lock is threading.Lock
    assert dummy.RLock is threading.RLock
    assert dummy.Semaphore is threading.Semaphore
    assert dummy.BoundedSemaphore is threading.BoundedSemaphore
    assert dummy.Process is procframe.get_context("threads").Process
    assert issubclass(dummy.Event, threading.Event)
    assert issubclass(dummy.Barrier, threading.Barrier)
    assert issubclass(dummy.Condition, threading.Condition)
    assert dummy.freeze_support() is None


def test_dummy_condition_has_threadings_lock_api() -> None:
    cond = procframe.dummy.Condition()
    assert cond.acquire(blocking=False)  # threading's keyword: the default lock is threading's
    try:
        assert cond.wait(timeout=0.01) is False
    finally:
        cond.release()
    with pytest.raises(RuntimeError):
        cond.notify()


def test_dummy_process_runs_in_a_thread_that_is_its_current_process(no_leaks: None) -> None:
    dummy = procframe.dummy
    seen: queue.Queue[str] = dummy.Queue()
    go = dummy.Event()

    def target() -> None:
        seen.put(dummy.current_process().name)
        go.wait(PATIENCE)

    process = dummy.Process(target=target, name="worker-1")
    process.start()
    try:
        assert process in dummy.active_children()
    finally:
        go.set()
        process.join(PATIENCE)
    assert process.exitcode == 0
    assert seen.get(timeout=PATIENCE) == "worker-1"
    assert dummy.active_children() == []


def test_dummy_pool_is_a_thread_pool_whose_workers_are_current_process(no_leaks: None) -> None:
    dummy = procframe.dummy
    pool = dummy.Pool(2)
    release = threading.Event()
    try:
        assert isinstance(pool, procframe.pool.ThreadPool)
        names = pool.map(lambda _: dummy.current_process().name, range(4))
        assert threading.current_thread().name not in names
        with pytest.raises(procframe.pool.TimeoutError):
            pool.apply_async(release.wait, (PATIENCE,)).get(timeout=0.01)
    finally:
        release.set()  # a thread cannot be stopped: terminate() waits for the task
        pool.terminate()
        pool.join()


def test_dummy_shared_objects(no_leaks: None) -> None:
    dummy = procframe.dummy
    value = dummy.Value("i", 3)
    with value.get_lock():
        value.value += 1
    assert value.value == 4
    assert dummy.Array("d", [1.0, 2.0], False)[:] == [1.0, 2.0]  # lock positional, as dummy's
    assert repr(dummy.Namespace(a=1)) == "Namespace(a=1)"
    with dummy.Manager() as manager:
        shared = manager.dict(a=1)
        assert shared == {"a": 1}
        assert isinstance(manager.Queue(), queue.Queue)
    event = dummy.Event()
    assert repr(event).endswith(" unset>")


def test_dummy_pipe_and_listener_hand_over_objects(no_leaks: None) -> None:
    connection = procframe.dummy.connection
    left, right = procframe.dummy.Pipe()
    sent = {"x": [1]}
    left.send(sent)
    assert right.recv() is sent  # the object itself, as in multiprocessing.dummy
    left.close()
    right.close()
    with connection.Listener() as listener:
        client = connection.Client(listener.address)
        served = listener.accept()
        client.send("ping")
        assert served.recv() == "ping"
        served.send_bytes(b"pong")
        assert client.recv_bytes() == b"pong"
        client.close()
        served.close()
        waiting = connection.Client(listener.address)
    with pytest.raises(EOFError):  # closing the listener closed the end never accepted
        waiting.recv()
    waiting.close()
    with pytest.raises(OSError, match="closed"):
        listener.accept()
    with pytest.raises(TypeError, match=r"address of a procframe\.dummy Listener"):
        connection.Client(("localhost", 6000))


# -- procframe.context, procframe.process ---------------------------------------------------


def test_context_module_has_multiprocessing_contexts_names() -> None:
    context = procframe.context
    assert context.BaseContext is procframe.Context
    assert isinstance(context.default_context, context.DefaultContext)
    assert isinstance(context.default_context, context.BaseContext)
    for backend, cls in [
        ("fork", context.ForkContext),
        ("spawn", context.SpawnContext),
        ("forkserver", context.ForkServerContext),
    ]:
        ctx = procframe.get_context(backend)
        assert isinstance(ctx, cls)
        assert isinstance(ctx, context.BaseContext)
    assert not isinstance(procframe.get_context("threads"), context.ForkContext)
    assert context.ForkProcess is procframe.get_context("fork").Process
    assert context.SpawnProcess is procframe.get_context("spawn").Process
    assert context.ForkServerProcess is procframe.get_context("forkserver").Process
    assert context.Process is procframe.Process
    for name in ("ProcessError", "BufferTooShort", "TimeoutError", "AuthenticationError"):
        assert getattr(context, name) is getattr(procframe, name)
    assert context.reduction is reduction
    with pytest.raises(AttributeError):
        context.NoSuchProcess  # noqa: B018


def test_assert_spawning_refuses_outside_a_childs_start() -> None:
    with pytest.raises(RuntimeError, match="Lock objects should only be shared"):
        procframe.context.assert_spawning(procframe.get_context("threads").Lock())
    with reduction.collecting_fds():
        procframe.context.assert_spawning(object())


def test_module_level_names_of_multiprocessing() -> None:
    assert procframe.allow_connection_pickling() is None
    assert procframe.reducer is reduction
    assert procframe.pool.TimeoutError is procframe.TimeoutError
    assert issubclass(procframe.LockNotOwnedError, AssertionError)
    assert issubclass(procframe.LockNotOwnedError, RuntimeError)
    assert issubclass(procframe.ProcessNotStartedError, ValueError)


def test_process_module_has_multiprocessing_process_names() -> None:
    module = procframe.process
    assert module.current_process() is procframe.current_process()
    assert module.parent_process() is procframe.parent_process()
    assert module.active_children() == []
    assert issubclass(procframe.Process, module.BaseProcess)
    assert isinstance(procframe.current_process(), module.BaseProcess)
    assert isinstance(procframe.current_process().authkey, module.AuthenticationString)


# -- the public classes of procframe.queues and procframe.synchronize ---------------------


def test_queue_and_lock_modules_have_the_stdlib_names() -> None:
    assert set(procframe.queues.__all__) >= {"Queue", "SimpleQueue", "JoinableQueue"}
    assert procframe.queues.Empty is queue.Empty
    assert procframe.queues.Full is queue.Full
    names = {"Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"}
    assert set(procframe.synchronize.__all__) >= names
    assert issubclass(procframe.synchronize.BoundedSemaphore, procframe.synchronize.Semaphore)
    assert issubclass(procframe.queues.JoinableQueue, procframe.queues.Queue)
    assert not issubclass(procframe.synchronize.RLock, procframe.synchronize.Lock)
    assert procframe.queues.Queue[int].__origin__ is procframe.queues.Queue


def test_a_public_class_called_without_ctx_uses_the_default_context() -> None:
    lock = procframe.synchronize.Lock()
    assert type(lock) is type(procframe.Lock())


def test_a_third_party_backend_registers_its_class() -> None:
    class OwnLock:
        def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
            return True

        def release(self) -> None:
            pass

    assert not isinstance(OwnLock(), procframe.synchronize.Lock)
    procframe.synchronize.Lock.register(OwnLock)
    try:
        assert isinstance(OwnLock(), procframe.synchronize.Lock)
    finally:
        implementations = procframe.synchronize.Lock._implementations
        procframe.synchronize.Lock._implementations = implementations[:-1]
    with pytest.raises(TypeError, match="only the public class"):
        type("Sub", (procframe.synchronize.Lock,), {}).register(OwnLock)


def test_ctx_must_be_a_procframe_context() -> None:
    for wrong in ("fork", object()):
        with pytest.raises(TypeError, match=r"procframe\.get_context"):
            procframe.queues.Queue(ctx=wrong)  # type: ignore[arg-type]


# -- set_start_method of the default context --------------------------------------------


@pytest.fixture
def clean_selection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No backend chosen; the selection restored afterwards."""
    monkeypatch.delenv(registry.BACKEND_ENV, raising=False)
    chosen, set_by_code = registry._chosen, procframe.context._set_by_code
    registry._chosen = None
    procframe.context._set_by_code = None
    yield
    registry._chosen = chosen
    procframe.context._set_by_code = set_by_code


def test_set_start_method_sets_the_default_once(clean_selection: None) -> None:
    procframe.set_start_method("spawn")
    for again in ("spawn", "fork"):
        with pytest.raises(RuntimeError, match=r"^context has already been set"):
            procframe.set_start_method(again)
        with pytest.raises(RuntimeError, match=r"^context has already been set"):
            procframe.context.default_context.set_start_method(again)
    assert procframe.get_start_method() == "spawn"
    procframe.set_start_method("fork", force=True)
    assert procframe.get_start_method() == "fork"
    procframe.set_start_method(None, force=True)
    assert procframe.get_start_method(allow_none=True) is None
    procframe.set_start_method("spawn")  # cleared: may be set again
    assert procframe.get_start_method() == "spawn"


def test_set_backend_then_set_start_method_counts_as_twice(clean_selection: None) -> None:
    procframe.set_backend("spawn")
    procframe.set_backend("spawn")  # procframe's own name accepts the same backend again
    with pytest.raises(RuntimeError, match="context has already been set"):
        procframe.set_start_method("spawn")


SET_AT_MODULE_LEVEL = """\
import procframe

procframe.set_start_method({backend!r})  # outside the main guard: run again in the child


def child():
    print("child ran")


if __name__ == "__main__":
    process = procframe.Process(target=child)
    process.start()
    process.join()
    print(process.exitcode)
"""


@pytest.mark.parametrize("backend", ["spawn", "forkserver"])
def test_a_module_level_set_start_method_run_again_in_a_child_passes(
    tmp_path: Path, backend: str
) -> None:
    # A child adopts its parent's backend before it imports the main module again:
    # the same backend chosen there is accepted (multiprocessing raises in the child).
    result = run_script(tmp_path, SET_AT_MODULE_LEVEL.format(backend=backend), backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "child ran\n0\n", result.stderr


def test_the_public_submodules_are_attributes_after_import_procframe() -> None:
    """``mp.util.Finalize`` and the like work after a bare ``import procframe as mp``."""
    code = (
        "import procframe as mp\n"
        "names = ['connection', 'dummy', 'futures', 'managers', 'pool', 'process', 'queues',\n"
        "         'shared_memory', 'sharedctypes', 'synchronize', 'util']\n"
        "assert all(getattr(mp, n).__name__ == 'procframe.' + n for n in names)\n"
        "assert mp.util.Finalize and mp.process.BaseProcess and mp.queues.Queue\n"
        "try:\n"
        "    mp.no_such_module\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE
    )
    assert result.returncode == 0, result.stderr
    assert "no attribute 'no_such_module'" in result.stdout

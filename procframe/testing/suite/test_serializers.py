"""Serializers as plugins: lambdas, closures, local classes and the prompt's functions cross.

Each test runs on every backend and under each installed serializer other
than pickle (cloudpickle, dill, a plugin's), chosen per context with
``procframe.get_context(backend, serializer=name)``.  On a backend whose
children inherit the parent's memory objects cross as they are, and the tests
check that the API still behaves.  Child targets live in
:mod:`procframe.testing.helpers.serializers`.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from pathlib import Path

import pytest

import procframe
from procframe._core import serializing
from procframe._core.capabilities import SEPARATE_MEMORY
from procframe.connection import Listener
from procframe.futures import ProcessPoolExecutor
from procframe.managers import SyncManager
from procframe.serializers import PICKLE, SERIALIZER_ENV, SerializerError, available_serializers
from procframe.testing.helpers import serializers as tk
from procframe.testing.helpers.scripts import script_env

PATIENCE = 60.0
"""Seconds to wait for anything that should happen at once."""
KEY = b"serializer tests, 32 bytes long."
_SESSION_SERIALIZER = os.environ.get(SERIALIZER_ENV, PICKLE)
RICH_SERIALIZERS = (
    [_SESSION_SERIALIZER]
    if _SESSION_SERIALIZER != PICKLE
    else [name for name in available_serializers() if name != PICKLE]
)
"""The serializers under test: the session's (``--procframe-serializer``), or every installed
one that carries functions by value when the session runs under pickle."""


@pytest.fixture(
    params=RICH_SERIALIZERS
    or [pytest.param(None, marks=pytest.mark.skip(reason="no serializer but pickle installed"))],
)
def rich_serializer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed serializer that carries functions and classes by value; the environment
    names none (a fresh child must get it from its parent, not from there; a fork server's
    children see the server's environment, whatever the test sets)."""
    monkeypatch.delenv(SERIALIZER_ENV, raising=False)
    name: str = request.param
    return name


@pytest.fixture
def rich_ctx(ctx: procframe.Context, rich_serializer: str) -> procframe.Context:
    """The backend under test's context, with the serializer under test."""
    return procframe.get_context(ctx.name, serializer=rich_serializer)


def _told(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` shows: messages and notes along its chain."""
    told = []
    seen: BaseException | None = exc
    while seen is not None:
        told.append(str(seen))
        told.extend(getattr(seen, "__notes__", ()))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(told)


def _refusal(serializer: str, obj: object) -> BaseException | None:
    """What ``serializer`` itself raises for ``obj`` (``None`` if it carries it)."""
    try:
        serializing.get(serializer).info.dumps(obj)
    except Exception as exc:
        return exc
    return None


# -- objects cross to children, workers, managers -------------------------------------


@pytest.mark.core
def test_local_objects_cross_to_a_child_and_back(rich_ctx: procframe.Context) -> None:
    offset = 10
    point = tk.make_local_class()
    q, sq, jq = rich_ctx.Queue(), rich_ctx.SimpleQueue(), rich_ctx.JoinableQueue()
    here, there = rich_ctx.Pipe()
    try:
        q.put(lambda x: x + offset)
        sq.put(tk.make_adder(60))
        jq.put(point)
        here.send(lambda x: x * offset)
        child = rich_ctx.Process(
            target=tk.make_child_target(),
            args=(there, q, sq, jq, lambda x: x + offset, point, point(4, 5), tk.make_adder(1)),
        )
        child.start()
        assert here.poll(PATIENCE), "the child sent no report"
        report = here.recv()
        assert report["args"] == (11, 5, 9, 5)
        assert report["received"] == (15, 66, 7, 80)
        assert report["reply"].text == "through the pipe"
        assert q.get(timeout=PATIENCE)(21) == 42
        assert jq.get(timeout=PATIENCE)("through a queue").text == "through a queue"
        jq.task_done()
        assert sq.get()(1) == 1001
        child.join(PATIENCE)
        assert child.exitcode == 0
        # The program's default may be pickle: the child adopted its context's serializer
        # (a thread-run child too, in its thread).
        assert report["serializer"] == rich_ctx.serializer
    finally:
        for queue in (q, jq):
            queue.close()
            queue.join_thread()
        sq.close()
        here.close()
        there.close()


def test_pool_tasks_results_and_initializer_carry_local_objects(
    rich_ctx: procframe.Context,
) -> None:
    token = f"token of {os.getpid()}"
    factor = 3
    point = tk.make_local_class()

    class LocalError(Exception):
        pass

    def fail(message: str) -> None:
        raise LocalError(message)

    with rich_ctx.Pool(2, initializer=tk.make_initializer(token)) as pool:
        assert pool.map(lambda x: x * factor, range(6), chunksize=1) == [0, 3, 6, 9, 12, 15]
        assert pool.apply_async(tk.make_adder(7), (1,)).get(PATIENCE) == 8
        points = [point(i, i) for i in range(4)]
        assert list(pool.imap(point.total, points)) == [0, 2, 4, 6]
        assert sorted(pool.imap_unordered(lambda p: p.x * factor, points)) == [0, 3, 6, 9]
        assert pool.starmap(lambda a, b: a - b, [(5, 1), (9, 2)]) == [4, 7]
        assert pool.apply_async(tk.make_adder, (5,)).get(PATIENCE)(1) == 6
        made = pool.apply_async(tk.make_local_class).get(PATIENCE)
        assert made(2, 3).total() == 5
        remembered, serializer, worker_lambda = pool.apply_async(tk.worker_state).get(PATIENCE)
        assert token in remembered  # the initializer, a closure, ran in the worker
        assert worker_lambda(1) == "worker lambda 1"
        if rich_ctx.backend.has(SEPARATE_MEMORY):
            assert serializer == rich_ctx.serializer
        with pytest.raises(Exception) as info:
            pool.apply_async(fail, ("raised by a worker",)).get(PATIENCE)
        assert type(info.value).__name__ == "LocalError"
        assert str(info.value) == "raised by a worker"


def test_executor_submit_and_map_carry_local_objects(rich_ctx: procframe.Context) -> None:
    offset = 100
    point = tk.make_local_class()

    class LocalError(Exception):
        pass

    def fail() -> None:
        raise LocalError("raised in the executor")

    with ProcessPoolExecutor(2, mp_context=rich_ctx) as executor:
        assert executor.submit(lambda x: x + offset, 1).result(timeout=PATIENCE) == 101
        assert list(executor.map(tk.make_adder(offset), [1, 2], timeout=PATIENCE)) == [101, 102]
        assert executor.submit(point, 1, 2).result(timeout=PATIENCE).total() == 3
        assert executor.submit(lambda: lambda: "back").result(timeout=PATIENCE)() == "back"
        error = executor.submit(fail).exception(timeout=PATIENCE)
        assert type(error).__name__ == "LocalError"
        assert str(error) == "raised in the executor"


@pytest.mark.requires("manager_server")
def test_manager_proxies_carry_local_objects(rich_ctx: procframe.Context) -> None:
    class Counter:
        def __init__(self, start: int) -> None:
            self.count = start

        def add(self, step: int) -> int:
            self.count += step
            return self.count

    class LocalManager(SyncManager):
        pass

    LocalManager.register("Counter", Counter)
    offset = 7
    with LocalManager(ctx=rich_ctx) as manager:
        assert manager.Counter(5).add(2) == 7
        shared = manager.dict()
        shared["lambda"] = lambda x: x + offset
        shared["class"] = Counter
        shared["instance"] = Counter(40)
        assert shared["lambda"](1) == 8
        assert shared["class"](1).add(1) == 2
        assert shared["instance"].add(2) == 42
        functions = manager.list([tk.make_adder(offset)])
        functions.append(lambda: "appended")
        assert functions[0](1) == 8
        assert functions[1]() == "appended"
        namespace = manager.Namespace()
        namespace.function = lambda: "namespace"
        assert namespace.function() == "namespace"


@pytest.mark.requires("manager_server")
def test_manager_clients_must_use_the_servers_serializer(
    ctx: procframe.Context, rich_ctx: procframe.Context, rich_serializer: str
) -> None:
    others = [name for name in available_serializers() if name != rich_serializer]
    with SyncManager(authkey=KEY, ctx=rich_ctx) as server:
        for other in others:
            client = SyncManager(
                server.address, KEY, ctx=procframe.get_context(ctx.name, serializer=other)
            )
            with pytest.raises(SerializerError) as info:
                client.connect()  # its first call after authentication
            assert rich_serializer in str(info.value)
            assert other in str(info.value)
        same = SyncManager(server.address, KEY, ctx=rich_ctx)
        same.connect()
        shared = same.dict()
        shared["f"] = lambda: "agreed"
        assert shared["f"]() == "agreed"
        del shared


def test_listener_and_client_exchange_lambdas(ctx: procframe.Context, rich_serializer: str) -> None:
    # The child's context names no serializer: only the Client's argument chooses one.
    with Listener(authkey=KEY, serializer=rich_serializer) as listener:
        child = ctx.Process(
            target=tk.exchange_with_listener, args=(listener.address, KEY, rich_serializer)
        )
        child.start()
        try:
            with listener.accept() as conn:
                conn.send(lambda x: x * 2)
                assert conn.poll(PATIENCE), "the client answered nothing"
                result, back = conn.recv()
            assert result == 40
            assert back(1) == 0
        finally:
            child.join(PATIENCE)
    assert child.exitcode == 0


# -- the prompt's and the main block's functions -------------------------------------

PROMPT_SESSION = """\
import procframe
ctx = procframe.get_context()
def triple(x):
    return 3 * x

class Box:
    def __init__(self, value):
        self.value = value
    def get(self):
        return self.value

def child(q):
    q.put((triple(4), Box(5).get(), lambda: "child lambda"))

q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
got = q.get(timeout=60)
p.join(60)
print("process", got[0], got[1], got[2](), p.exitcode)
with ctx.Pool(2) as pool:
    print("pool", pool.map(triple, [1, 2], chunksize=1), pool.apply_async(Box, (6,)).get(60).get())

with ctx.Manager() as manager:
    shared = manager.dict()
    shared["f"] = triple
    shared["box"] = Box(7)
    print("manager", shared["f"](5), shared["box"].get())

q.close()
q.join_thread()
print("done")
"""


@pytest.mark.core
def test_functions_defined_at_the_interactive_prompt_cross(
    ctx: procframe.Context, rich_serializer: str, tmp_path: Path
) -> None:
    import subprocess

    env = script_env(ctx.name)
    env[SERIALIZER_ENV] = rich_serializer
    session = subprocess.run(
        [sys.executable, "-i", "-q"],
        input=PROMPT_SESSION,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert session.returncode == 0, session.stderr
    assert "Traceback" not in session.stderr, session.stderr
    assert session.stdout.splitlines() == [
        "process 12 5 child lambda 0",
        "pool [3, 6] 6",
        "manager 15 7",
        "done",
    ], session.stderr


MAIN_BLOCK_SCRIPT = """\
import pickle
import sys

import procframe

if __name__ == "__main__":
    def square(x):
        return x * x

    rich = procframe.get_context(sys.argv[1], serializer=sys.argv[2])
    with rich.Pool(1) as pool:
        print("rich", pool.map(square, [1, 2, 3], chunksize=1))
    plain = procframe.get_context(sys.argv[1], serializer="pickle")
    with plain.Pool(1) as pool:
        try:
            pool.map(square, [1, 2, 3], chunksize=1)
        except pickle.PicklingError as exc:
            print("pickle", " | ".join([str(exc), *getattr(exc, "__notes__", ())]))
"""


@pytest.mark.requires("reimports_main")
def test_a_function_defined_under_the_main_guard_crosses_to_a_pool(
    ctx: procframe.Context, rich_serializer: str, tmp_path: Path
) -> None:
    import subprocess

    (tmp_path / "main_block.py").write_text(MAIN_BLOCK_SCRIPT, encoding="utf-8")
    env = script_env(ctx.name)
    env.pop(SERIALIZER_ENV, None)
    run = subprocess.run(
        [sys.executable, "main_block.py", ctx.name, rich_serializer],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    rich_line, pickle_line = run.stdout.splitlines()
    assert rich_line == "rich [1, 4, 9]"
    # Under pickle a worker, which re-imports the main module without running its main
    # block, could not find the function: the caller gets a PicklingError that says so,
    # and which serializers would carry it.
    assert pickle_line.startswith("pickle "), run.stdout
    assert "<function square" in pickle_line
    assert "`if __name__ == '__main__':` block" in pickle_line
    assert "the 'pickle' serializer cannot carry <function square" in pickle_line
    assert repr(rich_serializer) in pickle_line.split(" | ", 1)[1]


# -- errors stay clear ------------------------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_what_the_serializer_refuses_fails_in_the_caller(
    ctx: procframe.Context, rich_ctx: procframe.Context, rich_serializer: str
) -> None:
    refused = tk.Refuses("in the caller")
    expected = _refusal(rich_serializer, refused)
    assert expected is not None
    named = f"the {rich_serializer!r} serializer cannot carry"

    def check(error: BaseException, *, exact: bool = True) -> None:
        # Drop-in: the serializer's own exception (a subclass of it where procframe says more).
        assert type(error) is type(expected) if exact else isinstance(error, type(expected))
        assert str(expected) in str(error)
        told = _told(error)
        assert named in told
        assert "Refuses in the caller" in told

    q = rich_ctx.Queue()
    here, there = rich_ctx.Pipe()
    try:
        with pytest.raises(Exception) as info:
            q.put(refused)
        check(info.value)
        q.put("still usable")
        assert q.get(timeout=PATIENCE) == "still usable"
        with pytest.raises(Exception) as info:
            here.send(refused)
        check(info.value)
        lock = threading.Lock()
        lock_refusal = _refusal(rich_serializer, lock)
        if lock_refusal is not None:
            carriers = [
                name
                for name in RICH_SERIALIZERS
                if name != rich_serializer and _refusal(name, lock) is None
            ]
            with pytest.raises(type(lock_refusal)) as info:
                here.send(lock)
            for name in carriers:  # the note suggests the serializers that would carry it
                assert repr(name) in _told(info.value)
        plain = procframe.get_context(ctx.name, serializer=PICKLE).SimpleQueue()
        try:

            def local() -> None:
                pass

            try:
                pickle.dumps(local)
            except Exception as exc:
                pickle_refusal = exc
            with pytest.raises(type(pickle_refusal)) as info:
                plain.put(local)
            assert str(info.value) == str(pickle_refusal)
            for name in RICH_SERIALIZERS:
                assert repr(name) in _told(info.value)
        finally:
            plain.close()
        with rich_ctx.Pool(1) as pool:
            with pytest.raises(Exception) as info:
                pool.apply_async(len, (refused,)).get(PATIENCE)
            check(info.value, exact=False)
            with pytest.raises(Exception) as info:
                pool.map(len, [refused])
            check(info.value, exact=False)
        with ProcessPoolExecutor(1, mp_context=rich_ctx) as executor:
            error = executor.submit(len, refused).exception(timeout=PATIENCE)
            assert error is not None
            check(error)
    finally:
        q.close()
        q.join_thread()
        here.close()
        there.close()


@pytest.mark.requires("pickles_process")
def test_a_process_whose_arguments_are_refused_fails_at_start(
    rich_ctx: procframe.Context, rich_serializer: str
) -> None:
    refused = tk.Refuses("at start")
    expected = _refusal(rich_serializer, refused)
    assert expected is not None
    process = rich_ctx.Process(target=len, args=(refused,))
    with pytest.raises(type(expected)) as info:
        process.start()
    assert isinstance(info.value, pickle.PicklingError)
    told = _told(info.value)
    assert str(expected) in told
    assert f"the {rich_serializer!r} serializer cannot carry <Refuses at start>" in told

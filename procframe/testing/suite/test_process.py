"""Process: the lifecycle, attributes and errors every backend must get right."""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading
from pathlib import Path

import pytest

import procframe
from procframe._core import registry
from procframe.testing.helpers import refusals, targets
from procframe.testing.helpers.targets import read_report


@pytest.mark.core
def test_target_runs_with_args_and_kwargs(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = ctx.Process(target=targets.echo_args, args=(str(out), 1, "two"), kwargs={"k": [3]})
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert read_report(out) == {"args": [1, "two"], "kwargs": {"k": [3]}}


def test_subclass_overriding_run(
    ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_chosen", ctx.name)  # procframe.Process uses the default
    out = tmp_path / "out"
    p = targets.Recorder(str(out), 21)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert read_report(out) == {"value": 42, "name": p.name}


def test_lifecycle_attributes(ctx: procframe.Context) -> None:
    p = ctx.Process(target=targets.sleep_for, args=(0.2,))
    assert (p.pid, p.ident, p.exitcode, p.is_alive()) == (None, None, None, False)
    p.start()
    assert p.is_alive()
    assert isinstance(p.pid, int) and p.pid == p.ident and p.pid != os.getpid()
    assert p.exitcode is None
    assert p in procframe.active_children()
    p.join(60)
    assert not p.is_alive()
    assert p.exitcode == 0
    assert p not in procframe.active_children()


@pytest.mark.requires("posix_signals")
def test_join_with_timeout_returns_while_running(ctx: procframe.Context) -> None:
    p = ctx.Process(target=targets.sleep_forever)
    p.start()
    p.join(0.1)
    assert p.is_alive()
    assert p.exitcode is None
    p.kill()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.requires("local_pids")
@pytest.mark.core
def test_child_sees_itself_and_its_parent(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = ctx.Process(target=targets.describe_self, args=(str(out),), name="worker-7")
    p.start()
    p.join(60)
    seen = read_report(out)
    assert seen["name"] == "worker-7"
    assert seen["pid"] == seen["ident"] == p.pid
    assert seen["parent_pid"] == os.getpid()
    assert seen["parent_name"] == procframe.current_process().name
    assert seen["parent_alive"] is True
    assert seen["authkey"] == bytes(procframe.current_process().authkey).hex()
    assert seen["daemon"] is False


def test_main_process_view() -> None:
    me = procframe.current_process()
    assert me.name == "MainProcess"
    assert me.pid == os.getpid()
    assert me.is_alive()
    assert procframe.parent_process() is None
    assert len(me.authkey) >= 32


@pytest.mark.in_one_process
def test_default_names_are_unique(ctx: procframe.Context) -> None:
    a, b = ctx.Process(target=targets.noop), ctx.Process(target=targets.noop)
    assert a.name != b.name
    assert a.name.endswith(tuple("0123456789"))


@pytest.mark.core
def test_child_runs_under_the_backend_that_launched_it(
    ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = next((n for n in procframe.get_all_start_methods() if n != ctx.name), ctx.name)
    monkeypatch.setenv("PROCFRAME_BACKEND", other)
    out = tmp_path / "out"
    p = ctx.Process(target=targets.start_grandchild, args=(str(out),))
    p.start()
    p.join(120)
    assert p.exitcode == 0
    assert read_report(out) == {"exitcode": 0, "backend": ctx.name}
    grandchild = read_report(str(out) + ".grandchild")
    assert grandchild["backend"] == ctx.name
    assert grandchild["parent_pid"] == p.pid


@pytest.mark.core
def test_exit_codes(ctx: procframe.Context) -> None:
    cases = {None: 0, 0: 0, 3: 3, 255: 255, "bye": 1}
    procs = {code: ctx.Process(target=targets.exit_with, args=(code,)) for code in cases}
    for p in procs.values():
        p.start()
    for code, p in procs.items():
        p.join(60)
        assert p.exitcode == cases[code], code


@pytest.mark.core
def test_exception_in_child_prints_traceback_and_exits_1(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    err = tmp_path / "stderr"
    p = ctx.Process(target=targets.raise_value_error, args=("boom 17", str(err)), name="bad")
    ours = sys.stderr
    try:
        p.start()
        p.join(60)
    finally:
        if sys.stderr is not ours:  # a child sharing this process's memory replaced it
            sys.stderr.close()
            sys.stderr = ours
    assert p.exitcode == 1
    text = err.read_text(encoding="utf-8")
    assert "Process bad:" in text
    assert "Traceback (most recent call last)" in text
    assert "ValueError: boom 17" in text


@pytest.mark.core
@pytest.mark.requires("posix_signals")
@pytest.mark.parametrize(
    ("method", "signum"), [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)]
)
def test_signals_give_negative_exitcode(
    ctx: procframe.Context, tmp_path: Path, method: str, signum: int
) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=targets.sleep_forever, args=(str(ready),))
    p.start()
    read_report(ready)
    getattr(p, method)()
    p.join(60)
    assert p.exitcode == -signum
    assert f"exitcode=-{signal.Signals(signum).name}" in repr(p)


@pytest.mark.requires("posix_signals")
def test_kill_works_when_sigterm_is_ignored(ctx: procframe.Context, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=targets.ignore_sigterm_and_sleep, args=(str(ready),))
    p.start()
    read_report(ready)
    p.terminate()
    p.join(0.3)
    assert p.is_alive()
    p.kill()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.requires("posix_signals")
def test_interrupt_raises_keyboardinterrupt_in_child(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ready, err = tmp_path / "ready", tmp_path / "stderr"
    p = ctx.Process(target=targets.wait_for_interrupt, args=(str(ready), str(err)))
    p.start()
    read_report(ready)
    p.interrupt()
    p.join(60)
    assert p.exitcode == 1
    assert "KeyboardInterrupt" in err.read_text(encoding="utf-8")


def test_signalling_an_exited_process_is_harmless(ctx: procframe.Context) -> None:
    p = ctx.Process(target=targets.noop)
    p.start()
    p.join(60)
    p.terminate()
    p.kill()
    p.interrupt()
    assert p.exitcode == 0


@pytest.mark.requires("posix_signals")
def test_sentinel_becomes_readable_at_exit(ctx: procframe.Context, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=targets.sleep_forever, args=(str(ready),))
    p.start()
    read_report(ready)
    sentinel = p.sentinel
    assert isinstance(sentinel, int)
    assert select.select([sentinel], [], [], 0.2)[0] == []
    p.kill()
    assert select.select([sentinel], [], [], 60)[0] == [sentinel]
    p.join(60)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.requires("posix_signals")
def test_close_releases_and_forbids_further_use(ctx: procframe.Context, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=targets.sleep_forever, args=(str(ready),))
    p.start()
    read_report(ready)
    with pytest.raises(ValueError, match="still running"):
        p.close()
    p.kill()
    p.join(60)
    p.close()
    p.close()  # idempotent
    for use in (p.is_alive, p.join, p.start, p.terminate, lambda: p.pid, lambda: p.exitcode):
        with pytest.raises(ValueError, match="closed"):
            use()
    assert "closed" in repr(p)


def test_start_twice_is_an_error(ctx: procframe.Context) -> None:
    p = ctx.Process(target=targets.noop)
    p.start()
    with pytest.raises(procframe.ProcessStateError, match="twice"):
        p.start()
    p.join(60)
    with pytest.raises(AssertionError):  # what multiprocessing raises
        p.start()
    with pytest.raises(RuntimeError):  # what threading raises
        p.start()


@pytest.mark.in_one_process
def test_using_a_process_before_start_is_an_error(ctx: procframe.Context) -> None:
    p = ctx.Process(target=targets.noop)
    with pytest.raises(procframe.ProcessStateError, match="started"):
        p.join()
    for method in (p.terminate, p.kill, p.interrupt):
        with pytest.raises(procframe.ProcessStateError, match="never started"):
            method()
    with pytest.raises(procframe.ProcessStateError):
        _ = p.sentinel
    p.close()  # closing a never-started process is fine


@pytest.mark.in_one_process
def test_bad_arguments_are_refused_at_construction(ctx: procframe.Context) -> None:
    with pytest.raises(TypeError, match=r"target must be callable.*int"):
        ctx.Process(target=42)
    with pytest.raises(ValueError, match="group"):
        ctx.Process(group="g", target=targets.noop)  # type: ignore[arg-type]
    p = ctx.Process(target=targets.noop)
    with pytest.raises(TypeError, match="name"):
        p.name = 3  # type: ignore[assignment]
    with pytest.raises(TypeError, match="authkey"):
        p.authkey = "text"  # type: ignore[assignment]


def test_daemon_flag(ctx: procframe.Context, tmp_path: Path) -> None:
    p = ctx.Process(target=targets.describe_self, args=(str(tmp_path / "out"),), daemon=True)
    assert p.daemon
    p.start()
    with pytest.raises(procframe.ProcessStateError, match="daemon"):
        p.daemon = False
    p.join(60)
    assert read_report(tmp_path / "out")["daemon"] is True


def test_daemonic_process_may_not_have_children(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = ctx.Process(target=targets.try_start_child, args=(str(out),), daemon=True)
    p.start()
    p.join(60)
    assert read_report(out) == {
        "error": "ProcessStateError",
        "message": "daemonic processes are not allowed to have children",
    }


def test_authkey_is_inherited_and_settable(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = ctx.Process(target=targets.describe_self, args=(str(out),))
    assert p.authkey == procframe.current_process().authkey
    p.authkey = b"k" * 32
    p.start()
    p.join(60)
    assert read_report(out)["authkey"] == (b"k" * 32).hex()


def test_authkey_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="security"):
        pickle.dumps(procframe.current_process().authkey)


@pytest.mark.requires("pickles_process")
def test_unpicklable_target_fails_in_parent_naming_it(ctx: procframe.Context) -> None:
    before = procframe.active_children()
    target = refusals.a_refused_function()
    p = ctx.Process(target=target)
    name = "lambda" if target.__class__.__name__ == "function" else "Unpicklable"
    with pytest.raises(procframe.ProcessPicklingError, match=rf"target.*{name}"):
        p.start()
    assert procframe.active_children() == before
    assert p.pid is None


@pytest.mark.requires("pickles_process")
def test_unpicklable_argument_fails_in_parent_naming_it(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    bad, out = refusals.a_generator(), str(tmp_path / "out")
    p = ctx.Process(target=targets.echo_args, args=(out, bad))
    with pytest.raises(pickle.PicklingError, match=r"args\[1\].*generator"):
        p.start()
    p = ctx.Process(target=targets.echo_args, args=(out,), kwargs={"bad": bad})
    with pytest.raises(TypeError, match=r"kwargs\['bad'\]"):
        p.start()
    assert list(tmp_path.iterdir()) == []  # no child ran


@pytest.mark.requires("inherits_parent_memory")
def test_unpicklable_target_works_when_the_child_inherits_memory(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    lock = threading.Lock()

    def closure() -> None:
        with lock:
            targets.report(out, "ran")

    p = ctx.Process(target=closure)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert read_report(out) == "ran"


# Forking from a thread is what this test is about; Python 3.12+ warns about it, rightly.
@pytest.mark.requires("posix_signals")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_process_started_from_a_short_lived_thread_survives_it(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    started: list[procframe.Process] = []

    def starter() -> None:
        p = ctx.Process(target=targets.sleep_forever, args=(str(ready),))
        p.start()
        started.append(p)

    t = threading.Thread(target=starter)
    t.start()
    t.join(60)
    (p,) = started
    read_report(ready)
    p.join(1.0)  # the thread that launched it is gone; the child must not be
    assert p.is_alive()
    p.kill()
    p.join(60)


@pytest.mark.requires("local_pids")
def test_many_children_at_once(ctx: procframe.Context, tmp_path: Path) -> None:
    procs = [
        ctx.Process(target=targets.write_marker, args=(str(tmp_path / f"m{i}"),)) for i in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    assert {int((tmp_path / f"m{i}").read_text()) for i in range(8)} == {p.pid for p in procs}


def test_ctx_process_instances_pickle_by_reference(ctx: procframe.Context) -> None:
    cls = ctx.Process
    assert cls is ctx.Process
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert cls._context_name == ctx.name


@pytest.mark.requires("separate_memory")
def test_child_waits_for_its_non_daemonic_threads(ctx: procframe.Context, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    p = ctx.Process(target=targets.leave_a_thread_running, args=(str(marker),))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert marker.read_text() == "done"

"""procframe.util: the helpers of multiprocessing.util, with the standard library's semantics."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import procframe
from procframe import util
from procframe._core import finalize
from procframe.testing.helpers.scripts import script_env, write_script


class Obj:
    pass


def run(tmp_path: Path, source: str, backend: str = "fork") -> subprocess.CompletedProcess[str]:
    path = write_script(tmp_path, source)
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=script_env(backend),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- Finalize -------------------------------------------------------------------------------


def test_a_finalizer_runs_its_callback_once_and_returns_its_result() -> None:
    calls = []
    f = util.Finalize(None, lambda *a, **k: calls.append((a, k)) or "done", (1,), {"k": 2}, 0)
    assert f.still_active()
    assert f() == "done"
    assert not f.still_active()
    assert f() is None
    assert calls == [((1,), {"k": 2})]


def test_a_cancelled_finalizer_never_runs() -> None:
    calls: list[int] = []
    obj = Obj()
    f = util.Finalize(obj, calls.append, args=(1,))
    f.cancel()
    assert not f.still_active()
    del obj
    gc.collect()
    assert f() is None
    assert calls == []


def test_a_finalizer_runs_when_its_object_is_collected() -> None:
    calls: list[str] = []
    obj = Obj()
    f = util.Finalize(obj, calls.append, args=("gone",))
    assert "callback=append" in repr(f)
    del obj
    gc.collect()
    assert calls == ["gone"]
    assert not f.still_active()
    assert repr(f) == "<Finalize object, dead>"


def test_finalizer_arguments_are_checked_as_multiprocessing_does() -> None:
    with pytest.raises(TypeError, match="Exitpriority"):
        util.Finalize(Obj(), print, exitpriority=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Without object, exitpriority cannot be None"):
        util.Finalize(None, print)


MAIN_EXIT = """\
    import os
    from procframe import util

    def say(*words):
        print(*words, flush=True)

    class Obj:
        pass

    kept = Obj()
    util.Finalize(None, say, args=("low",), exitpriority=-1)
    util.Finalize(None, say, args=("zero-a",), exitpriority=0)
    util.Finalize(None, say, args=("high",), exitpriority=5)
    util.Finalize(None, say, args=("zero-b",), exitpriority=0)
    util.Finalize(kept, say, args=("never: no exit priority",))
    util.Finalize(None, lambda: say("exiting", util.is_exiting()), exitpriority=1)
    tempdir = util.get_temp_dir()
    assert util.get_temp_dir() == tempdir and os.path.isdir(tempdir)
    util.Finalize(None, lambda: say("tempdir still there", os.path.isdir(tempdir)), exitpriority=0)
    say("tempdir", tempdir)
    say("exiting", util.is_exiting())
"""


def test_the_main_process_runs_its_finalizers_at_exit_by_priority(tmp_path: Path) -> None:
    result = run(tmp_path, MAIN_EXIT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tempdir = lines.pop(0).split(" ", 1)[1]
    assert lines == [
        "exiting False",
        "high",
        "exiting True",
        "tempdir still there True",
        "zero-b",
        "zero-a",
        "low",
    ]
    assert os.path.basename(tempdir).startswith("procframe-")
    assert not os.path.exists(tempdir)  # removed last (priority -100)


def test_a_finalizer_does_not_run_in_a_process_forked_by_hand(tmp_path: Path) -> None:
    source = """\
        import os
        import sys
        from procframe import util

        print("parent", os.getpid(), flush=True)
        util.Finalize(None, print, args=("ran in", os.getpid()), exitpriority=0)
        pid = os.fork()
        if pid == 0:
            util.Finalize(None, print, args=("child's own",), exitpriority=0)
            # The stdlib's check: a finalizer runs only in the process that made it.
            from procframe._core.finalize import run_finalizers

            run_finalizers()
            sys.stdout.flush()  # os._exit() would drop what print() buffered
            os._exit(0)
        os.waitpid(pid, 0)
    """
    result = run(tmp_path, source)
    assert result.returncode == 0, result.stderr
    parent = result.stdout.split()[1]
    assert result.stdout.splitlines() == [f"parent {parent}", "child's own", f"ran in {parent}"]


# -- after-fork callbacks ------------------------------------------------------------------


def test_after_fork_callbacks_are_held_weakly_and_run_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(finalize, "_afterfork_registry", None)  # only this test's callbacks
    seen: list[str] = []
    first, second = Obj(), Obj()
    util.register_after_fork(first, lambda obj: seen.append("first"))
    util.register_after_fork(second, lambda obj: seen.append("second"))
    util.register_after_fork(Obj(), lambda obj: seen.append("collected"))  # dropped at once
    gc.collect()
    finalize._run_after_forkers()
    assert seen == ["first", "second"]


def test_fork_aware_lock_and_local_are_reset_in_a_child(tmp_path: Path) -> None:
    source = """\
        import procframe
        from procframe import util

        lock = util.ForkAwareThreadLock()
        local = util.ForkAwareLocal()

        def child():
            assert lock.acquire(timeout=5), "the lock is still held"
            lock.release()
            assert not hasattr(local, "x"), "the local was not cleared"

        if __name__ == "__main__":
            local.x = 1
            with lock:
                p = procframe.Process(target=child)
                p.start()
            p.join()
            print(p.exitcode, local.x)
    """
    result = run(tmp_path, source, backend="fork")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 1\n", result.stderr


# -- the logger -----------------------------------------------------------------------------


def test_log_to_stderr_prints_as_multiprocessing_does(tmp_path: Path) -> None:
    source = """\
        import logging
        import procframe
        from procframe import util

        def child():
            util.info("from the child")
            util.sub_debug("not shown")

        if __name__ == "__main__":
            logger = procframe.log_to_stderr(logging.INFO)
            assert logger is util.get_logger() is procframe.get_logger()
            assert procframe.get_context("spawn").get_logger() is logger
            assert logger.name == "procframe" and not logger.propagate
            util.info("hello %s", "there")
            util.debug("not shown")
            p = procframe.Process(target=child, name="kid")
            p.start()
            p.join()
    """
    result = run(tmp_path, source, backend="spawn")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "[INFO/MainProcess] hello there"
    assert "[INFO/kid] child process calling self.run()" in lines
    assert "[INFO/kid] from the child" in lines
    assert "[INFO/kid] process exiting with exitcode 0" in lines
    assert lines[-1] == "[INFO/MainProcess] process shutting down"
    assert not any("not shown" in line for line in lines)


def test_level_names_and_constants_are_multiprocessings() -> None:
    assert (util.NOTSET, util.SUBDEBUG, util.DEBUG, util.INFO, util.SUBWARNING) == (
        0,
        5,
        10,
        20,
        25,
    )
    util.get_logger()
    assert logging.getLevelName(util.SUBWARNING) == "SUBWARNING"
    assert logging.getLevelName(util.SUBDEBUG) == "SUBDEBUG"
    assert util.DEFAULT_LOGGING_FORMAT == "[%(levelname)s/%(processName)s] %(message)s"


def test_procframe_and_its_contexts_have_get_logger_and_log_to_stderr() -> None:
    assert {"get_logger", "log_to_stderr"} <= set(procframe.__all__)
    for name in procframe.get_all_start_methods():
        ctx = procframe.get_context(name)
        assert ctx.get_logger() is util.get_logger()
        assert callable(ctx.log_to_stderr)


def test_a_child_that_does_not_log_does_not_import_logging(tmp_path: Path) -> None:
    """A child that never logs pays nothing for named log records."""
    source = """\
        import sys
        import procframe

        def child():
            sys.exit(10 + ("logging" in sys.modules))

        if __name__ == "__main__":
            p = procframe.Process(target=child)
            p.start()
            p.join()
            print(p.exitcode)
    """
    result = run(tmp_path, source, backend="spawn")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10\n"

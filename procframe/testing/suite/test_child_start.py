"""What a child does as it starts and ends: procframe.util's finalizers and after-fork
callbacks, the logger it inherits, the process name of its log records, its main thread,
and the refusal to start processes while it imports its parent's main module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import procframe
from procframe import util
from procframe._core import logsupport
from procframe.testing.helpers import childlife
from procframe.testing.helpers.scripts import run_script, script_env, write_script
from procframe.testing.helpers.targets import read_report


def _run(ctx: procframe.Context, target: object, *args: object, name: str | None = None) -> None:
    p = ctx.Process(target=target, args=args, name=name)
    p.start()
    p.join(60)
    assert p.exitcode == 0


# -- finalizers and after-fork callbacks --------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_a_child_runs_its_finalizers_at_exit_by_priority(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    _run(ctx, childlife.register_finalizers, str(trace))
    assert trace.read_text().split() == ["collected", "high", "zero-b", "zero-a", "low"]


def test_a_child_does_not_run_its_parents_finalizers(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    finalizer = util.Finalize(None, childlife.append_line, args=(str(trace), "ran"), exitpriority=0)
    try:
        _run(ctx, childlife.append_line, str(tmp_path / "child_ran"), "yes")
        assert not trace.exists()
        assert finalizer.still_active()
    finally:
        finalizer.cancel()


@pytest.mark.requires("separate_memory")
def test_after_fork_callbacks_run_in_the_child_before_run(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    probe = childlife.AfterForkProbe()
    out = tmp_path / "out"
    _run(ctx, childlife.report_after_fork, str(out), probe)
    assert read_report(out) == {"ran_here": True}
    assert probe.ran_in is None  # not in the parent


@pytest.mark.requires("separate_memory")
def test_a_childs_temp_dir_is_its_own_and_removed_at_its_exit(
    ctx: procframe.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child shares a temp dir its parent made before starting it: make sure there is none.
    monkeypatch.delitem(procframe.current_process()._config, "tempdir", raising=False)
    out = tmp_path / "out"
    _run(ctx, childlife.use_temp_dir, str(out))
    seen = read_report(out)
    assert seen["same_again"]
    assert not os.path.exists(seen["tempdir"])


EXIT_ORDER = """\
    import sys
    import procframe
    from procframe import util

    def child(event):
        if not event.wait(30):
            sys.exit(3)

    if __name__ == "__main__":
        event = procframe.Event()
        p = procframe.Process(target=child, args=(event,))
        p.start()

        def early():
            print("early: exiting", util.is_exiting(), "child alive", p.is_alive(), flush=True)
            event.set()

        def late():
            print("late: child exitcode", p.exitcode, flush=True)

        util.Finalize(None, late, exitpriority=-1)
        util.Finalize(None, early, exitpriority=10)
        print("running: exiting", util.is_exiting(), flush=True)
"""


@pytest.mark.requires("separate_memory")  # an interpreter joins its threads before any exit work
def test_finalizers_run_around_the_joining_of_children_at_exit(
    procframe_backend: str, tmp_path: Path
) -> None:
    """Priorities of 0 and more before the children are joined, the others after."""
    result = run_script(tmp_path, EXIT_ORDER, procframe_backend, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "running: exiting False",
        "early: exiting True child alive True",
        "late: child exitcode 0",
    ]


# -- logging --------------------------------------------------------------------------------


@pytest.fixture
def restore_logger() -> Iterator[None]:
    """Put procframe's logger back as it was: a test configures it for its children."""
    configured = logsupport._logger
    to_stderr = logsupport._log_to_stderr
    logger = util.get_logger()
    level, handlers = logger.level, list(logger.handlers)
    try:
        yield
    finally:
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
        logger.setLevel(level)
        logsupport._log_to_stderr = to_stderr
        logsupport._logger = configured


@pytest.mark.usefixtures("restore_logger")
def test_a_child_inherits_the_loggers_level_and_stderr_handler(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    ctx.log_to_stderr(util.SUBWARNING)
    out = tmp_path / "out"
    _run(ctx, childlife.describe_logger, str(out))
    seen = read_report(out)
    assert (seen["name"], seen["level"]) == ("procframe", util.SUBWARNING)
    fmt = "[%(levelname)s/%(processName)s] %(message)s"  # multiprocessing's
    # (A test runner may have handlers of its own on the logger: pytest's log capture.)
    assert [h for h in seen["handlers"] if h[1] == fmt] == [["StreamHandler", fmt]]


@pytest.mark.usefixtures("restore_logger")
def test_a_child_inherits_the_loggers_level(ctx: procframe.Context, tmp_path: Path) -> None:
    ctx.get_logger().setLevel(util.SUBDEBUG)
    out = tmp_path / "out"
    _run(ctx, childlife.describe_logger, str(out))
    assert read_report(out)["level"] == util.SUBDEBUG


def test_log_records_of_a_child_carry_its_name(ctx: procframe.Context, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(ctx, childlife.log_process_name, str(out), name="logging-child")
    assert read_report(out) == ["logging-child"]


LATE_LOGGING = """\
    import json
    import sys
    import procframe

    def child(path):
        imported_before = "logging" in sys.modules
        import logging

        names = []

        class Keep(logging.Handler):
            def emit(self, record):
                names.append(record.processName)

        logger = logging.getLogger("late")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(Keep())
        logger.info("hello")
        loader = type(logging.__loader__).__name__
        with open(path, "w") as f:
            json.dump([imported_before, names, loader], f)

    if __name__ == "__main__":
        p = procframe.Process(target=child, args=(sys.argv[0] + ".out",), name="late-child")
        p.start()
        p.join()
        with open(sys.argv[0] + ".out") as f:
            print(json.dumps([p.exitcode, "logging" in sys.modules, json.load(f)]))
"""


# A child started on this machine by procframe itself; a cluster's runtime imports logging.
@pytest.mark.requires("local_pids")
def test_log_records_carry_the_name_when_the_child_imports_logging_late(
    procframe_backend: str, tmp_path: Path
) -> None:
    """A child that does not log does not import logging; once it does, records are named."""
    result = run_script(tmp_path, LATE_LOGGING, procframe_backend)
    assert result.returncode == 0, result.stderr
    exitcode, parent_imported, (child_imported_before, names, loader) = json.loads(result.stdout)
    assert exitcode == 0
    assert (child_imported_before, names, loader) == (False, ["late-child"], "SourceFileLoader")
    # The parent never logs: it imported logging only if the child is a thread of it.
    separate = procframe.get_context(procframe_backend).backend.has("separate_memory")
    assert parent_imported is not separate


# -- the child's main thread ---------------------------------------------------------------


@pytest.mark.requires("separate_memory")
def test_the_main_thread_of_a_child_has_the_childs_native_id(
    ctx: procframe.Context, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _run(ctx, childlife.report_main_thread_native_id, str(out))
    seen = read_report(out)
    assert seen["is_main"]
    assert seen["main_thread"] == seen["mine"]


# -- a main module without the guard -------------------------------------------------------

NO_MAIN_GUARD = """\
    import os
    import procframe

    if os.environ.get("SET_START_METHOD"):  # as the documentation's examples do, unguarded
        procframe.set_start_method(os.environ["PROCFRAME_BACKEND"])

    def f():
        print("f ran")

    p = procframe.Process(target=f)
    p.start()
    p.join()
    print("exitcode", p.exitcode)
"""


@pytest.mark.requires("reimports_main")
@pytest.mark.parametrize("set_start_method", [False, True], ids=["plain", "set_start_method"])
def test_a_main_module_without_the_guard_fails_clearly_and_ends(
    procframe_backend: str, tmp_path: Path, set_start_method: bool
) -> None:
    """Without the fix every child re-imports the main module and starts another child.

    With ``set_start_method`` at module level too, the child's error is still the
    bootstrap one (the call, re-run in the child, names the backend it runs under).
    """
    path = write_script(tmp_path, NO_MAIN_GUARD)
    env = script_env(procframe_backend)
    if set_start_method:
        env["SET_START_METHOD"] = "1"
    program = subprocess.Popen(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own: whatever it started is killed below
    )
    try:
        out, err = program.communicate(timeout=60)
    finally:
        try:
            os.killpg(program.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group has ended: nothing left behind
            pass
        if program.returncode is None:
            program.communicate()
    assert out.splitlines() == ["exitcode 1"], err
    assert program.returncode == 0
    assert err.count("could not start") == 1, err
    assert err.count("RuntimeError: ") == 1, err
    assert "current process has finished its bootstrapping phase" in err
    assert "if __name__ == '__main__':" in err and "freeze_support()" in err


IMPOSTOR_IN_CWD = """\
import procframe


def square(x):
    return x * x


if __name__ == "__main__":
    p = procframe.Process(target=print, args=("child ran",))
    p.start()
    p.join()
    with procframe.Pool(1) as pool:
        print("pool", pool.map(square, [3]))
"""


@pytest.mark.requires("reimports_main")
def test_a_new_interpreter_imports_its_parents_procframe_not_one_in_the_working_directory(
    procframe_backend: str, tmp_path: Path
) -> None:
    """``python -c`` puts the working directory first on ``sys.path``: a ``procframe``
    folder there (a checkout of another version, say) must not replace the parent's."""
    impostor = tmp_path / "cwd" / "procframe"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise ImportError('the impostor was imported')\n")
    script = write_script(tmp_path, IMPOSTOR_IN_CWD)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=impostor.parent,
        env=script_env(procframe_backend),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "impostor" not in result.stderr
    assert result.stdout.splitlines() == ["child ran", "pool [9]"]


BUFFERED_BEFORE_START = """\
import sys
import procframe


if __name__ == "__main__":
    sys.stdout.write("written once")  # a pipe: buffered, not yet flushed
    p = procframe.Process(target=print, args=(), kwargs={"end": ""})
    p.start()
    p.join()
    sys.stdout.write(f" exitcode {p.exitcode}")
"""


def test_output_buffered_before_a_start_is_written_once(
    procframe_backend: str, tmp_path: Path
) -> None:
    """A child that is a copy of its parent must not write the parent's buffer again."""
    result = run_script(tmp_path, BUFFERED_BEFORE_START, procframe_backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "written once exitcode 0"

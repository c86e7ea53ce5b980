"""Backend selection: get_context(name) > set_backend > PROCFRAME_BACKEND > platform default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import procframe
from procframe import context
from procframe._core import registry
from procframe.testing.helpers.scripts import HELLO_BOB
from procframe.testing.helpers.targets import describe_self, noop, read_report

BUILTIN = ("fork", "spawn", "forkserver", "threads")
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux default")


@pytest.fixture(autouse=True)
def clean_selection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No backend chosen and no PROCFRAME_BACKEND; the module's state restored afterwards."""
    monkeypatch.delenv(registry.BACKEND_ENV, raising=False)
    chosen, contexts = registry._chosen, dict(context._contexts)
    registry._chosen = None
    yield
    registry._chosen = chosen
    context._contexts.clear()
    context._contexts.update(contexts)


def assert_names_backends(exc: pytest.ExceptionInfo[ValueError], wrong: str) -> None:
    message = str(exc.value)
    assert repr(wrong) in message
    for name in BUILTIN:
        assert name in message


# -- the default, in this process ---------------------------------------------


@on_linux
def test_platform_default_is_forkserver_on_linux() -> None:
    assert procframe.get_start_method() == "forkserver"
    assert procframe.get_context().name == "forkserver"
    assert procframe.get_all_start_methods()[0] == "forkserver"


def test_get_all_start_methods_lists_the_builtins() -> None:
    methods = procframe.get_all_start_methods()
    assert set(BUILTIN) <= set(methods)
    assert len(methods) == len(set(methods))
    for name in methods:
        assert procframe.get_context(name).get_start_method() == name


def test_get_start_method_allow_none_is_none_until_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert procframe.get_start_method(allow_none=True) is None
    monkeypatch.setenv(registry.BACKEND_ENV, "spawn")
    assert procframe.get_start_method(allow_none=True) is None
    assert procframe.get_start_method() == "spawn"
    procframe.set_backend("fork")
    assert procframe.get_start_method(allow_none=True) == "fork"


def test_env_chooses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "spawn")
    assert procframe.get_context().name == "spawn"
    assert procframe.get_start_method() == "spawn"


def test_set_backend_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "spawn")
    procframe.set_backend("fork")
    assert procframe.get_context().name == "fork"
    assert procframe.get_start_method() == "fork"


def test_explicit_name_beats_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "spawn")
    procframe.set_backend("fork")
    ctx = procframe.get_context("forkserver")
    assert ctx.name == ctx.get_start_method() == "forkserver"
    assert ctx.get_context() is ctx
    assert procframe.get_start_method() == "fork"


# -- set once -------------------------------------------------------------------


def test_set_backend_is_set_once() -> None:
    procframe.set_backend("fork")
    procframe.set_backend("fork")
    with pytest.raises(RuntimeError, match="force=True"):
        procframe.set_backend("spawn")
    with pytest.raises(RuntimeError):
        procframe.set_start_method("spawn")
    assert procframe.get_start_method() == "fork"
    procframe.set_backend("spawn", force=True)
    assert procframe.get_start_method() == "spawn"


def test_set_start_method_is_an_alias() -> None:
    procframe.set_start_method("spawn")
    assert procframe.get_start_method(allow_none=True) == "spawn"
    with pytest.raises(RuntimeError, match="context has already been set"):
        procframe.set_start_method("spawn")  # as multiprocessing: once, even the same one
    with pytest.raises(RuntimeError):
        procframe.set_backend("fork")
    procframe.set_start_method(None, force=True)
    assert procframe.get_start_method(allow_none=True) is None


# -- unknown names fail at once, naming what exists --------------------------


@pytest.mark.parametrize(
    "call",
    [procframe.set_backend, procframe.set_start_method, procframe.get_context],
    ids=["set_backend", "set_start_method", "get_context"],
)
def test_unknown_name_raises_value_error(call: object) -> None:
    with pytest.raises(ValueError) as exc:
        call("no_such_backend")  # type: ignore[operator]
    assert_names_backends(exc, "no_such_backend")
    assert procframe.get_start_method(allow_none=True) is None


def test_unknown_name_with_force_keeps_the_previous_choice() -> None:
    procframe.set_backend("fork")
    with pytest.raises(ValueError):
        procframe.set_backend("no_such_backend", force=True)
    assert procframe.get_start_method() == "fork"


def test_unknown_env_name_fails_at_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.BACKEND_ENV, "no_such_backend")
    with pytest.raises(ValueError) as exc:
        procframe.get_context()
    assert_names_backends(exc, "no_such_backend")
    assert registry.BACKEND_ENV in str(exc.value)
    with pytest.raises(ValueError):
        procframe.get_start_method()
    process = procframe.Process(target=noop)
    with pytest.raises(ValueError):
        process.start()
    assert process.pid is None
    assert procframe.get_context("fork").name == "fork"


# -- a child runs under its parent's backend (in this process) ----------------


def test_context_process_child_reports_its_backend(
    procframe_backend: str, ctx: procframe.Context, tmp_path: Path
) -> None:
    procframe.set_backend("fork" if procframe_backend != "fork" else "spawn")
    path = tmp_path / "child.json"
    process = ctx.Process(target=describe_self, args=(str(path),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert read_report(path)["backend"] == procframe_backend


def test_default_process_child_reports_the_chosen_backend(
    procframe_backend: str, tmp_path: Path
) -> None:
    procframe.set_backend(procframe_backend)
    path = tmp_path / "child.json"
    process = procframe.Process(target=describe_self, args=(str(path),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    seen = read_report(path)
    assert seen["backend"] == procframe_backend
    assert seen["name"] == process.name


# -- the environment and the child side, in a fresh interpreter --------------

SCRIPT = """\
import json
import os
import sys

import procframe


def describe(path, depth):
    seen = {
        "backend": procframe.get_start_method(),
        "name": procframe.current_process().name,
        "env": os.environ.get("PROCFRAME_BACKEND"),
    }
    if depth:
        child = procframe.Process(target=describe, args=(path + ".grandchild", depth - 1))
        child.start()
        child.join()
        seen["grandchild_exitcode"] = child.exitcode
    with open(path, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    method, path = sys.argv[1], sys.argv[2]
    Process = procframe.get_context(method).Process if method else procframe.Process
    process = Process(target=describe, args=(path, 1))
    process.start()
    process.join()
    print(json.dumps({"exitcode": process.exitcode, "default": procframe.get_start_method()}))
"""


def run_script(tmp_path: Path, method: str, env_backend: str) -> tuple[dict, dict, dict]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT, encoding="utf-8")
    report = tmp_path / "child.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env[registry.BACKEND_ENV] = env_backend
    result = subprocess.run(
        [sys.executable, str(script), method, str(report)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    parent = json.loads(result.stdout)
    assert parent["exitcode"] == 0, result.stderr
    child = json.loads(report.read_text(encoding="utf-8"))
    assert child["grandchild_exitcode"] == 0, result.stderr
    grandchild = json.loads(Path(f"{report}.grandchild").read_text(encoding="utf-8"))
    return parent, child, grandchild


@pytest.mark.parametrize("backend", BUILTIN)
def test_env_selects_backend_in_parent_and_children(tmp_path: Path, backend: str) -> None:
    parent, child, grandchild = run_script(tmp_path, "", backend)
    assert parent["default"] == backend
    assert child["backend"] == grandchild["backend"] == backend
    assert child["name"] == "Process-1"
    assert grandchild["name"] == "Process-1:1"


@pytest.mark.parametrize(
    ("env_backend", "method"),
    [("fork", "spawn"), ("spawn", "forkserver"), ("forkserver", "fork"), ("fork", "threads")],
)
def test_child_runs_under_its_parents_backend_not_the_env(
    tmp_path: Path, env_backend: str, method: str
) -> None:
    parent, child, grandchild = run_script(tmp_path, method, env_backend)
    assert parent["default"] == env_backend
    assert child["env"] == env_backend
    assert child["backend"] == grandchild["backend"] == method


def test_unknown_env_backend_does_not_break_import(tmp_path: Path) -> None:
    code = (
        "import procframe\n"
        "try:\n"
        "    procframe.get_context()\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env[registry.BACKEND_ENV] = "no_such_backend"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "'no_such_backend'" in result.stdout
    for name in BUILTIN:
        assert name in result.stdout


# -- the documented hello example, as a script ----------------------------------


HELLO_CONTEXT = """\
import procframe

def f(name):
    print('hello', name)

if __name__ == '__main__':
    ctx = procframe.get_context({backend!r})
    p = ctx.Process(target=f, args=('bob',))
    p.start()
    p.join()
"""


def run_hello(args: list[str], cwd: Path, backend: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    if backend is not None:
        env[registry.BACKEND_ENV] = backend
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.mark.parametrize("backend", BUILTIN)
def test_the_hello_example_runs_under_the_backend_of_the_environment(
    tmp_path: Path, backend: str
) -> None:
    (tmp_path / "hello.py").write_text(HELLO_BOB, encoding="utf-8")
    assert run_hello(["hello.py"], tmp_path, backend) == "hello bob\n"


@pytest.mark.parametrize("backend", BUILTIN)
def test_the_hello_example_runs_under_the_backend_of_get_context(
    tmp_path: Path, backend: str
) -> None:
    script = HELLO_CONTEXT.format(backend=backend)
    (tmp_path / "hello.py").write_text(script, encoding="utf-8")
    other = "fork" if backend != "fork" else "spawn"
    assert run_hello(["hello.py"], tmp_path, other) == "hello bob\n"


@pytest.mark.parametrize("backend", ["spawn", "forkserver"])
def test_the_hello_example_run_with_dash_m(tmp_path: Path, backend: str) -> None:
    package = tmp_path / "hellopkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "__main__.py").write_text(HELLO_BOB, encoding="utf-8")
    assert run_hello(["-m", "hellopkg"], tmp_path, backend) == "hello bob\n"


PACKAGE_MAIN = """\
import procframe
from procframe.testing.helpers.targets import report

with open("imports", "a") as f:  # a line each time this module runs
    f.write(__name__ + "\\n")

if __name__ == "__main__":
    p = procframe.Process(target=report, args=("child", "ran"))
    p.start()
    p.join()
    print(p.exitcode)
"""


@pytest.mark.requires("reimports_main")
def test_a_packages_main_module_is_not_run_again_in_a_child(
    tmp_path: Path, procframe_backend: str
) -> None:
    # As CPython's spawn: `python -m pkg` runs pkg/__main__.py, which is the program's
    # work, not definitions; a child that needs no name from it does not run it again.
    package = tmp_path / "mainpkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "__main__.py").write_text(PACKAGE_MAIN, encoding="utf-8")
    assert run_hello(["-m", "mainpkg"], tmp_path, procframe_backend) == "0\n"
    assert read_report(tmp_path / "child") == "ran"
    assert (tmp_path / "imports").read_text(encoding="utf-8") == "__main__\n"

"""procframe is its own implementation: it never imports the standard library's multiprocessing.

One documented exception: ``procframe.futures`` imports
``concurrent.futures.process`` (which imports ``multiprocessing``) for the
base class ``BrokenProcessPool`` of the errors of a lost worker or a broken
pool, and only when one of those happens (:data:`ALLOWED`); the normal path
of an executor never imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FORBIDDEN = ("multiprocessing", "concurrent.futures.process")
BUILTIN = ("fork", "spawn", "forkserver", "threads")
# Not part of the runtime: testing imports pytest; __main__ runs the command line.
EXCLUDED = ("procframe.testing", "procframe.__main__")
ALLOWED = {("futures.py", "concurrent.futures.process")}
"""(module path in the package, import) allowed only inside a function: ``BrokenProcessPool``."""

SCRIPT = """\
import importlib
import json
import pkgutil
import sys

import procframe

FORBIDDEN = {forbidden!r}
WATCHED = (*FORBIDDEN, "pluggy", "dataclasses")


def loaded(names):
    return sorted(name for name in names if name in sys.modules)


def import_all(package):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if not info.name.startswith({excluded!r}):
            module = importlib.import_module(info.name)
            if info.ispkg:
                import_all(module)


def write(path):
    with open(path, "w") as f:
        json.dump(loaded(WATCHED), f)


def report(path):
    write(path)
    # Again once the child has done what it does at exit (an interpreter's children only:
    # a forked child ends with os._exit, which runs no atexit handler).
    import atexit

    atexit.register(write, path)


if __name__ == "__main__":
    import procframe.plugins

    for name in [*procframe.__all__, "hookimpl"]:
        getattr(procframe, name)
    import_all(procframe)
    procframe.plugins.get_plugin_manager()
    from procframe.futures import ProcessPoolExecutor

    children = {{}}
    for backend in {backends!r}:
        context = procframe.get_context(backend)
        # The normal path of a pool and an executor (abs: a function pickled by name).
        with context.Pool(1) as pool:
            assert pool.map(abs, [-1, -2]) == [1, 2]
        with ProcessPoolExecutor(1, mp_context=context) as executor:
            assert executor.submit(abs, -3).result(timeout=60) == 3
        path = sys.argv[1] + "." + backend
        process = procframe.get_context(backend).Process(target=report, args=(path,))
        process.start()
        process.join()
        with open(path) as f:
            children[backend] = {{"exitcode": process.exitcode, "loaded": json.load(f)}}
    print(json.dumps({{"parent": loaded(FORBIDDEN), "children": children}}))
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("no_mp")
    script = tmp / "touch_everything.py"
    script.write_text(
        SCRIPT.format(forbidden=FORBIDDEN, excluded=EXCLUDED, backends=BUILTIN),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, str(script), str(tmp / "child")],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_parent_never_imports_stdlib_multiprocessing(seen: dict[str, Any]) -> None:
    assert seen["parent"] == []


@pytest.mark.parametrize("backend", BUILTIN)
def test_child_never_imports_stdlib_multiprocessing(seen: dict[str, Any], backend: str) -> None:
    child = seen["children"][backend]
    assert child["exitcode"] == 0
    assert not set(child["loaded"]) & set(FORBIDDEN)


def test_spawned_child_does_not_import_pluggy(seen: dict[str, Any]) -> None:
    assert "pluggy" not in seen["children"]["spawn"]["loaded"]


def test_spawned_child_does_not_import_the_backend_declarations(seen: dict[str, Any]) -> None:
    """``dataclasses`` (and ``inspect`` under it) would cost every spawned child about 6 ms."""
    assert "dataclasses" not in seen["children"]["spawn"]["loaded"]


def test_import_procframe_does_not_import_pluggy(tmp_path: Path) -> None:
    watched = ("pluggy", *FORBIDDEN)
    code = f"import sys\nimport procframe\nprint([m for m in {watched!r} if m in sys.modules])\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_no_module_of_procframe_imports_stdlib_multiprocessing() -> None:
    """Not even the conformance suite, which the runtime check above leaves out."""
    import ast

    import procframe

    offenders = []
    root = Path(procframe.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_functions = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if (path.relative_to(root).as_posix(), name) in ALLOWED and id(
                    node
                ) in in_functions:
                    continue
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []

"""procframe is typed as typeshed types ``multiprocessing``, for type checkers and at run time.

The programs in ``typing_programs/`` are written against the standard
library's typed API with ``import procframe as mp``.  The mypy tests need mypy:
they run in the tox ``type`` env (``python -m tox run -e type``), which installs
procframe as the README does (editable), and run mypy from outside the source
tree, so they also prove that mypy finds an editable install.  The run-time
tests run everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from procframe import pool, sharedctypes
from procframe.posix import queues as posix_queues
from procframe.posix.shared_memory import ShareableList
from procframe.threads import queues as thread_queues

PROGRAMS = Path(__file__).parent / "typing_programs"
HAS_MYPY = importlib.util.find_spec("mypy") is not None
needs_mypy = pytest.mark.skipif(
    not HAS_MYPY, reason="mypy is not installed: run these in the tox 'type' env"
)

GENERIC_CLASSES = {
    "posix.Queue": posix_queues.Queue,
    "posix.SimpleQueue": posix_queues.SimpleQueue,
    "posix.JoinableQueue": posix_queues.JoinableQueue,
    "threads.Queue": thread_queues.Queue,
    "threads.SimpleQueue": thread_queues.SimpleQueue,
    "threads.JoinableQueue": thread_queues.JoinableQueue,
    "SynchronizedBase": sharedctypes.SynchronizedBase,
    "Synchronized": sharedctypes.Synchronized,
    "SynchronizedArray": sharedctypes.SynchronizedArray,
    "ShareableList": ShareableList,
    "ApplyResult": pool.ApplyResult,
    "AsyncResult": pool.AsyncResult,
    "MapResult": pool.MapResult,
}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PROCFRAME_", "MYPY"))}


# -- at run time --------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERIC_CLASSES)
def test_generic_classes_are_subscriptable_at_run_time(name: str) -> None:
    cls: Any = GENERIC_CLASSES[name]
    alias = cls[int]
    assert alias.__origin__ is cls
    assert alias.__args__ == (int,)
    assert isinstance(alias, types.GenericAlias)


def test_a_subscripted_class_can_be_subclassed() -> None:
    class Tasks(posix_queues.JoinableQueue[bytes]):
        pass

    assert Tasks.__mro__[1] is posix_queues.JoinableQueue
    assert Tasks[str].__origin__ is Tasks


def test_the_generic_base_costs_a_spawned_child_no_typing_import(tmp_path: Path) -> None:
    """procframe._core.generic is meant for modules a spawned child imports."""
    code = (
        "import sys\n"
        "from procframe._core.generic import Generic, T\n"
        "class Box(Generic[T]):\n"
        "    __slots__ = ('item',)\n"
        "print(Box[int].__origin__ is Box, 'typing' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True False\n"


def test_a_queue_made_directly_without_its_context_says_what_to_do() -> None:
    with pytest.raises(TypeError, match=r"Queue\(\) needs ctx="):
        posix_queues.Queue()
    with pytest.raises(TypeError, match=r"JoinableQueue\(\) needs ctx="):
        posix_queues.JoinableQueue(3)


def test_the_typed_program_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(PROGRAMS / "common_api.py")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# -- for mypy -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mypy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside the source tree, with an empty mypy configuration."""
    where = tmp_path_factory.mktemp("mypy")
    (where / "mypy.ini").write_text("[mypy]\n", encoding="utf-8")
    return where


def mypy(program: Path, where: Path) -> tuple[int, str]:
    """mypy --strict on ``program``, run from ``where``: procframe is found as installed."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(where / "mypy.ini"),
            "--cache-dir",
            str(where / "cache"),
            str(program),
        ],
        cwd=where,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def as_stdlib(program: Path, where: Path) -> Path:
    """``program`` with every ``procframe`` replaced by ``multiprocessing``."""
    target = where / f"stdlib_{program.name}"
    target.write_text(
        program.read_text(encoding="utf-8").replace("procframe", "multiprocessing"),
        encoding="utf-8",
    )
    return target


@needs_mypy
def test_the_common_typed_api_type_checks_on_procframe(mypy_dir: Path) -> None:
    status, output = mypy(PROGRAMS / "common_api.py", mypy_dir)
    assert status == 0, output


@needs_mypy
@pytest.mark.parametrize("name", ["common_api.py", "managers_api.py"])
def test_the_programs_type_check_on_the_standard_library(mypy_dir: Path, name: str) -> None:
    """They are what a typed program of the standard library looks like."""
    status, output = mypy(as_stdlib(PROGRAMS / name, mypy_dir), mypy_dir)
    assert status == 0, output


@needs_mypy
def test_the_managers_typed_api_type_checks_on_procframe(mypy_dir: Path) -> None:
    status, output = mypy(PROGRAMS / "managers_api.py", mypy_dir)
    assert status == 0, output


@needs_mypy
def test_a_type_mistake_is_reported(mypy_dir: Path) -> None:
    """The check is not vacuous: procframe's types reach mypy (no Any from a missing import)."""
    program = mypy_dir / "mistake.py"
    program.write_text(
        "import procframe as mp\n\nq: mp.Queue[int] = mp.Queue()\nq.put('text')\n",
        encoding="utf-8",
    )
    status, output = mypy(program, mypy_dir)
    assert status == 1
    assert 'Argument 1 to "put" of "Queue" has incompatible type "str"' in output
    assert "import-not-found" not in output

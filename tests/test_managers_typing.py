"""The managers' types, as typeshed declares multiprocessing's: checked by mypy --strict.

``with MyManager() as m`` types ``m`` as ``MyManager``; a Namespace proxy's
attributes are ``Any``; ``DictProxy``, ``ListProxy`` and ``ValueProxy`` are
generic (and subscriptable at run time), and ``SyncManager.dict()``,
``list()`` and ``Value()`` return them.  The mypy tests run only where mypy
is importable (the tox ``type`` env and the dev env have it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import procframe
from procframe.managers import BaseListProxy, DictProxy, ListProxy, ValueProxy

pytestmark = pytest.mark.timeout(300)

CHECKED = """\
from procframe.managers import BaseManager, DictProxy, ListProxy, SyncManager, ValueProxy


class MyManager(BaseManager):
    pass


def use() -> None:
    with MyManager() as mine:
        same: MyManager = mine
    with SyncManager() as manager:
        kept: SyncManager = manager
        ns = manager.Namespace()
        ns.x = 1
        y: int = ns.x
        scores: DictProxy[str, int] = manager.dict(a=1)
        total: int = scores["a"] + len(scores) + scores.get("b", 0)
        key: str
        for key in scores:
            print(key.upper())
        pairs = manager.dict([(1, "one")])
        text: str = pairs[1]
        items: ListProxy[int] = manager.list([1, 2])
        first: int = items[0]
        rest: list[int] = items[1:]
        items.append(3)
        items += [4]
        value: ValueProxy[float] = manager.Value("d", 1.5)
        number: float = value.value + value.get()
        print(same, kept, y, total, text, first, rest, number)
"""
"""Uses that must pass ``mypy --strict``."""

WRONG = {
    "items.append('three')": 'incompatible type "str"; expected "int"',
    "scores['a'] = 'one'": 'incompatible types in assignment (expression has type "str"',
    "mine.no_such_method()": '"MyManager" has no attribute "no_such_method"',
}
"""Misuses mypy must report, and how: the types are not ``Any``."""

WRONG_SOURCE = """\
from procframe.managers import BaseManager, SyncManager


class MyManager(BaseManager):
    pass


def misuse() -> None:
    with MyManager() as mine, SyncManager() as manager:
        items = manager.list([1, 2])
        scores = manager.dict(a=1)
        {lines}
"""


def run_mypy(directory: Path, source: str) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on ``source``, procframe found where this test imported it from."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment (the tox 'type' env has it)")
    path = directory / "snippet.py"
    path.write_text(source, encoding="utf-8")
    config = directory / "mypy.ini"  # not the project's: only --strict
    config.write_text("[mypy]\n", encoding="utf-8")
    env = dict(os.environ, MYPYPATH=str(Path(procframe.__file__).parent.parent))
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
            "--cache-dir", str(directory / ".mypy_cache"), "--config-file", str(config),
            str(path),
        ],
        cwd=directory, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_mypy_strict_accepts_the_typed_uses(tmp_path: Path) -> None:
    done = run_mypy(tmp_path, CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_reports_the_misuses(tmp_path: Path) -> None:
    lines = "\n        ".join(WRONG)
    done = run_mypy(tmp_path, WRONG_SOURCE.format(lines=lines))
    assert done.returncode == 1, done.stdout + done.stderr
    reported = done.stdout.lower()
    assert [m for m in WRONG.values() if m.lower() not in reported] == [], done.stdout
    assert len(done.stdout.strip().splitlines()) == len(WRONG), done.stdout


def test_the_generic_proxies_are_subscriptable_at_run_time() -> None:
    assert DictProxy[str, int].__origin__ is DictProxy
    assert DictProxy[str, int].__args__ == (str, int)
    assert ListProxy[int].__origin__ is ListProxy
    assert BaseListProxy[int].__origin__ is BaseListProxy
    assert ValueProxy[float].__args__ == (float,)


def test_the_managers_import_no_typing_extensions() -> None:
    """``Self`` and the typeshed-only names are for type checkers alone."""
    code = textwrap.dedent(
        """
        import sys
        import procframe.managers, procframe.threads.managers
        print('typing_extensions' in sys.modules, '_typeshed' in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "False"]

"""Serializers, in one process: plain data stays pickle's, bad names fail at once.

The conformance tests that cross processes are in
``procframe/testing/suite/test_serializers.py``; the entry-point plugin test is
``tests/test_serializer_plugin.py``.
"""

from __future__ import annotations

import collections
import functools
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import procframe
from procframe import plugins
from procframe._core import serializing
from procframe.connection import Client, Listener
from procframe.hookspecs import hookimpl
from procframe.managers import BaseManager
from procframe.serializers import (
    PICKLE,
    SERIALIZER_ENV,
    SerializerError,
    SerializerInfo,
    available_serializers,
    declared_serializers,
)

RICH_SERIALIZERS = [name for name in available_serializers() if name != PICKLE]
rich = pytest.mark.parametrize(
    "name",
    RICH_SERIALIZERS
    or [pytest.param(None, marks=pytest.mark.skip(reason="no serializer but pickle installed"))],
)


class Reading:
    """A module-level class: pickle saves its instances by name."""

    def __init__(self, sensor: str, values: list[float]) -> None:
        self.sensor = sensor
        self.values = values


def _plain_data() -> list[Any]:
    """What pickle carries, with some objects cloudpickle or dill would write otherwise."""
    return [
        0,
        -(2**70),
        "text é",
        b"bytes",
        {"a": [1, 2.5, None], ("t", 1): {True, False}},
        [Reading("s1", [1.0, 2.0]), Reading("s2", [])],
        Reading,
        len,
        os.path.join,
        Reading("bound", []).__init__,  # cloudpickle and dill write bound methods otherwise
        collections.defaultdict(list, {"k": [1]}),  # and dill these
        range(3),
        slice(1, 2),
        1j,
        type(None),
        functools.partial(max, 0),
    ]


@rich
def test_plain_data_is_pickled_by_pickle(name: str) -> None:
    dumps = serializing.get(name).dumps
    for obj in _plain_data():
        assert dumps(obj) == pickle.dumps(obj, 5), obj


@rich
def test_a_numpy_array_is_pickled_by_pickle(name: str) -> None:
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(1000, dtype=numpy.float64).reshape(10, 100)
    assert serializing.get(name).dumps(array) == pickle.dumps(array, 5)


@rich
def test_a_function_using_a_module_of_the_program_takes_the_module_by_name(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A program's own module (not under site-packages, as any module of a project, and
    # procframe itself when installed editable): a lambda that uses it must name it, as
    # pickle does, not carry the module's whole state along.
    (tmp_path / "program_module.py").write_text(
        "BIG = bytes(1_000_000)\n\ndef helper(x):\n    return x + 1\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import program_module  # type: ignore[import-not-found]

    monkeypatch.setitem(sys.modules, "program_module", program_module)

    def make(module: Any) -> Any:
        return lambda x: module.helper(x) * 10

    data = serializing.get(name).dumps(make(program_module))
    assert len(data) < 100_000
    assert pickle.loads(data)(1) == 20


# -- bad names ----------------------------------------------------------------------


@pytest.fixture
def no_serializer_chosen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(SERIALIZER_ENV, raising=False)
    procframe.set_serializer(None, force=True)
    yield
    procframe.set_serializer(None, force=True)


def _lists_the_serializers(error: BaseException) -> None:
    assert isinstance(error, ValueError)
    assert "'nope'" in str(error)
    for name in declared_serializers():
        assert name in str(error)


def test_an_unknown_serializer_fails_at_once(no_serializer_chosen: None) -> None:
    for ask in (
        lambda: procframe.get_context("spawn", serializer="nope"),
        lambda: procframe.get_context(serializer="nope"),
        lambda: procframe.set_serializer("nope"),
        lambda: Listener(authkey=b"k" * 32, serializer="nope"),
        lambda: Client(("127.0.0.1", 9), serializer="nope"),
    ):
        with pytest.raises(SerializerError) as info:
            ask()
        _lists_the_serializers(info.value)
    assert procframe.get_serializer() == PICKLE  # the refused choice left no trace
    with pytest.raises(ValueError, match="'nope'"):
        BaseManager(serializer="nope")


def test_set_serializer_chooses_once(no_serializer_chosen: None) -> None:
    procframe.set_serializer(PICKLE)
    with pytest.raises(RuntimeError, match="force=True"):
        procframe.set_serializer("cloudpickle" if RICH_SERIALIZERS else "nope")
    procframe.set_serializer(PICKLE)  # the same choice again is no change
    assert procframe.get_serializer() == PICKLE
    if RICH_SERIALIZERS:
        procframe.set_serializer(RICH_SERIALIZERS[0], force=True)
        assert procframe.get_serializer() == RICH_SERIALIZERS[0]
        assert procframe.get_context("spawn").serializer == RICH_SERIALIZERS[0]


def test_an_unknown_serializer_in_the_environment_fails_at_first_use(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env[SERIALIZER_ENV] = "nope"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = textwrap.dedent(
        """\
        import procframe
        try:
            procframe.Queue()
        except procframe.SerializerError as exc:
            print(type(exc).__name__, isinstance(exc, ValueError), exc)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("SerializerError True unknown procframe serializer 'nope'")
    assert SERIALIZER_ENV in run.stdout
    for name in declared_serializers():
        assert name in run.stdout


class _GhostSerializers:
    @hookimpl
    def procframe_declare_serializers(self) -> list[SerializerInfo]:
        return [
            SerializerInfo(
                "ghost",
                pickle.dumps,
                pickle.loads,
                available=False,
                reason="the ghost package is not installed",
                install="python -m pip install ghost-pickle",
            )
        ]


def test_a_declared_but_unavailable_serializer_says_how_to_install_it(
    no_serializer_chosen: None,
) -> None:
    with plugins.registered(_GhostSerializers()):
        assert "ghost" in declared_serializers()
        assert "ghost" not in available_serializers()
        for ask in (
            lambda: procframe.get_context("spawn", serializer="ghost"),
            lambda: procframe.set_serializer("ghost"),
        ):
            with pytest.raises(SerializerError) as info:
                ask()
            message = str(info.value)
            assert "'ghost'" in message
            assert "the ghost package is not installed" in message
            assert "python -m pip install ghost-pickle" in message
    assert "ghost" not in declared_serializers()


MANAGER_IN_ANOTHER_ENVIRONMENT = """
import procframe

def append(shared):
    shared.append(procframe.get_serializer())

if __name__ == "__main__":
    ctx = procframe.get_context("spawn", serializer="pickle")
    with ctx.Manager() as manager:
        shared = manager.list()
        child = ctx.Process(target=append, args=(shared,))
        child.start()
        child.join(60)
        print(child.exitcode, list(shared))
"""


def test_a_proxy_keeps_its_managers_serializer_in_a_child_of_another_environment(
    tmp_path: Path,
) -> None:
    # The program's environment names cloudpickle; the context, pickle.  The child gets
    # the proxy (resolved to pickle by its manager) before it adopts its serializer: the
    # proxy must not take "pickle" for "the default" there and disagree with its server.
    script = tmp_path / "program.py"
    script.write_text(MANAGER_IN_ANOTHER_ENVIRONMENT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env[SERIALIZER_ENV] = "cloudpickle"
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "0 ['pickle']\n", done.stderr

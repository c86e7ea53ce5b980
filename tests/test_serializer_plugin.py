"""A third-party serializer, found through a real entry point, chosen by name, used by children.

The serializer (``marked``, in a distribution laid out in a temporary
directory as an installer would) wraps cloudpickle: it carries lambdas, and
it logs every ``dumps`` and ``loads`` with the pid of the process that ran it,
so the test sees which processes used it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_third_party_backend import install

from procframe.serializers import SERIALIZER_ENV

pytest.importorskip("cloudpickle")

LOG_ENV = "MARKED_SERIALIZER_LOG"
MARKED_SOURCE = """\
import os

from procframe.hookspecs import hookimpl
from procframe.serializers import SerializerInfo

MAGIC = b"marked:"


def _log(what):
    path = os.environ.get("MARKED_SERIALIZER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{what} {os.getpid()}\\n")


def dumps(obj):
    import cloudpickle

    _log("dumps")
    return MAGIC + cloudpickle.dumps(obj, protocol=5)


def loads(data):
    import cloudpickle

    if not data.startswith(MAGIC):
        raise ValueError("not a marked stream")
    _log("loads")
    return cloudpickle.loads(data[len(MAGIC):])


class MarkedSerializer:
    @hookimpl
    def procframe_declare_serializers(self):
        return [SerializerInfo("marked", dumps, loads)]


plugin = MarkedSerializer()
"""
PROGRAM = """\
import os
import sys

import procframe

if __name__ == "__main__":
    if sys.argv[1] == "set_serializer":
        procframe.set_serializer("marked")
    print("serializer", procframe.get_serializer(), os.environ.get("PROCFRAME_SERIALIZER"))
    ctx = procframe.get_context("spawn")
    offset = 5
    with ctx.Pool(1) as pool:
        print("pool", pool.map(lambda x: x + offset, [1, 2]), pool.apply(lambda: lambda: "back")())
        worker = pool.apply(os.getpid)
    q = ctx.Queue()
    p = ctx.Process(target=lambda q: q.put((os.getpid(), lambda: "from the child")), args=(q,))
    p.start()
    child, sent = q.get(timeout=60)
    p.join(60)
    q.close()
    q.join_thread()
    print("process", sent(), p.exitcode)
    print("pids", os.getpid(), worker, child)
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install(site, "marked_serializer", "marked = marked_serializer:plugin", MARKED_SOURCE)
    return site


@pytest.mark.parametrize("how", ["environment", "set_serializer"])
def test_an_entry_point_serializer_is_chosen_by_name_and_used_by_children(
    how: str, site: Path, tmp_path: Path
) -> None:
    (tmp_path / "program.py").write_text(PROGRAM, encoding="utf-8")
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *(p for p in sys.path if p)])
    env[LOG_ENV] = str(log)
    if how == "environment":
        env[SERIALIZER_ENV] = "marked"
    run = subprocess.run(
        [sys.executable, "program.py", how],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    environment = "marked" if how == "environment" else "None"
    assert lines[:3] == [
        f"serializer marked {environment}",
        "pool [6, 7] back",
        "process from the child 0",
    ], run.stderr
    parent, worker, child = lines[3].split()[1:]
    assert len({parent, worker, child}) == 3
    used = set(log.read_text(encoding="utf-8").splitlines())
    # The parent sent lambdas; the worker and the child read them, and sent lambdas back
    # with the same serializer, which only the parent's setting can have chosen for them
    # where the environment names none.
    assert {f"dumps {parent}", f"loads {parent}"} <= used
    assert {f"dumps {worker}", f"loads {worker}"} <= used
    assert {f"dumps {child}", f"loads {child}"} <= used


def test_the_entry_point_serializer_is_listed(site: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCFRAME_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *(p for p in sys.path if p)])
    code = (
        "from procframe.serializers import available_serializers, declared_serializers\n"
        "print(available_serializers()[0], 'marked' in available_serializers(), "
        "type(declared_serializers()['marked'].plugin).__name__)\n"
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
    assert run.stdout == "pickle True MarkedSerializer\n"

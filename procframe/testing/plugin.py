"""The pytest plugin behind ``pytest -p procframe.testing``.

* ``--procframe-backend NAME`` (repeatable) picks the backends under test;
  default: every available backend, a third party's included.
* The ``procframe_backend`` fixture is parametrised over them (test ids read
  ``test_x[spawn]``) and ``ctx`` is that backend's context.
* ``@pytest.mark.requires("capability", ...)`` skips a test on a backend that
  does not declare every capability named.
* Every test that uses a backend fails if it leaves a child process, a thread,
  or a procframe semaphore or shared-memory segment behind.
* With ``--procframe-backend`` or the ini option ``procframe_suite = true``,
  the conformance suite (``procframe/testing/suite``) is collected; run bare,
  the plugin collects only the suite.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import procframe
from procframe._core import process as _process
from procframe._core import registry
from procframe._core.backend import KNOWN_CAPABILITIES
from procframe.testing.helpers.devshm import procframe_names

SUITE_DIR = Path(__file__).parent / "suite"
LEAK_GRACE = 5.0
"""Seconds a test's children and threads get to finish exiting before they count as leaked."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("procframe", "procframe conformance suite")
    group.addoption(
        "--procframe-backend",
        action="append",
        dest="procframe_backends",
        metavar="NAME",
        default=None,
        help="run procframe tests against backend NAME (repeatable; default: every available)",
    )
    parser.addini(
        "procframe_suite",
        type="bool",
        default=False,
        help="collect procframe's conformance suite along with the project's tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip on a backend that does not declare every capability",
    )
    wanted = bool(config.getoption("procframe_backends")) or config.getini("procframe_suite")
    if not wanted or config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    suite = str(SUITE_DIR)
    if config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR and not config.getini(
        "procframe_suite"
    ):
        config.args[:] = [suite]
    elif suite not in config.args:
        config.args.append(suite)


def selected_backends(config: pytest.Config) -> list[str]:
    """The backends the session tests: the command line's, else every available one."""
    names: list[str] | None = config.getoption("procframe_backends")
    if names:
        for name in names:
            procframe.get_context(name)  # fails at once, listing the backends that exist
        return list(dict.fromkeys(names))
    return sorted(registry.available_backends())


def pytest_report_header(config: pytest.Config) -> str:
    try:
        names = selected_backends(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return f"procframe backends: {', '.join(names)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "procframe_backend" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        metafunc.parametrize("procframe_backend", names, ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    declared = set(KNOWN_CAPABILITIES)
    for info in registry.backends().values():
        declared |= info.capabilities
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "procframe_backend" not in callspec.params:
            continue
        backend = registry.backends()[callspec.params["procframe_backend"]]
        for mark in item.iter_markers("requires"):
            for capability in mark.args:
                if capability not in declared:
                    raise pytest.UsageError(
                        f"{item.nodeid}: unknown capability {capability!r} in requires(); "
                        f"known: {', '.join(sorted(declared))}"
                    )
                if not backend.has(capability):
                    item.add_marker(
                        pytest.mark.skip(
                            reason=f"backend {backend.name!r} lacks capability {capability!r}"
                        )
                    )


@pytest.fixture
def ctx(procframe_backend: str) -> procframe.Context:
    """The context of the backend under test."""
    return procframe.get_context(procframe_backend)


@pytest.fixture(autouse=True)
def _procframe_no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    if "procframe_backend" not in request.fixturenames:
        yield
        return
    before = Snapshot.take()
    yield
    problems = before.leaks()
    if problems:
        pytest.fail("left behind after the test: " + "; ".join(problems), pytrace=False)


class Snapshot:
    """What a test could leak: OS children, threads, procframe's named kernel objects."""

    def __init__(self, children: set[int], threads: set[int], named: set[str]) -> None:
        self.children = children
        self.threads = threads
        self.named = named

    @classmethod
    def take(cls) -> Snapshot:
        return cls(_os_children(), {t.ident or 0 for t in threading.enumerate()}, procframe_names())

    def leaks(self) -> list[str]:
        """What exists now and did not before, after a grace period; kills leaked children."""
        deadline = time.monotonic() + LEAK_GRACE
        while True:
            procframe.active_children()  # reaps what has exited
            children = _os_children() - self.children - _service_pids()
            threads = [
                t for t in threading.enumerate() if t.ident not in self.threads and t.is_alive()
            ]
            named = procframe_names() - self.named
            if not (children or threads or named) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        problems = []
        if children:
            problems.append(f"child processes {sorted(children)}")
            _kill(children)
        if threads:
            problems.append(f"threads {[t.name for t in threads]}")
        if named:
            problems.append(f"named semaphores/shared memory {sorted(named)}")
        return problems


def _os_children() -> set[int]:
    """Pids of this process's living (or unreaped) children."""
    pids: set[int] = set()
    task_dir = Path(f"/proc/{os.getpid()}/task")
    if task_dir.is_dir():
        for task in task_dir.iterdir():
            try:
                pids.update(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                continue
        return pids
    return {p.pid for p in procframe.active_children() if p.pid is not None}


def _service_pids() -> set[int]:
    """Helper processes a backend keeps for the whole run (a fork server): not leaks."""
    return set(_process.service_pids())


def _kill(pids: set[int]) -> None:
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

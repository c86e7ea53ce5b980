"""The pytest plugin behind ``pytest -p procframe.testing``.

* ``--procframe-backend NAME`` (repeatable) picks the backends under test;
  default: every available backend, a third party's included.
* The ``procframe_backend`` fixture is parametrised over them (test ids read
  ``test_x[spawn]``) and ``ctx`` is that backend's context.
* ``@pytest.mark.requires("capability", ...)`` skips a test on a backend that
  does not declare every capability named.
* ``@pytest.mark.in_one_process`` declares that a test never leaves its
  process: it makes objects through ``ctx`` and uses them here, with threads
  at most.  It starts no Process, Pool or Manager, runs no script, and relies
  on nothing a backend's launcher does.  Such a test runs once per
  *implementation* of the factory hooks, not once per backend: the selected
  backends are grouped by the hook implementations their ``procframe_make_*``
  calls reach (fork, spawn and forkserver all reach the POSIX primitives, so
  they are one group; a backend that implements a factory hook itself is a
  group of its own), and the test runs on the first backend of each group
  that has the capabilities it ``requires``.  Its id names that backend
  (``test_x[fork]``).
* ``@pytest.mark.core`` marks the kit's core: a few tests per primitive that
  prove a backend starts children, hands every kind of object to them and
  runs its hooks.  ``--procframe-core`` runs only those of the suite (a smoke
  run, for a backend's own CI or a quick check of a plugin).
* Every test that uses a backend fails if it leaves a child process, a thread,
  or a procframe semaphore or shared-memory segment behind (in ``/dev/shm``,
  or held by the program's keeper: a block a child created and nobody
  unlinked, whether or not its creator still runs).
* ``--procframe-serializer NAME`` runs the whole session under serializer
  ``NAME`` (``cloudpickle``, ``dill``, a plugin's; default: the program's,
  ``pickle`` unless ``PROCFRAME_SERIALIZER`` names another): it becomes
  ``PROCFRAME_SERIALIZER`` for the session, its xdist workers and every child
  and script the tests start.  Tests whose outcome depends on what the
  serializer refuses ask :mod:`procframe.testing.helpers.refusals`.
* ``@pytest.mark.stress`` marks a stress probe: it takes its counts from
  :func:`procframe.testing.helpers.stress.size`, small in every run;
  ``--procframe-stress`` runs the probes at full size (``-m stress`` selects
  only them) with a bound of an hour each.
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
from procframe._core import hookspecs, registry, serializer_registry
from procframe._core import process as _process
from procframe._core.capabilities import KNOWN_CAPABILITIES, LOCAL_PIDS
from procframe.posix.shm_handoff import kept_names
from procframe.testing.helpers import stress
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
    group.addoption(
        "--procframe-serializer",
        dest="procframe_serializer",
        metavar="NAME",
        default=None,
        help="run the session under serializer NAME (it becomes PROCFRAME_SERIALIZER)",
    )
    group.addoption(
        "--procframe-core",
        action="store_true",
        dest="procframe_core",
        default=False,
        help="run only the conformance suite's core (tests marked core): a smoke run",
    )
    group.addoption(
        "--procframe-stress",
        action="store_true",
        dest="procframe_stress",
        default=False,
        help="run the stress probes (tests marked stress) at full size",
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
    config.addinivalue_line(
        "markers",
        "in_one_process: the test starts no process and relies on no launcher; it runs on "
        "one backend per implementation of the factory hooks, not on every backend",
    )
    config.addinivalue_line(
        "markers",
        "core: one of the conformance suite's core tests (--procframe-core runs only these)",
    )
    config.addinivalue_line(
        "markers",
        "stress: a stress probe, small in every run, full size with --procframe-stress",
    )
    if config.getoption("procframe_stress"):
        os.environ[stress.ENV] = "1"  # before xdist starts its workers: they inherit it
    serializer = config.getoption("procframe_serializer")
    if serializer is not None:
        try:
            serializer_registry.resolve(serializer, "asked for with --procframe-serializer")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
        os.environ[serializer_registry.SERIALIZER_ENV] = serializer  # workers inherit it
    if hasattr(config, "workerinput"):
        # A pytest-xdist worker always runs a thread of its own (execnet's), so on Python
        # 3.12+ every fork would warn that the process is multi-threaded; without xdist
        # the warning still tells of a test's own threads.
        config.addinivalue_line(
            "filterwarnings", "ignore:This process .* is multi-threaded:DeprecationWarning"
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
    serializer = serializer_registry.default_name()
    return f"procframe backends: {', '.join(names)}; serializer: {serializer}"


FACTORY_HOOKS = tuple(
    sorted(name for name in vars(hookspecs) if name.startswith("procframe_make_"))
)
"""The hooks behind ``ctx``'s factories: what an in-one-process test can reach."""


def implementation_groups(names: list[str]) -> list[list[str]]:
    """``names`` grouped by the hook implementations their factory calls reach, in order.

    Two backends are in one group when, for every factory hook, their calls
    reach the same implementations (hookwrappers included) in the same order:
    whichever answers first for one answers first for the other.
    """
    groups: dict[tuple[object, ...], list[str]] = {}
    for name in names:
        key = tuple(tuple(registry.hook(name, hook).get_hookimpls()) for hook in FACTORY_HOOKS)
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def representatives(names: list[str], required: set[str]) -> list[str]:
    """One backend per implementation group: the first that has every ``required`` capability."""
    declared = registry.backends()
    chosen = []
    for group in implementation_groups(names):
        able = [name for name in group if required <= declared[name].capabilities]
        chosen.append((able or group)[0])  # none able: the first, to be reported as skipped
    return [name for name in names if name in chosen]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "procframe_backend" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        if metafunc.definition.get_closest_marker("in_one_process") is not None:
            required = {
                c for mark in metafunc.definition.iter_markers("requires") for c in mark.args
            }
            names = representatives(names, required)
        metafunc.parametrize("procframe_backend", names, ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("procframe_core"):
        _keep_only_the_core(config, items)
    if stress.full_size():
        for item in items:
            if item.get_closest_marker("stress") is not None:
                item.add_marker(pytest.mark.timeout(stress.FULL_TIMEOUT), append=False)
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


def _keep_only_the_core(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the suite's tests that are not marked ``core`` (the project's own stay)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        in_suite = SUITE_DIR in Path(str(item.path)).parents
        (dropped if in_suite and item.get_closest_marker("core") is None else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
        return cls(_os_children(), {t.ident or 0 for t in threading.enumerate()}, _named())

    def leaks(self) -> list[str]:
        """What exists now and did not before, after a grace period; kills leaked children."""
        deadline = time.monotonic() + LEAK_GRACE
        while True:
            procframe.active_children()  # reaps what has exited
            children = _os_children() - self.children - _service_pids()
            threads = [
                t for t in threading.enumerate() if t.ident not in self.threads and t.is_alive()
            ]
            named = _named() - self.named
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
    # Without /proc: the children procframe knows of, those that are OS processes here.
    known = registry.backends()
    return {
        p.pid
        for p in procframe.active_children()
        if p.pid is not None and (info := known.get(p._backend_name())) and info.has(LOCAL_PIDS)
    }


def _named() -> set[str]:
    """procframe's names in ``/dev/shm``, and the shared-memory blocks the program's keeper
    holds: every block a child created and nobody unlinked, its creator alive or not (an
    unlinked one is left out at once; the keeper's process is no child of this one)."""
    return procframe_names() | kept_names()


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

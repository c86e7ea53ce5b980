"""The plugin seam: built-ins, hookspecs, validation, observers and wrappers on every backend."""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pluggy import PluginValidationError

import procframe
from procframe import hookspecs, plugins, threads
from procframe._core import registry
from procframe._core.backend import BackendInfo, Launcher
from procframe._core.errors import BackendError
from procframe._core.process import BaseProcess
from procframe.backends import fork, forkserver, spawn
from procframe.hookspecs import hookimpl
from procframe.testing.helpers.targets import exit_with, noop

SPECS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction))


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, BaseProcess, object]] = []

    @hookimpl
    def procframe_process_started(self, process: BaseProcess, backend: BackendInfo) -> None:
        self.events.append(("started", process, backend.name))

    @hookimpl
    def procframe_process_exited(self, process: BaseProcess, exitcode: int) -> None:
        self.events.append(("exited", process, exitcode))


class Timer:
    def __init__(self) -> None:
        self.starts: list[tuple[str, str, int, float]] = []

    @hookimpl(wrapper=True)
    def procframe_launch_process(
        self, process: BaseProcess, backend: BackendInfo
    ) -> Iterator[None]:
        began = time.perf_counter()
        launcher: Launcher = yield
        self.starts.append((backend.name, process.name, launcher.pid, time.perf_counter() - began))
        return launcher  # type: ignore[return-value]


class BootstrapMarker:
    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def procframe_child_bootstrap(self, process: BaseProcess, backend: BackendInfo) -> None:
        self.path.write_text(f"{os.getpid()} {backend.name} {process.name}", encoding="utf-8")


class Misspelled:
    @hookimpl
    def procframe_proces_started(self, process: BaseProcess, backend: BackendInfo) -> None:
        pass


class BadDeclaration:
    @hookimpl
    def procframe_declare_backend(self) -> str:
        return "not a BackendInfo"


class ExtraFork(fork.ForkBackend):
    name = "extra_fork"
    description = "a second fork backend registered in code"


class SecondFork(fork.ForkBackend):
    description = "declares the name 'fork' again"


# -- registration -------------------------------------------------------------------


def test_builtins_are_registered_under_their_module_names() -> None:
    pm = plugins.get_plugin_manager()
    for module in (fork, spawn, forkserver, threads):
        assert pm.get_plugin(module.__name__) is module.plugin
        assert pm.get_name(module.plugin) == module.__name__
    declared = registry.backends()
    for module in (fork, spawn, forkserver, threads):
        info = declared[module.plugin.name]
        assert info.plugin is module.plugin
        assert info.available


def test_hookimpl_is_the_marker_of_the_hookspecs() -> None:
    assert procframe.hookimpl is hookspecs.hookimpl
    assert hookspecs.NAME == plugins.ENTRY_POINT_GROUP == "procframe"


@pytest.mark.parametrize("name", [n for n in SPECS if n.startswith("procframe_")])
def test_every_hookspec_says_when_it_is_called(name: str) -> None:
    spec = getattr(hookspecs, name)
    assert hasattr(spec, f"{hookspecs.NAME}_spec"), f"{name} is not marked @hookspec"
    doc = inspect.getdoc(spec)
    assert doc, f"{name} has no docstring"
    assert "called" in doc.lower(), f"{name}'s docstring does not say when it is called"
    assert getattr(plugins.get_plugin_manager().hook, name).spec is not None


def test_misspelled_hook_is_rejected() -> None:
    with pytest.raises(PluginValidationError, match="procframe_proces_started"):
        plugins.register(Misspelled())


def test_rejected_plugin_does_not_stay_registered() -> None:
    bad = Misspelled()
    with pytest.raises(PluginValidationError):
        plugins.register(bad)
    pm = plugins.get_plugin_manager()
    assert not pm.is_registered(bad)
    good = Observer()
    plugins.register(good)
    assert pm.is_registered(good)


def test_registered_removes_the_plugin_afterwards() -> None:
    observer = Observer()
    pm = plugins.get_plugin_manager()
    with plugins.registered(observer, name="observer"):
        assert pm.get_plugin("observer") is observer
    assert not pm.is_registered(observer)


def test_backend_registered_in_code_is_selectable_until_unregistered() -> None:
    extra = ExtraFork()
    plugins.register(extra)
    ctx = procframe.get_context("extra_fork")
    assert ctx.backend.plugin is extra
    assert ctx.backend.description == ExtraFork.description
    assert "extra_fork" in procframe.get_all_start_methods()
    plugins.unregister(extra)
    with pytest.raises(ValueError, match="extra_fork"):
        procframe.get_context("extra_fork")


def test_two_plugins_declaring_one_name_is_an_error() -> None:
    plugins.register(SecondFork(), name="second_fork")
    with pytest.raises(BackendError, match="second_fork"):
        procframe.get_context("spawn")


def test_bad_declaration_error_names_the_plugin() -> None:
    plugins.register(BadDeclaration(), name="bad_declaration")
    with pytest.raises(TypeError, match="BackendInfo") as exc:
        procframe.get_context("fork")
    assert "bad_declaration" in str(exc.value)


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.reset_plugin_manager()
    pm = plugins.get_plugin_manager()
    names = {pm.get_name(plugin) for plugin in pm.get_plugins()}
    assert names == {name for name, _ in plugins.BUILTIN_PLUGINS}


# -- observers and wrappers on every backend ------------------------------------


def test_observer_sees_start_and_exit(procframe_backend: str, ctx: procframe.Context) -> None:
    observer = Observer()
    with plugins.registered(observer):
        process = ctx.Process(target=exit_with, args=(3,))
        process.start()
        assert observer.events[0] == ("started", process, procframe_backend)
        process.join(60)
        assert process.exitcode == 3
        assert not process.is_alive()
    assert observer.events == [("started", process, procframe_backend), ("exited", process, 3)]


def test_wrapper_times_every_launch(procframe_backend: str, ctx: procframe.Context) -> None:
    timer = Timer()
    with plugins.registered(timer):
        processes = [ctx.Process(target=noop) for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert [(b, n, pid) for b, n, pid, _ in timer.starts] == [
        (procframe_backend, p.name, p.pid) for p in processes
    ]
    assert all(isinstance(elapsed, float) and elapsed >= 0 for *_, elapsed in timer.starts)


@pytest.mark.requires("inherits_parent_memory", "local_pids")
def test_child_bootstrap_fires_in_a_forked_child(
    procframe_backend: str, ctx: procframe.Context, tmp_path: Path
) -> None:
    marker = tmp_path / "bootstrapped"
    with plugins.registered(BootstrapMarker(marker)):
        process = ctx.Process(target=noop, name="watched")
        process.start()
        process.join(60)
    assert process.exitcode == 0
    pid, backend, name = marker.read_text(encoding="utf-8").split()
    assert (int(pid), backend, name) == (process.pid, procframe_backend, "watched")
    assert int(pid) != os.getpid()


# -- process-wide settings reach every plugin ------------------------------------------


class ExecutableWatcher:
    def __init__(self) -> None:
        self.executables: list[str] = []
        self.preloads: list[list[str]] = []

    @hookimpl
    def procframe_set_executable(self, executable: str) -> None:
        self.executables.append(executable)

    @hookimpl
    def procframe_set_forkserver_preload(self, module_names: list[str]) -> None:
        self.preloads.append(module_names)


def test_set_executable_reaches_the_interpreter_starting_backends_and_every_plugin() -> None:
    from procframe.backends import forkserver_client
    from procframe.backends import spawn as spawn_module

    watcher = ExecutableWatcher()
    saved_executable, saved_preload = spawn_module._executable, list(forkserver_client._preload)
    try:
        with plugins.registered(watcher):
            procframe.get_context("fork").set_executable(sys.executable.encode())
            procframe.set_forkserver_preload(["json"])
            with pytest.raises(ValueError, match="not an executable"):
                procframe.set_executable(os.devnull)
        assert spawn_module.get_executable() == sys.executable  # spawn's and the fork server's
        assert forkserver_client._preload == ["json"]
        assert watcher.executables == [sys.executable, os.devnull]
        assert watcher.preloads == [["json"]]
    finally:
        spawn_module._executable = saved_executable
        forkserver_client._preload[:] = saved_preload


def test_a_process_outlives_the_plugin_of_its_backend() -> None:
    """Joining it after its backend was unregistered works (its exit has no observers)."""
    extra = ExtraFork()
    with plugins.registered(extra):
        process = procframe.get_context("extra_fork").Process(target=exit_with, args=(5,))
        process.start()
    process.join(60)
    assert process.exitcode == 5
    assert not process.is_alive()

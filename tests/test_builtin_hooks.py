"""The built-in plugins' hooks without pluggy: the same implementations, in pluggy's order,
with pluggy's answers, and pluggy from the moment anything else is asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest

import procframe
from procframe import hookspecs
from procframe._core import plugins, registry
from procframe._core.builtin_hooks import BuiltinPluginManager, Unsupported
from procframe.hookspecs import hookimpl


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


def _both(named: list[tuple[str, object]]) -> tuple[BuiltinPluginManager, pluggy.PluginManager]:
    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in named:
        pm.register(plugin, name=name)
    pm.check_pending()
    return BuiltinPluginManager(named), pm


def _builtins() -> list[tuple[str, object]]:
    return plugins._builtin_plugins()


def _impls(caller: object) -> list[tuple[str, object]]:
    return [(impl.plugin_name, impl.function) for impl in caller.get_hookimpls()]  # type: ignore[attr-defined]


HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("procframe_"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_reaches_the_builtins_pluggy_reaches_in_its_order(hook: str) -> None:
    ours, theirs = _both(_builtins())
    assert _impls(getattr(ours.hook, hook)) == _impls(getattr(theirs.hook, hook))
    backend_plugins = [info.plugin for info in registry.backends().values()]
    for mine in backend_plugins:
        others = [plugin for plugin in backend_plugins if plugin is not mine]
        assert _impls(ours.subset_hook_caller(hook, others)) == _impls(
            theirs.subset_hook_caller(hook, others)
        ), f"{hook} on {ours.get_name(mine)}"


class First:
    @hookimpl(tryfirst=True)
    def procframe_make_lock(self) -> str:
        return "first"

    @hookimpl
    def procframe_set_executable(self, executable: str) -> str:
        return f"first saw {executable}"


class Plain:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    @hookimpl
    def procframe_make_lock(self, ctx: object) -> str | None:
        return self.answer

    @hookimpl
    def procframe_set_executable(self, executable: str) -> str:
        return f"plain saw {executable}"


class Last:
    @hookimpl(trylast=True)
    def procframe_make_lock(self, ctx: object) -> str:
        return f"last, for {ctx}"

    @hookimpl(specname="procframe_set_executable")
    def under_another_name(self, executable: str) -> None:
        return None


@pytest.mark.parametrize(
    "order",
    [
        ["first", "plain", "silent", "last"],
        ["last", "silent", "plain", "first"],
        ["plain", "last", "silent"],
        ["silent", "last"],
    ],
)
def test_calls_answer_as_pluggys_do(order: list[str]) -> None:
    made = {"first": First(), "plain": Plain("plain"), "silent": Plain(None), "last": Last()}
    ours, theirs = _both([(name, made[name]) for name in order])
    # firstresult: the first non-None answer (tryfirst first, then the latest registered)
    answer = ours.hook.procframe_make_lock(ctx="ctx")
    assert answer == theirs.hook.procframe_make_lock(ctx="ctx")
    assert answer == (
        "first" if "first" in order else "plain" if "plain" in order else "last, for ctx"
    )
    # not firstresult: every non-None answer, in call order
    answers = ours.hook.procframe_set_executable(executable="py")
    assert answers == theirs.hook.procframe_set_executable(executable="py")
    assert len(answers) == len({"first", "plain", "silent"} & set(order))


def test_a_call_without_an_argument_names_it() -> None:
    ours, _ = _both([("last", Last())])
    with pytest.raises(TypeError, match=r"procframe_make_lock.*'ctx'"):
        ours.hook.procframe_make_lock()


class Wrapper:
    @hookimpl(wrapper=True)
    def procframe_make_lock(self) -> Iterator[None]:
        return (yield)


class Unknown:
    @hookimpl
    def procframe_make_lcok(self) -> None:
        return None


@pytest.mark.parametrize("plugin", [Wrapper(), Unknown()], ids=["wrapper", "no spec"])
def test_what_only_pluggy_does_is_refused(plugin: object) -> None:
    with pytest.raises(Unsupported):
        BuiltinPluginManager([("odd", plugin)])


def test_the_builtins_are_called_without_pluggy_until_a_plugin_is_registered() -> None:
    procframe.get_context("fork").Lock()
    assert isinstance(plugins.hook_manager(), BuiltinPluginManager)
    events = []

    class Observer:
        @hookimpl
        def procframe_make_lock(self) -> None:
            events.append("asked")

    with plugins.registered(Observer()):
        assert isinstance(plugins.hook_manager(), pluggy.PluginManager)
        procframe.get_context("fork").Lock()
    assert events == ["asked"]


def test_autoload_disabled_keeps_the_builtins_without_pluggy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    monkeypatch.setattr(
        "procframe._core.entrypoints.entry_points",
        lambda group: pytest.fail("entry points were read though autoload is disabled"),
    )
    assert isinstance(plugins.hook_manager(), BuiltinPluginManager)


def test_an_entry_point_brings_pluggy(monkeypatch: pytest.MonkeyPatch) -> None:
    from procframe._core.entrypoints import EntryPoint

    found = [EntryPoint("extra", "procframe.testing.helpers.targets", "procframe", "extra", "1.0")]
    monkeypatch.setattr("procframe._core.entrypoints.entry_points", lambda group: found)
    manager = plugins.hook_manager()
    assert isinstance(manager, pluggy.PluginManager)
    assert manager.get_plugin("extra") is not None

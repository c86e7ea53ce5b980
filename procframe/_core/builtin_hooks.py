"""Hook calls among procframe's built-in plugins, made without pluggy.

When no plugin but the built-in ones exists (no entry point in the
``procframe`` group, none registered in code), a program's first
``get_context()`` would import pluggy only to call procframe's own code: about
13 ms of imports (``typing``, ``inspect``), a fifth of a short program and
more than the standard library spends on its whole first Pool.
:class:`BuiltinPluginManager` answers the few calls procframe makes of a
pluggy ``PluginManager`` (``hook.<name>(...)``, ``subset_hook_caller``,
``get_hookimpls``, ``get_name``) for the built-ins, in pluggy's order
(registration order reversed, ``tryfirst`` first, ``trylast`` last,
``firstresult`` per spec).  :mod:`procframe._core.plugins` switches to pluggy
for good as soon as anything else is asked for; plugins that use what this
module does not do (wrappers, historic hooks, spec defaults) get pluggy from
the start.
"""

from __future__ import annotations

from procframe._core import hookspecs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

_IMPL_ATTR = hookspecs.NAME + "_impl"
_SPEC_ATTR = hookspecs.NAME + "_spec"


class Unsupported(Exception):
    """The built-in plugins use a feature that only pluggy provides."""


class HookImpl:
    """One implementation of a hook: pluggy's ``HookImpl`` attributes that procframe reads."""

    __slots__ = ("argnames", "function", "plugin", "plugin_name", "tryfirst", "trylast")

    def __init__(
        self, plugin: object, plugin_name: str, function: Callable[..., Any], opts: dict[str, Any]
    ) -> None:
        if opts.get("wrapper") or opts.get("hookwrapper"):
            raise Unsupported(f"{plugin_name}: hook wrapper {function.__name__}")
        self.plugin = plugin
        self.plugin_name = plugin_name
        self.function = function
        self.argnames = _argnames(function)
        self.tryfirst: bool = opts.get("tryfirst", False)
        self.trylast: bool = opts.get("trylast", False)

    def __repr__(self) -> str:
        return f"<HookImpl plugin_name={self.plugin_name!r}, plugin={self.plugin!r}>"


def _argnames(function: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters a call passes (pluggy's rule: positional ones without a default)."""
    bound = hasattr(function, "__self__")
    func = getattr(function, "__func__", function)
    code = func.__code__
    names = code.co_varnames[: code.co_argcount]
    if func.__defaults__:
        names = names[: -len(func.__defaults__)]
    return names[1:] if bound else names


class HookCaller:
    """Calls one hook's implementations, as pluggy's ``HookCaller`` does."""

    __slots__ = ("_impls", "firstresult", "name")

    def __init__(self, name: str, impls: list[HookImpl], firstresult: bool) -> None:
        self.name = name
        self._impls = impls  # pluggy's order: the last one is called first
        self.firstresult = firstresult

    def get_hookimpls(self) -> list[HookImpl]:
        """The implementations, in pluggy's order (called last to first)."""
        return list(self._impls)

    def __call__(self, **kwargs: Any) -> Any:
        results = []
        for impl in reversed(self._impls):
            try:
                args = [kwargs[name] for name in impl.argnames]
            except KeyError as exc:
                raise TypeError(f"hook {self.name!r} called without argument {exc}") from None
            result = impl.function(*args)
            if result is not None:
                if self.firstresult:
                    return result
                results.append(result)
        return None if self.firstresult else results

    def __repr__(self) -> str:
        return f"<HookCaller {self.name!r}>"


class _HookRelay:
    """``manager.hook.<name>``: every plugin's implementations of hook ``<name>``."""

    def __init__(self, callers: dict[str, HookCaller]) -> None:
        self.__dict__.update(callers)

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> HookCaller: ...


class BuiltinPluginManager:
    """The built-in plugins, called without pluggy (what procframe uses of pluggy's manager).

    Raises :class:`Unsupported` if a plugin needs pluggy; then pluggy it is.
    """

    def __init__(self, plugins: Iterable[tuple[str, object]]) -> None:
        specs = _specs()
        self._names: dict[int, str] = {}
        impls: dict[str, list[HookImpl]] = {name: [] for name in specs}
        for plugin_name, plugin in plugins:
            self._names[id(plugin)] = plugin_name
            for hook_name, function, opts in _marked(plugin):
                if hook_name not in impls:
                    raise Unsupported(f"{plugin_name}: no spec for {hook_name}")
                _insert(impls[hook_name], HookImpl(plugin, plugin_name, function, opts))
        self.hook = _HookRelay(
            {name: HookCaller(name, found, specs[name]) for name, found in impls.items()}
        )

    def get_name(self, plugin: object) -> str | None:
        """The name ``plugin`` is registered under, or ``None``."""
        return self._names.get(id(plugin))

    def subset_hook_caller(self, name: str, remove_plugins: Iterable[object]) -> HookCaller:
        """Hook ``name`` without the implementations of ``remove_plugins``."""
        caller: HookCaller = getattr(self.hook, name)
        removed = {id(plugin) for plugin in remove_plugins}
        kept = [impl for impl in caller.get_hookimpls() if id(impl.plugin) not in removed]
        return HookCaller(name, kept, caller.firstresult)


def _specs() -> dict[str, bool]:
    """Every hook's name and whether it is firstresult; pluggy-only options raise Unsupported."""
    found = {}
    for name, spec in vars(hookspecs).items():
        opts = getattr(spec, _SPEC_ATTR, None)
        if callable(spec) and isinstance(opts, dict):
            if opts.get("historic") or spec.__defaults__:
                raise Unsupported(f"hook {name}: historic or with defaults")
            found[name] = bool(opts.get("firstresult"))
    return found


def _marked(plugin: object) -> Iterable[tuple[str, Callable[..., Any], dict[str, Any]]]:
    """(hook name, callable, options) of every ``@hookimpl`` attribute of ``plugin``."""
    for attr in dir(plugin):
        if attr.startswith("__"):
            continue
        value = getattr(plugin, attr, None)
        opts = getattr(value, _IMPL_ATTR, None)
        if isinstance(opts, dict) and callable(value):
            yield opts.get("specname") or attr, value, opts


def _insert(impls: list[HookImpl], impl: HookImpl) -> None:
    """Add ``impl`` where pluggy would: trylast first, tryfirst last, others before tryfirst."""
    if impl.trylast:
        impls.insert(0, impl)
    elif impl.tryfirst:
        impls.append(impl)
    else:
        at = len(impls)
        while at > 0 and impls[at - 1].tryfirst:
            at -= 1
        impls.insert(at, impl)

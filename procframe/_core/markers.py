"""The ``@hookspec`` and ``@hookimpl`` markers, without importing pluggy.

They set the very attributes pluggy's own markers set (``procframe_spec`` and
``procframe_impl``, holding pluggy's option dicts), so pluggy's
``PluginManager`` reads them as its own, while procframe's built-in plugins
can be loaded and called without pluggy (:mod:`procframe._core.builtin_hooks`):
importing pluggy costs a first ``get_context()`` about 13 ms (it pulls in
``typing`` and ``inspect``), a fifth of a short program.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is slow to import, and the first get_context imports this
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, overload

    F = TypeVar("F", bound=Callable[..., Any])


class HookspecMarker:
    """Marks a function as a hook specification of project ``project_name``.

    Options as pluggy's ``HookspecMarker``: ``firstresult`` (the first
    non-``None`` answer is the result), ``historic``, ``warn_on_impl`` and
    ``warn_on_impl_args``.
    """

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    if TYPE_CHECKING:

        @overload
        def __call__(
            self,
            function: F,
            firstresult: bool = ...,
            historic: bool = ...,
            warn_on_impl: Warning | None = ...,
            warn_on_impl_args: dict[str, Warning] | None = ...,
        ) -> F: ...

        @overload
        def __call__(
            self,
            function: None = ...,
            firstresult: bool = ...,
            historic: bool = ...,
            warn_on_impl: Warning | None = ...,
            warn_on_impl_args: dict[str, Warning] | None = ...,
        ) -> Callable[[F], F]: ...

    def __call__(
        self,
        function: Callable[..., Any] | None = None,
        firstresult: bool = False,
        historic: bool = False,
        warn_on_impl: Warning | None = None,
        warn_on_impl_args: dict[str, Warning] | None = None,
    ) -> Any:
        if historic and firstresult:
            raise ValueError("a hookspec cannot be both historic and firstresult")
        opts = {
            "firstresult": firstresult,
            "historic": historic,
            "warn_on_impl": warn_on_impl,
            "warn_on_impl_args": warn_on_impl_args,
        }

        def mark(func: Callable[..., Any]) -> Callable[..., Any]:
            setattr(func, self.project_name + "_spec", opts)
            return func

        return mark if function is None else mark(function)


class HookimplMarker:
    """Marks a function or method as a hook implementation of project ``project_name``.

    Options as pluggy's ``HookimplMarker``: ``tryfirst`` and ``trylast`` (call
    order), ``wrapper`` and ``hookwrapper`` (wrap the other implementations),
    ``optionalhook`` (no spec needed) and ``specname`` (implement the hook of
    that name).
    """

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    if TYPE_CHECKING:

        @overload
        def __call__(
            self,
            function: F,
            hookwrapper: bool = ...,
            optionalhook: bool = ...,
            tryfirst: bool = ...,
            trylast: bool = ...,
            specname: str | None = ...,
            wrapper: bool = ...,
        ) -> F: ...

        @overload
        def __call__(
            self,
            function: None = ...,
            hookwrapper: bool = ...,
            optionalhook: bool = ...,
            tryfirst: bool = ...,
            trylast: bool = ...,
            specname: str | None = ...,
            wrapper: bool = ...,
        ) -> Callable[[F], F]: ...

    def __call__(
        self,
        function: Callable[..., Any] | None = None,
        hookwrapper: bool = False,
        optionalhook: bool = False,
        tryfirst: bool = False,
        trylast: bool = False,
        specname: str | None = None,
        wrapper: bool = False,
    ) -> Any:
        opts = {
            "wrapper": wrapper,
            "hookwrapper": hookwrapper,
            "optionalhook": optionalhook,
            "tryfirst": tryfirst,
            "trylast": trylast,
            "specname": specname,
        }

        def mark(func: Callable[..., Any]) -> Callable[..., Any]:
            setattr(func, self.project_name + "_impl", opts)
            return func

        return mark if function is None else mark(function)

"""The serializers the plugins declare, and the one this process uses by default.

A serializer is declared by a plugin's ``procframe_declare_serializers`` hook
(as backends are declared), as a :class:`SerializerInfo`.  procframe's own
plugin (:mod:`procframe.serializers.builtin`) declares ``pickle`` (the
default), ``cloudpickle`` and ``dill``.

Selection order: an explicit name (``get_context(..., serializer=name)``,
``Listener(serializer=name)``) > :func:`choose` (``set_serializer``, or the
serializer a child's parent ran it with, :func:`adopt`) >
``PROCFRAME_SERIALIZER`` > ``pickle``.  ``pickle`` is known without loading
any plugin, so a program that never names another serializer loads none.
"""

from __future__ import annotations

import _thread
import os
import re

from procframe._core.errors import SerializerError

TYPE_CHECKING = False  # typing is slow to import, and a spawned child imports this module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SERIALIZER_ENV = "PROCFRAME_SERIALIZER"
PICKLE = "pickle"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SerializerInfo:
    """A serializer as its plugin declares it through ``procframe_declare_serializers``.

    ``dumps(obj) -> bytes`` must serialize what the standard pickle refuses or
    can only save by name: lambdas, closures, functions and classes defined
    locally or in ``__main__`` (by value); ``loads(data)`` gives the object
    back, in another process.  procframe hands a serializer only what pickle
    cannot carry: plain data always goes through pickle (see
    :mod:`procframe._core.serializing`).  ``install`` says how to get a
    serializer that is declared but not ``available`` (for example
    ``python -m pip install 'procframe[dill]'``), ``reason`` why it is not.
    """

    __slots__ = ("available", "dumps", "install", "loads", "name", "plugin", "reason")

    name: str
    dumps: Callable[[object], bytes]
    loads: Callable[[bytes], object]
    available: bool
    reason: str
    install: str
    plugin: object

    def __init__(
        self,
        name: str,
        dumps: Callable[[object], bytes],
        loads: Callable[[bytes], object],
        *,
        available: bool = True,
        reason: str = "",
        install: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"serializer name {name!r} must be lowercase letters, digits and '_', "
                "starting with a letter"
            )
        if not callable(dumps) or not callable(loads):
            raise TypeError(f"serializer {name!r}: dumps and loads must be callable")
        if not available and not reason:
            raise ValueError(f"serializer {name!r} is unavailable but gives no reason")
        for field, value in (
            ("name", name),
            ("dumps", dumps),
            ("loads", loads),
            ("available", bool(available)),
            ("reason", reason),
            ("install", install),
            ("plugin", None),
        ):
            object.__setattr__(self, field, value)

    def __repr__(self) -> str:
        state = "available" if self.available else f"unavailable: {self.reason}"
        return f"<SerializerInfo {self.name!r} ({state})>"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SerializerInfo is immutable")


_lock = _thread.RLock()
_chosen: str | None = None
_adopted: str | None = None


class _ThreadChoice(_thread._local):
    name: str | None = None
    """The serializer of the process a thread runs, if it runs one (:func:`adopt_in_thread`)."""


_in_thread = _ThreadChoice()
_declared: dict[str, SerializerInfo] | None = None


def serializers() -> dict[str, SerializerInfo]:
    """Every declared serializer, available or not, by name."""
    global _declared
    found = _declared
    if found is None:
        with _lock:
            if _declared is None:
                _declared = _declare()
            found = _declared
    return found


def _declare() -> dict[str, SerializerInfo]:
    from procframe._core.plugins import hook_manager, on_change

    on_change(forget)
    pm = hook_manager()
    found: dict[str, SerializerInfo] = {}
    for impl in pm.hook.procframe_declare_serializers.get_hookimpls():
        declared: Any = impl.function()
        for info in declared or ():
            if not isinstance(info, SerializerInfo):
                raise TypeError(
                    f"procframe_declare_serializers of plugin {impl.plugin_name!r} gave "
                    f"{type(info).__name__}, expected procframe.serializers.SerializerInfo"
                )
            if info.name in found:
                first = pm.get_name(found[info.name].plugin)
                raise SerializerError(
                    f"two plugins declare serializer {info.name!r}: {first} and "
                    f"{impl.plugin_name}; uninstall or block one of them"
                )
            object.__setattr__(info, "plugin", impl.plugin)
            found[info.name] = info
    return found


def available_serializers() -> list[str]:
    """Names of the serializers that can run here, ``pickle`` first."""
    names = sorted(name for name, info in serializers().items() if info.available)
    if PICKLE in names:
        names.remove(PICKLE)
        names.insert(0, PICKLE)
    return names


def resolve(name: str, source: str) -> SerializerInfo:
    """The serializer ``name``, or a :class:`SerializerError` naming those that exist."""
    if not isinstance(name, str):
        raise TypeError(f"serializer name must be a string, got {type(name).__name__}")
    known = serializers()
    info = known.get(name)
    if info is None:
        listed = ", ".join(sorted(known)) or "none"
        raise SerializerError(
            f"unknown procframe serializer {name!r} ({source}); serializers that exist: "
            f"{listed}. A third-party serializer is found once its package, which declares "
            "an entry point in the 'procframe' group, is installed; `python -m procframe info` "
            "lists them"
        )
    if not info.available:
        listed = ", ".join(available_serializers())
        how = f"; install it with: {info.install}" if info.install else ""
        raise SerializerError(
            f"procframe serializer {name!r} ({source}) is not available here: {info.reason}"
            f"{how}. Available: {listed}"
        )
    return info


def chosen() -> str | None:
    """The serializer chosen in code (or inherited from the launching parent), if any."""
    return _in_thread.name or _chosen or _adopted


def default_name() -> str:
    """The default serializer's name: chosen > adopted > ``PROCFRAME_SERIALIZER`` > ``pickle``."""
    name = _in_thread.name or _chosen or _adopted
    if name is not None:
        return name
    from_env = os.environ.get(SERIALIZER_ENV, "").strip()
    if from_env and from_env != PICKLE:
        resolve(from_env, f"from the environment variable {SERIALIZER_ENV}")
        return from_env
    return PICKLE


def choose(name: str | None, force: bool = False) -> None:
    """Make ``name`` this process's default serializer, once (``force=True`` to change it)."""
    global _chosen
    with _lock:
        if _chosen is not None and not force and name != _chosen:
            raise RuntimeError(
                f"the procframe serializer has already been set to {_chosen!r}; "
                "pass force=True to change it"
            )
        if name is None:
            if not force:
                raise ValueError("set_serializer(None) needs force=True (it clears the choice)")
            _chosen = None
            return
        if name != PICKLE:
            resolve(name, "passed to set_serializer")
        if _adopted is not None and _importing_parents_main():
            return  # the parent's choice for this child stands
        _chosen = name


def _importing_parents_main() -> bool:
    from procframe._core.process import current_process

    return bool(getattr(current_process(), "_inheriting", False))


def adopt(name: str) -> None:
    """In a child: use ``name``, the serializer its parent started it with (no check).

    A ``set_serializer`` in the parent's main module, which a fresh-interpreter child
    runs again, does not override it.
    """
    global _adopted
    _adopted = name


def adopt_in_thread(name: str | None) -> None:
    """In a thread that runs a process: its serializer there (``None``: as the others)."""
    _in_thread.name = name


def forget() -> None:
    """Drop the declared serializers (the plugin set changed)."""
    global _declared
    with _lock:
        _declared = None

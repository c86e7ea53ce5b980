"""Finalizers and after-fork callbacks (``multiprocessing.util``'s), on procframe's exit work.

Finalizers whose ``exitpriority`` is not None run when the process exits,
highest priority first (the same priority: the newest first): those with a
priority of 0 or more before procframe stops and joins the children, the
others after (see :func:`procframe._core.process.run_finalizers_at_exit`).
A new child starts with none of its parent's finalizers, and runs the
after-fork callbacks registered before it started (a forked child: in its
parent too; a fresh interpreter: while it unpickled its Process) before its
``run()``.
"""

from __future__ import annotations

import itertools
import os

from procframe._core import logsupport
from procframe._core import process as process_module

TYPE_CHECKING = False  # typing is slow to import
if TYPE_CHECKING:
    import weakref
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["Finalize", "is_exiting", "register_after_fork", "run_finalizers"]

_finalizer_registry: dict[tuple[int | None, int], Finalize] = {}
_finalizer_counter = itertools.count()
_afterfork_registry: weakref.WeakValueDictionary[tuple[int, int, Any], Any] | None = None
_afterfork_counter = itertools.count()
_exiting = False


class Finalize:
    """Call ``callback(*args, **kwargs)`` once: when ``obj`` is collected, when called, or at
    exit if ``exitpriority`` is not None (without ``obj``, ``exitpriority`` is required)."""

    def __init__(
        self,
        obj: object,
        callback: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        exitpriority: int | None = None,
    ) -> None:
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError(
                f"Exitpriority ({exitpriority!r}) must be None or int, not {type(exitpriority)}"
            )
        if obj is not None:
            import weakref

            self._weakref: weakref.ref[Any] | None = weakref.ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        else:
            self._weakref = None
        self._callback: Callable[..., Any] | None = callback
        self._args: tuple[Any, ...] | None = args
        self._kwargs: Mapping[str, Any] | None = kwargs or {}
        self._key: tuple[int | None, int] | None = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(
        self,
        wr: object = None,
        # Bound now: the module's globals may be gone when this runs late at shutdown.
        _registry: dict[tuple[int | None, int], Finalize] = _finalizer_registry,
        _getpid: Callable[[], int] = os.getpid,
        _sub_debug: Callable[..., None] = logsupport.sub_debug,
    ) -> Any:
        """Run the callback unless it has run or was cancelled; return its result."""
        try:
            del _registry[self._key]  # type: ignore[arg-type]
        except KeyError:
            _sub_debug("finalizer no longer registered")
            return None
        if self._pid != _getpid():
            _sub_debug("finalizer ignored because different process")
            result = None
        else:
            _sub_debug(
                "finalizer calling %s with args %s and kwargs %s",
                self._callback,
                self._args,
                self._kwargs,
            )
            result = self._callback(*self._args, **self._kwargs)  # type: ignore[misc, arg-type]
        self._forget()
        return result

    def cancel(self) -> None:
        """Cancel the finalization: the callback will not run."""
        try:
            del _finalizer_registry[self._key]  # type: ignore[arg-type]
        except KeyError:
            pass
        else:
            self._forget()

    def still_active(self) -> bool:
        """True while the callback has neither run nor been cancelled."""
        return self._key in _finalizer_registry

    def _forget(self) -> None:
        self._weakref = self._callback = self._args = self._kwargs = self._key = None

    def __repr__(self) -> str:
        try:
            obj = self._weakref() if self._weakref is not None else None
        except (AttributeError, TypeError):
            obj = None
        if obj is None:
            return f"<{type(self).__name__} object, dead>"
        text = f"<{type(self).__name__} object, callback="
        text += str(getattr(self._callback, "__name__", self._callback))
        if self._args:
            text += f", args={self._args}"
        if self._kwargs:
            text += f", kwargs={self._kwargs}"
        if self._key is not None and self._key[0] is not None:
            text += f", exitpriority={self._key[0]}"
        return text + ">"


def run_finalizers(minpriority: int | None = None) -> None:
    """Run the finalizers whose exit priority is not None and at least ``minpriority``.

    Highest priority first; of one priority, the newest first.  Without
    ``minpriority``, every one with a priority, and the registry is emptied.
    Marks the process as exiting (:func:`is_exiting`).
    """
    global _exiting
    _exiting = True
    if minpriority is None:
        logsupport.debug('running the remaining "atexit" finalizers')
    else:
        logsupport.debug('running all "atexit" finalizers with priority >= %d', minpriority)
    # list(dict) is atomic; the registry may change meanwhile (the GC, other threads).
    keys = [
        key
        for key in list(_finalizer_registry)
        if key[0] is not None and (minpriority is None or key[0] >= minpriority)
    ]
    keys.sort(reverse=True)
    for key in keys:
        finalizer = _finalizer_registry.get(key)
        if finalizer is not None:
            logsupport.sub_debug("calling %s", finalizer)
            try:
                finalizer()
            except Exception:
                import traceback

                traceback.print_exc()
    if minpriority is None:
        _finalizer_registry.clear()


def is_exiting() -> bool:
    """True once the process has begun its exit work (its finalizers run)."""
    return _exiting


def register_after_fork(obj: object, func: Callable[[Any], object]) -> None:
    """Call ``func(obj)`` in each new child process as it starts, while ``obj`` lives.

    In a forked child for objects registered before the fork; in a fresh
    interpreter for those registered while it received its Process (an
    object that registers itself when unpickled).
    """
    global _afterfork_registry
    if _afterfork_registry is None:
        import weakref

        _afterfork_registry = weakref.WeakValueDictionary()
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


def _run_after_forkers() -> None:
    if _afterfork_registry is None:
        return
    items = sorted(_afterfork_registry.items(), key=lambda item: item[0][0])
    for (_index, _ident, func), obj in items:
        try:
            func(obj)
        except Exception as exc:
            logsupport.info("after forker raised exception %s", exc)


def _start_child() -> None:
    """In a new child: drop the parent's finalizers, run the after-fork callbacks."""
    global _exiting
    _exiting = False
    _finalizer_registry.clear()
    _run_after_forkers()


process_module.on_child_start(_start_child)
process_module.run_finalizers_at_exit(run_finalizers)

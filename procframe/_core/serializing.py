"""Pickling for a chosen serializer: pickle first, the serializer only for what pickle cannot.

Every message procframe sends is a pickle stream that ``pickle.loads`` reads,
whatever the serializer: receivers never need to know which one was chosen.
With ``pickle`` chosen, :meth:`Serializer.dumps` *is*
:func:`procframe._core.reduction.dumps`.  With another one (``cloudpickle``,
``dill``, a third party's), an object is pickled in up to three steps, each
taken only if the one before cannot carry it:

1. The standard pickle, as with ``pickle`` chosen.  Its result stands unless
   pickle refused the object, or the stream names something in ``__main__``
   that a child could not find there (the interactive prompt, a notebook, a
   function defined under ``if __name__ == "__main__":``).  Plain data costs
   a flag test more than with ``pickle``, and a search of the stream for
   ``__main__`` where a child could miss something there.
2. The standard pickle again, with a ``reducer_override`` that hands each
   function and class pickle cannot save by name (a lambda, a closure, a local
   class, one of those in ``__main__``) to the serializer, whose bytes travel
   in the stream, rebuilt by :func:`load_by_value`.  Everything else in the
   object (numpy arrays out of band included) is still the standard pickle's.
3. The serializer, on the whole object, wrapped the same way: for what it
   can carry and pickle cannot at all (dill: a lock, a generator's code).

If all of them refuse, the error raised is the serializer's own (pickle's,
with ``pickle``), with a note naming the object and the serializer, and the
other serializers that would carry it.
"""

from __future__ import annotations

import _thread
import io
import re
import sys
from pickle import HIGHEST_PROTOCOL, PicklingError
from pickle import Pickler as _Pickler
from pickle import dumps as _pickle_dumps
from types import FunctionType

from procframe._core import reduction, serializer_registry
from procframe._core.errors import add_note

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procframe._core.serializer_registry import SerializerInfo

REFUSALS = (PicklingError, AttributeError, TypeError)
"""What pickle raises for an object it cannot carry (a local object: AttributeError)."""
_MAIN_MARK = b"\x8c\x08__main__"
"""``__main__`` as pickle writes a module name (SHORT_BINUNICODE): the stream names it."""


class Serializer:
    """A serializer as procframe uses it: :meth:`dumps` gives a pickle stream.

    Objects that send (a Queue, a Connection, a Pool) keep their serializer's
    ``dumps`` at creation; pickled, a Serializer crosses by name.
    """

    __slots__ = ("_by_value", "_search_main", "dumps", "info", "name")

    def __init__(self, info: SerializerInfo) -> None:
        self.name = info.name
        self.info = info
        self._by_value: dict[int, tuple[object, bool]] = {}
        """Functions and classes seen by step 2, by id: (the object, whether by value)."""
        self._search_main = main_names_by_value() != frozenset()
        """Whether a stream naming ``__main__`` may name what a child cannot find there
        (False for a main script with no definition in its ``__main__`` block)."""
        self.dumps: Any = (
            reduction.dumps if info.name == serializer_registry.PICKLE else self._dumps
        )

    def __repr__(self) -> str:
        return f"<procframe Serializer {self.name!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return get, (self.name,)

    def _dumps(self, obj: object, buffer_callback: Any = None) -> bytes:
        """``obj`` pickled in the steps of the module doc; ``buffer_callback`` as pickle's
        (one with side effects offers ``reset()``, called before a step is tried again)."""
        mark = reduction.shares_made
        try:
            data = _pickle_dumps(obj, HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
        except REFUSALS as exc:
            reduction.release_shares_since(mark)
            if isinstance(exc, reduction.InheritanceOnlyError):
                raise
            _reset(buffer_callback)
            return self._dumps_by_value(obj, buffer_callback)
        except BaseException:
            reduction.release_shares_since(mark)
            raise
        if self._search_main and data.find(_MAIN_MARK) >= 0:
            _reset(buffer_callback)
            reduction.release_shares_since(mark)
            try:
                return self._dumps_by_value(obj, buffer_callback)
            except REFUSALS:
                _reset(buffer_callback)  # by name, as pickle would: a child may find it
                return reduction.dumps(obj, buffer_callback)
        return data

    def _dumps_by_value(self, obj: object, buffer_callback: Any) -> bytes:
        """Steps 2 and 3 of the module doc."""
        mark = reduction.shares_made
        stream = io.BytesIO()
        try:
            _ByValuePickler(stream, self, buffer_callback).dump(obj)
            return stream.getvalue()
        except REFUSALS as exc:
            reduction.release_shares_since(mark)
            if isinstance(exc, reduction.InheritanceOnlyError):
                raise
        except BaseException:
            reduction.release_shares_since(mark)
            raise
        _reset(buffer_callback)
        try:
            whole = self.info.dumps(obj)
        except Exception as exc:
            reduction.release_shares_since(mark)
            if isinstance(exc, reduction.InheritanceOnlyError) or reduction.probing_now():
                raise
            raise explained(exc, obj, self.name) from None
        return reduction.dumps(_ByValue(self.name, whole), buffer_callback)

    def dumps_for_fresh_child(self, obj: object) -> bytes:
        """:meth:`dumps`, for a child that starts a fresh interpreter: under ``pickle``, a
        function or class of ``__main__`` that such a child cannot find by name (defined
        at the interactive prompt, or in the ``if __name__ == "__main__":`` block) raises
        here, in the caller, rather than in the child."""
        if (
            self.name == serializer_registry.PICKLE
            and isinstance(obj, (FunctionType, type))
            and getattr(obj, "__module__", None) == "__main__"
            and not _found_by_name(obj)
        ):
            error = PicklingError(
                f"Can't pickle {obj!r}: it is defined in __main__ at the interactive prompt "
                "or in its `if __name__ == '__main__':` block, where a child that starts a "
                "fresh interpreter cannot find it by name"
            )
            raise explained(error, obj, self.name)
        return self.dumps(obj)  # type: ignore[no-any-return]

    def by_value(self, obj: Any) -> bool:
        """True if ``obj`` (a function or class) must cross by value: a child cannot import it."""
        seen = self._by_value.get(id(obj))
        if seen is not None and seen[0] is obj:
            return seen[1]
        answer = not _found_by_name(obj)
        if len(self._by_value) >= 4096:
            self._by_value.clear()
        self._by_value[id(obj)] = (obj, answer)
        return answer


class _ByValuePickler(_Pickler):
    """The standard pickler, but functions and classes it cannot save by name go to the
    serializer."""

    def __init__(self, file: io.BytesIO, serializer: Serializer, buffer_callback: Any) -> None:
        super().__init__(file, HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
        self._serializer = serializer

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is FunctionType or isinstance(obj, type)) and self._serializer.by_value(obj):
            serializer = self._serializer
            return load_by_value, (serializer.name, serializer.info.dumps(obj))
        return NotImplemented


class _ByValue:
    """An object the serializer pickled whole, as a pickle that rebuilds it."""

    __slots__ = ("data", "name")

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return load_by_value, (self.name, self.data)


def load_by_value(name: str, data: bytes) -> Any:
    """Rebuild what serializer ``name`` pickled (called by ``pickle.loads``)."""
    return get(name).info.loads(data)


def _reset(buffer_callback: Any) -> None:
    reset = getattr(buffer_callback, "reset", None)
    if reset is not None:
        reset()


def _found_by_name(obj: Any) -> bool:
    """True if a child can find ``obj`` (a function or class) where pickle names it."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return False  # <lambda>, <locals>
    if module_name == "__main__":
        by_value = main_names_by_value()
        if by_value is None or qualname.split(".")[0] in by_value:
            return False
    module = sys.modules.get(module_name)
    if module is None:
        return True  # pickle imports it, here and there
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


_main_names: dict[tuple[int, str | None], frozenset[str] | None] = {}
_main_lock = _thread.allocate_lock()


def main_names_by_value() -> frozenset[str] | None:
    """The names of ``__main__`` a child cannot find there: ``None`` for all of them.

    A child of a fresh interpreter runs the parent's main module again with its
    ``if __name__ == "__main__":`` block shut, so what that block defines is
    not there; a main module with no file (the interactive prompt, a notebook,
    ``-c``) is not run again at all.  A forked child would find more, but a
    fork pool's worker misses what was defined after it started: by value is
    always right.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    key = (id(main), path if isinstance(path, str) else None)
    if key in _main_names:
        return _main_names[key]
    with _main_lock:
        if key not in _main_names:
            _main_names.clear()
            _main_names[key] = _guarded_names(key[1])
        return _main_names[key]


def _guarded_names(path: str | None) -> frozenset[str] | None:
    """Functions and classes defined in ``path``'s ``__main__`` block (None: no file).

    Read line by line rather than parsed (a main module can be big, and every child that
    pickles reads it once): a ``def`` or ``class`` line indented under a top-level
    ``if __name__ == "__main__":``.  One inside a string counts too: it only sends
    that name by value, which is always right.
    """
    import os

    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            lines = source.read().splitlines()
    except OSError:
        return None
    names = set()
    guarded = False
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            guarded = _GUARD.match(line) is not None
        elif guarded:
            found = _DEFINITION.match(line)
            if found:
                names.add(found.group(1))
    return frozenset(names)


_GUARD = re.compile(
    r"""if\s+(?:__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__)\s*:"""
)
_DEFINITION = re.compile(r"\s+(?:async\s+def|def|class)\s+(\w+)")


def explained(error: BaseException, obj: object, serializer: str) -> BaseException:
    """``error`` (a serializer refused ``obj``) with a note naming both, and the serializers
    that would carry ``obj``."""
    from procframe._core.osutil import short_repr

    others = [name for name in _other_serializers(serializer) if _carries(name, obj)]
    note = f"procframe: the {serializer!r} serializer cannot carry {short_repr(obj)}"
    if others:
        choices = " or ".join(repr(name) for name in others)
        note += (
            f"; the {choices} serializer can: choose it with procframe.set_serializer(), "
            f"get_context(..., serializer=...) or {serializer_registry.SERIALIZER_ENV}"
        )
    elif isinstance(obj, (FunctionType, type)) and serializer == serializer_registry.PICKLE:
        note += (
            "; pickle saves functions and classes by name: define it at module level, or "
            "install cloudpickle or dill (python -m pip install 'procframe[cloudpickle]') "
            "and choose that serializer"
        )
    add_note(error, note)
    return error


def _other_serializers(serializer: str) -> list[str]:
    try:
        names = serializer_registry.available_serializers()
    except Exception:  # a broken plugin must not hide the error being explained
        return []
    return [name for name in names if name not in (serializer, serializer_registry.PICKLE)]


def _carries(name: str, obj: object) -> bool:
    with reduction.probing():
        try:
            get(name).dumps(obj)
        except Exception:
            return False
    return True


_serializers: dict[str, Serializer] = {}


def get(name: str) -> Serializer:
    """The serializer ``name`` (a :class:`~procframe._core.errors.SerializerError` if unknown
    or not installed here)."""
    found = _serializers.get(name)
    if found is None or (
        name != serializer_registry.PICKLE
        and found.info is not serializer_registry.serializers().get(name)
    ):
        info = (
            PICKLE_INFO
            if name == serializer_registry.PICKLE
            else serializer_registry.resolve(name, "asked for by name")
        )
        found = _serializers[name] = Serializer(info)
    return found


def default() -> Serializer:
    """This process's default serializer (``set_serializer``, the parent's, the environment)."""
    return get(serializer_registry.default_name())


def of(name: str | None) -> Serializer:
    """The serializer ``name``, or the default one when ``None``."""
    return default() if name is None else get(name)


def _pickle_loads(data: bytes) -> object:
    from pickle import loads

    return loads(data)


def _pickle_info() -> SerializerInfo:
    return serializer_registry.SerializerInfo(
        serializer_registry.PICKLE, reduction.dumps, _pickle_loads
    )


PICKLE_INFO = _pickle_info()
"""``pickle``, known without loading any plugin (the built-in plugin declares this one)."""

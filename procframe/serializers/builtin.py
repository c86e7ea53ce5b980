"""procframe's own serializers: ``pickle``, ``cloudpickle`` and ``dill``, a plugin like any other.

``cloudpickle`` and ``dill`` are declared whether or not their package is
installed (unavailable, with how to install it, when it is not) and imported
only when first used.
"""

from __future__ import annotations

from pickle import HIGHEST_PROTOCOL

from procframe._core.hookspecs import hookimpl
from procframe._core.serializer_registry import SerializerInfo
from procframe._core.serializing import PICKLE_INFO

TYPE_CHECKING = False  # loaded with the built-in plugins at a program's first get_context()
if TYPE_CHECKING:
    from typing import Any


def _cloudpickle_dumps(obj: object) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


def _cloudpickle_loads(data: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(data)


def _dill_dumps(obj: object) -> bytes:
    import io

    stream = io.BytesIO()
    # recurse: a function's globals travel as the names it uses, not as the whole
    # __main__ of the sender (which a child's __main__ would replace).
    _dill_pickler()(stream, protocol=HIGHEST_PROTOCOL, recurse=True).dump(obj)
    return stream.getvalue()


_DillPickler: Any = None


def _dill_pickler() -> Any:
    """dill's Pickler, but a module the receiver can import is saved by name.

    dill saves a module outside site-packages (any module of the program, procframe
    installed editable) by value, its whole state along: megabytes, or a failure on
    the first object of it that cannot be pickled.
    """
    global _DillPickler
    if _DillPickler is None:
        import importlib
        import sys
        from types import ModuleType

        import dill

        by_value = dill.Pickler.dispatch[ModuleType]

        def save_module(pickler: Any, module: ModuleType) -> None:
            name = module.__name__
            if name != "__main__" and sys.modules.get(name) is module:
                pickler.save_reduce(importlib.import_module, (name,), obj=module)
            else:
                by_value(pickler, module)

        dispatch = type(dill.Pickler.dispatch)(dill.Pickler.dispatch)
        dispatch[ModuleType] = save_module
        _DillPickler = type("ModulesByName", (dill.Pickler,), {"dispatch": dispatch})
    return _DillPickler


def _dill_loads(data: bytes) -> Any:
    import dill

    return dill.loads(data)


def _third_party(name: str, dumps: Any, loads: Any) -> SerializerInfo:
    import importlib.util

    installed = importlib.util.find_spec(name) is not None
    return SerializerInfo(
        name,
        dumps,
        loads,
        available=installed,
        reason="" if installed else f"the {name} package is not installed",
        install=f"python -m pip install 'procframe[{name}]'",
    )


class BuiltinSerializers:
    """Declares ``pickle``, ``cloudpickle`` and ``dill``."""

    @hookimpl
    def procframe_declare_serializers(self) -> list[SerializerInfo]:
        return [
            PICKLE_INFO,
            _third_party("cloudpickle", _cloudpickle_dumps, _cloudpickle_loads),
            _third_party("dill", _dill_dumps, _dill_loads),
        ]


plugin = BuiltinSerializers()

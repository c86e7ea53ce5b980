"""Serializers: how objects cross between processes, chosen by name like backends.

procframe pickles with the standard pickle by default.  ``cloudpickle`` and
``dill`` (``python -m pip install 'procframe[cloudpickle]'`` or
``'procframe[dill]'``) also carry lambdas, closures, local classes and what
the interactive prompt defines; a plugin adds its own through the
``procframe_declare_serializers`` hook.  Choose one with
:func:`set_serializer`, ``PROCFRAME_SERIALIZER=name``, or per context
(``procframe.get_context("spawn", serializer="dill")``); children and pool
workers use their parent's.  Plain data goes through pickle whichever is
chosen: the serializer carries only what pickle cannot
(:mod:`procframe._core.serializing`).
"""

from __future__ import annotations

from procframe._core import serializer_registry
from procframe._core.errors import SerializerError
from procframe._core.serializer_registry import (
    PICKLE,
    SERIALIZER_ENV,
    SerializerInfo,
    available_serializers,
)
from procframe.context import get_serializer, set_serializer

__all__ = [
    "PICKLE",
    "SERIALIZER_ENV",
    "SerializerError",
    "SerializerInfo",
    "available_serializers",
    "declared_serializers",
    "dumps",
    "get_serializer",
    "set_serializer",
]


def declared_serializers() -> dict[str, SerializerInfo]:
    """Every declared serializer, available or not, by name."""
    return dict(serializer_registry.serializers())


def dumps(obj: object, serializer: str | None = None) -> bytes:
    """``obj`` pickled as procframe pickles a message under ``serializer`` (the default one
    when ``None``): one stream that ``pickle.loads`` reads, plain data by the standard pickle
    with procframe's reducers (a ``memoryview`` stays one), only what pickle cannot carry by
    the serializer.  For a backend that moves objects its own way; an unknown name is a
    :class:`SerializerError`, what the serializer refuses raises its own error, explained."""
    from procframe._core import messages, serializing

    del messages  # imported for its reducers (memoryview, big buffers)
    return serializing.of(serializer).dumps(obj)  # type: ignore[no-any-return]
